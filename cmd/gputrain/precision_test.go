package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// TestPrecisionFlag: --precision is validated with the valid choices named;
// a tf32 run records its precision in the checkpoint and its header; eval
// uses the checkpoint's precision unless --precision overrides it; a
// resumed run keeps it; the run differs from fp32 (the setting is applied).
func TestPrecisionFlag(t *testing.T) {
	for _, cmd := range [][]string{{"train"}, {"bench"}, {"eval", "--model", "x.safetensors"}, {"losses"}} {
		code, out, errs := runArgs(append(cmd, "--precision", "fp16")...)
		if code != 2 || out != "" || !strings.Contains(errs, "valid: fp32, 3xtf32, tf32, bf16") || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v --precision fp16: exit %d, stdout %q, stderr %q; want 2 and one line listing the valid choices", cmd, code, out, errs)
		}
	}
	r := sharedCSVRun(t)
	dir := t.TempDir()
	tf := filepath.Join(dir, "tf32.safetensors")
	out := mustRun(t, append([]string{"train", "--epochs", "2", "--save", tf, "--precision", "tf32"}, r.flags...)...)
	if !strings.Contains(out, "precision tf32") {
		t.Errorf("the header does not name the precision:\n%s", out)
	}
	ck, err := model.ReadCheckpoint(tf)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Config.Precision != model.TF32 {
		t.Errorf("checkpoint precision %v, want tf32", ck.Config.Precision)
	}
	fp := filepath.Join(dir, "fp32.safetensors")
	mustRun(t, append([]string{"train", "--epochs", "2", "--save", fp}, r.flags...)...)
	if g, w := paramBits(t, tf), paramBits(t, fp); g["layers.0.weight"] == w["layers.0.weight"] {
		t.Error("tf32 and fp32 runs have the same weights: the precision was not applied")
	}
	eval := func(args ...string) evalReport {
		var ev evalReport
		out := mustRun(t, append([]string{"eval", "--json", "--model", tf}, args...)...)
		if err := json.Unmarshal([]byte(out), &ev); err != nil {
			t.Fatalf("eval --json: %v\n%s", err, out)
		}
		return ev
	}
	if ev := eval(); ev.Precision != "tf32" {
		t.Errorf("eval of a tf32 checkpoint runs at %q, want tf32", ev.Precision)
	}
	if ev := eval("--precision", "fp32"); ev.Precision != "fp32" {
		t.Errorf("eval --precision fp32 runs at %q", ev.Precision)
	}
	mustRun(t, "train", "--resume", tf, "--epochs", "3", "--quiet")
	if ck, err := model.ReadCheckpoint(tf); err != nil || ck.Config.Precision != model.TF32 || ck.Epoch != 3 {
		t.Errorf("resumed checkpoint: %v; precision %v epoch %d, want tf32 and 3", err, ck.Config.Precision, ck.Epoch)
	}
	if out := mustRun(t, "bench", "--backend", "cpu", "--m", "33", "--n", "17", "--k", "9", "--rows", "8", "--cols", "8", "--batch", "4", "--classes", "3", "--inputs", "5", "--model", "mlp:4", "--reps", "1", "--warmup", "0", "--precision", "bf16"); !strings.Contains(out, "gemm NT bf16") {
		t.Errorf("bench --precision bf16 does not name the precision of its GEMMs:\n%s", out)
	}
}
