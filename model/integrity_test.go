package model_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/safetensors"
)

// TestNonFiniteWeightsStopTraining reproduces issue 13, item 2: plain SGD
// at lr 1e38 with the summed loss on 128 rows, batch 128 (--limit 128):
// the one batch loss, checked before the step, is finite, but the step
// leaves infinite weights; the run used to finish and save them with exit
// status 0. Now the epoch that made them fails with ErrDiverged naming it
// and the tensor, and no checkpoint can be taken of them.
func TestNonFiniteWeightsStopTraining(t *testing.T) {
	all, _ := resumeData(t)
	train := all.Limit(128)
	b := cpu.New()
	defer b.Close()
	cfg := model.DefaultConfig()
	cfg.Optimizer.Name, cfg.Optimizer.LR = "sgd", 1e38
	cfg.Reduction, cfg.Batch, cfg.Epochs = model.Sum, 128, 1
	cfg.Model = "linear"
	tr, err := model.NewTrainer(b, cfg, train, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	_, err = tr.Run(context.Background())
	if !errors.Is(err, model.ErrDiverged) {
		t.Fatalf("Run: %v, want ErrDiverged", err)
	}
	// The per-step check (issue 9) names the epoch, the step and the tensors.
	if !regexp.MustCompile(`epoch 1 step 1\b`).MatchString(err.Error()) || !strings.Contains(err.Error(), "non-finite") || !strings.Contains(err.Error(), "layer0/W") {
		t.Errorf("error does not name the epoch, step and non-finite weights: %v", err)
	}
	path := filepath.Join(t.TempDir(), "nan.safetensors")
	err = tr.SaveCheckpoint(path, model.DataInfo{TrainRows: train.N})
	if !errors.Is(err, model.ErrDiverged) || !strings.Contains(err.Error(), "checkpoint not saved") {
		t.Fatalf("SaveCheckpoint of non-finite weights: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a checkpoint was written: %v", err)
	}
}

// goodCheckpoint trains a small model for one epoch and returns its
// checkpoint file (in memory) and the trainer's data.
func goodCheckpoint(t *testing.T) (*safetensors.File, *model.Data) {
	t.Helper()
	train, _ := resumeData(t)
	b := cpu.New()
	t.Cleanup(func() { b.Close() })
	cfg := resumeConfig("adam")
	cfg.Epochs = 1
	tr, err := model.NewTrainer(b, cfg, train, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := tr.Checkpoint(model.DataInfo{TrainRows: train.N})
	if err != nil {
		t.Fatal(err)
	}
	return f, train
}

func cloneFile(f *safetensors.File) *safetensors.File {
	g := &safetensors.File{Metadata: map[string]string{}}
	for k, v := range f.Metadata {
		g.Metadata[k] = v
	}
	for _, t := range f.Tensors {
		t.Data = append([]byte(nil), t.Data...)
		g.Tensors = append(g.Tensors, t)
	}
	return g
}

func tensorOf(t *testing.T, f *safetensors.File, name string) *safetensors.Tensor {
	t.Helper()
	x, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("no tensor %s", name)
	}
	return x
}

// TestChecksumsCatchDamage reproduces issue 13, item 6: a flipped byte in a
// weight, in the RNG state, in an optimizer tensor, an edited step counter
// or an edited setting were all accepted. Each is now refused, naming what
// changed.
func TestChecksumsCatchDamage(t *testing.T) {
	good, _ := goodCheckpoint(t)
	if _, err := model.DecodeCheckpoint(good); err != nil {
		t.Fatalf("undamaged: %v", err)
	}
	flip := func(name string, at int) func(*safetensors.File) {
		return func(f *safetensors.File) { tensorOf(t, f, name).Data[at] ^= 0x10 }
	}
	for _, tc := range []struct {
		name   string
		damage func(*safetensors.File)
		want   string
	}{
		{"weight byte", flip("layers.0.weight", 5), "tensor layers.0.weight does not match its checksum"},
		{"rng byte", flip(model.TensorRNG, 10), "tensor " + model.TensorRNG + " does not match"},
		{"adam moment", flip("optimizer.adam.v.layers.1.bias", 2), "tensor optimizer.adam.v.layers.1.bias does not match"},
		{"step counter", func(f *safetensors.File) {
			binary.LittleEndian.PutUint64(tensorOf(t, f, model.TensorOptimizerSteps).Data, 3)
		}, "tensor " + model.TensorOptimizerSteps + " does not match"},
		{"edited lr", func(f *safetensors.File) { f.Metadata["lr"] = "0.02" }, "metadata (settings, shapes, names) do not match"},
		{"no checksums", func(f *safetensors.File) { delete(f.Metadata, "sha256") }, `no "sha256" metadata`},
		{"added tensor", func(f *safetensors.File) {
			f.Tensors = append(f.Tensors, safetensors.Float32Tensor("extra", []int{1}, []float32{1}))
		}, "tensor extra has no checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := cloneFile(good)
			tc.damage(f)
			_, err := model.DecodeCheckpoint(f)
			if !errors.Is(err, model.ErrDamaged) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeCheckpoint: %v, want ErrDamaged saying %q", err, tc.want)
			}
		})
	}
}

