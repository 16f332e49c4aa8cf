package model_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// headless hides a backend's energy head (and JointOps): models on it take
// the materializing path. It keeps EmbeddingOps, without which CBOW models
// cannot run at all.
type headless struct{ model.Backend }

func (h headless) EmbedMean(table, ids, out model.Mat) error {
	return h.Backend.(model.EmbeddingOps).EmbedMean(table, ids, out)
}

func (h headless) EmbedMeanGrad(dout, ids, dtable model.Mat) error {
	return h.Backend.(model.EmbeddingOps).EmbedMeanGrad(dout, ids, dtable)
}

// headCounter records what the trainer asks of a backend with the fused
// head: head calls, EnergyLoss calls, and every allocation's shape.
type headCounter struct {
	*cpu.Backend
	head, headGrad, energyLoss int
	allocs                     [][2]int
}

func (c *headCounter) Alloc(r, k int) (model.Mat, error) {
	c.allocs = append(c.allocs, [2]int{r, k})
	return c.Backend.Alloc(r, k)
}

func (c *headCounter) EnergyLoss(e model.Mat, y model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints) error {
	c.energyLoss++
	return c.Backend.EnergyLoss(e, y, l, gs, st, am)
}

func (c *headCounter) EnergyHead(h, w, b model.Mat, y model.Ints, l model.Loss, st model.Mat, am model.Ints) error {
	c.head++
	return c.Backend.EnergyHead(h, w, b, y, l, st, am)
}

func (c *headCounter) EnergyHeadGrad(h, w, b model.Mat, y model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints, dh, dw, db model.Mat) error {
	c.headGrad++
	return c.Backend.EnergyHeadGrad(h, w, b, y, l, gs, st, am, dh, dw, db)
}

// manyAnswers is a data set with K answers of which the rows use 40, each
// a direction in D dimensions: learnable by a linear model, which must
// find the 40 among the K.
func manyAnswers(n, d, k int, seed uint64) *model.Data {
	rng := rand.New(rand.NewPCG(1, 11)) // the same answers and centers in every split
	used := make([]int, 40)
	for i := range used {
		used[i] = rng.IntN(k)
	}
	centers := make([]float32, k*d)
	for i := range centers {
		centers[i] = float32(rng.NormFloat64())
	}
	rng = rand.New(rand.NewPCG(seed, 12))
	x := make([]float32, n*d)
	y := make([]int32, n)
	for i := range y {
		c := used[rng.IntN(len(used))]
		y[i] = int32(c)
		for j := 0; j < d; j++ {
			x[i*d+j] = centers[c*d+j] + float32(0.3*rng.NormFloat64())
		}
	}
	return &model.Data{X: x, Y: y, N: n, D: d, Classes: k}
}

// TestTrainerUsesEnergyHead: on a backend with the fused head, training
// and evaluation of dense models go through it for every batch, never call
// EnergyLoss and never allocate a batch's B x K energies; the per-epoch
// losses match those of the materializing path (the same backend with
// the head hidden) closely, for a dense and a sparse loss, a linear model
// and an MLP.
func TestTrainerUsesEnergyHead(t *testing.T) {
	const K = 5003
	train := manyAnswers(700, 12, K, 1)
	test := manyAnswers(130, 12, K, 2)
	for _, tc := range []struct {
		model string
		loss  model.LossKind
	}{{"linear", model.NLL}, {"mlp:17", model.NLL}, {"mlp:9", model.Hinge}} {
		t.Run(tc.model+"/"+tc.loss.String(), func(t *testing.T) {
			cfg := model.DefaultConfig()
			cfg.Model, cfg.Loss, cfg.Epochs, cfg.Batch, cfg.Optimizer.LR = tc.model, model.DefaultLoss(tc.loss), 2, 64, 1e-2
			run := func(b model.Backend) []model.EpochResult {
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
			hc := &headCounter{Backend: cpu.New()}
			got := run(hc)
			steps := cfg.Epochs * ((train.N + cfg.Batch - 1) / cfg.Batch)
			evalBatches := cfg.Epochs * ((test.N + cfg.Batch - 1) / cfg.Batch)
			if hc.headGrad != steps || hc.head != evalBatches || hc.energyLoss != 0 {
				t.Errorf("EnergyHeadGrad %d calls (want %d steps), EnergyHead %d (want %d held-out batches), EnergyLoss %d (want 0)",
					hc.headGrad, steps, hc.head, evalBatches, hc.energyLoss)
			}
			for _, a := range hc.allocs {
				if a[1] == K && a[0] != 1 {
					t.Errorf("allocated a %dx%d matrix: the energies of a batch", a[0], a[1])
				}
			}
			mb := cpu.New()
			want := run(headless{mb})
			for i := range want {
				g, w := got[i], want[i]
				if math.Abs(g.TrainLoss-w.TrainLoss) > 1e-4*(1+math.Abs(w.TrainLoss)) ||
					math.Abs(g.Eval.NLL-w.Eval.NLL) > 1e-4*(1+math.Abs(w.Eval.NLL)) ||
					math.Abs(g.Eval.Accuracy-w.Eval.Accuracy) > 2.0/float64(test.N) {
					t.Errorf("epoch %d: fused head: train loss %.7f, test NLL %.7f, accuracy %.4f; materializing: %.7f, %.7f, %.4f",
						g.Epoch, g.TrainLoss, g.Eval.NLL, g.Eval.Accuracy, w.TrainLoss, w.Eval.NLL, w.Eval.Accuracy)
				}
			}
			if last := got[len(got)-1]; last.Eval.NLL >= math.Log(K) {
				t.Errorf("test NLL %.3f after training is not below log K = %.3f: nothing learned", last.Eval.NLL, math.Log(K))
			}
		})
	}
}
