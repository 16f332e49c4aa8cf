package model_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
)

func toData(s *dataset.Set) *model.Data {
	return &model.Data{X: s.X, Y: s.Y, N: s.N, D: s.D, Classes: s.Classes}
}

// blobs returns a seeded training and held-out split of Gaussian blobs with
// awkward sizes (not multiples of the batch).
func blobs(t testing.TB, seed uint64) (train, test *model.Data) {
	t.Helper()
	s := dataset.Blobs(1257, 7, 5, 2.5, seed)
	if s == nil || s.N != 1257 {
		t.Fatalf("dataset.Blobs returned %v", s)
	}
	d := toData(s)
	cut := 1000
	return &model.Data{X: d.X[:cut*d.D], Y: d.Y[:cut], N: cut, D: d.D, Classes: d.Classes},
		&model.Data{X: d.X[cut*d.D:], Y: d.Y[cut:], N: d.N - cut, D: d.D, Classes: d.Classes}
}

func TestTrainingReducesLossOnBlobs(t *testing.T) {
	train, test := blobs(t, 3)
	for _, tc := range []struct {
		model, opt string
		lr         float64
		loss       model.LossKind
	}{
		{"linear", "sgd", 0.1, model.NLL},
		{"linear", "momentum", 0.05, model.Hinge},
		{"linear", "adam", 1e-2, model.NLL},
		{"mlp:33,7", "adam", 1e-2, model.NLL},
		{"mlp:31:tanh", "momentum", 0.05, model.Log},
	} {
		t.Run(tc.model+"/"+tc.opt+"/"+tc.loss.String(), func(t *testing.T) {
			be := cpu.New()
			defer be.Close()
			cfg := model.DefaultConfig()
			cfg.Model, cfg.Optimizer.Name, cfg.Optimizer.LR, cfg.Loss = tc.model, tc.opt, tc.lr, model.DefaultLoss(tc.loss)
			cfg.Epochs, cfg.Batch, cfg.Seed = 4, 31, 5
			tr, err := model.NewTrainer(be, cfg, train, test)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			before, err := tr.Evaluate()
			if err != nil {
				t.Fatal(err)
			}
			steps := 0
			tr.OnStep = func(s model.StepInfo) {
				steps++
				if s.Steps != 33 || s.Step < 1 || s.Step > s.Steps || math.IsNaN(s.Loss) {
					t.Errorf("bad step info %+v", s)
				}
			}
			var epochs []model.EpochResult
			tr.OnEpoch = func(r model.EpochResult) { epochs = append(epochs, r) }
			res, err := tr.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if steps != 4*33 || len(epochs) != 4 || len(res) != 4 {
				t.Fatalf("got %d steps, %d OnEpoch calls, %d results; want 132, 4, 4", steps, len(epochs), len(res))
			}
			first, last := res[0], res[len(res)-1]
			t.Logf("before: %+v; first %+v; last %+v", before, *first.Eval, *last.Eval)
			if !(last.TrainLoss < first.TrainLoss) {
				t.Errorf("train loss did not fall: %g -> %g", first.TrainLoss, last.TrainLoss)
			}
			if !(last.Eval.NLL < before.NLL) {
				t.Errorf("held-out NLL did not fall: %g -> %g", before.NLL, last.Eval.NLL)
			}
			if last.Eval.Accuracy < 0.8 || last.Eval.N != 257 {
				t.Errorf("held-out accuracy %g on %d rows, want >= 0.8 on 257", last.Eval.Accuracy, last.Eval.N)
			}
		})
	}
}

func trainedParams(t *testing.T, cfg model.Config, train *model.Data) [][]float32 {
	t.Helper()
	be := cpu.New()
	defer be.Close()
	tr, err := model.NewTrainer(be, cfg, train, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Run(context.Background()); err != nil {
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
	return out
}

func TestTrainingIsDeterministic(t *testing.T) {
	train, _ := blobs(t, 4)
	cfg := model.DefaultConfig()
	cfg.Model, cfg.Epochs, cfg.Batch, cfg.Seed = "mlp:17", 2, 33, 9
	a := trainedParams(t, cfg, train)
	b := trainedParams(t, cfg, train)
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				t.Fatalf("param %d[%d]: %v vs %v with the same seed", i, j, a[i][j], b[i][j])
			}
		}
	}
	cfg.Seed = 10
	c := trainedParams(t, cfg, train)
	same := true
	for i := range a {
		for j := range a[i] {
			same = same && a[i][j] == c[i][j]
		}
	}
	if same {
		t.Fatal("seeds 9 and 10 gave identical weights")
	}
}

