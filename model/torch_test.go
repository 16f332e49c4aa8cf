package model_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// TestTorchLoadsCheckpoint runs scripts/torch_checkpoint.py, the documented
// way to load a checkpoint into torch.nn.Sequential(Linear, ReLU, ...), on
// an MLP with standardization: PyTorch's scores on a raw row must be the
// negated energies gputrain computes (the same answer), and the loader
// verifies the checksums (a flipped byte is refused).
func TestTorchLoadsCheckpoint(t *testing.T) {
	py := "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import torch").CombinedOutput(); err != nil {
		t.Skipf("PyTorch is not importable by %s (%v: %s): the torch loader cannot be run", py, err, strings.TrimSpace(string(out)))
	}
	train, _ := resumeData(t)
	b := cpu.New()
	defer b.Close()
	cfg := resumeConfig("adam")
	cfg.Model, cfg.Epochs = "mlp:16,9:tanh", 2
	tr, err := model.NewTrainer(b, cfg, train, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	mean := []float32{1, -2, 3, 0.5, 0, 7, -1}
	std := []float32{2, 0.5, 1, 3, 1, 4, 0.25}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := tr.SaveCheckpoint(path, model.DataInfo{TrainRows: train.N, Mean: mean, Std: std, ClassNames: []string{"a", "b", "c", "d", "e"}}); err != nil {
		t.Fatal(err)
	}
	ck, err := model.ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	row := []float32{0.3, -1.7, 2.2, 5, -0.5, 8, -1.1}
	preds, err := ck.Predict(b, [][]float32{row})
	if err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs("../scripts/torch_checkpoint.py")
	args := []string{script, path}
	for _, v := range row {
		args = append(args, strconv.FormatFloat(float64(v), 'g', -1, 32))
	}
	out, err := exec.Command(py, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 5 {
		t.Fatalf("torch printed %d scores:\n%s", len(lines), out)
	}
	best, bestScore := -1, math.Inf(-1)
	for y, l := range lines {
		var k int
		var s float64
		if _, err := fmt.Sscan(l, &k, &s); err != nil || k != y {
			t.Fatalf("line %q", l)
		}
		e := float64(preds[0].Energies[y])
		if math.Abs(s+e) > 1e-5*(1+math.Abs(e)) {
			t.Errorf("answer %d: torch score %v, gputrain energy %v (want score = -energy)", y, s, e)
		}
		if s > bestScore {
			best, bestScore = y, s
		}
	}
	if best != preds[0].Answer {
		t.Errorf("torch's answer %d, gputrain's %d", best, preds[0].Answer)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 1 // a byte of the last tensor
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, script, bad).CombinedOutput(); err == nil || !strings.Contains(string(out), "does not match its checksum") {
		t.Errorf("a flipped byte: %v\n%s", err, out)
	}
	out, err = exec.Command(py, script, path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Linear(in_features=7, out_features=16") || !strings.Contains(string(out), "Tanh()") || !strings.Contains(string(out), "Standardize()") {
		t.Errorf("printing the model: %v\n%s", err, out)
	}
}
