package device_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendtest"
)

// emuModes are the emulator configurations every device test runs under:
// threads in order, and threads and blocks in a seeded random order (which
// turns a missing barrier or an order-dependent reduction into a failure).
var emuModes = []struct {
	name string
	opts emu.Options
}{
	{"deterministic", emu.Options{Mode: emu.Deterministic}},
	{"permuted", emu.Options{Mode: emu.Permuted, Seed: 0x5eed}},
}

// newDevice returns a device.Backend on a fresh emulator; the backend owns
// the driver. The caller closes the backend (the conformance suite does it
// itself).
func newDevice(t testing.TB, eo emu.Options, do device.Options) *device.Backend {
	t.Helper()
	drv, err := emu.New(eo)
	if err != nil {
		t.Fatalf("emu.New: %v", err)
	}
	b, err := device.NewWithOptions(drv, do)
	if err != nil {
		drv.Close()
		t.Fatalf("device.New: %v", err)
	}
	return b
}

// TestConformance runs the shared Backend suite on device+emu in both
// emulator modes, once with the default row chunk and once with a small one
// (32: K = 33 splits as 32 + 1, K = 1000 into 32 chunks), so that the
// suite's EnergyLoss cases with longer rows also run on the split-row path.
func TestConformance(t *testing.T) {
	for _, mode := range emuModes {
		for _, chunk := range []int{0, 32} {
			name := mode.name
			if chunk != 0 {
				name += "/split-rows"
			}
			t.Run(name, func(t *testing.T) {
				// The precision head's 65537-answer cases (about a
				// minute) run once, in the first mode.
				o := backendtest.Options{SkipHugeHeadPrecision: mode.name != emuModes[0].name}
				backendtest.TestBackendWith(t, func(t *testing.T) model.Backend {
					b := newDevice(t, mode.opts, device.Options{RowChunk: chunk})
					if chunk != 0 {
						// The row chunk changes EnergyLoss only: hide the
						// optional operations (energy head, joint ops),
						// whose kernels the default runs already test.
						return struct{ model.Backend }{b}
					}
					return b
				}, o)
			})
		}
	}
}

// recorder is a Driver that logs the kernels launched through it and can
// make one kernel's launches fail.
type recorder struct {
	device.Driver
	launched []string
	fail     string // kernel whose launches fail
}

var errInjected = errors.New("injected launch failure")

func (r *recorder) Launch(kernel string, grid, block device.Dim3, shared int, args ...uint64) error {
	r.launched = append(r.launched, kernel)
	if kernel == r.fail {
		return errInjected
	}
	return r.Driver.Launch(kernel, grid, block, shared, args...)
}

