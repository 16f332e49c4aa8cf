package model_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// TestCBOWGradientsFiniteDifferences checks dL/dW of every parameter of
// CBOW models (the embedding table included, rows no id names too) against
// float64 central differences of the loss, on cpu and on the emulated
// device: ids with padding (-1), a repeated id in a row, a row of padding
// only.
func TestCBOWGradientsFiniteDifferences(t *testing.T) {
	const b, w, v = 6, 4, 9 // rows, window, vocabulary (= answers)
	backends := map[string]func(t *testing.T) model.Backend{
		"cpu":        func(*testing.T) model.Backend { return cpu.New() },
		"device/emu": func(t *testing.T) model.Backend { return emuBackend(t, false) },
	}
	for bname, newB := range backends {
		for _, specStr := range []string{"cbow:5", "cbow:5+mlp:6:tanh"} {
			for _, loss := range []model.Loss{{Kind: model.NLL, Beta: 1.5, Margin: 1, Gamma: 1, Delta: 1}, {Kind: model.Hinge, Beta: 1, Margin: 4, Gamma: 1, Delta: 1}} {
				if loss.Kind == model.Hinge && specStr != "cbow:5" {
					// Through the MLP the steps cross switches of E_I: the
					// hinge is checked on the linear head only.
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/%v", bname, specStr, loss.Kind), func(t *testing.T) {
					be := newB(t)
					defer be.Close()
					spec, err := model.ParseSpec(specStr)
					if err != nil {
						t.Fatal(err)
					}
					if spec.String() != specStr {
						t.Errorf("ParseSpec(%q).String() = %q", specStr, spec.String())
					}
					rng := rand.New(rand.NewPCG(5, 6))
					m, err := model.NewEnergyModel(be, spec, w, v, rng)
					if err != nil {
						t.Fatal(err)
					}
					defer m.Free()
					// A table of unit scale, so the FD step is small against it.
					for _, p := range m.Params() {
						r, c := p.Shape()
						val := make([]float32, r*c)
						for i := range val {
							val[i] = float32(rng.NormFloat64() * 0.7)
						}
						must(t, be.Upload(p.Value, val))
					}
					ids := []float32{
						0, 3, -1, 7,
						-1, -1, -1, -1,
						2, 2, 5, -1,
						8, 1, 1, 4,
						6, -1, 3, 3,
						1, 0, 2, 5,
					}
					ys := []int32{1, 4, 0, 8, 2, 6}
					x := mustMat(t, be, b, w, ids)
					lab, _ := be.AllocInts(b)
					must(t, be.UploadInts(lab, ys))
					stats, _ := be.Alloc(b, model.NumStats)
					argmin, _ := be.AllocInts(b)
					eHost := make([]float32, b*v)
					lossAt := func() float64 {
						e, err := m.Forward(x)
						if err != nil {
							t.Fatal(err)
						}
						must(t, be.Download(eHost, e))
						return hostLoss(t, loss, eHost, ys, v)
					}
					for _, p := range m.Params() {
						r, c := p.Shape()
						must(t, be.Upload(p.Grad, nanSlice(r*c)))
					}
					e, err := m.Forward(x)
					if err != nil {
						t.Fatal(err)
					}
					must(t, be.EnergyLoss(e, lab, loss, 1, stats, argmin))
					must(t, m.Backward(e))
					const h = 1e-2
					checked := 0
					for _, p := range m.Params() {
						r, c := p.Shape()
						grad := make([]float32, r*c)
						must(t, be.Download(grad, p.Grad))
						val := make([]float32, r*c)
						must(t, be.Download(val, p.Value))
						for i := range val {
							orig := val[i]
							val[i] = orig + h
							must(t, be.Upload(p.Value, val))
							plus := lossAt()
							val[i] = orig - h
							must(t, be.Upload(p.Value, val))
							minus := lossAt()
							val[i] = orig
							must(t, be.Upload(p.Value, val))
							fd := (plus - minus) / (float64(orig+h) - float64(orig-h))
							got := float64(grad[i])
							if math.IsNaN(got) || math.Abs(got-fd) > 5e-4+2e-3*math.Abs(fd) {
								t.Errorf("%s[%d]: backward %.6g, finite difference %.6g", p.Name, i, got, fd)
							}
							checked++
						}
					}
					if checked < v*5 {
						t.Fatalf("checked %d entries", checked)
					}
				})
			}
		}
	}
}

// TestCBOWTrainsOnBothPaths trains a CBOW model on a toy language (five
// topics of four words each, the centre word its topic's keyword, the
// context three words of that topic and sometimes a word of another one)
// on cpu with the fused head and without it, and on the emulated device:
// the losses agree across paths and backends, and the model learns
// (held-out accuracy far above chance).
func TestCBOWTrainsOnBothPaths(t *testing.T) {
	const w, v = 4, 23 // words 0..19 in topics of 4, 20..22 never in a context
	mk := func(n int, seed uint64) *model.Data {
		rng := rand.New(rand.NewPCG(seed, 1))
		d := &model.Data{N: n, D: w, Classes: v}
		for i := 0; i < n; i++ {
			topic := rng.IntN(5)
			row := []float32{-1, -1, -1, -1}
			for j := 0; j < 3; j++ {
				row[j] = float32(4*topic + 1 + rng.IntN(3))
			}
			if rng.IntN(3) == 0 {
				row[3] = float32(rng.IntN(20)) // a stray word
			}
			d.X = append(d.X, row...)
			d.Y = append(d.Y, int32(4*topic))
		}
		return d
	}
	train, test := mk(2000, 1), mk(300, 2)
	cfg := model.DefaultConfig()
	cfg.Model, cfg.Epochs, cfg.Batch, cfg.Optimizer.LR = "cbow:16+mlp:32", 4, 50, 1e-2
	run := func(b model.Backend) []model.EpochResult {
		defer b.Close()
		tr, err := model.NewTrainer(b, cfg, train, test)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		res, err := tr.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	fused := run(cpu.New())
	mat := run(headless{cpu.New()})
	var dev []model.EpochResult
	if !testing.Short() {
		dev = run(emuBackend(t, true))
	}
	for i, f := range fused {
		for name, other := range map[string][]model.EpochResult{"materializing": mat, "device/emu": dev} {
			if other == nil {
				continue
			}
			o := other[i]
			if math.Abs(f.TrainLoss-o.TrainLoss) > 3e-3*(1+f.TrainLoss) || math.Abs(f.Eval.NLL-o.Eval.NLL) > 3e-3*(1+f.Eval.NLL) {
				t.Errorf("epoch %d: fused cpu train loss %.6f test NLL %.6f, %s %.6f %.6f", f.Epoch, f.TrainLoss, f.Eval.NLL, name, o.TrainLoss, o.Eval.NLL)
			}
		}
	}
	if acc := fused[len(fused)-1].Eval.Accuracy; acc < 0.95 {
		t.Errorf("held-out accuracy %.3f after training, want >= 0.95 (chance %.3f)", acc, 1.0/v)
	}
}
