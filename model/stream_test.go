package model_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// smallMemoryBackend refuses any matrix of more than maxRows rows, like a
// GPU too small to hold the data set (but not the model or a batch).
type smallMemoryBackend struct {
	model.Backend
	maxRows int
}

func (s *smallMemoryBackend) Alloc(r, c int) (model.Mat, error) {
	if r > s.maxRows {
		return nil, errors.New("out of memory (test)")
	}
	return s.Backend.Alloc(r, c)
}

func trainWith(t *testing.T, be model.Backend, cfg model.Config, train, test *model.Data) ([][]float32, []model.EpochResult, *model.Trainer) {
	t.Helper()
	tr, err := model.NewTrainer(be, cfg, train, test)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float32
	for _, p := range tr.Model.Params() {
		v := make([]float32, p.Size())
		if err := be.Download(v, p.Value); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out, res, tr
}

// A data set that does not fit is streamed batch by batch, and streaming
// trains to bitwise the same weights and metrics as a resident data set.
func TestStreamedDataTrainsIdentically(t *testing.T) {
	train, test := blobs(t, 11)
	cfg := model.DefaultConfig()
	cfg.Model, cfg.Epochs, cfg.Batch, cfg.Seed = "mlp:13", 2, 31, 3

	resident, rres, rtr := trainWith(t, cpu.New(), cfg, train, test)
	if s, _ := rtr.Streamed(); s {
		t.Fatal("the resident run reports streaming")
	}

	small := &smallMemoryBackend{Backend: cpu.New(), maxRows: 200}
	if train.N+1 <= small.maxRows {
		t.Fatalf("test data (%d rows) too small to exercise streaming", train.N)
	}
	fallback, fres, ftr := trainWith(t, small, cfg, train, test)
	if s, why := ftr.Streamed(); !s || why == "" {
		t.Fatalf("Streamed() = %v, %q after an allocation failure, want true and a reason", s, why)
	}

	cfg.StreamData = true
	forced, _, _ := trainWith(t, cpu.New(), cfg, train, test)

	for name, got := range map[string][][]float32{"fallback": fallback, "forced": forced} {
		for i := range resident {
			for j := range resident[i] {
				if math.Float32bits(resident[i][j]) != math.Float32bits(got[i][j]) {
					t.Fatalf("%s streaming: param %d[%d] = %v, resident %v", name, i, j, got[i][j], resident[i][j])
				}
			}
		}
	}
	for e := range rres {
		if rres[e].TrainLoss != fres[e].TrainLoss || rres[e].Eval.Accuracy != fres[e].Eval.Accuracy {
			t.Fatalf("epoch %d: streamed %v/%v, resident %v/%v", e+1, fres[e].TrainLoss, fres[e].Eval.Accuracy, rres[e].TrainLoss, rres[e].Eval.Accuracy)
		}
	}
}