func newRecorded(t *testing.T, do device.Options) (*device.Backend, *recorder) {
	t.Helper()
	drv, err := emu.New(emu.Options{Mode: emu.Permuted, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Driver: drv}
	b, err := device.NewWithOptions(rec, do)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b, rec
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func alloc(t *testing.T, b model.Backend, rows, cols int, data []float32) model.Mat {
	t.Helper()
	m, err := b.Alloc(rows, cols)
	must(t, err)
	if data == nil {
		data = nans(rows * cols)
	}
	must(t, b.Upload(m, data))
	return m
}

func allocInts(t *testing.T, b model.Backend, data []int32) model.Ints {
	t.Helper()
	v, err := b.AllocInts(len(data))
	must(t, err)
	must(t, b.UploadInts(v, data))
	return v
}

// deviceOnlyInts returns a vector holding vals (each >= 0) that was written
// by a kernel, so the backend does not know its contents on the host: the
// argmin of rows with their minimum at column vals[i].
func deviceOnlyInts(t *testing.T, b model.Backend, vals []int32) model.Ints {
	t.Helper()
	k := int32(1)
	for _, v := range vals {
		k = max(k, v+1)
	}
	e := make([]float32, len(vals)*int(k))
	for i, v := range vals {
		e[i*int(k)+int(v)] = -1
	}
	m := alloc(t, b, len(vals), int(k), e)
	out := allocInts(t, b, poisonedInts(len(vals)))
	must(t, b.ArgminRows(m, out))
	if got := downloadInts(t, b, out); !slices.Equal(got, vals) {
		t.Fatalf("deviceOnlyInts: argmin gave %v, want %v", got, vals)
	}
	return out
}

func count(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// TestLabelChecks checks that out-of-range labels and gather indices are
// reported before anything is written, both when the backend knows them on
// the host (uploaded, or gathered from uploaded vectors: no check kernel
// runs) and when they exist only on the device (a check kernel flags them).
func TestLabelChecks(t *testing.T) {
	b, rec := newRecorded(t, device.Options{})
	const B, K = 5, 4
	rng := rand.New(rand.NewPCG(3, 4))
	e0 := make([]float32, B*K)
	for i := range e0 {
		e0[i] = float32(rng.NormFloat64())
	}
	cases := []struct {
		name       string
		labels     func() model.Ints
		wantKernel bool
		wantErr    string
	}{
		{"uploaded", func() model.Ints { return allocInts(t, b, []int32{0, -1, 3, 4, 1}) }, false, "label 4 of row 3"},
		{"gathered-from-uploaded", func() model.Ints {
			all := allocInts(t, b, []int32{2, 0, 7, 1, -1, 3})
			idx := allocInts(t, b, []int32{1, 4, 0, 2, 2})
			dst := allocInts(t, b, poisonedInts(B))
			must(t, b.GatherInts(dst, all, idx))
			return dst
		}, false, "label 7 of row 3"},
		{"device-only", func() model.Ints { return deviceOnlyInts(t, b, []int32{0, 2, 3, 1, 9}) }, true, "label 9 of row 4"},
		{"gathered-from-device-only", func() model.Ints {
			src := deviceOnlyInts(t, b, []int32{1, 6, 0})
			dst := allocInts(t, b, poisonedInts(B))
			must(t, b.GatherInts(dst, src, allocInts(t, b, []int32{0, 2, 1, 2, 0})))
			return dst
		}, true, "label 6 of row 2"},
		{"device-only-valid", func() model.Ints { return deviceOnlyInts(t, b, []int32{0, 2, 3, 1, 1}) }, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			labels := c.labels()
			e := alloc(t, b, B, K, e0)
			stats := alloc(t, b, B, model.NumStats, nil)
			am := allocInts(t, b, poisonedInts(B))
			rec.launched = nil
			err := b.EnergyLoss(e, labels, model.DefaultLoss(model.NLL), 1, stats, am)
			if got := count(rec.launched, "gt_check_labels"); (got > 0) != c.wantKernel {
				t.Errorf("gt_check_labels launched %d times (kernels %v); want a device check: %v", got, rec.launched, c.wantKernel)
			}
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("EnergyLoss with valid labels: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("EnergyLoss error = %v, want one containing %q", err, c.wantErr)
			}
			if got := download(t, b, e); !slices.Equal(got, e0) {
				t.Errorf("energies changed by a failed EnergyLoss: %v, want %v", got, e0)
			}
			for i, x := range download(t, b, stats) {
				if !math.IsNaN(float64(x)) {
					t.Errorf("stats[%d] = %v written by a failed EnergyLoss", i, x)
				}
			}
			if got := downloadInts(t, b, am); !slices.Equal(got, poisonedInts(B)) {
				t.Errorf("argmin written by a failed EnergyLoss: %v", got)
			}
		})
	}

	t.Run("gather", func(t *testing.T) {
		src := alloc(t, b, 3, 2, []float32{1, 2, 3, 4, 5, 6})
		srcInts := allocInts(t, b, []int32{7, 8, 9})
		for _, devOnly := range []bool{false, true} {
			idx := allocInts(t, b, []int32{2, 0, 3, 1})
			if devOnly {
				idx = deviceOnlyInts(t, b, []int32{2, 0, 3, 1})
			}
			dst := alloc(t, b, 4, 2, nil)
			err := b.GatherRows(dst, src, idx)
			if err == nil || !strings.Contains(err.Error(), "idx[2] = 3") {
				t.Errorf("GatherRows (device-only idx: %v) error = %v, want idx[2] = 3 reported", devOnly, err)
			}
			for i, x := range download(t, b, dst) {
				if !math.IsNaN(float64(x)) {
					t.Errorf("dst[%d] = %v written by a failed GatherRows", i, x)
				}
			}
			dstInts := allocInts(t, b, poisonedInts(4))
			err = b.GatherInts(dstInts, srcInts, idx)
			if err == nil || !strings.Contains(err.Error(), "idx[2] = 3") {
				t.Errorf("GatherInts (device-only idx: %v) error = %v, want idx[2] = 3 reported", devOnly, err)
			}
			if got := downloadInts(t, b, dstInts); !slices.Equal(got, poisonedInts(4)) {
				t.Errorf("GatherInts wrote %v before failing", got)
			}
		}
	})
}

// TestDriverErrors checks that a failing launch comes back as an error that
// wraps the driver's and names the operation and kernel.
func TestDriverErrors(t *testing.T) {
	b, rec := newRecorded(t, device.Options{})
	rec.fail = "gt_gemm_tn"
	a := alloc(t, b, 3, 2, make([]float32, 6))
	c := alloc(t, b, 2, 2, nil)
	err := b.Gemm(true, false, 1, a, a2(t, b), 0, c)
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "Gemm") || !strings.Contains(err.Error(), "gt_gemm_tn") {
		t.Errorf("Gemm with a failing launch: %v, want the injected error wrapped with Gemm and gt_gemm_tn", err)
	}
	if _, err := device.NewWithOptions(rec.Driver, device.Options{RowChunk: -1}); err == nil {
		t.Error("NewWithOptions with RowChunk -1: no error")
	}
	if _, err := device.New(nil); err == nil {
		t.Error("New(nil): no error")
	}
}

func a2(t *testing.T, b model.Backend) model.Mat { return alloc(t, b, 3, 2, make([]float32, 6)) }

// TestDeterministic runs a training step's kernels (the three GEMMs, bias,
// activation, the fused loss, column sums, argmin) under different permuted
// thread and block orders and requires bitwise identical results: every
// reduction has a fixed order. It does so for each launch plan: default,
// split rows, the large GEMM tiles with a block-per-row cached loss and
// two-stage column sums, and scalar loads with the uncached loss.
func TestDeterministic(t *testing.T) {
	// D and K not multiples of 4 (scalar loads throughout), then multiples
	// of 4 (128-bit loads where the plan allows them).
	for _, shape := range [][3]int{{33, 70, 37}, {33, 72, 40}} {
		t.Run(fmt.Sprintf("%dx%dx%d", shape[0], shape[1], shape[2]), func(t *testing.T) {
			testDeterministic(t, shape[0], shape[1], shape[2])
		})
	}
}

func testDeterministic(t *testing.T, B, D, K int) {
	rng := rand.New(rand.NewPCG(5, 6))
	x, w, bias := make([]float32, B*D), make([]float32, K*D), make([]float32, K)
	for _, s := range [][]float32{x, w, bias} {
		for i := range s {
			s[i] = float32(rng.NormFloat64())
		}
	}
	labels := make([]int32, B)
	for i := range labels {
		labels[i] = int32(rng.IntN(K))
	}
	run := func(eo emu.Options, do device.Options) [][]float32 {
		b := newDevice(t, eo, do)
		defer b.Close()
		X, W, Bias := alloc(t, b, B, D, x), alloc(t, b, K, D, w), alloc(t, b, 1, K, bias)
		E, H := alloc(t, b, B, K, nil), alloc(t, b, B, K, nil)
		stats, dW, dX, dB := alloc(t, b, B, model.NumStats, nil), alloc(t, b, K, D, nil), alloc(t, b, B, D, nil), alloc(t, b, 1, K, nil)
		lab, am, am2 := allocInts(t, b, labels), allocInts(t, b, poisonedInts(B)), allocInts(t, b, poisonedInts(B))
		must(t, b.Gemm(false, true, 1, X, W, 0, E))
		must(t, b.AddRowVector(E, 1, Bias))
		must(t, b.Gemm(false, true, 1, X, W, 0, H))
		must(t, b.Activate(model.Tanh, H))
		must(t, b.ArgminRows(E, am2))
		must(t, b.EnergyLoss(E, lab, model.DefaultLoss(model.NLL), 1/float32(B), stats, am))
		must(t, b.ActivationGrad(model.Tanh, E, H))
		must(t, b.ColumnSums(dB, 1, E, 0))
		must(t, b.Gemm(true, false, 1, E, X, 0, dW))
		must(t, b.Gemm(false, false, 1, E, W, 0, dX))
		out := [][]float32{download(t, b, E), download(t, b, stats), download(t, b, dW), download(t, b, dX), download(t, b, dB)}
		for _, v := range []model.Ints{am, am2} {
			for _, i := range downloadInts(t, b, v) {
				out = append(out, []float32{float32(i)})
			}
		}
		return out
	}
	plans := []device.Options{
		{},
		{RowChunk: 8},
		{GemmTile: device.GemmTile128x128, RowPlan: device.RowPlanBlock, ColumnSplits: 3},
		{GemmTile: device.GemmTile128x64, RowPlan: device.RowPlanUncached, ScalarLoads: true},
	}
	for _, do := range plans {
		want := run(emu.Options{Mode: emu.Deterministic}, do)
		for seed := uint64(1); seed <= 3; seed++ {
			got := run(emu.Options{Mode: emu.Permuted, Seed: seed}, do)
			for i := range want {
				for j := range want[i] {
					if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
						t.Fatalf("options %+v, seed %d: output %d element %d = %v, want bitwise %v", do, seed, i, j, got[i][j], want[i][j])
					}
				}
			}
		}
	}
}
