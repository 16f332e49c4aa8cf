//go:build cuda

package cuda

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendtest"
)

// requireGPU skips tb without a usable GPU. (Without the NVIDIA driver
// library the test binary does not start at all; see the package comment.)
func requireGPU(tb testing.TB) {
	tb.Helper()
	if err := Available(); err != nil {
		tb.Skipf("needs a GPU (run on a GPU machine: scripts/gpu-check.sh run): %v", err)
	}
}

// newBackend opens GPU 0 under a device.Backend, closed when tb ends.
func newBackend(tb testing.TB, opts device.Options) *device.Backend {
	tb.Helper()
	requireGPU(tb)
	drv, err := New(0)
	if err != nil {
		tb.Fatalf("cuda.New(0): %v", err)
	}
	b, err := device.NewWithOptions(drv, opts)
	if err != nil {
		drv.Close()
		tb.Fatalf("device.New: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// TestConformance runs the conformance suite on the GPU.
func TestConformance(t *testing.T) {
	requireGPU(t)
	backendtest.TestBackend(t, func(t *testing.T) model.Backend {
		drv, err := New(0)
		if err != nil {
			t.Fatalf("cuda.New(0): %v", err)
		}
		b, err := device.New(drv)
		if err != nil {
			drv.Close()
			t.Fatalf("device.New: %v", err)
		}
		return b
	})
}

// TestConformanceSplitRows runs the energy-loss part of the suite with rows
// split into chunks of 7 answers, so the partial and merge kernels run at
// the suite's sizes too.
func TestConformanceSplitRows(t *testing.T) {
	requireGPU(t)
	backendtest.TestEnergyLoss(t, func(t *testing.T) model.Backend {
		drv, err := New(0)
		if err != nil {
			t.Fatalf("cuda.New(0): %v", err)
		}
		b, err := device.NewWithOptions(drv, device.Options{RowChunk: 7})
		if err != nil {
			drv.Close()
			t.Fatalf("device.New: %v", err)
		}
		return b
	})
}

// TestDriver exercises the driver directly: copies at awkward sizes, and
// the errors for misuse, each of which must name what was being done.
func TestDriver(t *testing.T) {
	requireGPU(t)
	d, err := New(0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	for _, n := range []int{1, 7, 31, 33, 257, 1000, 1<<20 + 3} {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		a, err := d.Alloc(int64(n))
		if err != nil {
			t.Fatalf("Alloc(%d): %v", n, err)
		}
		b, err := d.Alloc(int64(n))
		if err != nil {
			t.Fatalf("Alloc(%d): %v", n, err)
		}
		got := make([]byte, n)
		for i := range got {
			got[i] = ^src[i] // poison: every byte differs from the expected
		}
		if err := d.CopyIn(a, src); err != nil {
			t.Fatalf("CopyIn(%d): %v", n, err)
		}
		if err := d.CopyDevice(b, a, int64(n)); err != nil {
			t.Fatalf("CopyDevice(%d): %v", n, err)
		}
		if err := d.CopyOut(got, b); err != nil {
			t.Fatalf("CopyOut(%d): %v", n, err)
		}
		if !bytes.Equal(got, src) {
			t.Errorf("%d bytes: CopyIn, CopyDevice, CopyOut did not round-trip", n)
		}
		if err := d.CopyOut(make([]byte, n+1), a); err == nil || !strings.Contains(err.Error(), fmt.Sprint(n)) {
			t.Errorf("CopyOut of %d bytes from a %d-byte allocation: got %v, want an error naming the size", n+1, n, err)
		}
		for _, p := range []device.Ptr{a, b} {
			if err := d.Free(p); err != nil {
				t.Errorf("Free: %v", err)
			}
		}
		if err := d.Free(a); err == nil {
			t.Errorf("second Free of %#x: no error", uint64(a))
		}
	}
	if err := d.Launch("gt_no_such_kernel", device.Dim3{X: 1}, device.Dim3{X: 32}, 0); err == nil || !strings.Contains(err.Error(), "gt_no_such_kernel") {
		t.Errorf("launching a missing kernel: got %v, want an error naming it", err)
	}
	if err := d.Launch("gt_relu", device.Dim3{X: 1}, device.Dim3{X: 2048}, 0, 0, 0); err == nil || !strings.Contains(err.Error(), "2048") {
		t.Errorf("launching 2048 threads per block: got %v, want an error naming the block", err)
	}
	free, total, err := d.MemInfo()
	if err != nil || free <= 0 || free > total {
		t.Fatalf("MemInfo = %d, %d, %v", free, total, err)
	}
	if _, err := d.Alloc(total + 1<<30); err == nil {
		t.Error("allocating more than the device's memory: no error")
	} else {
		var oom *OutOfMemoryError
		if !errors.As(err, &oom) {
			t.Errorf("allocating more than the device's memory: %v is not an OutOfMemoryError", err)
		} else if s := oom.SuggestBatch(1024); s >= 1024 || s < 1 {
			t.Errorf("SuggestBatch(1024) after asking for %d with %d free = %d", oom.Requested, oom.Free, s)
		}
		t.Log(err)
	}
	const big = 256 << 20
	x, err := d.Alloc(big)
	if err != nil {
		t.Fatal(err)
	}
	y, err := d.Alloc(big)
	if err != nil {
		t.Fatal(err)
	}
	dt, err := d.Time(func() error { return d.CopyDevice(y, x, big) })
	if err != nil || dt <= 0 {
		t.Errorf("Time of a 256 MiB copy = %v, %v", dt, err)
	}
	t.Logf("256 MiB device copy: %v (%.0f GB/s)", dt, 2*big/dt.Seconds()/1e9)
	if err := d.Close(); err != nil {
		t.Errorf("Close with live allocations: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := d.Alloc(4); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Alloc after Close: got %v, want an error saying the driver is closed", err)
	}
}

// pair holds the same data on the GPU and on the CPU reference.
type pair struct {
	tb  testing.TB
	g   model.Backend
	c   model.Backend
	rng *rand.Rand
}

func (p *pair) mats(rows, cols int, host []float32) (model.Mat, model.Mat) {
	p.tb.Helper()
	var ms [2]model.Mat
	for i, b := range []model.Backend{p.g, p.c} {
		m, err := b.Alloc(rows, cols)
		if err != nil {
			p.tb.Fatalf("%s: Alloc(%d, %d): %v", b.Name(), rows, cols, err)
		}
		if err := b.Upload(m, host); err != nil {
			p.tb.Fatalf("%s: Upload: %v", b.Name(), err)
		}
		ms[i] = m
	}
	return ms[0], ms[1]
}

func (p *pair) ints(host []int32) (model.Ints, model.Ints) {
	p.tb.Helper()
	var vs [2]model.Ints
	for i, b := range []model.Backend{p.g, p.c} {
		v, err := b.AllocInts(len(host))
		if err != nil {
			p.tb.Fatalf("%s: AllocInts(%d): %v", b.Name(), len(host), err)
		}
		if err := b.UploadInts(v, host); err != nil {
			p.tb.Fatalf("%s: UploadInts: %v", b.Name(), err)
		}
		vs[i] = v
	}
	return vs[0], vs[1]
}

func download(tb testing.TB, b model.Backend, m model.Mat) []float32 {
	tb.Helper()
	out := make([]float32, m.Rows()*m.Cols())
	if err := b.Download(out, m); err != nil {
		tb.Fatalf("%s: Download: %v", b.Name(), err)
	}
	return out
}

func downloadInts(tb testing.TB, b model.Backend, v model.Ints) []int32 {
	tb.Helper()
	out := make([]int32, v.Len())
	if err := b.DownloadInts(out, v); err != nil {
		tb.Fatalf("%s: DownloadInts: %v", b.Name(), err)
	}
	return out
}

func uniform(rng *rand.Rand, n int, lo, hi float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = lo + (hi-lo)*rng.Float32()
	}
	return x
}

func nans(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	return x
}

// same reports whether a and b are equal or both NaN.
func same(a, b float32) bool { return a == b || (a != a && b != b) }

// TestParityGemm compares the GPU's GEMM with the CPU backend's at sizes
// beyond the conformance suite's (several tiles, ragged edges). The bound
// is the float32 dot-product error bound, 2*k*u*sum|a||b|, with sum|a||b|
// computed by the CPU backend from |A| and |B|.
func TestParityGemm(t *testing.T) {
	g := newBackend(t, device.Options{})
	c := cpu.New()
	defer c.Close()
	p := &pair{tb: t, g: g, c: c, rng: rand.New(rand.NewPCG(11, 13))}
	for _, s := range [][3]int{{513, 1000, 257}, {1, 4097, 65}, {129, 1, 1031}, {1000, 130, 1}, {2049, 67, 512}} {
		m, n, k := s[0], s[1], s[2]
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			t.Run(fmt.Sprintf("%dx%dx%d/tA=%v/tB=%v", m, n, k, tr[0], tr[1]), func(t *testing.T) {
				a := uniform(p.rng, m*k, -1, 1)
				b := uniform(p.rng, k*n, -1, 1)
				ar, ac, br, bc := m, k, k, n
				if tr[0] {
					ar, ac = k, m
				}
				if tr[1] {
					br, bc = n, k
				}
				ga, ca := p.mats(ar, ac, a)
				gb, cb := p.mats(br, bc, b)
				gc, cc := p.mats(m, n, nans(m*n))
				if err := g.Gemm(tr[0], tr[1], 1, ga, gb, 0, gc); err != nil {
					t.Fatal(err)
				}
				if err := c.Gemm(tr[0], tr[1], 1, ca, cb, 0, cc); err != nil {
					t.Fatal(err)
				}
				abs := func(x []float32) []float32 {
					y := make([]float32, len(x))
					for i, v := range x {
						y[i] = float32(math.Abs(float64(v)))
					}
					return y
				}
				_, aa := p.mats(ar, ac, abs(a))
				_, ab := p.mats(br, bc, abs(b))
				_, mag := p.mats(m, n, make([]float32, m*n))
				if err := c.Gemm(tr[0], tr[1], 1, aa, ab, 0, mag); err != nil {
					t.Fatal(err)
				}
				got, want, bound := download(t, g, gc), download(t, c, cc), download(t, c, mag)
				bad := 0
				for i := range got {
					tol := 2 * float64(k+2) * 0x1p-24 * float64(bound[i])
					if !(math.Abs(float64(got[i]-want[i])) <= tol) {
						if bad < 5 {
							t.Errorf("C[%d,%d] = %v, CPU %v (tolerance %.3g)", i/n, i%n, got[i], want[i], tol)
						}
						bad++
					}
				}
				if bad > 0 {
					t.Errorf("%d of %d elements differ", bad, len(got))
				}
			})
		}
	}
}

// TestParityEnergyLoss compares the fused energy loss with the CPU backend
// at row lengths that take the one-block path (K <= 8192) and the split
// path (K > 8192), with ignored rows. Losses whose gradient jumps (hinge)
// skip the gradient of rows within 1e-4 of the jump; LVQ2 and square-square
// are covered, kinks included, by the conformance suite.
func TestParityEnergyLoss(t *testing.T) {
	g := newBackend(t, device.Options{})
	c := cpu.New()
	defer c.Close()
	p := &pair{tb: t, g: g, c: c, rng: rand.New(rand.NewPCG(17, 19))}
	kinds := []model.LossKind{model.NLL, model.MEE, model.Log, model.MCE, model.SquareExp, model.Perceptron, model.Energy, model.Hinge}
	for _, s := range [][2]int{{1, 1}, {7, 2}, {33, 1000}, {257, 8193}, {31, 20000}, {3, 70000}, {1000, 33}} {
		B, K := s[0], s[1]
		for _, kind := range kinds {
			t.Run(fmt.Sprintf("B=%d/K=%d/%v", B, K, kind), func(t *testing.T) {
				loss := model.DefaultLoss(kind)
				loss.Beta = 0.5 + p.rng.Float64()
				e := uniform(p.rng, B*K, -4, 4)
				labels := make([]int32, B)
				for i := range labels {
					labels[i] = int32(p.rng.IntN(K))
					if i%5 == 3 {
						labels[i] = model.IgnoreLabel
					}
				}
				ge, ce := p.mats(B, K, e)
				gl, cl := p.ints(labels)
				gs, cs := p.mats(B, model.NumStats, nans(B*model.NumStats))
				ga, ca := p.ints(make([]int32, B))
				scale := float32(1) / float32(B)
				if err := g.EnergyLoss(ge, gl, loss, scale, gs, ga); err != nil {
					t.Fatal(err)
				}
				if err := c.EnergyLoss(ce, cl, loss, scale, cs, ca); err != nil {
					t.Fatal(err)
				}
				gotS, wantS := download(t, g, gs), download(t, c, cs)
				gotA, wantA := downloadInts(t, g, ga), downloadInts(t, c, ca)
				gotG, wantG := download(t, g, ge), download(t, c, ce)
				bad := 0
				report := func(format string, args ...any) {
					if bad < 5 {
						t.Errorf(format, args...)
					}
					bad++
				}
				for i := range B {
					if gotA[i] != wantA[i] {
						report("row %d: argmin %d, CPU %d", i, gotA[i], wantA[i])
					}
					for j := range model.NumStats {
						gv, wv := gotS[i*model.NumStats+j], wantS[i*model.NumStats+j]
						if !same(gv, wv) && !(math.Abs(float64(gv-wv)) <= 1e-5*(1+math.Abs(float64(wv)))) {
							report("row %d: stat %d = %v, CPU %v", i, j, gv, wv)
						}
					}
					if kind == model.Hinge && labels[i] != model.IgnoreLabel {
						ec, ei := float64(wantS[i*model.NumStats+model.StatCorrect]), float64(wantS[i*model.NumStats+model.StatOffending])
						if math.Abs(loss.Margin+ec-ei) < 1e-4 {
							continue
						}
					}
					for j := range K {
						gv, wv := gotG[i*K+j], wantG[i*K+j]
						if !same(gv, wv) && !(math.Abs(float64(gv-wv)) <= 1e-5*math.Abs(float64(wv))+1e-9*float64(scale)) {
							report("row %d: dL/dE[%d] = %v, CPU %v", i, j, gv, wv)
						}
					}
				}
				if bad > 0 {
					t.Errorf("%d mismatches", bad)
				}
			})
		}
	}
}

// TestDeterminism: the same inputs give bitwise the same outputs, run after
// run, for the kernels with reductions (GEMM, the split energy loss) and
// for whole training runs.
func TestDeterminism(t *testing.T) {
	g := newBackend(t, device.Options{})
	rng := rand.New(rand.NewPCG(23, 29))
	t.Run("EnergyLoss", func(t *testing.T) {
		const B, K = 257, 20001
		e := uniform(rng, B*K, -4, 4)
		labels := make([]int32, B)
		for i := range labels {
			labels[i] = int32(rng.IntN(K))
		}
		var first []float32
		for run := range 3 {
			m := mustMat(t, g, B, K, e)
			l := mustInts(t, g, labels)
			st := mustMat(t, g, B, model.NumStats, nans(B*model.NumStats))
			am := mustInts(t, g, make([]int32, B))
			if err := g.EnergyLoss(m, l, model.DefaultLoss(model.NLL), 1, st, am); err != nil {
				t.Fatal(err)
			}
			out := append(download(t, g, m), download(t, g, st)...)
			if run == 0 {
				first = out
			} else if i := firstDiff(first, out); i >= 0 {
				t.Fatalf("run %d differs from run 0 at element %d: %v vs %v", run, i, out[i], first[i])
			}
		}
	})
	t.Run("Gemm", func(t *testing.T) {
		const M, N, K = 1000, 513, 4097
		a, b := uniform(rng, M*K, -1, 1), uniform(rng, K*N, -1, 1)
		var first []float32
		for run := range 3 {
			ma, mb, mc := mustMat(t, g, M, K, a), mustMat(t, g, K, N, b), mustMat(t, g, M, N, nans(M*N))
			if err := g.Gemm(false, false, 1, ma, mb, 0, mc); err != nil {
				t.Fatal(err)
			}
			out := download(t, g, mc)
			if run == 0 {
				first = out
			} else if i := firstDiff(first, out); i >= 0 {
				t.Fatalf("run %d differs from run 0 at element %d: %v vs %v", run, i, out[i], first[i])
			}
		}
	})
	t.Run("LinearStep/B=4096,D=1024,K=32768", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: allocates 1.5 GB and trains 3 large steps twice")
		}
		data := randomData(4096, 1024, 32768, 31)
		var first []float32
		for run := range 2 {
			w, losses := trainParams(t, g, data, linearStepConfig(), 3)
			t.Logf("run %d: losses %v", run, losses)
			if run == 0 {
				first = w
			} else if i := firstDiff(first, w); i >= 0 {
				t.Fatalf("weights after 3 steps differ between runs at element %d: %v vs %v", i, w[i], first[i])
			}
		}
	})
	t.Run("MNIST", func(t *testing.T) {
		train, _ := mnistData(t)
		cfg := model.DefaultConfig()
		cfg.Model = "mlp:64"
		var first []float32
		for run := range 2 {
			w, _ := trainParams(t, g, train.Limit(10000), cfg, 1)
			if run == 0 {
				first = w
			} else if i := firstDiff(first, w); i >= 0 {
				t.Fatalf("weights after one epoch differ between runs at element %d: %v vs %v", i, w[i], first[i])
			}
		}
	})
}

