package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// ---- helpers ----

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

func randSlice(r *rand.Rand, n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*r.Float64())
	}
	return x
}

func nanSlice(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	return x
}

func upload(t testing.TB, b *Backend, rows, cols int, data []float32) model.Mat {
	t.Helper()
	m, err := b.Alloc(rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(m, data); err != nil {
		t.Fatal(err)
	}
	return m
}

func uploadInts(t testing.TB, b *Backend, data []int32) model.Ints {
	t.Helper()
	v, err := b.AllocInts(len(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.UploadInts(v, data); err != nil {
		t.Fatal(err)
	}
	return v
}

func download(t testing.TB, b *Backend, m model.Mat) []float32 {
	t.Helper()
	out := make([]float32, m.Rows()*m.Cols())
	if err := b.Download(out, m); err != nil {
		t.Fatal(err)
	}
	return out
}

func downloadInts(t testing.TB, b *Backend, v model.Ints) []int32 {
	t.Helper()
	out := make([]int32, v.Len())
	if err := b.DownloadInts(out, v); err != nil {
		t.Fatal(err)
	}
	return out
}

// closeTo reports whether got matches want within tol, where NaN matches only
// NaN and infinities only themselves.
func closeTo(got float32, want, tol float64) bool {
	g := float64(got)
	switch {
	case math.IsNaN(want):
		return math.IsNaN(g)
	case math.IsInf(want, 0) || math.Abs(want) > math.MaxFloat32:
		return got == float32(want) // beyond float32: the same infinity
	}
	return math.Abs(g-want) <= tol
}

func wantErr(t *testing.T, err error, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", contains)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not contain %q", err, contains)
	}
}

// ---- Gemm ----

// refGemm is C = alpha*op(A)*op(B) + beta*C in float64, with beta == 0
// not reading C; it also returns sum |alpha*a*b| + |beta*c| per element
// for an error bound.
func refGemm(tA, tB bool, m, n, k int, alpha float64, a, b []float32, beta float64, c []float32) (out, mag []float64) {
	out = make([]float64, m*n)
	mag = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for l := 0; l < k; l++ {
				var av, bv float64
				if tA {
					av = float64(a[l*m+i])
				} else {
					av = float64(a[i*k+l])
				}
				if tB {
					bv = float64(b[j*k+l])
				} else {
					bv = float64(b[l*n+j])
				}
				s += av * bv
				sa += math.Abs(av * bv)
			}
			out[i*n+j] = alpha * s
			mag[i*n+j] = math.Abs(alpha) * sa
			if beta != 0 {
				out[i*n+j] += beta * float64(c[i*n+j])
				mag[i*n+j] += math.Abs(beta * float64(c[i*n+j]))
			}
		}
	}
	return out, mag
}

// TestGemm covers the assembly-kernel path (where the CPU has AVX2+FMA:
// edges of the 6x16 tiles, several k blocks of 256, several row blocks of
// 96, row and column splits over goroutines) and gonum's Sgemm.
func TestGemm(t *testing.T) {
	for _, useGonum := range []bool{false, true} {
		t.Run(fmt.Sprintf("gonum=%v", useGonum), func(t *testing.T) {
			if !useGonum && !haveKernel {
				t.Skip("no AVX2+FMA kernel on this CPU/build: Gemm uses gonum, tested in the other subtest")
			}
			b := New()
			defer b.Close()
			b.gonumGemm = useGonum
			testGemm(t, b)
		})
	}
}

