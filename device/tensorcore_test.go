package device_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendtest"
)

// capRecorder is a Driver that logs every launch and reports a compute
// capability of its own (the emulator's capabilities otherwise pass
// through), so that tests can see which GEMM kernels a device of a given
// generation gets.
type capRecorder struct {
	device.Driver
	major, minor int
	launches     []launchRecord
}

func (r *capRecorder) Launch(kernel string, grid, block device.Dim3, shared int, args ...uint64) error {
	r.launches = append(r.launches, launchRecord{kernel, grid, block, shared})
	return r.Driver.Launch(kernel, grid, block, shared, args...)
}

func (r *capRecorder) MaxDynamicSharedBytes() int {
	return r.Driver.(device.SharedMemoryLimiter).MaxDynamicSharedBytes()
}

func (r *capRecorder) ComputeCapability() (int, int) { return r.major, r.minor }

func (r *capRecorder) kernels() []string {
	var ks []string
	for _, l := range r.launches {
		ks = append(ks, l.kernel)
	}
	return ks
}

// h100Shared is an H100's opt-in shared memory per block (227 KiB).
const h100Shared = 227 << 10

// newTC returns a backend on an emulator that claims compute capability
// major.0, with the launches recorded.
func newTC(t testing.TB, eo emu.Options, do device.Options, major int) (*device.Backend, *capRecorder) {
	t.Helper()
	drv, err := emu.New(eo)
	if err != nil {
		t.Fatal(err)
	}
	rec := &capRecorder{Driver: drv, major: major}
	b, err := device.NewWithOptions(rec, do)
	if err != nil {
		drv.Close()
		t.Fatal(err)
	}
	return b, rec
}

// TestTensorCoreSuites runs the precision and dense-layer parts of the
// conformance suite with each tensor-core tile forced (the large one with
// an H100's shared memory; its epilogue is the small one's, so only the
// GEMMs), with 4-byte copies only (the scalar cp.async path, interior tiles
// included), and with the tensor cores off (the SIMT kernels rounding the
// operands, as on a GPU below sm_80). The default conformance run
// (TestConformance) covers the automatic tiles in both emulator modes;
// TestTensorCoreDeterministic both tiles under permuted orders.
func TestTensorCoreSuites(t *testing.T) {
	configs := []struct {
		name  string
		eo    emu.Options
		do    device.Options
		dense bool
	}{
		{"tile=64x64", emu.Options{}, device.Options{TCTile: device.TCTile64x64}, true},
		{"tile=128x128", emu.Options{SharedLimit: h100Shared}, device.Options{TCTile: device.TCTile128x128}, false},
		{"scalar-copies", emu.Options{}, device.Options{ScalarLoads: true}, false},
		{"simt-fallback", emu.Options{}, device.Options{NoTensorCores: true}, true},
	}
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			nb := func(t *testing.T) model.Backend { return newDevice(t, c.eo, c.do) }
			t.Run("GemmPrecision", func(t *testing.T) { backendtest.TestGemmPrecision(t, nb) })
			if c.dense {
				t.Run("DenseOps", func(t *testing.T) { backendtest.TestDenseOps(t, nb) })
			}
			if c.do.NoTensorCores {
				// The energy head's fallback: the SIMT kernels rounding the
				// operands (the default conformance run covers the
				// tensor-core head).
				// The 65537-answer cases are left to the conformance run:
				// the fallback's product is the SIMT one TestEnergyHead
				// runs at that size, its rounding elementwise.
				t.Run("EnergyHeadPrecision", func(t *testing.T) { backendtest.TestEnergyHeadPrecisionSizes(t, nb, false) })
			}
		})
	}
}