func firstDiff(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

func mustMat(tb testing.TB, b model.Backend, rows, cols int, host []float32) model.Mat {
	tb.Helper()
	m, err := b.Alloc(rows, cols)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Free(m) })
	if host != nil {
		if err := b.Upload(m, host); err != nil {
			tb.Fatal(err)
		}
	}
	return m
}

func mustInts(tb testing.TB, b model.Backend, host []int32) model.Ints {
	tb.Helper()
	v, err := b.AllocInts(len(host))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Free(v) })
	if err := b.UploadInts(v, host); err != nil {
		tb.Fatal(err)
	}
	return v
}

// randomData is N rows of D standard normal features with labels uniform
// in [0, K).
func randomData(n, d, k int, seed uint64) *model.Data {
	rng := rand.New(rand.NewPCG(seed, 0))
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]int32, n)
	for i := range y {
		y[i] = int32(rng.IntN(k))
	}
	return &model.Data{X: x, Y: y, N: n, D: d, Classes: k}
}

// linearStepConfig is the benchmark's training step: a linear energy model,
// NLL, Adam, one batch of 4096 rows per epoch.
func linearStepConfig() model.Config {
	cfg := model.DefaultConfig()
	cfg.Batch = 4096
	cfg.Epochs = 1 << 30
	return cfg
}

