//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendtest"
)

// backendWith returns a constructor of GPU backends with opts, for the
// conformance suites (which close what they get).
func backendWith(opts device.Options) func(t *testing.T) model.Backend {
	return func(t *testing.T) model.Backend {
		drv, err := New(0)
		if err != nil {
			t.Fatalf("cuda.New(0): %v", err)
		}
		b, err := device.NewWithOptions(drv, opts)
		if err != nil {
			drv.Close()
			t.Fatalf("device.New: %v", err)
		}
		return b
	}
}

// TestPrecisionSuites runs the precision and dense-layer suites on the GPU
// with each tensor-core tile forced (TestConformance covers the automatic
// choice), and with the tensor cores off (the SIMT kernels that round the
// operands: what a GPU below sm_80 runs).
func TestPrecisionSuites(t *testing.T) {
	requireGPU(t)
	for _, c := range []struct {
		name string
		opts device.Options
	}{
		{"tile=128x128", device.Options{TCTile: device.TCTile128x128}},
		{"tile=64x64", device.Options{TCTile: device.TCTile64x64}},
		{"scalar-copies", device.Options{ScalarLoads: true, TCTile: device.TCTile128x128}},
		{"simt-fallback", device.Options{NoTensorCores: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Run("GemmPrecision", func(t *testing.T) { backendtest.TestGemmPrecision(t, backendWith(c.opts)) })
			t.Run("DenseOps", func(t *testing.T) { backendtest.TestDenseOps(t, backendWith(c.opts)) })
		})
	}
}

// TestParityGemmPrecision compares the GPU's tf32, 3xtf32 and bf16 GEMMs
// with the CPU backend's (which rounds the operands the same way) at sizes
// beyond the suite's, with each tile forced: the difference is only the
// order of the float32 sums, bounded by c k u sum|a||b| (c = 4 for one
// tensor-core product per k, 12 for 3xtf32's three, plus its split error;
// 2 for fp32, as TestParityGemm).
func TestParityGemmPrecision(t *testing.T) {
	c := cpu.New()
	defer c.Close()
	for _, tile := range []device.TCTile{device.TCTile128x128, device.TCTile64x64} {
		g := newBackend(t, device.Options{TCTile: tile})
		p := &pair{tb: t, g: g, c: c, rng: rand.New(rand.NewPCG(41, 43))}
		for _, prec := range []model.Precision{model.TF32, model.TF32x3, model.BF16} {
			for _, s := range [][3]int{{513, 1000, 257}, {1, 4097, 65}, {129, 1, 1031}, {1000, 130, 1}, {2049, 67, 512}, {1024, 1024, 4096}} {
				m, n, k := s[0], s[1], s[2]
				for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}} {
					t.Run(fmt.Sprintf("%v/%v/%dx%dx%d/tA=%v/tB=%v", tile, prec, m, n, k, tr[0], tr[1]), func(t *testing.T) {
						parityCase(t, p, prec, tr[0], tr[1], m, n, k)
					})
				}
			}
		}
	}
}