// TestTensorCoreDispatch checks which kernel each precision and transpose
// launches: tensor-core kernels (gt_tc_*) for tf32, 3xtf32 and bf16 from
// compute capability 8.0 on, except tt; the SIMT kernels for fp32, for tt,
// and for every precision below 8.0; and the tile rule's shapes.
func TestTensorCoreDispatch(t *testing.T) {
	type tc struct {
		major  int
		p      model.Precision
		ta, tb bool
		m, n   int
		do     device.Options
		shared int
		kernel string
		grid   int // blocks along x (the tensor-core grids are 1-D)
		block  int
	}
	cases := []tc{
		{8, model.FP32, false, true, 130, 70, device.Options{}, 0, "gt_gemm_nt", 2, 256},
		{8, model.TF32, false, true, 130, 70, device.Options{}, 0, "gt_tc_gemm_nt_tf32_64x64", 6, 128},
		{8, model.TF32x3, false, false, 130, 70, device.Options{}, 0, "gt_tc_gemm_nn_3xtf32_64x64", 6, 128},
		{9, model.BF16, true, false, 130, 70, device.Options{}, 0, "gt_tc_gemm_tn_bf16_64x64", 6, 128},
		{8, model.TF32, true, true, 130, 70, device.Options{}, 0, "gt_gemm_tt", 2, 256},
		{7, model.TF32, false, true, 130, 70, device.Options{}, 0, "gt_gemm_nt", 2, 256},
		{7, model.BF16, false, false, 130, 70, device.Options{}, 0, "gt_gemm_nn", 2, 256},
		{8, model.TF32, false, true, 130, 70, device.Options{NoTensorCores: true}, 0, "gt_gemm_nt", 2, 256},
		{8, model.TF32, false, true, 130, 70, device.Options{TCTile: device.TCTile128x128}, h100Shared, "gt_tc_gemm_nt_tf32_128x128", 2, 128},
		// The automatic rule takes 128 x 128 only when it gives >= 128
		// blocks and the shared memory allows it.
		{8, model.TF32, false, true, 2048, 1024, device.Options{}, h100Shared, "gt_tc_gemm_nt_tf32_128x128", 128, 128},
		{8, model.TF32, false, true, 2048, 1024, device.Options{}, 0, "gt_tc_gemm_nt_tf32_64x64", 512, 128},
		{8, model.TF32, false, true, 2048, 896, device.Options{}, h100Shared, "gt_tc_gemm_nt_tf32_64x64", 448, 128},
	}
	for _, c := range cases {
		name := fmt.Sprintf("sm%d0/%v/ta=%v,tb=%v/%dx%d/%+v", c.major, c.p, c.ta, c.tb, c.m, c.n, c.do)
		t.Run(name, func(t *testing.T) {
			b, rec := newTC(t, emu.Options{SharedLimit: c.shared}, c.do, c.major)
			defer b.Close()
			const k = 3
			ar, ac, br, bc := c.m, k, k, c.n
			if c.ta {
				ar, ac = k, c.m
			}
			if c.tb {
				br, bc = c.n, k
			}
			a, bb := alloc(t, b, ar, ac, make([]float32, ar*ac)), alloc(t, b, br, bc, make([]float32, br*bc))
			out := alloc(t, b, c.m, c.n, nil)
			must(t, b.GemmPrecision(c.p, c.ta, c.tb, 1, a, bb, 0, out))
			if len(rec.launches) != 1 {
				t.Fatalf("%d launches (%v), want 1", len(rec.launches), rec.kernels())
			}
			l := rec.launches[0]
			if l.kernel != c.kernel || l.grid.X != c.grid || l.block.X != c.block {
				t.Errorf("launched %s grid %v block %v, want %s grid %d block %d", l.kernel, l.grid, l.block, c.kernel, c.grid, c.block)
			}
			if strings.HasPrefix(l.kernel, "gt_tc_") && c.major < 8 {
				t.Errorf("a tensor-core kernel on a device of compute capability %d.0", c.major)
			}
		})
	}
	// A forced tile that does not fit the device is an error, not a
	// launch that fails later.
	b, _ := newTC(t, emu.Options{}, device.Options{TCTile: device.TCTile128x128}, 8)
	defer b.Close()
	a := alloc(t, b, 4, 4, make([]float32, 16))
	out := alloc(t, b, 4, 4, nil)
	if err := b.GemmPrecision(model.BF16, false, true, 1, a, a, 0, out); err == nil || !strings.Contains(err.Error(), "shared memory") {
		t.Errorf("forced 128x128 tile within 48 KiB: got %v, want an error about shared memory", err)
	}
}

// TestTensorCoreEdges: K = 0 and alpha = 0 leave C = beta C without
// reading A and B (NaN there must not leak), on the tensor-core kernels as
// on the SIMT ones.
func TestTensorCoreEdges(t *testing.T) {
	b, rec := newTC(t, emu.Options{Mode: emu.Permuted, Seed: 4}, device.Options{}, 8)
	defer b.Close()
	c0 := make([]float32, 33*64)
	for i := range c0 {
		c0[i] = float32(i%7) - 3
	}
	for _, p := range []model.Precision{model.TF32, model.TF32x3, model.BF16} {
		a, bb := alloc(t, b, 33, 0, nil), alloc(t, b, 0, 64, nil)
		c := alloc(t, b, 33, 64, c0)
		must(t, b.GemmPrecision(p, false, false, 1, a, bb, 0.5, c))
		for i, v := range download(t, b, c) {
			if v != 0.5*c0[i] {
				t.Fatalf("%v, K = 0: C[%d] = %v, want %v", p, i, v, 0.5*c0[i])
			}
		}
		an, bn := alloc(t, b, 33, 5, nil), alloc(t, b, 64, 5, nil) // NaN (alloc's poison)
		c = alloc(t, b, 33, 64, c0)
		must(t, b.GemmPrecision(p, false, true, 0, an, bn, -2, c))
		for i, v := range download(t, b, c) {
			if v != -2*c0[i] {
				t.Fatalf("%v, alpha = 0 over NaN operands: C[%d] = %v, want %v", p, i, v, -2*c0[i])
			}
		}
	}
	for _, k := range rec.kernels() {
		if !strings.HasPrefix(k, "gt_tc_") {
			t.Errorf("launched %s, want tensor-core kernels only", k)
		}
	}
}

