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

func TestParsePrecision(t *testing.T) {
	for _, c := range []struct {
		s    string
		want model.Precision
	}{{"fp32", model.FP32}, {"3xtf32", model.TF32x3}, {"TF32", model.TF32}, {"bf16", model.BF16}} {
		p, err := model.ParsePrecision(c.s)
		if err != nil || p != c.want {
			t.Errorf("ParsePrecision(%q) = %v, %v; want %v", c.s, p, err, c.want)
		}
		if strings.EqualFold(p.String(), c.s) != true {
			t.Errorf("%v.String() = %q, want %q", p, p.String(), c.s)
		}
	}
	for _, s := range []string{"", "fp16", "tf32 ", "3xTF"} {
		_, err := model.ParsePrecision(s)
		if err == nil || !strings.Contains(err.Error(), "fp32, 3xtf32, tf32, bf16") {
			t.Errorf("ParsePrecision(%q): %v, want an error listing the valid choices", s, err)
		}
	}
	cfg := model.DefaultConfig()
	cfg.Precision = model.Precision(7)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "valid: fp32, 3xtf32, tf32, bf16") {
		t.Errorf("Config with precision 7: %v, want an error listing the valid choices", err)
	}
}

// TestRoundings: hand-worked values of the roundings the GPU's cvt
// instructions perform (ties away for TF32, to even for bfloat16), and the
// 3xTF32 split.
func TestRoundings(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, c := range []struct {
		x, tf32, bf16 float32
	}{
		{1, 1, 1},
		{1 + 0x1p-11, 1 + 0x1p-10, 1},
		{-(1 + 0x1p-11), -(1 + 0x1p-10), -1},
		{1 + 0x1p-8, 1 + 0x1p-8, 1},
		{1 + 3*0x1p-8, 1 + 3*0x1p-8, 1 + 0x1p-6},
		{math.MaxFloat32, inf, inf},
		{-inf, -inf, -inf},
		{0x1p-140, 0, 0},
	} {
		if got := model.RoundTF32(c.x); got != c.tf32 {
			t.Errorf("RoundTF32(%g) = %g, want %g", c.x, got, c.tf32)
		}
		if got := model.RoundBF16(c.x); got != c.bf16 {
			t.Errorf("RoundBF16(%g) = %g, want %g", c.x, got, c.bf16)
		}
	}
	nan := float32(math.NaN())
	if model.RoundTF32(nan) == model.RoundTF32(nan) || model.RoundBF16(nan) == model.RoundBF16(nan) {
		t.Error("a NaN does not stay a NaN")
	}
	// The split: hi has 10 mantissa bits, lo is within 2^-11 of hi's ulp,
	// and hi + lo is within 2^-22 of x, relatively.
	for _, x := range []float32{1 + 0x1p-11 + 0x1p-20, -3.14159265, 1e-30, 6.02e23, 0x1p-126} {
		hi, lo := model.SplitTF32(x)
		if hi != model.RoundTF32(x) || model.RoundTF32(lo) != lo {
			t.Errorf("SplitTF32(%g) = %g, %g: parts not TF32", x, hi, lo)
		}
		if e := math.Abs(float64(hi) + float64(lo) - float64(x)); e > 0x1p-22*math.Abs(float64(x)) {
			t.Errorf("SplitTF32(%g): hi + lo off by %g", x, e)
		}
	}
	if hi, lo := model.SplitTF32(inf); hi != inf || lo != 0 {
		t.Errorf("SplitTF32(+Inf) = %g, %g; want +Inf, 0 (so products stay Inf, not Inf - Inf)", hi, lo)
	}
}

// fp32Only hides cpu's optional capabilities: a backend with fp32 products
// only and without DenseOps.
type fp32Only struct{ model.Backend }