func testGemm(t *testing.T, b *Backend) {
	r := newRand(1)
	sizes := [][3]int{{1, 1, 1}, {7, 1, 33}, {1, 31, 7}, {33, 31, 7}, {31, 33, 257}, {257, 7, 31}, {65, 130, 1},
		{128, 10, 100}, {70, 257, 65}, {7, 300, 520}, {200, 17, 600}}
	for _, sz := range sizes {
		m, n, k := sz[0], sz[1], sz[2]
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {-1.5, 0}, {0.75, 1}, {2, -0.5}} {
					alpha, beta := ab[0], ab[1]
					name := fmt.Sprintf("%dx%dx%d/tA=%v/tB=%v/alpha=%g/beta=%g", m, n, k, tA, tB, alpha, beta)
					ar, ac := m, k
					if tA {
						ar, ac = k, m
					}
					br, bc := k, n
					if tB {
						br, bc = n, k
					}
					a := randSlice(r, ar*ac, -1, 1)
					bb := randSlice(r, br*bc, -1, 1)
					var c0 []float32
					if beta == 0 {
						c0 = nanSlice(m * n) // must never be read
					} else {
						c0 = randSlice(r, m*n, -1, 1)
					}
					A, B, C := upload(t, b, ar, ac, a), upload(t, b, br, bc, bb), upload(t, b, m, n, c0)
					if err := b.Gemm(tA, tB, alpha, A, B, beta, C); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					got := download(t, b, C)
					want, mag := refGemm(tA, tB, m, n, k, float64(alpha), a, bb, float64(beta), c0)
					for i := range want {
						// Rigorous float32 bound for a length-k sum plus
						// the final scaling.
						tol := float64(k+3)*6e-8*mag[i] + 1e-30
						if !closeTo(got[i], want[i], tol) {
							t.Fatalf("%s: C[%d,%d] = %v, want %v (tol %g)", name, i/n, i%n, got[i], want[i], tol)
						}
					}
					for _, h := range []model.Mat{A, B, C} {
						if err := b.Free(h); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
	}
}

func TestGemmDegenerate(t *testing.T) {
	b := New()
	defer b.Close()
	r := newRand(2)
	// alpha == 0 and beta == 0: C becomes zero whatever C, A and B hold.
	A := upload(t, b, 5, 3, nanSlice(15))
	B := upload(t, b, 3, 4, randSlice(r, 12, -1, 1))
	C := upload(t, b, 5, 4, nanSlice(20))
	if err := b.Gemm(false, false, 0, A, B, 0, C); err != nil {
		t.Fatal(err)
	}
	for i, x := range download(t, b, C) {
		if x != 0 {
			t.Fatalf("alpha=beta=0: C[%d] = %v, want 0", i, x)
		}
	}
	// k == 0: C = beta*C.
	c0 := randSlice(r, 6, -1, 1)
	A0, B0, C0 := upload(t, b, 2, 0, nil), upload(t, b, 0, 3, nil), upload(t, b, 2, 3, c0)
	if err := b.Gemm(false, false, 1, A0, B0, 2, C0); err != nil {
		t.Fatal(err)
	}
	for i, x := range download(t, b, C0) {
		if x != 2*c0[i] {
			t.Fatalf("k=0: C[%d] = %v, want %v", i, x, 2*c0[i])
		}
	}
}

func TestGemmErrors(t *testing.T) {
	b := New()
	defer b.Close()
	A, _ := b.Alloc(3, 4)
	B, _ := b.Alloc(5, 6)
	C, _ := b.Alloc(3, 6)
	wantErr(t, b.Gemm(false, false, 1, A, B, 0, C), "3x4")
	sq, _ := b.Alloc(4, 4)
	wantErr(t, b.Gemm(false, false, 1, sq, sq, 0, sq), "same")
	B2, _ := b.Alloc(4, 6)
	C2, _ := b.Alloc(3, 5)
	wantErr(t, b.Gemm(false, false, 1, A, B2, 0, C2), "C 3x5")
}

// ---- handles ----

type fakeMat struct{}

func (fakeMat) Rows() int { return 1 }
func (fakeMat) Cols() int { return 1 }

type fakeInts struct{}

func (fakeInts) Len() int { return 1 }

func TestHandles(t *testing.T) {
	b, other := New(), New()
	defer b.Close()
	defer other.Close()
	m, _ := b.Alloc(1, 1)
	om, _ := other.Alloc(1, 1)
	v, _ := b.AllocInts(1)
	ov, _ := other.AllocInts(1)
	wantErr(t, b.Upload(om, []float32{1}), "another")
	wantErr(t, b.Upload(fakeMat{}, []float32{1}), "not a matrix")
	wantErr(t, b.Upload(nil, []float32{1}), "nil")
	wantErr(t, b.Upload(m, []float32{1, 2}), "2 elements")
	wantErr(t, b.UploadInts(ov, []int32{1}), "another")
	wantErr(t, b.UploadInts(fakeInts{}, []int32{1}), "not an int vector")
	wantErr(t, b.Free(fakeMat{}), "not a handle")
	wantErr(t, b.Free(om), "another")
	if err := b.Free(m); err != nil {
		t.Fatal(err)
	}
	wantErr(t, b.Free(m), "freed")
	wantErr(t, b.Download(make([]float32, 1), m), "freed")
	wantErr(t, b.Activate(model.ReLU, m), "freed")
	if err := b.Free(v); err != nil {
		t.Fatal(err)
	}
	wantErr(t, b.DownloadInts(make([]int32, 1), v), "freed")
	_, err := b.Alloc(-1, 3)
	wantErr(t, err, "negative")
	_, err = b.AllocInts(-1)
	wantErr(t, err, "invalid")

	live, _ := b.Alloc(2, 2)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, b.Download(make([]float32, 4), live), "closed")
	_, err = b.Alloc(1, 1)
	wantErr(t, err, "closed")
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// A handle of a closed backend is freed for the backend that is still open.
	wantErr(t, other.Upload(live, make([]float32, 4)), "another")
}