func parityCase(t *testing.T, p *pair, prec model.Precision, transA, transB bool, m, n, k int) {
	a := uniform(p.rng, m*k, -1, 1)
	b := uniform(p.rng, k*n, -1, 1)
	ar, ac, br, bc := m, k, k, n
	if transA {
		ar, ac = k, m
	}
	if transB {
		br, bc = n, k
	}
	ga, ca := p.mats(ar, ac, a)
	gb, cb := p.mats(br, bc, b)
	gc, cc := p.mats(m, n, nans(m*n))
	if err := p.g.(model.PrecisionOps).GemmPrecision(prec, transA, transB, 1, ga, gb, 0, gc); err != nil {
		t.Fatal(err)
	}
	if err := p.c.(model.PrecisionOps).GemmPrecision(prec, transA, transB, 1, ca, cb, 0, cc); err != nil {
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
	if err := p.c.Gemm(transA, transB, 1, aa, ab, 0, mag); err != nil {
		t.Fatal(err)
	}
	got, want, bound := download(t, p.g, gc), download(t, p.c, cc), download(t, p.c, mag)
	factor, extra := 4.0, 0.0
	switch prec {
	case model.FP32:
		factor = 2 // TestParityGemm's bound
	case model.TF32x3:
		factor, extra = 12, 16
	}
	bad := 0
	for i := range got {
		tol := (factor*float64(k+2) + extra) * 0x1p-24 * float64(bound[i])
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
}

// TestBeyond2to31 runs a GEMM whose output has B x K > 2^31 elements
// (65537 x 32769, 8.6 GB), so that every index past row 65535 needs 64
// bits, on the SIMT kernels (fp32) and on the tensor cores (tf32), then the
// fused energy loss on it. W is one-hot (W[j][j mod 16] = s_j, s_j small
// integers), so E[i][j] = s_j X[i][j mod 16] exactly in any precision
// (X holds values exact in bfloat16): every element is checked, and the
// loss of sampled rows against float64.
func TestBeyond2to31(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: allocates 8.6 GB of device memory")
	}
	g := newBackend(t, device.Options{})
	const B, K, D = 65537, 32769, 16
	if free, _, err := g.Driver().MemInfo(); err != nil || free < 12<<30 {
		t.Skipf("needs 12 GB of free device memory, has %d (%v)", free, err)
	}
	rng := rand.New(rand.NewPCG(51, 53))
	x := make([]float32, B*D)
	for i := range x {
		x[i] = float32(rng.IntN(64)-32) / 8 // exact in bf16 and tf32
	}
	w := make([]float32, K*D)
	s := make([]float32, K)
	for j := range K {
		s[j] = float32(j%5 - 2)
		w[j*D+j%D] = s[j]
	}
	X, W := mustMat(t, g, B, D, x), mustMat(t, g, K, D, w)
	E := mustMat(t, g, B, K, nil)
	host := make([]float32, B*K)
	for _, prec := range []model.Precision{model.FP32, model.TF32} {
		if err := g.GemmPrecision(prec, false, true, 1, X, W, 0, E); err != nil {
			t.Fatalf("%v: %v", prec, err)
		}
		if err := g.Download(host, E); err != nil {
			t.Fatal(err)
		}
		bad := 0
		for i := 0; i < B; i++ {
			row := host[i*K : (i+1)*K]
			for j, v := range row {
				if want := s[j] * x[i*D+j%D]; v != want {
					if bad < 5 {
						t.Errorf("%v: E[%d][%d] = %v, want %v (element %d)", prec, i, j, v, want, int64(i)*K+int64(j))
					}
					bad++
				}
			}
		}
		if bad > 0 {
			t.Fatalf("%v: %d of %d elements wrong", prec, bad, int64(B)*K)
		}
	}
	// The fused loss on the 2^31+ element matrix: NLL at beta 1.
	labels := make([]int32, B)
	for i := range labels {
		labels[i] = int32(rng.IntN(K))
	}
	l := mustInts(t, g, labels)
	st := mustMat(t, g, B, model.NumStats, nans(B*model.NumStats))
	am := mustInts(t, g, make([]int32, B))
	if err := g.EnergyLoss(E, l, model.DefaultLoss(model.NLL), 1, st, am); err != nil {
		t.Fatal(err)
	}
	stats := download(t, g, st)
	for _, i := range []int{0, 1, 65535, 65536} {
		row := host[i*K : (i+1)*K]
		lo := math.Inf(1)
		for _, v := range row {
			lo = math.Min(lo, float64(v))
		}
		var z float64
		for _, v := range row {
			z += math.Exp(-(float64(v) - lo))
		}
		logZ := -lo + math.Log(z)
		want := float64(row[labels[i]]) + logZ
		got := float64(stats[i*model.NumStats+model.StatLoss])
		if math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
			t.Errorf("row %d (elements from %d): loss %v, float64 %v", i, int64(i)*K, got, want)
		}
	}
}

// TestSanitizerReduced launches every GEMM kernel family once at small,
// awkward sizes (partial tiles, odd k, 4-byte and 16-byte copies), the
// fused dense operations and a training step, for scripts/gpu-check.sh to
// run under compute-sanitizer memcheck and racecheck (the whole suites
// would take too long there). It also checks the results against the CPU.
func TestSanitizerReduced(t *testing.T) {
	c := cpu.New()
	defer c.Close()
	for _, opts := range []device.Options{{TCTile: device.TCTile128x128}, {TCTile: device.TCTile64x64}, {ScalarLoads: true, TCTile: device.TCTile64x64}, {GemmTile: device.GemmTile128x128}, {}} {
		g := newBackend(t, opts)
		p := &pair{tb: t, g: g, c: c, rng: rand.New(rand.NewPCG(61, 67))}
		for _, prec := range []model.Precision{model.FP32, model.TF32, model.TF32x3, model.BF16} {
			for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
				t.Run(fmt.Sprintf("%+v/%v/tA=%v/tB=%v", opts, prec, tr[0], tr[1]), func(t *testing.T) {
					parityCase(t, p, prec, tr[0], tr[1], 131, 67, 37)
				})
			}
		}
	}
	// The fused dense operations and a training step of mlp:32.
	g := newBackend(t, device.Options{})
	train, _ := mnistData(t)
	for _, prec := range []model.Precision{model.FP32, model.TF32, model.BF16} {
		cfg := model.DefaultConfig()
		cfg.Model, cfg.Precision = "mlp:32", prec
		trainParams(t, g, train.Limit(300), cfg, 1)
	}
}
