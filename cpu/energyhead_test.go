package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// headOperands allocates a head problem on b: h (B x D) normal, w (K x D)
// normal / sqrt(D), bias normal / 4, labels uniform (every 7th ignored).
func headOperands(tb testing.TB, b *Backend, B, D, K int, seed uint64) (h, w, bias model.Mat, labels model.Ints) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	mk := func(r, c int, s float64) model.Mat {
		m, err := b.Alloc(r, c)
		if err != nil {
			tb.Fatal(err)
		}
		v := make([]float32, r*c)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * s)
		}
		if err := b.Upload(m, v); err != nil {
			tb.Fatal(err)
		}
		return m
	}
	h, w, bias = mk(B, D, 1), mk(K, D, 1/float64(D)), mk(1, K, 0.25)
	lab := make([]int32, B)
	for i := range lab {
		lab[i] = int32(rng.IntN(K))
		if i%7 == 6 {
			lab[i] = model.IgnoreLabel
		}
	}
	v, err := b.AllocInts(B)
	if err != nil {
		tb.Fatal(err)
	}
	if err := b.UploadInts(v, lab); err != nil {
		tb.Fatal(err)
	}
	return h, w, bias, v
}

// headRun calls EnergyHeadGrad and downloads everything.
func headRun(tb testing.TB, b *Backend, B, D, K int, loss model.Loss) (stats, dh, dw, db []float32, argmin []int32) {
	tb.Helper()
	h, w, bias, labels := headOperands(tb, b, B, D, K, 5)
	st, _ := b.Alloc(B, model.NumStats)
	am, _ := b.AllocInts(B)
	dhm, _ := b.Alloc(B, D)
	dwm, _ := b.Alloc(K, D)
	dbm, _ := b.Alloc(1, K)
	if err := b.EnergyHeadGrad(h, w, bias, labels, loss, 1/float32(B), st, am, dhm, dwm, dbm); err != nil {
		tb.Fatal(err)
	}
	get := func(m model.Mat) []float32 {
		x := make([]float32, m.Rows()*m.Cols())
		if err := b.Download(x, m); err != nil {
			tb.Fatal(err)
		}
		return x
	}
	argmin = make([]int32, B)
	if err := b.DownloadInts(argmin, am); err != nil {
		tb.Fatal(err)
	}
	return get(st), get(dhm), get(dwm), get(dbm), argmin
}

// TestEnergyHeadThreadCountInvariant requires bitwise the same head
// outputs with 1, 2, 3 and 8 goroutines, on a problem of several tiles
// (B*K > headTileFloats, so tiles are recomputed and dh accumulates over
// them), for a dense (NLL) and a sparse (hinge) loss.
func TestEnergyHeadThreadCountInvariant(t *testing.T) {
	B, D, K := 1031, 19, 4200 // 4.3M energies: 17 tiles of 256
	if testing.Short() {
		B, K = 130, 33000
	}
	if headTile(B, K) >= K {
		t.Fatalf("B=%d K=%d fits one tile (%d): the test would not sweep tiles", B, K, headTile(B, K))
	}
	for _, kind := range []model.LossKind{model.NLL, model.Hinge} {
		l := model.DefaultLoss(kind)
		var ref [4][]float32
		var refAm []int32
		for i, threads := range []int{1, 2, 3, 8} {
			b := NewWithThreads(threads)
			st, dh, dw, db, am := headRun(t, b, B, D, K, l)
			if i == 0 {
				ref, refAm = [4][]float32{st, dh, dw, db}, am
				continue
			}
			for j, got := range [4][]float32{st, dh, dw, db} {
				for e := range got {
					if got[e] != ref[j][e] && !(got[e] != got[e] && ref[j][e] != ref[j][e]) {
						t.Fatalf("%v, %d threads: output %d element %d = %v, with 1 thread %v", kind, threads, j, e, got[e], ref[j][e])
					}
				}
			}
			for e := range am {
				if am[e] != refAm[e] {
					t.Fatalf("%v, %d threads: argmin[%d] = %d, with 1 thread %d", kind, threads, e, am[e], refAm[e])
				}
			}
			b.Close()
		}
	}
}

// BenchmarkEnergyHead times a forward+backward of the head against the
// materializing path (Gemm, EnergyLoss, three products) at one size.
func BenchmarkEnergyHead(b *testing.B) {
	const B, D, K = 1024, 256, 16384
	be := New()
	h, w, bias, labels := headOperands(b, be, B, D, K, 1)
	st, _ := be.Alloc(B, model.NumStats)
	am, _ := be.AllocInts(B)
	dh, _ := be.Alloc(B, D)
	dw, _ := be.Alloc(K, D)
	db, _ := be.Alloc(1, K)
	l := model.DefaultLoss(model.NLL)
	b.Run("fused", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := be.EnergyHeadGrad(h, w, bias, labels, l, 1/float32(B), st, am, dh, dw, db); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("materializing", func(b *testing.B) {
		e, _ := be.Alloc(B, K)
		defer be.Free(e)
		for i := 0; i < b.N; i++ {
			be.Gemm(false, true, -1, h, w, 0, e)
			be.AddRowVector(e, -1, bias)
			be.EnergyLoss(e, labels, l, 1/float32(B), st, am)
			be.Gemm(true, false, -1, e, h, 0, dw)
			be.ColumnSums(db, -1, e, 0)
			be.Gemm(false, false, -1, e, w, 0, dh)
		}
	})
}