// TestDecodeRefusesNonFinite: a checkpoint whose weights hold a NaN (one
// written before this check existed, or by another tool, its checksums
// intact) is refused: eval and predict used to answer "-" for every row.
func TestDecodeRefusesNonFinite(t *testing.T) {
	good, _ := goodCheckpoint(t)
	for _, name := range []string{"layers.1.weight", "optimizer.adam.m.layers.0.bias"} {
		f := cloneFile(good)
		x := tensorOf(t, f, name)
		binary.LittleEndian.PutUint32(x.Data[4:], math.Float32bits(float32(math.Inf(-1))))
		model.SealChecksums(f)
		_, err := model.DecodeCheckpoint(f)
		if err == nil || !strings.Contains(err.Error(), name+" has 1 non-finite values") || !errors.Is(err, model.ErrDiverged) {
			t.Errorf("%s with an Inf: %v", name, err)
		}
	}
}

// TestRestoreRefusesOtherData reproduces issue 13, item 6: resuming on data
// of the same shape but other values (the features negated, as MNIST with
// inverted pixels) was accepted. Now Restore refuses it unless the caller
// sets AcceptOtherData; the same data is accepted.
func TestRestoreRefusesOtherData(t *testing.T) {
	good, train := goodCheckpoint(t)
	ck, err := model.DecodeCheckpoint(good)
	if err != nil {
		t.Fatal(err)
	}
	if ck.DataSHA256 != model.DataFingerprint(train) || len(ck.DataSHA256) != 64 {
		t.Fatalf("fingerprint %q, want that of the data", ck.DataSHA256)
	}
	other := &model.Data{X: make([]float32, len(train.X)), Y: train.Y, N: train.N, D: train.D, Classes: train.Classes}
	for i, v := range train.X {
		other.X[i] = -v
	}
	cfg := ck.Config
	cfg.Epochs = 2
	b := cpu.New()
	defer b.Close()
	for _, tc := range []struct {
		data   *model.Data
		accept bool
		ok     bool
	}{{train, false, true}, {other, false, false}, {other, true, true}} {
		tr, err := model.NewTrainer(b, cfg, tc.data, nil)
		if err != nil {
			t.Fatal(err)
		}
		ck.AcceptOtherData = tc.accept
		err = ck.Restore(tr)
		tr.Close()
		if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, model.ErrOtherData) {
			t.Errorf("same data %v, accept %v: Restore: %v", tc.data == train, tc.accept, err)
		}
	}
}

// TestDataFingerprint: equal sets agree; one changed bit, label, or row
// order does not.
func TestDataFingerprint(t *testing.T) {
	d := &model.Data{X: []float32{1, 2, 3, 4}, Y: []int32{0, 1}, N: 2, D: 2, Classes: 2}
	same := &model.Data{X: []float32{1, 2, 3, 4}, Y: []int32{0, 1}, N: 2, D: 2, Classes: 2}
	fp := model.DataFingerprint(d)
	if model.DataFingerprint(same) != fp {
		t.Fatal("equal sets differ")
	}
	for _, o := range []*model.Data{
		{X: []float32{1, 2, 3, math.Nextafter32(4, 5)}, Y: []int32{0, 1}, N: 2, D: 2, Classes: 2},
		{X: []float32{1, 2, 3, 4}, Y: []int32{1, 1}, N: 2, D: 2, Classes: 2},
		{X: []float32{3, 4, 1, 2}, Y: []int32{1, 0}, N: 2, D: 2, Classes: 2},
		{X: []float32{1, 2, 3, 4}, Y: []int32{0, 1, 0, 1}, N: 4, D: 1, Classes: 2},
	} {
		if model.DataFingerprint(o) == fp {
			t.Errorf("%+v has the same fingerprint", o)
		}
	}
}
