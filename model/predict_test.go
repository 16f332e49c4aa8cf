package model_test

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// TestPredictAppliesNormalization: Predict on raw rows gives the energies
// of the model on the rows standardized by hand, and refuses rows of the
// wrong length or with non-finite values.
func TestPredictAppliesNormalization(t *testing.T) {
	train, _ := resumeData(t)
	b := cpu.New()
	defer b.Close()
	cfg := resumeConfig("adam")
	cfg.Epochs = 1
	tr, err := model.NewTrainer(b, cfg, train, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	mean, std := make([]float32, train.D), make([]float32, train.D)
	for j := range mean {
		mean[j], std[j] = float32(j)-3, 0.5+float32(j)
	}
	path := filepath.Join(t.TempDir(), "p.safetensors")
	if err := tr.SaveCheckpoint(path, model.DataInfo{TrainRows: train.N, Mean: mean, Std: std}); err != nil {
		t.Fatal(err)
	}
	ck, err := model.ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	raw := [][]float32{make([]float32, train.D), make([]float32, train.D)}
	x := make([]float32, 0, 2*train.D)
	for i, r := range raw {
		for j := range r {
			r[j] = float32(i*7+j) * 0.3
			x = append(x, (r[j]-mean[j])/std[j])
		}
	}
	preds, err := ck.Predict(b, raw)
	if err != nil || len(preds) != 2 {
		t.Fatalf("Predict: %v, %v", preds, err)
	}
	err = model.Energies(b, tr.Model, x, 2, 2, func(start int, e []float32) error {
		k := train.Classes
		for r := 0; r < 2; r++ {
			for y := range k {
				if math.Float32bits(e[r*k+y]) != math.Float32bits(preds[r].Energies[y]) {
					t.Errorf("row %d answer %d: energy %v by hand, %v from Predict", r, y, e[r*k+y], preds[r].Energies[y])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ck.Predict(b, [][]float32{{1, 2}}); err == nil || !strings.Contains(err.Error(), "row 0 has 2 values") {
		t.Errorf("short row: %v", err)
	}
	bad := append([]float32(nil), raw[0]...)
	bad[3] = float32(math.Inf(1))
	if _, err := ck.Predict(b, [][]float32{raw[0], bad}); err == nil || !strings.Contains(err.Error(), "value 3 of row 1") {
		t.Errorf("Inf: %v", err)
	}
}
