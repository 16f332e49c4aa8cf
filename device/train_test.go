package device_test

import (
	"context"
	"math"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
)

// TestTrainingParity trains the same models for two epochs on a 1000-row
// MNIST subset with device+emu and with the cpu reference: the per-epoch
// training losses must agree to float32 accuracy and the held-out accuracy
// must be the same. This runs every kernel together, the way the trainer
// uses them (a dataset kept on the device, gathered batches, Adam).
func TestTrainingParity(t *testing.T) {
	tr, te, err := dataset.EmbeddedMNIST()
	if err != nil {
		t.Fatal(err)
	}
	toData := func(s *dataset.Set, n int) *model.Data {
		return (&model.Data{X: s.X, Y: s.Y, N: s.N, D: s.D, Classes: s.Classes}).Limit(n)
	}
	train, test := toData(tr, 1000), toData(te, 500)

	run := func(t *testing.T, b model.Backend, cfg model.Config) []model.EpochResult {
		trainer, err := model.NewTrainer(b, cfg, train, test)
		if err != nil {
			t.Fatalf("%s: NewTrainer: %v", b.Name(), err)
		}
		defer func() {
			if err := trainer.Close(); err != nil {
				t.Errorf("%s: trainer Close: %v", b.Name(), err)
			}
		}()
		res, err := trainer.Run(context.Background())
		if err != nil {
			t.Fatalf("%s: Run: %v", b.Name(), err)
		}
		return res
	}
	for _, spec := range []string{"linear", "mlp:64"} {
		t.Run(spec, func(t *testing.T) {
			cfg := model.DefaultConfig()
			cfg.Model, cfg.Epochs = spec, 2
			ref := cpu.New()
			defer ref.Close()
			dev := newDevice(t, emu.Options{Mode: emu.Deterministic}, device.Options{})
			defer dev.Close()
			want, got := run(t, ref, cfg), run(t, dev, cfg)
			for i := range want {
				w, g := want[i], got[i]
				t.Logf("epoch %d: loss cpu %.7f device %.7f; accuracy cpu %.4f device %.4f", w.Epoch, w.TrainLoss, g.TrainLoss, w.Eval.Accuracy, g.Eval.Accuracy)
				// Rounding differences (GEMM summation order, float32 vs
				// float64 log-sum-exp) compound over the steps; 1e-4
				// relative is far below any real training difference.
				if math.Abs(g.TrainLoss-w.TrainLoss) > 1e-4*math.Abs(w.TrainLoss) {
					t.Errorf("epoch %d: training loss %.7f on %s, %.7f on cpu", w.Epoch, g.TrainLoss, dev.Name(), w.TrainLoss)
				}
				if g.Eval.Accuracy != w.Eval.Accuracy {
					t.Errorf("epoch %d: held-out accuracy %.4f on %s, %.4f on cpu", w.Epoch, g.Eval.Accuracy, dev.Name(), w.Eval.Accuracy)
				}
			}
		})
	}
}
