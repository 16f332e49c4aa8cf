package model_test

import (
	"reflect"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// lossCounter is the cpu backend with its two loss operations counted and
// its fused energy head hidden (only model.Backend's methods are
// promoted), so that models take the materializing path: the head has its
// own forward-only call (TestTrainerUsesEnergyHead).
type lossCounter struct {
	model.Backend
	cpu                   *cpu.Backend
	withGrad, forwardOnly int
}

func (c *lossCounter) EnergyLoss(e model.Mat, labels model.Ints, loss model.Loss, gradScale float32, stats model.Mat, argmin model.Ints) error {
	c.withGrad++
	return c.cpu.EnergyLoss(e, labels, loss, gradScale, stats, argmin)
}

func (c *lossCounter) EnergyStats(e model.Mat, labels model.Ints, loss model.Loss, stats model.Mat, argmin model.Ints) error {
	c.forwardOnly++
	return c.cpu.EnergyStats(e, labels, loss, stats, argmin)
}

// TestEvaluateWritesNoGradient: evaluation takes the forward-only loss
// (model.ForwardLoss) on a backend that has it, never the one that writes
// dL/dE over the energies, and measures the same as it does through
// EnergyLoss on a backend without it (the statistics are bitwise equal).
func TestEvaluateWritesNoGradient(t *testing.T) {
	train, test := blobs(t, 9)
	be := cpu.New()
	c := &lossCounter{Backend: be, cpu: be}
	defer c.Close()
	cfg := model.DefaultConfig()
	cfg.Model, cfg.Epochs = "mlp:9", 1
	tr, err := model.NewTrainer(c, cfg, train, test)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	before := *c
	got, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	if c.withGrad != before.withGrad || c.forwardOnly == before.forwardOnly {
		t.Errorf("Evaluate made %d EnergyLoss and %d EnergyStats calls, want none and some", c.withGrad-before.withGrad, c.forwardOnly-before.forwardOnly)
	}
	// The same model through a backend without ForwardLoss (EnergyLoss).
	dd, err := model.Upload(plainBackend{c.Backend}, test)
	if err != nil {
		t.Fatal(err)
	}
	defer dd.Free()
	want, err := model.Evaluate(plainBackend{c.Backend}, tr.Model, dd, cfg.Loss, cfg.Batch)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Evaluate with EnergyStats %+v, with EnergyLoss %+v", got, want)
	}
}

// plainBackend hides every optional capability of the backend it wraps.
type plainBackend struct{ model.Backend }
