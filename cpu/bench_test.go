package cpu

import (
	"fmt"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// gemmShapes are the GEMMs of one MNIST batch (B = 128) for the linear model
// (784 -> 10) and the MLP 784-256-10, as model/dense.go calls them (weights
// are out x in): forward h = x W^T (NT), weight gradient dW = dE^T x (TN),
// input gradient dh = dE W (NN); plus the plain NN forms.
var gemmShapes = []struct {
	name    string
	tA, tB  bool
	m, n, k int
}{
	{"fwd1_NT_128x256x784", false, true, 128, 256, 784},
	{"dW1_TN_256x784x128", true, false, 256, 784, 128},
	{"fwd2_NT_128x10x256", false, true, 128, 10, 256},
	{"dW2_TN_10x256x128", true, false, 10, 256, 128},
	{"dh1_NN_128x256x10", false, false, 128, 256, 10},
	{"lin_NT_128x10x784", false, true, 128, 10, 784},
	{"linDW_TN_10x784x128", true, false, 10, 784, 128},
	{"NN_128x256x784", false, false, 128, 256, 784},
	{"TN_784x256x128", true, false, 784, 256, 128},
	{"NT_128x784x256", false, true, 128, 784, 256},
	{"NN_128x10x256", false, false, 128, 10, 256},
}

// BenchmarkGemm measures Gemm as used (the assembly kernel where the CPU has
// AVX2+FMA) and gonum's Sgemm on the same shapes for comparison.
func BenchmarkGemm(b *testing.B) {
	for _, useGonum := range []bool{false, true} {
		impl := "kernel"
		if useGonum {
			impl = "gonum"
		} else if !haveKernel {
			continue // Gemm is gonum's anyway
		}
		b.Run(impl, func(b *testing.B) { benchGemm(b, useGonum) })
	}
}

func benchGemm(b *testing.B, useGonum bool) {
	be := New()
	defer be.Close()
	be.gonumGemm = useGonum
	r := newRand(1)
	for _, s := range gemmShapes {
		b.Run(s.name, func(b *testing.B) {
			ar, ac := s.m, s.k
			if s.tA {
				ar, ac = ac, ar
			}
			br, bc := s.k, s.n
			if s.tB {
				br, bc = bc, br
			}
			A := upload(b, be, ar, ac, randSlice(r, ar*ac, -1, 1))
			B := upload(b, be, br, bc, randSlice(r, br*bc, -1, 1))
			C := upload(b, be, s.m, s.n, randSlice(r, s.m*s.n, -1, 1))
			b.ResetTimer()
			for b.Loop() {
				if err := be.Gemm(s.tA, s.tB, 1, A, B, 0, C); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkEnergyLoss measures the fused loss on an MNIST batch and on a
// large many-answer batch, for NLL (every answer touched, two exps per
// entry) and hinge (one exp per entry, sparse gradient).
func BenchmarkEnergyLoss(b *testing.B) {
	be := New()
	defer be.Close()
	for _, sz := range [][2]int{{128, 10}, {8192, 1000}} {
		for _, kind := range []model.LossKind{model.NLL, model.Hinge} {
			B, K := sz[0], sz[1]
			b.Run(fmt.Sprintf("%dx%d/%v", B, K, kind), func(b *testing.B) {
				c := randomCase(1, B, K, -3, 3, 0)
				E := upload(b, be, B, K, c.e)
				L := uploadInts(b, be, c.labels)
				S, _ := be.Alloc(B, model.NumStats)
				A, _ := be.AllocInts(B)
				l := model.DefaultLoss(kind)
				b.ResetTimer()
				for b.Loop() {
					// The loss overwrites E; re-uploading would dominate
					// the small case, and the gradient is as good an input.
					if err := be.EnergyLoss(E, L, l, 1, S, A); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(B*K)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Melem/s")
			})
		}
	}
}

// BenchmarkAdamStep measures the optimizer on the MLP's first weight matrix.
func BenchmarkAdamStep(b *testing.B) {
	be := New()
	defer be.Close()
	r := newRand(2)
	n := 256 * 784
	W := upload(b, be, 256, 784, randSlice(r, n, -1, 1))
	G := upload(b, be, 256, 784, randSlice(r, n, -1, 1))
	M := upload(b, be, 256, 784, make([]float32, n))
	V := upload(b, be, 256, 784, make([]float32, n))
	t := 0
	for b.Loop() {
		t++
		if err := be.AdamStep(W, G, M, V, 1e-3, 0.9, 0.999, 1e-8, 0, t); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEpoch runs the backend calls of one MNIST-sized training epoch
// (60000 x 784 inputs, 10 classes, batch 128, NLL, Adam) in the order
// model/dense.go and the trainer issue them, for the linear model and the
// MLP 784-256-10 (ReLU). One op is one epoch; data are random.
func BenchmarkEpoch(b *testing.B) {
	for _, hidden := range []int{0, 256} {
		name := "linear"
		if hidden > 0 {
			name = fmt.Sprintf("mlp784-%d-10", hidden)
		}
		b.Run(name, func(b *testing.B) { benchEpoch(b, hidden) })
	}
}

func benchEpoch(b *testing.B, hidden int) {
	const N, D, K, B = 60000, 784, 10, 128
	be := New()
	defer be.Close()
	r := newRand(3)
	X := upload(b, be, N, D, randSlice(r, N*D, 0, 1))
	ys := make([]int32, N)
	for i := range ys {
		ys[i] = int32(r.IntN(K))
	}
	Y := uploadInts(b, be, ys)
	type param struct{ w, g, m, v model.Mat }
	newParam := func(rows, cols int) param {
		return param{
			upload(b, be, rows, cols, randSlice(r, rows*cols, -0.05, 0.05)),
			upload(b, be, rows, cols, make([]float32, rows*cols)),
			upload(b, be, rows, cols, make([]float32, rows*cols)),
			upload(b, be, rows, cols, make([]float32, rows*cols)),
		}
	}
	var params []param
	in := D
	if hidden > 0 {
		params = append(params, newParam(hidden, D), newParam(1, hidden))
		in = hidden
	}
	params = append(params, newParam(K, in), newParam(1, K))
	xb := upload(b, be, B, D, make([]float32, B*D))
	yb := uploadInts(b, be, make([]int32, B))
	idx := uploadInts(b, be, make([]int32, B))
	h := upload(b, be, B, max(hidden, 1), make([]float32, B*max(hidden, 1)))
	dh := upload(b, be, B, max(hidden, 1), make([]float32, B*max(hidden, 1)))
	e := upload(b, be, B, K, make([]float32, B*K))
	stats := upload(b, be, B, model.NumStats, make([]float32, B*model.NumStats))
	am := uploadInts(b, be, make([]int32, B))
	perm := make([]int32, N)
	loss := model.DefaultLoss(model.NLL)
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	t := 0
	for b.Loop() {
		for i, p := range r.Perm(N) {
			perm[i] = int32(p)
		}
		for s := 0; s+B <= N; s += B {
			must(be.UploadInts(idx, perm[s:s+B]))
			must(be.GatherRows(xb, X, idx))
			must(be.GatherInts(yb, Y, idx))
			last := xb
			if hidden > 0 {
				must(be.Gemm(false, true, 1, xb, params[0].w, 0, h))
				must(be.AddRowVector(h, 1, params[1].w))
				must(be.Activate(model.ReLU, h))
				last = h
			}
			o := len(params) - 2
			must(be.Gemm(false, true, -1, last, params[o].w, 0, e))
			must(be.AddRowVector(e, -1, params[o+1].w))
			must(be.EnergyLoss(e, yb, loss, 1.0/B, stats, am))
			must(be.Gemm(true, false, -1, e, last, 0, params[o].g))
			must(be.ColumnSums(params[o+1].g, -1, e, 0))
			if hidden > 0 {
				must(be.Gemm(false, false, -1, e, params[o].w, 0, dh))
				must(be.ActivationGrad(model.ReLU, dh, h))
				must(be.Gemm(true, false, 1, dh, xb, 0, params[0].g))
				must(be.ColumnSums(params[1].g, 1, dh, 0))
			}
			t++
			for _, p := range params {
				must(be.AdamStep(p.w, p.g, p.m, p.v, 1e-3, 0.9, 0.999, 1e-8, 0, t))
			}
		}
	}
}
