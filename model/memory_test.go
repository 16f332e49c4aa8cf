package model_test

import (
	"math"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// TestMemoryEstimateBoundsWhatTrainerAllocates: the estimate is at least
// the float32 storage the trainer's parameters, optimizer state and data
// need, and grows with the sizes that come from flags, saturating rather
// than overflowing (issue 13, item 3: --batch 2^63-1, --model
// mlp:100000000).
func TestMemoryEstimateBoundsWhatTrainerAllocates(t *testing.T) {
	cfg := model.DefaultConfig()
	cfg.Model = "mlp:32"
	est := model.MemoryEstimate(cfg, 784, 10, 60000, 10000)
	params := float64(784*32 + 32 + 32*10 + 10)
	data := float64(70000 * 784)
	if min := 4 * (4*params + data); float64(est) < min {
		t.Errorf("estimate %d below the %v bytes of parameters (+grad +adam) and data", est, min)
	}
	if est > 1<<30 {
		t.Errorf("estimate %d for an MNIST mlp:32: far too large", est)
	}
	cfg.Model = "mlp:100000000"
	if big := model.MemoryEstimate(cfg, 784, 10, 60000, 10000); big < 1<<40 {
		t.Errorf("mlp:100000000 estimated at %d bytes", big)
	}
	cfg.Model, cfg.Batch = "linear", math.MaxInt
	if e := model.MemoryEstimate(cfg, 784, 10, 60000, 10000); e <= 0 || e > 1<<30 {
		t.Errorf("batch 2^63-1 on 60000 rows: %d (the batch is capped by the rows)", e)
	}
	cfg.Model = "mlp:2000000000,2000000000"
	if e := model.MemoryEstimate(cfg, 1<<30, 1<<16, 1<<40, 1<<40); e != math.MaxInt64 {
		t.Errorf("absurd sizes: %d, want saturation at MaxInt64", e)
	}
	if e := model.InferenceMemory(cfg, 784, 10, 1000); e != math.MaxInt64 && e < 1<<50 {
		t.Errorf("inference estimate %d", e)
	}
}

// TestHugeBatchIsCappedByRows reproduces issue 13, item 3 in the library:
// a batch larger than the data (2^63-1 rows) panicked in newBatcher
// ("makeslice: len out of range"). A batch of at least N rows is one step
// of all N rows, as it always meant, and trains like batch N.
func TestHugeBatchIsCappedByRows(t *testing.T) {
	train, test := resumeData(t)
	b := cpu.New()
	defer b.Close()
	run := func(batch int) map[string][]float32 {
		cfg := resumeConfig("adam")
		cfg.Batch, cfg.Epochs = batch, 2
		tr, err := model.NewTrainer(b, cfg, train, test)
		if err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		defer tr.Close()
		if tr.StepsPerEpoch() != 1 {
			t.Fatalf("batch %d: %d steps per epoch, want 1", batch, tr.StepsPerEpoch())
		}
		if _, err := tr.Run(t.Context()); err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		return weights(t, b, tr.Model)
	}
	sameBits(t, run(math.MaxInt), run(train.N))
	sameBits(t, run(1_000_000_000), run(train.N+1))
}
