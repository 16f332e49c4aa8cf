package device_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
)

// The energy head at tf32, 3xtf32 and bf16: the gt_tc_eh_* kernels on a
// device of compute capability 8.0 or newer (the emulator), the SIMT
// kernels rounding the operands below. The conformance suite
// (backendtest.TestEnergyHeadPrecision) checks both against the float64
// reference; these tests add the cpu backend's head in the same precision,
// bitwise determinism across the emulator's thread orders, and which
// kernels run.

// runHeadAt is runHead through model.EnergyHeadPrecisionOps at p.
func runHeadAt(t *testing.T, b model.Backend, p model.Precision, B, D, K int, h, w, bias []float32, labels []int32, l model.Loss, gs float32) headOut {
	t.Helper()
	ops := b.(model.EnergyHeadPrecisionOps)
	hm, wm, bm := alloc(t, b, B, D, h), alloc(t, b, K, D, w), alloc(t, b, 1, K, bias)
	lv, err := b.AllocInts(B)
	must(t, err)
	must(t, b.UploadInts(lv, labels))
	nan := func(r, c int) model.Mat {
		x := make([]float32, r*c)
		for i := range x {
			x[i] = float32(math.NaN())
		}
		return alloc(t, b, r, c, x)
	}
	st, dh, dw, db := nan(B, model.NumStats), nan(B, D), nan(K, D), nan(1, K)
	am, err := b.AllocInts(B)
	must(t, err)
	must(t, ops.EnergyHeadGradPrecision(p, hm, wm, bm, lv, l, gs, st, am, dh, dw, db))
	out := headOut{stats: download(t, b, st), dh: download(t, b, dh), dw: download(t, b, dw), db: download(t, b, db), argmin: downloadInts(t, b, am)}
	for _, x := range []any{hm, wm, bm, lv, st, dh, dw, db, am} {
		must(t, b.Free(x))
	}
	return out
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %v (%#08x), want bitwise %v (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// TestEnergyHeadPrecisionParity runs EnergyHeadGradPrecision on the
// emulated device (tensor-core kernels; threads in order and permuted) and
// on the cpu backend, over NaN-poisoned outputs, for each precision, a dense
// loss (NLL: tiles recomputed) and a sparse one (hinge), at awkward sizes:
// the two emulator orders bitwise equal, the device within float32
// summation-order differences of the cpu head (both round the operands the
// same way; only the order of the float32 sums differs: D terms per energy,
// B or K per gradient). argmin and the losses near their kinks are covered
// by the conformance suite, whose rows are kept clear of ties.
func TestEnergyHeadPrecisionParity(t *testing.T) {
	shapes := [][3]int{{65, 31, 1000}, {33, 256, 130}, {1, 7, 1}, {31, 1, 31}}
	for _, p := range []model.Precision{model.TF32x3, model.TF32, model.BF16} {
		for _, s := range shapes {
			B, D, K := s[0], s[1], s[2]
			t.Run(fmt.Sprintf("%v/B=%d,D=%d,K=%d", p, B, D, K), func(t *testing.T) {
				pr := newPair(t, emu.Options{Mode: emu.Deterministic}, device.Options{})
				perm := newDevice(t, emu.Options{Mode: emu.Permuted, Seed: 0x7c}, device.Options{})
				defer perm.Close()
				h, w, bias, labels := headProblem(pr, B, D, K, 2)
				for _, kind := range []model.LossKind{model.NLL, model.Hinge} {
					l := model.DefaultLoss(kind)
					gs := float32(1) / float32(B)
					got := runHeadAt(t, pr.dev, p, B, D, K, h, w, bias, labels, l, gs)
					again := runHeadAt(t, perm, p, B, D, K, h, w, bias, labels, l, gs)
					want := runHeadAt(t, pr.ref, p, B, D, K, h, w, bias, labels, l, gs)
					name := kind.String()
					sameBits(t, name+" stats (permuted emulator)", again.stats, got.stats)
					sameBits(t, name+" dh (permuted emulator)", again.dh, got.dh)
					sameBits(t, name+" dw (permuted emulator)", again.dw, got.dw)
					sameBits(t, name+" db (permuted emulator)", again.db, got.db)
					// D products per energy, summed in float32 in another
					// order: 4 D u relative to the energies' size (about 1
					// here), the statistics and gradients likewise.
					tol := 4 * float64(max(D, B, 16)) * u32
					compare(t, name+" stats vs cpu", got.stats, want.stats, relTol(want.stats, tol))
					compare(t, name+" dh vs cpu", got.dh, want.dh, relTol(want.dh, tol))
					compare(t, name+" dw vs cpu", got.dw, want.dw, relTol(want.dw, tol))
					compare(t, name+" db vs cpu", got.db, want.db, relTol(want.db, tol))
				}
			})
		}
	}
}

// TestEnergyHeadPrecisionDispatch checks which kernels the head launches:
// the gt_tc_eh_* kernels of the precision from compute capability 8.0 on
// for tf32, 3xtf32 and bf16 (the GEMMs' rule); the SIMT gt_eh_* kernels for
// fp32 and, below 8.0 or with NoTensorCores, their _rounded forms for tf32
// and bf16 and the plain ones for 3xtf32 (TestTensorCoreSuites runs the
// suite on that fallback).
func TestEnergyHeadPrecisionDispatch(t *testing.T) {
	const B, D, K = 70, 9, 200
	for _, c := range []struct {
		major int
		p     model.Precision
		do    device.Options
		want  []string
	}{
		{8, model.FP32, device.Options{}, []string{"gt_eh_forward", "gt_eh_merge", "gt_eh_grad_w", "gt_eh_grad_h"}},
		{8, model.TF32, device.Options{}, []string{"gt_tc_eh_forward_tf32", "gt_eh_merge", "gt_tc_eh_grad_w_tf32", "gt_tc_eh_grad_h_tf32"}},
		{9, model.TF32x3, device.Options{}, []string{"gt_tc_eh_forward_3xtf32", "gt_eh_merge", "gt_tc_eh_grad_w_3xtf32", "gt_tc_eh_grad_h_3xtf32"}},
		{8, model.BF16, device.Options{}, []string{"gt_tc_eh_forward_bf16", "gt_eh_merge", "gt_tc_eh_grad_w_bf16", "gt_tc_eh_grad_h_bf16"}},
		{7, model.TF32, device.Options{}, []string{"gt_eh_forward_rounded", "gt_eh_merge", "gt_eh_grad_w_rounded", "gt_eh_grad_h_rounded"}},
		{8, model.BF16, device.Options{NoTensorCores: true}, []string{"gt_eh_forward_rounded", "gt_eh_merge", "gt_eh_grad_w_rounded", "gt_eh_grad_h_rounded"}},
		{7, model.TF32x3, device.Options{}, []string{"gt_eh_forward", "gt_eh_merge", "gt_eh_grad_w", "gt_eh_grad_h"}},
	} {
		t.Run(fmt.Sprintf("sm%d0/%v/%+v", c.major, c.p, c.do), func(t *testing.T) {
			b, rec := newTC(t, emu.Options{}, c.do, c.major)
			defer b.Close()
			pr := &pair{t: t, rng: newPair(t, emu.Options{}, device.Options{}).rng}
			h, w, bias, labels := headProblem(pr, B, D, K, 1)
			runHeadAt(t, b, c.p, B, D, K, h, w, bias, labels, model.DefaultLoss(model.NLL), 1)
			// K = 200 answers make several groups of dH: their partials are
			// merged (gt_eh_grad_h_merge, the same in every precision).
			want := append(c.want, "gt_eh_grad_h_merge")
			if got := rec.kernels(); !slices.Equal(got, want) {
				t.Errorf("launches %v, want %v", got, want)
			}
		})
	}
}

// TestEnergyHeadTrainerPrecision: a model trained with Config.Precision
// tf32 runs its head on the tensor-core kernels (the precision reaches the
// head through the loss pass), and an fp32 model on the SIMT ones.
func TestEnergyHeadTrainerPrecision(t *testing.T) {
	const N, D, B = 3*64 + 5, 20, 64
	for _, c := range []struct {
		p          model.Precision
		yes, never string
	}{
		{model.TF32, "gt_tc_eh_forward_tf32", "gt_eh_forward"},
		{model.BF16, "gt_tc_eh_grad_h_bf16", "gt_eh_grad_h"},
		{model.FP32, "gt_eh_forward", "gt_tc_eh_forward_tf32"},
	} {
		t.Run(c.p.String(), func(t *testing.T) {
			b, rec := newTC(t, emu.Options{Mode: emu.Deterministic}, device.Options{}, 8)
			defer b.Close()
			cfg := model.DefaultConfig()
			cfg.Model, cfg.Batch, cfg.Epochs, cfg.Precision = "mlp:17", B, 1, c.p
			tr, err := model.NewTrainer(b, cfg, stepData(N, D, 3), nil)
			must(t, err)
			defer tr.Close()
			if _, err := tr.TrainEpoch(context.Background()); err != nil {
				t.Fatal(err)
			}
			n := map[string]int{}
			for _, k := range rec.kernels() {
				n[k]++
			}
			if n[c.yes] == 0 || n[c.never] != 0 {
				t.Errorf("%v model: %s launched %d times, %s %d times (launches %v)", c.p, c.yes, n[c.yes], c.never, n[c.never], n)
			}
		})
	}
}

// TestEnergyHeadPrecisionChecked runs the tensor-core head (every
// precision, a dense loss, so that the forward and both backward kernels
// with their recomputed tiles run) on the emulator's checked build, named
// explicitly rather than left to ChecksAuto: a shared-memory race (two
// threads of a block, one at least writing, no barrier between them), an
// access outside every allocation or shared memory past the launch's bytes
// fails the launch. Permuted order, so the racing orders occur. (Checked
// by hand: without the barrier that ends gt_eh_tc_product, this test fails
// with a race on the forward's tcs between a thread reading the staged
// accumulator and one writing the next tile's slabs.)
func TestEnergyHeadPrecisionChecked(t *testing.T) {
	// Two row blocks, 3 k slabs (the last partial), and enough answers
	// (66 tiles) that forward blocks fold two tiles each (headChunks): the
	// product's memory is then rewritten by the next tile's slabs.
	const B, D, K = 70, 33, 4200
	drv, err := emu.New(emu.Options{Mode: emu.Permuted, Seed: 0xc4ec, Checks: emu.ChecksOn})
	if err != nil {
		t.Skipf("no checked emulator build here: %v", err)
	}
	if !drv.Checked() {
		drv.Close()
		t.Fatal("emu.Options{Checks: ChecksOn} gave a driver that is not checked")
	}
	b, err := device.New(drv)
	must(t, err)
	defer b.Close()
	pr := newPair(t, emu.Options{}, device.Options{})
	h, w, bias, labels := headProblem(pr, B, D, K, 2)
	for _, p := range []model.Precision{model.TF32x3, model.TF32, model.BF16} {
		got := runHeadAt(t, b, p, B, D, K, h, w, bias, labels, model.DefaultLoss(model.NLL), 0.5)
		want := runHeadAt(t, pr.ref, p, B, D, K, h, w, bias, labels, model.DefaultLoss(model.NLL), 0.5)
		tol := 4 * float64(max(D, B, 16)) * u32
		compare(t, p.String()+" stats (checked build) vs cpu", got.stats, want.stats, relTol(want.stats, tol))
		compare(t, p.String()+" dh (checked build) vs cpu", got.dh, want.dh, relTol(want.dh, tol))
		compare(t, p.String()+" dw (checked build) vs cpu", got.dw, want.dw, relTol(want.dw, tol))
	}
}
