package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/model/safetensors"
)

// TestDivergedRunNotSaved reproduces issue 13, item 2 from the command
// line: `train --optimizer sgd --lr 1e38 --limit 128 --reduction sum` saved
// 1,013 non-finite weights and exited 0. Now it exits 1 naming the epoch,
// and the checkpoint is not written.
func TestDivergedRunNotSaved(t *testing.T) {
	ck := filepath.Join(t.TempDir(), "nan.safetensors")
	code, out, errs := runArgs("train", "--optimizer", "sgd", "--lr", "1e38", "--limit", "128", "--batch", "128", "--reduction", "sum", "--epochs", "1", "--save", ck, "--quiet")
	if code != exitRuntime || !regexp.MustCompile(`epoch 1\b.*non-finite`).MatchString(errs) || strings.Count(errs, "\n") != 1 {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if strings.Contains(out, "checkpoint saved") {
		t.Errorf("stdout claims a save:\n%s", out)
	}
	if _, err := os.Stat(ck); !os.IsNotExist(err) {
		t.Errorf("a checkpoint of the diverged run exists: %v", err)
	}
}

// reseal recomputes a checkpoint's "sha256" metadata the way
// docs/CHECKPOINTS.md describes it (independently of model's code), so a
// test can plant one fault and keep the checksums right.
func reseal(f *safetensors.File) {
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	var keys []string
	for k := range f.Metadata {
		if k != "sha256" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var mb []byte
	for _, k := range keys {
		mb = append(append(append(append(mb, k...), 0), f.Metadata[k]...), 0)
	}
	sums := map[string]string{"__metadata__": sum(mb)}
	for _, t := range f.Tensors {
		sums[t.Name] = sum(t.Data)
	}
	b, _ := json.Marshal(sums)
	f.Metadata["sha256"] = string(b)
}

// TestEvalPredictRefuseNonFinite reproduces issue 13, item 2: eval and
// predict accepted a checkpoint with NaN weights and answered "-" for every
// row. Both (and resume) now refuse it with a clear error; a checkpoint
// with a flipped byte is refused as damaged.
func TestEvalPredictRefuseNonFinite(t *testing.T) {
	r := sharedCSVRun(t)
	dir := t.TempDir()
	f, err := safetensors.ReadFile(r.full)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := f.Tensor("layers.1.weight")
	binary.LittleEndian.PutUint32(w.Data[8:], math.Float32bits(float32(math.NaN())))
	reseal(f)
	nan := filepath.Join(dir, "nan.safetensors")
	if err := safetensors.WriteFileAtomic(nan, f); err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(w.Data[8:], math.Float32bits(1.5)) // finite, but not what was sealed
	flipped := filepath.Join(dir, "flipped.safetensors")
	if err := safetensors.WriteFileAtomic(flipped, f); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(in, []byte("1,2,3,4,5,6,7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"eval", "--model", nan},
		{"predict", "--model", nan, "--input", in},
		{"train", "--resume", nan, "--epochs", "9"},
	} {
		expectExit(t, exitRuntime, args, "layers.1.weight has 1 non-finite values")
	}
	for _, args := range [][]string{{"eval", "--model", flipped}, {"predict", "--model", flipped, "--input", in}} {
		expectExit(t, exitRuntime, args, "tensor layers.1.weight does not match its checksum")
	}
}

// TestResumeOnOtherDataNeedsFlag reproduces issue 13, item 6: --resume on
// different data of the same shape was accepted. It is refused now, and
// --resume-other-data says it is meant.
func TestResumeOnOtherDataNeedsFlag(t *testing.T) {
	dir := t.TempDir()
	data := writeBlobsCSV(t, dir, 80, 3, 2, 1)
	ck := filepath.Join(dir, "run.safetensors")
	mustRun(t, "train", "--data", data, "--epochs", "1", "--quiet", "--save", ck)
	// The same file with every feature changed: same rows, columns, labels.
	other := filepath.Join(dir, "other.csv")
	lines := strings.Split(strings.TrimSpace(fileBytes(t, data)), "\n")
	for i := 1; i < len(lines); i++ {
		f := strings.Split(lines[i], ",")
		for j := 1; j < len(f); j++ {
			if v, ok := strings.CutPrefix(f[j], "-"); ok {
				f[j] = v
			} else {
				f[j] = "-" + f[j]
			}
		}
		lines[i] = strings.Join(f, ",")
	}
	if err := os.WriteFile(other, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	expectExit(t, exitRuntime, []string{"train", "--resume", ck, "--data", other, "--epochs", "2", "--quiet"}, "is not the data the checkpoint")
	mustRun(t, "train", "--resume", ck, "--data", other, "--epochs", "2", "--quiet", "--resume-other-data")
	expectExit(t, exitUsage, []string{"train", "--data", data, "--resume-other-data", "--save", ""}, "--resume-other-data goes with --resume")
}
