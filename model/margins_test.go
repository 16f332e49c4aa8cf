package model_test

import (
	"context"
	"math"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// TestEvaluateLossAndMargins checks EvalResult.Loss, NLL and the per-row
// Margins that Trainer.KeepMargins asks for against float64 values computed
// on the host from the energies of one Forward over the whole held-out set.
func TestEvaluateLossAndMargins(t *testing.T) {
	train, test := blobs(t, 11)
	for _, loss := range []model.Loss{
		{Kind: model.Hinge, Beta: 0.7, Margin: 1.5, Gamma: 1, Delta: 1},
		{Kind: model.NLL, Beta: 0.7, Margin: 0.5, Gamma: 1, Delta: 1},
	} {
		t.Run(loss.String(), func(t *testing.T) {
			be := cpu.New()
			defer be.Close()
			cfg := model.DefaultConfig()
			cfg.Model, cfg.Loss, cfg.Epochs, cfg.Batch = "mlp:7", loss, 1, 33
			tr, err := model.NewTrainer(be, cfg, train, test)
			must(t, err)
			defer tr.Close()
			if _, err := tr.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			plain, err := tr.Evaluate()
			must(t, err)
			if plain.Margins != nil {
				t.Errorf("Margins filled without KeepMargins: %d values", len(plain.Margins))
			}
			tr.KeepMargins = true
			r, err := tr.Evaluate()
			must(t, err)

			x := mustMat(t, be, test.N, test.D, test.X)
			e, err := tr.Model.Forward(x)
			must(t, err)
			k := test.Classes
			eh := make([]float32, test.N*k)
			must(t, be.Download(eh, e))
			wantLoss := hostLoss(t, loss, eh, test.Y, k) / float64(test.N)
			wantNLL := hostLoss(t, model.Loss{Kind: model.NLL, Beta: loss.Beta}, eh, test.Y, k) / float64(test.N)
			if math.Abs(r.Loss-wantLoss) > 1e-4*(1+math.Abs(wantLoss)) {
				t.Errorf("Loss %g, host %g", r.Loss, wantLoss)
			}
			if math.Abs(r.NLL-wantNLL) > 1e-4*(1+math.Abs(wantNLL)) {
				t.Errorf("NLL %g, host %g", r.NLL, wantNLL)
			}
			if r.Loss != plain.Loss || r.NLL != plain.NLL {
				t.Errorf("KeepMargins changed the result: loss %g vs %g, NLL %g vs %g", r.Loss, plain.Loss, r.NLL, plain.NLL)
			}
			if len(r.Margins) != test.N {
				t.Fatalf("%d margins for %d rows", len(r.Margins), test.N)
			}
			var sum float64
			spread := false
			for i, y := range test.Y {
				row := eh[i*k : (i+1)*k]
				ei := math.Inf(1)
				for j, v := range row {
					if j != int(y) {
						ei = math.Min(ei, float64(v))
					}
				}
				want := ei - float64(row[y])
				if got := float64(r.Margins[i]); math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
					t.Errorf("row %d: margin %g, host %g", i, got, want)
				}
				sum += float64(r.Margins[i])
				spread = spread || r.Margins[i] != r.Margins[0]
			}
			if !spread {
				t.Errorf("every margin is %g", r.Margins[0])
			}
			if m := sum / float64(test.N); math.Abs(m-r.Margin) > 1e-4*(1+math.Abs(m)) {
				t.Errorf("mean of Margins %g, Margin %g", m, r.Margin)
			}
		})
	}
}