// TestDenseLaunches counts the launches of each DenseOps call (one GEMM
// each, the elementwise work in its epilogue) and of a dense model's
// forward and backward pass: for mlp:H (one hidden layer) 2 and 3, where
// the unfused sequence takes 5 and 6 to 8 (the column sums take one or two
// launches). Where a tf32 product rounds on the SIMT kernels, the bias
// gradient takes its own launch.
func TestDenseLaunches(t *testing.T) {
	for _, c := range []struct {
		major     int
		p         model.Precision
		gradLaunc int
	}{{8, model.FP32, 1}, {8, model.TF32, 1}, {8, model.BF16, 1}, {7, model.TF32, 2}, {7, model.TF32x3, 1}} {
		t.Run(fmt.Sprintf("sm%d0/%v", c.major, c.p), func(t *testing.T) {
			b, rec := newTC(t, emu.Options{}, device.Options{}, c.major)
			defer b.Close()
			const B, in, out = 9, 13, 6
			x, w, bias := alloc(t, b, B, in, make([]float32, B*in)), alloc(t, b, out, in, make([]float32, out*in)), alloc(t, b, 1, out, make([]float32, out))
			z, dz, y, dx := alloc(t, b, B, out, nil), alloc(t, b, B, out, make([]float32, B*out)), alloc(t, b, B, in, make([]float32, B*in)), alloc(t, b, B, in, nil)
			dw, db := alloc(t, b, out, in, nil), alloc(t, b, 1, out, nil)
			counts := func(f func() error) int {
				rec.launches = nil
				must(t, f())
				return len(rec.launches)
			}
			if n := counts(func() error { return b.DenseForward(c.p, x, w, bias, -1, model.Tanh, z) }); n != 1 {
				t.Errorf("DenseForward: %d launches (%v), want 1", n, rec.kernels())
			}
			if n := counts(func() error { return b.DenseBackwardData(c.p, dz, w, 1, model.ReLU, y, dx) }); n != 1 {
				t.Errorf("DenseBackwardData: %d launches (%v), want 1", n, rec.kernels())
			}
			if n := counts(func() error { return b.DenseGradWeights(c.p, dz, x, 1, dw, db) }); n != c.gradLaunc {
				t.Errorf("DenseGradWeights: %d launches (%v), want %d", n, rec.kernels(), c.gradLaunc)
			}
		})
	}
	// A whole layer stack: mlp:16 on 20 inputs, 10 classes.
	b, rec := newTC(t, emu.Options{}, device.Options{}, 9)
	defer b.Close()
	m, err := model.NewEnergyModel(b, model.Spec{Hidden: []int{16}, Activation: model.ReLU}, 20, 10, rand.New(rand.NewPCG(1, 2)))
	must(t, err)
	defer m.Free()
	x := alloc(t, b, 32, 20, make([]float32, 32*20))
	rec.launches = nil
	e, err := m.Forward(x)
	must(t, err)
	if n := len(rec.launches); n != 2 {
		t.Errorf("mlp:16 forward: %d launches (%v), want 2", n, rec.kernels())
	}
	rec.launches = nil
	must(t, m.Backward(e))
	if n := len(rec.launches); n != 3 {
		t.Errorf("mlp:16 backward: %d launches (%v), want 3", n, rec.kernels())
	}
}

// TestDenseFusedBitwise: in the emulator (no FMA contraction) a fused
// DenseOps call gives bitwise what the unfused sequence of calls gives, on
// the SIMT kernels (fp32) and on the tensor-core ones (tf32): the epilogue
// performs the same float32 operations in the same order.
func TestDenseFusedBitwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	const B, in, out = 37, 29, 70
	x, w, bias := uniform(rng, B*in, -1, 1), uniform(rng, out*in, -1, 1), uniform(rng, out, -1, 1)
	dz, y := uniform(rng, B*out, -1, 1), uniform(rng, B*in, -1, 1)
	for i := range y {
		y[i] = float32(math.Tanh(float64(y[i])))
	}
	for _, p := range []model.Precision{model.FP32, model.TF32} {
		for _, act := range []model.Activation{model.ReLU, model.Tanh} {
			b, _ := newTC(t, emu.Options{}, device.Options{}, 8)
			X, W, Bias, DZ, Y := alloc(t, b, B, in, x), alloc(t, b, out, in, w), alloc(t, b, 1, out, bias), alloc(t, b, B, out, dz), alloc(t, b, B, in, y)
			fused, unfused := alloc(t, b, B, out, nil), alloc(t, b, B, out, nil)
			must(t, b.DenseForward(p, X, W, Bias, -1, act, fused))
			must(t, model.DenseUnfused{B: b}.DenseForward(p, X, W, Bias, -1, act, unfused))
			bitwiseEqual(t, fmt.Sprintf("%v %v forward", p, act), download(t, b, fused), download(t, b, unfused))
			fx, ux := alloc(t, b, B, in, nil), alloc(t, b, B, in, nil)
			must(t, b.DenseBackwardData(p, DZ, W, -1, act, Y, fx))
			must(t, model.DenseUnfused{B: b}.DenseBackwardData(p, DZ, W, -1, act, Y, ux))
			bitwiseEqual(t, fmt.Sprintf("%v %v backward data", p, act), download(t, b, fx), download(t, b, ux))
			must(t, b.Close())
		}
	}
}