// trainParams trains epochs epochs from cfg.Seed and returns every
// parameter, concatenated, and the epoch losses.
func trainParams(tb testing.TB, b model.Backend, data *model.Data, cfg model.Config, epochs int) ([]float32, []float64) {
	tb.Helper()
	tr, err := model.NewTrainer(b, cfg, data, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tr.Close()
	var losses []float64
	for range epochs {
		l, err := tr.TrainEpoch(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		losses = append(losses, l)
	}
	var w []float32
	for _, p := range tr.Model.Params() {
		w = append(w, download(tb, b, p.Value)...)
	}
	return w, losses
}

func mnistData(tb testing.TB) (train, test *model.Data) {
	tb.Helper()
	tr, te, err := dataset.EmbeddedMNIST()
	if err != nil {
		tb.Fatal(err)
	}
	conv := func(s *dataset.Set) *model.Data {
		return &model.Data{X: s.X, Y: s.Y, N: s.N, D: s.D, Classes: s.Classes}
	}
	return conv(tr), conv(te)
}

// TestMNISTMatchesCPU trains the same models from the same seed on the GPU
// and on the CPU and compares every epoch's training loss and held-out
// accuracy. The backends sum in different orders (the CPU in float64), so
// the runs drift apart slowly: the losses must agree to 2e-3 relative and
// the accuracies to 0.3 points (30 of the 10000 test images).
func TestMNISTMatchesCPU(t *testing.T) {
	g := newBackend(t, device.Options{})
	c := cpu.New()
	defer c.Close()
	train, test := mnistData(t)
	for _, spec := range []string{"linear", "mlp:256"} {
		t.Run(spec, func(t *testing.T) {
			cfg := model.DefaultConfig()
			cfg.Model = spec
			cfg.Epochs = 3
			if spec != "linear" {
				cfg.Epochs = 2
			}
			run := func(b model.Backend) []model.EpochResult {
				tr, err := model.NewTrainer(b, cfg, train, test)
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				res, err := tr.Run(context.Background())
				if err != nil {
					t.Fatalf("%s: %v", b.Name(), err)
				}
				return res
			}
			gr, cr := run(g), run(c)
			for i := range gr {
				gl, cl := gr[i].TrainLoss, cr[i].TrainLoss
				ga, ca := gr[i].Eval.Accuracy, cr[i].Eval.Accuracy
				t.Logf("epoch %d: loss cuda %.6f cpu %.6f; accuracy cuda %.4f cpu %.4f; seconds cuda %.2f cpu %.2f",
					i+1, gl, cl, ga, ca, gr[i].Seconds, cr[i].Seconds)
				if math.Abs(gl-cl) > 2e-3*math.Abs(cl) {
					t.Errorf("epoch %d: training loss %.6f on the GPU, %.6f on the CPU", i+1, gl, cl)
				}
				if math.Abs(ga-ca) > 0.003 {
					t.Errorf("epoch %d: accuracy %.4f on the GPU, %.4f on the CPU", i+1, ga, ca)
				}
			}
		})
	}
}