func TestUploadDownloadRoundTrip(t *testing.T) {
	b := New()
	defer b.Close()
	r := newRand(3)
	for _, sz := range [][2]int{{1, 1}, {7, 33}, {257, 31}} {
		x := randSlice(r, sz[0]*sz[1], -5, 5)
		m := upload(t, b, sz[0], sz[1], x)
		if got := download(t, b, m); !slices.Equal(got, x) {
			t.Fatalf("%v: round trip differs", sz)
		}
		ix := make([]int32, sz[0])
		for i := range ix {
			ix[i] = r.Int32()
		}
		if got := downloadInts(t, b, uploadInts(t, b, ix)); !slices.Equal(got, ix) {
			t.Fatalf("%v: int round trip differs", sz)
		}
	}
}

// ---- elementwise and row operations ----

func TestAddRowVectorColumnSums(t *testing.T) {
	b := New()
	defer b.Close()
	r := newRand(4)
	for _, sz := range [][2]int{{1, 1}, {7, 1}, {1, 31}, {33, 257}, {1000, 33}, {257, 300}} {
		rows, cols := sz[0], sz[1]
		x := randSlice(r, rows*cols, -2, 2)
		v := randSlice(r, cols, -2, 2)
		M, V := upload(t, b, rows, cols, x), upload(t, b, 1, cols, v)
		if err := b.AddRowVector(M, -0.5, V); err != nil {
			t.Fatal(err)
		}
		got := download(t, b, M)
		for i := range got {
			want := float64(x[i] + -0.5*v[i%cols])
			if !closeTo(got[i], want, 1e-6*(1+math.Abs(want))) {
				t.Fatalf("AddRowVector %v: [%d] = %v, want %v", sz, i, got[i], want)
			}
		}
		for _, beta := range []float32{0, 0.5} {
			d0 := randSlice(r, cols, -1, 1)
			if beta == 0 {
				d0 = nanSlice(cols)
			}
			D := upload(t, b, 1, cols, d0)
			if err := b.ColumnSums(D, 1.5, M, beta); err != nil {
				t.Fatal(err)
			}
			gs := download(t, b, D)
			for j := 0; j < cols; j++ {
				var s, mag float64
				for i := 0; i < rows; i++ {
					s += float64(got[i*cols+j])
					mag += math.Abs(float64(got[i*cols+j]))
				}
				want := 1.5 * s
				if beta != 0 {
					want += float64(beta) * float64(d0[j])
				}
				if !closeTo(gs[j], want, 1e-6*(1+mag)) {
					t.Fatalf("ColumnSums %v beta=%v: [%d] = %v, want %v", sz, beta, j, gs[j], want)
				}
			}
		}
	}
	M, _ := b.Alloc(3, 4)
	V, _ := b.Alloc(1, 5)
	wantErr(t, b.AddRowVector(M, 1, V), "1x5")
	wantErr(t, b.ColumnSums(V, 1, M, 0), "1x5")
}