func bitwiseEqual(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Errorf("%s: element %d = %v (%#08x), unfused %v (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			return
		}
	}
}

// TestTensorCoreDeterministic: the tensor-core GEMMs and the fused bias
// gradient give the same bits whatever order the emulator runs threads and
// blocks in (each output is one lane's mma chain over k in order; each
// column sum a fixed merge), for both tiles.
func TestTensorCoreDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	const B, in, out = 140, 45, 131
	dz, x := uniform(rng, B*out, -1, 1), uniform(rng, B*in, -1, 1)
	for _, tile := range []device.TCTile{device.TCTile64x64, device.TCTile128x128} {
		for _, p := range []model.Precision{model.TF32, model.TF32x3, model.BF16} {
			run := func(eo emu.Options) []float32 {
				eo.SharedLimit = h100Shared
				b, _ := newTC(t, eo, device.Options{TCTile: tile}, 8)
				defer b.Close()
				DZ, X := alloc(t, b, B, out, dz), alloc(t, b, B, in, x)
				dw, db := alloc(t, b, out, in, nil), alloc(t, b, 1, out, nil)
				must(t, b.DenseGradWeights(p, DZ, X, -1, dw, db))
				return append(download(t, b, dw), download(t, b, db)...)
			}
			want := run(emu.Options{})
			for seed := uint64(1); seed <= 2; seed++ {
				bitwiseEqual(t, fmt.Sprintf("%v %v seed %d", tile, p, seed), run(emu.Options{Mode: emu.Permuted, Seed: seed}), want)
			}
		}
	}
}

// Test3xTF32Accuracy: on a 128 x 128 x 1024 product of uniform [-1, 1)
// operands, 3xtf32 keeps ||C - ref|| / ||ref|| (ref in float64) within the
// 1e-6 of the target, like fp32, while tf32 and bf16 are 2-3
// orders of magnitude off: the split is doing its job. (The emulator sums
// each mma exactly; a GPU's tensor cores round each 16x8x8 step's sum in
// their own way: the figure at 4096^3 is measured by scripts/gpu-check.sh.)
func Test3xTF32Accuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 128 x 128 x 1024 in the emulator takes a few seconds per precision")
	}
	const m, n, k = 128, 128, 1024
	rng := rand.New(rand.NewPCG(12, 13))
	a, bb := uniform(rng, m*k, -1, 1), uniform(rng, k*n, -1, 1)
	ref := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for l := range k {
				s += float64(a[i*k+l]) * float64(bb[l*n+j])
			}
			ref[i*n+j] = s
		}
	}
	b, _ := newTC(t, emu.Options{}, device.Options{}, 8)
	defer b.Close()
	A, B := alloc(t, b, m, k, a), alloc(t, b, k, n, bb)
	relErr := func(p model.Precision) float64 {
		C := alloc(t, b, m, n, nil)
		must(t, b.GemmPrecision(p, false, false, 1, A, B, 0, C))
		var num, den float64
		for i, v := range download(t, b, C) {
			d := float64(v) - ref[i]
			num += d * d
			den += ref[i] * ref[i]
		}
		return math.Sqrt(num / den)
	}
	for _, c := range []struct {
		p      model.Precision
		lo, hi float64
	}{{model.FP32, 0, 1e-6}, {model.TF32x3, 0, 1e-6}, {model.TF32, 1e-5, 1e-3}, {model.BF16, 1e-4, 1e-2}} {
		e := relErr(c.p)
		t.Logf("%v: ||C - ref|| / ||ref|| = %.3g", c.p, e)
		if !(e >= c.lo && e <= c.hi) {
			t.Errorf("%v: relative error %.3g, want within [%g, %g]", c.p, e, c.lo, c.hi)
		}
	}
}

func uniform(rng *rand.Rand, n int, lo, hi float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = lo + (hi-lo)*rng.Float32()
	}
	return x
}