func TestConfigValidation(t *testing.T) {
	train, _ := blobs(t, 6)
	for _, tc := range []struct {
		name string
		mod  func(*model.Config)
		want string
	}{
		{"batch 0", func(c *model.Config) { c.Batch = 0 }, "batch"},
		{"batch -3", func(c *model.Config) { c.Batch = -3 }, "batch"},
		{"epochs 0", func(c *model.Config) { c.Epochs = 0 }, "epochs"},
		{"beta 0", func(c *model.Config) { c.Loss.Beta = 0 }, "beta"},
		{"beta -1", func(c *model.Config) { c.Loss.Beta = -1 }, "beta"},
		{"beta NaN", func(c *model.Config) { c.Loss.Beta = math.NaN() }, "beta"},
		{"unknown loss", func(c *model.Config) { c.Loss.Kind = 42 }, "nll, mee"},
		{"unknown optimizer", func(c *model.Config) { c.Optimizer.Name = "adagrad" }, "sgd, momentum, adam"},
		{"unknown model", func(c *model.Config) { c.Model = "cnn" }, `"linear", "mlp:H1`},
		{"mlp without sizes", func(c *model.Config) { c.Model = "mlp:" }, `"linear"`},
		{"mlp zero size", func(c *model.Config) { c.Model = "mlp:0" }, "hidden size"},
		{"unknown activation", func(c *model.Config) { c.Model, c.Activation = "mlp:5", "sigmoid" }, "relu, tanh"},
		{"lr 0", func(c *model.Config) { c.Optimizer.LR = 0 }, "learning rate"},
		{"momentum 1", func(c *model.Config) { c.Optimizer.Name, c.Optimizer.Momentum = "momentum", 1 }, "momentum"},
		{"adam beta2 1", func(c *model.Config) { c.Optimizer.Beta2 = 1 }, "beta2"},
		{"weight decay -1", func(c *model.Config) { c.Optimizer.WeightDecay = -1 }, "weight decay"},
		{"reduction", func(c *model.Config) { c.Reduction = 7 }, "mean, sum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := model.DefaultConfig()
			tc.mod(&cfg)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.want)
			}
			be := &countingBackend{Backend: cpu.New()}
			if _, err := model.NewTrainer(be, cfg, train, nil); err == nil {
				t.Fatal("NewTrainer accepted the invalid config")
			}
			if be.allocs != 0 {
				t.Fatalf("NewTrainer allocated %d buffers before refusing the config", be.allocs)
			}
		})
	}
	if err := model.DefaultConfig().Validate(); err != nil {
		t.Fatalf("the default config is invalid: %v", err)
	}
}

// countingBackend counts allocations, to check that validation comes first.
type countingBackend struct {
	model.Backend
	allocs int
}

func (c *countingBackend) Alloc(r, k int) (model.Mat, error) {
	c.allocs++
	return c.Backend.Alloc(r, k)
}

func TestLabelOutsideClasses(t *testing.T) {
	train, test := blobs(t, 7)
	be := cpu.New()
	defer be.Close()
	bad := *train
	bad.Y = append([]int32(nil), train.Y...)
	bad.Y[123] = int32(train.Classes)
	_, err := model.NewTrainer(be, model.DefaultConfig(), &bad, test)
	if err == nil || !strings.Contains(err.Error(), "row 123") {
		t.Fatalf("want an error naming row 123, got %v", err)
	}
	bad.Y[123] = -1
	_, err = model.NewTrainer(be, model.DefaultConfig(), train, &bad)
	if err == nil || !strings.Contains(err.Error(), "held-out") {
		t.Fatalf("want an error about the held-out labels, got %v", err)
	}
}
