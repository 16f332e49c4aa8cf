package model_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// TestSampledTraining trains with sampled softmax and with NCE on the
// many-answer data: the exact held-out NLL falls well below log K and the
// accuracy far above chance (NCE, whose loss is dominated by its noise
// terms until the model self-normalizes, needs more samples and epochs
// for that than sampled softmax), the log Z audit is filled in and sane, two
// runs are bitwise identical, a run resumed from a mid-training
// checkpoint reproduces the uninterrupted one bitwise (the samples are a
// function of the seed and the step), and misconfigurations are refused.
func TestSampledTraining(t *testing.T) {
	const K = 2003
	train, test := manyAnswers(600, 10, K, 1), manyAnswers(150, 10, K, 2)
	for _, tc := range []struct {
		kind            model.SampledKind
		samples, epochs int
	}{{model.SampledSoftmax, 50, 3}, {model.NCE, 400, 6}} {
		kind := tc.kind
		t.Run(kind.String(), func(t *testing.T) {
			cfg := model.DefaultConfig()
			cfg.Model, cfg.Epochs, cfg.Batch, cfg.Optimizer.LR = "mlp:16", tc.epochs, 40, 1e-2
			cfg.Sampled = model.SampledConfig{Kind: kind, Samples: tc.samples}
			run := func(cfg model.Config, stopAfter int, resume string) ([]model.EpochResult, map[string][]float32, string) {
				be := cpu.New()
				defer be.Close()
				tr, err := model.NewTrainer(be, cfg, train, test)
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				if resume != "" {
					ck, err := model.ReadCheckpoint(resume)
					if err != nil {
						t.Fatal(err)
					}
					if err := ck.Restore(tr); err != nil {
						t.Fatal(err)
					}
				}
				if stopAfter > 0 {
					for tr.Epoch() < stopAfter {
						if _, err := tr.TrainEpoch(context.Background()); err != nil {
							t.Fatal(err)
						}
					}
					p := filepath.Join(t.TempDir(), "ck.safetensors")
					if err := tr.SaveCheckpoint(p, model.DataInfo{Dataset: "many", TrainRows: train.N, InputShape: []int{train.D}}); err != nil {
						t.Fatal(err)
					}
					return nil, nil, p
				}
				res, err := tr.Run(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				return res, weights(t, be, tr.Model), ""
			}
			res, w1, _ := run(cfg, 0, "")
			_, w2, _ := run(cfg, 0, "")
			sameBits(t, w2, w1)
			ck := func() string { _, _, p := run(cfg, 1, ""); return p }()
			_, w3, _ := run(cfg, 0, ck)
			sameBits(t, w3, w1)
			last := res[len(res)-1]
			if last.Eval.NLL >= math.Log(K)-3 || last.Eval.Accuracy < 0.3 {
				t.Errorf("exact test NLL %.3f, accuracy %.3f after sampled training: want below log K - 3 = %.3f and >= 0.3", last.Eval.NLL, last.Eval.Accuracy, math.Log(K)-3)
			}
			a := last.Eval.LogZAudit
			if a == nil {
				t.Fatal("no log Z audit after sampled training")
			}
			if a.Rows != test.N || a.Batches != (test.N+cfg.Batch-1)/cfg.Batch || a.Samples != tc.samples || a.Kind != kind {
				t.Errorf("audit %+v: wrong counts", a)
			}
			if math.IsNaN(a.Bias) || math.IsNaN(a.RowStd) || a.RowStd <= 0 || math.Abs(a.MeanExact-a.MeanEst-(-a.Bias)) > 1e-9 {
				t.Errorf("audit %+v: not sane", a)
			}
			t.Logf("%v: accuracy %.3f", kind, last.Eval.Accuracy)
			t.Logf("%v: test NLL %.4f; log Z exact %.4f, estimate %.4f: bias %.4f, row std %.4f, batch std %.4f",
				kind, last.Eval.NLL, a.MeanExact, a.MeanEst, a.Bias, a.RowStd, a.BatchStd)
		})
	}
	be := cpu.New()
	defer be.Close()
	bad := model.DefaultConfig()
	bad.Sampled = model.SampledConfig{Kind: model.NCE, Samples: 10}
	bad.Loss = model.DefaultLoss(model.Hinge)
	if _, err := model.NewTrainer(be, bad, train, test); err == nil {
		t.Error("a sampled loss with the hinge loss was accepted")
	}
	bad.Loss = model.DefaultLoss(model.NLL)
	bad.Sampled.Samples = 0
	if _, err := model.NewTrainer(be, bad, train, test); err == nil {
		t.Error("a sampled loss with 0 samples was accepted")
	}
	bad.Sampled.Samples = 10
	if _, err := model.NewTrainer(headless{be}, bad, train, test); err == nil {
		t.Error("a backend without SampledOps was accepted")
	}
}
