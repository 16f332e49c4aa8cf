package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainStopsOnNonFiniteWeights is issue 13's reproduction: `train
// --optimizer sgd --lr 1e38 --limit 128 --reduction sum` saved 1,013
// non-finite weights and exited 0. The first update overflows the weights
// (its batch loss was finite), so the run must stop at epoch 1 step 1,
// naming the step and the weight, exit nonzero, and never write the
// checkpoint (epochs are saved when they are reported, and this one is
// not), on the cpu backend and on the emulated device. --batch 128 keeps
// the one step per epoch (the small-data defaults would choose 13).
func TestTrainStopsOnNonFiniteWeights(t *testing.T) {
	for _, be := range []string{"cpu", "emu"} {
		if _, ok := backends[be]; !ok {
			continue
		}
		t.Run(be, func(t *testing.T) {
			save := filepath.Join(t.TempDir(), "out.safetensors")
			code, out, errs := runArgs("train", "--backend", be, "--optimizer", "sgd", "--lr", "1e38", "--limit", "128",
				"--batch", "128", "--reduction", "sum", "--epochs", "2", "--save", save)
			t.Logf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
			if code == 0 {
				t.Fatal("exit status 0 after non-finite weights")
			}
			if !strings.Contains(errs, "epoch 1 step 1") || !strings.Contains(errs, "training diverged") || !strings.Contains(errs, "layer0/W") {
				t.Errorf("stderr does not name the divergence, its epoch and step and the weight: %q", errs)
			}
			if strings.Contains(out, "epoch 1/") || strings.Contains(out, "checkpoint saved") {
				t.Errorf("an epoch was reported or saved: %q", out)
			}
			if _, err := os.Stat(save); !os.IsNotExist(err) {
				t.Errorf("the checkpoint %s exists (stat: %v): non-finite weights may not be saved", save, err)
			}
		})
	}
}