func TestActivate(t *testing.T) {
	b := New()
	defer b.Close()
	r := newRand(5)
	for _, n := range []int{1, 7, 257, 40000} {
		x := randSlice(r, n, -3, 3)
		g := randSlice(r, n, -1, 1)
		for _, act := range []model.Activation{model.ReLU, model.Tanh} {
			M, G := upload(t, b, 1, n, x), upload(t, b, 1, n, g)
			if err := b.Activate(act, M); err != nil {
				t.Fatal(err)
			}
			if err := b.ActivationGrad(act, G, M); err != nil {
				t.Fatal(err)
			}
			y, gg := download(t, b, M), download(t, b, G)
			for i := range x {
				var wy, wg float64
				if act == model.ReLU {
					wy = math.Max(0, float64(x[i]))
					if x[i] > 0 {
						wg = float64(g[i])
					}
				} else {
					wy = math.Tanh(float64(x[i]))
					wg = float64(g[i]) * (1 - wy*wy)
				}
				if !closeTo(y[i], wy, 1e-6) || !closeTo(gg[i], wg, 1e-6) {
					t.Fatalf("%v n=%d [%d]: x=%v -> %v, grad %v; want %v, %v", act, n, i, x[i], y[i], gg[i], wy, wg)
				}
			}
		}
	}
	M, _ := b.Alloc(2, 3)
	O, _ := b.Alloc(3, 2)
	wantErr(t, b.Activate(model.Activation(9), M), "unknown activation")
	wantErr(t, b.ActivationGrad(model.ReLU, M, O), "2x3")
}

func TestArgminGather(t *testing.T) {
	b := New()
	defer b.Close()
	r := newRand(6)
	for _, sz := range [][2]int{{1, 1}, {7, 1}, {33, 7}, {257, 1000}} {
		rows, cols := sz[0], sz[1]
		x := randSlice(r, rows*cols, -1, 1)
		for i := 0; i < rows; i += 3 { // ties: a repeated minimum
			row := x[i*cols : (i+1)*cols]
			mn := slices.Min(row)
			for j := cols / 2; j < cols; j += 2 {
				row[j] = mn
			}
		}
		out := uploadInts(t, b, make([]int32, rows))
		if err := b.ArgminRows(upload(t, b, rows, cols, x), out); err != nil {
			t.Fatal(err)
		}
		got := downloadInts(t, b, out)
		for i := 0; i < rows; i++ {
			row := x[i*cols : (i+1)*cols]
			if want := slices.Index(row, slices.Min(row)); int(got[i]) != want {
				t.Fatalf("ArgminRows %v row %d: %d, want %d", sz, i, got[i], want)
			}
		}
		// Gather a shuffled selection with repeats.
		n := 1 + r.IntN(2*rows)
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(r.IntN(rows))
		}
		src := upload(t, b, rows, cols, x)
		dst := upload(t, b, n, cols, nanSlice(n*cols))
		iv := uploadInts(t, b, idx)
		if err := b.GatherRows(dst, src, iv); err != nil {
			t.Fatal(err)
		}
		gd := download(t, b, dst)
		srcInts := make([]int32, rows)
		for i := range srcInts {
			srcInts[i] = r.Int32()
		}
		di := uploadInts(t, b, make([]int32, n))
		if err := b.GatherInts(di, uploadInts(t, b, srcInts), iv); err != nil {
			t.Fatal(err)
		}
		gi := downloadInts(t, b, di)
		for rr, i := range idx {
			if !slices.Equal(gd[rr*cols:(rr+1)*cols], x[int(i)*cols:(int(i)+1)*cols]) || gi[rr] != srcInts[i] {
				t.Fatalf("Gather %v: row %d (src %d) differs", sz, rr, i)
			}
		}
	}
	src, _ := b.Alloc(3, 2)
	dst := upload(t, b, 2, 2, nanSlice(4))
	bad := uploadInts(t, b, []int32{0, 3})
	wantErr(t, b.GatherRows(dst, src, bad), "idx[1] = 3")
	for _, x := range download(t, b, dst) {
		if !math.IsNaN(float64(x)) {
			t.Fatal("GatherRows wrote before reporting a bad index")
		}
	}
	si := uploadInts(t, b, []int32{1, 2})
	wantErr(t, b.GatherInts(uploadInts(t, b, []int32{0, 0}), si, uploadInts(t, b, []int32{0, -1})), "idx[1] = -1")
}

// ---- optimizers ----