// TestPrecisionTraining trains mlp:16 for two epochs in every precision on
// cpu and device+emu: the epoch losses of the two backends agree to a
// tolerance that grows as the precision drops, reduced precisions do change
// the result (tf32 and bf16 differ from fp32; 3xtf32 is nearly fp32), the
// same run is bitwise reproducible, and a checkpoint keeps the precision.
func TestPrecisionTraining(t *testing.T) {
	train, test := resumeData(t)
	run := func(b model.Backend, p model.Precision) ([]float64, *model.Trainer) {
		cfg := resumeConfig("adam")
		cfg.Epochs, cfg.Precision = 2, p
		tr, err := model.NewTrainer(b, cfg, train, test)
		if err != nil {
			t.Fatal(err)
		}
		res, err := tr.Run(context.Background())
		if err != nil {
			t.Fatalf("%s %v: %v", b.Name(), p, err)
		}
		var losses []float64
		for _, r := range res {
			losses = append(losses, r.TrainLoss)
		}
		return losses, tr
	}
	tol := map[model.Precision]float64{model.FP32: 1e-5, model.TF32x3: 1e-5, model.TF32: 1e-3, model.BF16: 1e-2}
	var fp32 []float64
	for _, p := range []model.Precision{model.FP32, model.TF32x3, model.TF32, model.BF16} {
		c := cpu.New()
		lc, trc := run(c, p)
		lc2, trc2 := run(c, p)
		for i := range lc {
			if lc[i] != lc2[i] {
				t.Errorf("%v on cpu: epoch %d loss %v then %v: not reproducible", p, i+1, lc[i], lc2[i])
			}
		}
		trc2.Close()
		d := backendMakers[1].open(t)
		ld, trd := run(d, p)
		for i := range lc {
			if math.Abs(ld[i]-lc[i]) > tol[p]*math.Abs(lc[i]) {
				t.Errorf("%v: epoch %d loss %v on device+emu, %v on cpu (tolerance %g relative)", p, i+1, ld[i], lc[i], tol[p])
			}
		}
		t.Logf("%v: losses cpu %v, device+emu %v", p, lc, ld)
		switch p {
		case model.FP32:
			fp32 = lc
		case model.TF32, model.BF16:
			if lc[1] == fp32[1] {
				t.Errorf("%v trains exactly like fp32 (loss %v): the precision is not applied", p, lc[1])
			}
		}
		path := filepath.Join(t.TempDir(), "p.safetensors")
		if err := trc.SaveCheckpoint(path, model.DataInfo{Dataset: "blobs", InputShape: []int{7}, TrainRows: train.N}); err != nil {
			t.Fatal(err)
		}
		ck, err := model.ReadCheckpoint(path)
		if err != nil {
			t.Fatal(err)
		}
		if ck.Config.Precision != p {
			t.Errorf("checkpoint of a %v run reads back precision %v", p, ck.Config.Precision)
		}
		trc.Close()
		trd.Close()
		c.Close()
		d.Close()
	}
	// A backend without PrecisionOps trains fp32 only, and says so.
	cfg := resumeConfig("adam")
	cfg.Precision = model.TF32
	if _, err := model.NewTrainer(fp32Only{cpu.New()}, cfg, train, test); err == nil || !strings.Contains(err.Error(), "valid here: fp32") {
		t.Errorf("tf32 on a backend without PrecisionOps: %v, want an error saying only fp32 is available", err)
	}
}

// TestDenseOpsPathMatchesUnfused: the dense model trains bitwise the same
// through cpu's DenseOps as through the unfused sequence of Backend calls
// (a backend without DenseOps), so dense.go's use of DenseOps computes
// exactly the gradients of the plain layer code.
func TestDenseOpsPathMatchesUnfused(t *testing.T) {
	train, test := resumeData(t)
	for _, spec := range []string{"linear", "mlp:16", "mlp:9,5:tanh"} {
		get := func(b model.Backend) map[string][]float32 {
			cfg := resumeConfig("adam")
			cfg.Model, cfg.Epochs = spec, 2
			tr, err := model.NewTrainer(b, cfg, train, test)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if _, err := tr.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			return weights(t, b, tr.Model)
		}
		c := cpu.New()
		sameBits(t, get(c), get(fp32Only{c}))
		c.Close()
	}
}