func TestOptimizers(t *testing.T) {
	b := New()
	defer b.Close()
	r := newRand(7)
	for _, n := range []int{1, 7, 33, 40001} {
		w0 := randSlice(r, n, -1, 1)
		g := randSlice(r, n, -1, 1)
		m0 := randSlice(r, n, -0.1, 0.1)
		v0 := randSlice(r, n, 0, 0.01)
		const lr, wd, mu, b1, b2, eps = 0.01, 0.1, 0.9, 0.9, 0.999, 1e-8
		check := func(what string, got []float32, want func(i int) float64) {
			t.Helper()
			for i := range got {
				w := want(i)
				if !closeTo(got[i], w, 1e-6*(1+math.Abs(w))) {
					t.Fatalf("%s n=%d [%d] = %v, want %v", what, n, i, got[i], w)
				}
			}
		}
		W, G := upload(t, b, 1, n, w0), upload(t, b, 1, n, g)
		if err := b.SGDStep(W, G, lr, wd); err != nil {
			t.Fatal(err)
		}
		check("SGD w", download(t, b, W), func(i int) float64 {
			return float64(w0[i]) - lr*wd*float64(w0[i]) - lr*float64(g[i])
		})

		W, V := upload(t, b, 1, n, w0), upload(t, b, 1, n, m0)
		if err := b.MomentumStep(W, G, V, lr, mu, wd); err != nil {
			t.Fatal(err)
		}
		vel := func(i int) float64 { return mu*float64(m0[i]) + float64(g[i]) }
		check("Momentum v", download(t, b, V), vel)
		check("Momentum w", download(t, b, W), func(i int) float64 {
			return float64(w0[i]) - lr*wd*float64(w0[i]) - lr*vel(i)
		})

		for _, step := range []int{1, 3, 1000} {
			W, M, V := upload(t, b, 1, n, w0), upload(t, b, 1, n, m0), upload(t, b, 1, n, v0)
			if err := b.AdamStep(W, G, M, V, lr, b1, b2, eps, wd, step); err != nil {
				t.Fatal(err)
			}
			mm := func(i int) float64 { return b1*float64(m0[i]) + (1-b1)*float64(g[i]) }
			vv := func(i int) float64 { return b2*float64(v0[i]) + (1-b2)*float64(g[i])*float64(g[i]) }
			check("Adam m", download(t, b, M), mm)
			check("Adam v", download(t, b, V), vv)
			check(fmt.Sprintf("Adam w t=%d", step), download(t, b, W), func(i int) float64 {
				mh := mm(i) / (1 - math.Pow(b1, float64(step)))
				vh := vv(i) / (1 - math.Pow(b2, float64(step)))
				return float64(w0[i]) - lr*wd*float64(w0[i]) - lr*mh/(math.Sqrt(vh)+eps)
			})
		}
	}
	W, _ := b.Alloc(2, 3)
	G, _ := b.Alloc(3, 2)
	M, _ := b.Alloc(2, 3)
	V, _ := b.Alloc(2, 3)
	wantErr(t, b.SGDStep(W, G, 1, 0), "g is 3x2")
	wantErr(t, b.MomentumStep(W, M, M, 1, 0.9, 0), "same")
	wantErr(t, b.AdamStep(W, M, V, W, 1, 0.9, 0.999, 1e-8, 0, 1), "same")
	G2, _ := b.Alloc(2, 3)
	wantErr(t, b.AdamStep(W, G2, M, V, 1, 0.9, 0.999, 1e-8, 0, 0), "t = 0")
}

// TestAdamKernelBits checks the claim in kernel_amd64.s: the AVX2 Adam
// update gives the same bits as the Go loop.
func TestAdamKernelBits(t *testing.T) {
	if !haveKernel {
		t.Skip("no AVX2+FMA kernel on this CPU/build")
	}
	r := newRand(14)
	const n = 1000
	w, g := randSlice(r, n, -1, 1), randSlice(r, n, -1, 1)
	m, v := randSlice(r, n, -0.1, 0.1), randSlice(r, n, 0, 0.01)
	c := [8]float32{0.9, 0.1, 0.999, 0.001, 1 / 0.002, 1e-8, 1e-4, 0.01 / 0.3}
	w2, m2, v2 := slices.Clone(w), slices.Clone(m), slices.Clone(v)
	adamAVX2(&w[0], &g[0], &m[0], &v[0], n, &c)
	adam(w2, g, m2, v2, &c)
	if !slices.Equal(w, w2) || !slices.Equal(m, m2) || !slices.Equal(v, v2) {
		t.Fatal("AVX2 and Go Adam updates differ")
	}
}
