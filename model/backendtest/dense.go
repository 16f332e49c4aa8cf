package backendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// shapes are the awkward matrix shapes (rows, cols) of the elementwise and
// reduction tests: 1, primes and non-multiples of 16/32/64 on both sides,
// and one tall case.
var shapes = [][2]int{{1, 1}, {1, 7}, {7, 1}, {7, 33}, {31, 33}, {33, 31}, {257, 7}, {1000, 3}}

// TestUploadDownload checks that Upload then Download returns the data
// bitwise (special values included), that two matrices do not share
// storage, and the same for Ints.
func TestUploadDownload(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	for _, s := range append(shapes, [2]int{1000, 65}) {
		t.Run(fmt.Sprintf("%dx%d", s[0], s[1]), func(t *testing.T) {
			h := newHelper(t, b)
			n := s[0] * s[1]
			x := h.uniform(n, -10, 10)
			special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
				float32(math.NaN()), math.MaxFloat32, math.SmallestNonzeroFloat32, 1e-40, -1e30}
			for i := 0; i < n && i < len(special); i++ {
				x[h.rng.IntN(n)] = special[i]
			}
			y := h.uniform(n, -1, 1)
			mx := h.mat(s[0], s[1], x)
			my := h.mat(s[0], s[1], y)
			mm := newMismatches(t, "Upload/Download %dx%d", s[0], s[1])
			mm.checkBits("x", h.get(mx), x, s[1])
			mm.checkBits("y", h.get(my), y, s[1])
			// Overwriting x must leave y alone.
			x2 := h.uniform(n, -1, 1)
			must(t, "Upload", func() error { return b.Upload(mx, x2) })
			mm.checkBits("x after re-upload", h.get(mx), x2, s[1])
			mm.checkBits("y after re-upload of x", h.get(my), y, s[1])
			mm.report()

			is := make([]int32, n)
			for i := range is {
				is[i] = int32(h.rng.Uint32())
			}
			is[0] = math.MinInt32
			is[n-1] = math.MaxInt32
			vi := h.ints(is)
			mi := newMismatches(t, "UploadInts/DownloadInts %d", n)
			mi.checkInts("ints", h.getInts(vi), is)
			mi.report()
		})
	}
}

// gemmShapes are (m, n, k): C is m x n, the inner dimension k.
var gemmShapes = [][3]int{
	{1, 1, 1}, {1, 7, 1}, {7, 1, 33}, {1, 31, 7}, {33, 31, 7}, {31, 33, 257},
	{17, 65, 129}, {64, 64, 64}, {65, 63, 31}, {257, 7, 33}, {1000, 10, 65},
}

// TestGemm checks C = alpha*op(A)*op(B) + beta*C for all four transpose
// combinations at awkward sizes: beta = 0 over a NaN-poisoned C (NaNs must
// not propagate), beta = 1 accumulating into C, and alpha, beta != 1. It
// also requires A and B untouched and two identical calls to give bitwise
// identical results.
//
// Tolerance: |C - ref| <= gamma(k, 3) * (|alpha| sum_l |op(A)_il op(B)_lj|
// + |beta C_ij|), the error bound of a k-term dot product in float32.
func TestGemm(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	type scal struct {
		name        string
		alpha, beta float32
	}
	scals := []scal{{"alpha=1,beta=0", 1, 0}, {"alpha=1,beta=1", 1, 1}, {"alpha=-0.75,beta=2.5", -0.75, 2.5}}
	for _, s := range gemmShapes {
		m, n, k := s[0], s[1], s[2]
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			for _, sc := range scals {
				name := fmt.Sprintf("m=%d,n=%d,k=%d/transA=%v,transB=%v/%s", m, n, k, tr[0], tr[1], sc.name)
				t.Run(name, func(t *testing.T) {
					skipIfBig(t, m >= 1000)
					testGemmCase(t, b, tr[0], tr[1], m, n, k, sc.alpha, sc.beta)
				})
			}
		}
	}
}

func testGemmCase(t *testing.T, b model.Backend, transA, transB bool, m, n, k int, alpha, beta float32) {
	h := newHelper(t, b)
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	a := h.uniform(ar*ac, -1, 1)
	bb := h.uniform(br*bc, -1, 1)
	c := h.uniform(m*n, -1, 1)
	if beta == 0 {
		c = nans(m * n)
	}
	ma, mb, mc := h.mat(ar, ac, a), h.mat(br, bc, bb), h.mat(m, n, c)
	gemm := func() {
		must(t, "Gemm", func() error { return b.Gemm(transA, transB, alpha, ma, mb, beta, mc) })
	}
	gemm()
	got := h.get(mc)
	want, mag := refGemm(transA, transB, float64(alpha), a, ar, ac, bb, br, bc, float64(beta), c, m, n)
	tol := make([]float64, len(mag))
	for i := range mag {
		tol[i] = gamma(k, 3) * mag[i]
	}
	mm := newMismatches(t, "Gemm(transA=%v, transB=%v, alpha=%v, A %dx%d, B %dx%d, beta=%v, C %dx%d)", transA, transB, alpha, ar, ac, br, bc, beta, m, n)
	mm.check("C", got, want, tol, n)
	mm.checkBits("A (input)", h.get(ma), a, ac)
	mm.checkBits("B (input)", h.get(mb), bb, bc)
	// Determinism: the same call on the same inputs gives the same bits.
	must(t, "Upload", func() error { return b.Upload(mc, c) })
	gemm()
	mm.checkBits("C of a second identical call", h.get(mc), got, n)
	mm.report()
}

// TestAddRowVector checks m[i,j] += alpha*v[j] for alpha 1 and -2.5.
// Tolerance: 2 float32 operations on |m| + |alpha v|.
func TestAddRowVector(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	for _, s := range shapes {
		for _, alpha := range []float32{1, -2.5} {
			t.Run(fmt.Sprintf("%dx%d/alpha=%v", s[0], s[1], alpha), func(t *testing.T) {
				h := newHelper(t, b)
				rows, cols := s[0], s[1]
				x := h.uniform(rows*cols, -3, 3)
				v := h.uniform(cols, -3, 3)
				mx, mv := h.mat(rows, cols, x), h.mat(1, cols, v)
				must(t, "AddRowVector", func() error { return b.AddRowVector(mx, alpha, mv) })
				want := make([]float64, len(x))
				tol := make([]float64, len(x))
				for i := range x {
					av := float64(alpha) * float64(v[i%cols])
					want[i] = float64(x[i]) + av
					tol[i] = gamma(0, 2) * (math.Abs(float64(x[i])) + math.Abs(av))
				}
				mm := newMismatches(t, "AddRowVector(%dx%d, alpha=%v)", rows, cols, alpha)
				mm.check("m", h.get(mx), want, tol, cols)
				mm.checkBits("v (input)", h.get(mv), v, cols)
				mm.report()
			})
		}
	}
}

// TestColumnSums checks dst = alpha*colsum(src) + beta*dst with beta = 0
// over a NaN-poisoned dst, beta = 1, and alpha = -0.5, beta = 2.
// Tolerance: gamma(rows, 3) * (|alpha| sum_i |src_ij| + |beta dst_j|).
func TestColumnSums(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	for _, s := range append(shapes, [2]int{1000, 65}) {
		for _, ab := range [][2]float32{{1, 0}, {1, 1}, {-0.5, 2}} {
			alpha, beta := ab[0], ab[1]
			t.Run(fmt.Sprintf("%dx%d/alpha=%v,beta=%v", s[0], s[1], alpha, beta), func(t *testing.T) {
				h := newHelper(t, b)
				rows, cols := s[0], s[1]
				src := h.uniform(rows*cols, -2, 2)
				dst := h.uniform(cols, -2, 2)
				if beta == 0 {
					dst = nans(cols)
				}
				ms, md := h.mat(rows, cols, src), h.mat(1, cols, dst)
				must(t, "ColumnSums", func() error { return b.ColumnSums(md, alpha, ms, beta) })
				want, mag := refColumnSums(dst, float64(alpha), src, rows, cols, float64(beta))
				tol := make([]float64, cols)
				for j := range tol {
					tol[j] = gamma(rows, 3) * mag[j]
				}
				mm := newMismatches(t, "ColumnSums(%dx%d, alpha=%v, beta=%v)", rows, cols, alpha, beta)
				mm.check("dst", h.get(md), want, tol, 0)
				mm.checkBits("src (input)", h.get(ms), src, cols)
				mm.report()
			})
		}
	}
}

// TestActivation checks Activate and ActivationGrad for ReLU (exact) and
// Tanh (within 4 ulps of the correctly rounded value: an accurate tanhf,
// not a fast approximation; the gradient 1 - y^2 within a few roundings of
// |grad|(1 + y^2)).
func TestActivation(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	for _, act := range []model.Activation{model.ReLU, model.Tanh} {
		for _, s := range shapes {
			t.Run(fmt.Sprintf("%v/%dx%d", act, s[0], s[1]), func(t *testing.T) {
				h := newHelper(t, b)
				rows, cols := s[0], s[1]
				n := rows * cols
				x := h.uniform(n, -4, 4)
				// Zeros, tiny values and saturating ones.
				for i, v := range []float32{0, float32(math.Copysign(0, -1)), 1e-20, -1e-20, 30, -30} {
					if i < n {
						x[h.rng.IntN(n)] = v
					}
				}
				mx := h.mat(rows, cols, x)
				must(t, "Activate", func() error { return b.Activate(act, mx) })
				y := h.get(mx)
				want := make([]float64, n)
				tol := make([]float64, n)
				for i := range x {
					want[i] = refActivate(act, float64(x[i]))
					if act == model.Tanh {
						tol[i] = safety * 4 * u * math.Abs(want[i])
					}
				}
				mm := newMismatches(t, "Activate(%v, %dx%d)", act, rows, cols)
				mm.check("y", y, want, tol, cols)

				// ActivationGrad from the outputs just computed (with their
				// exact zeros for ReLU) and a fresh gradient.
				g := h.uniform(n, -2, 2)
				mg := h.mat(rows, cols, g)
				must(t, "ActivationGrad", func() error { return b.ActivationGrad(act, mg, mx) })
				wantG := make([]float64, n)
				tolG := make([]float64, n)
				for i := range g {
					yi := float64(y[i])
					wantG[i] = refActivationGrad(act, float64(g[i]), yi)
					if act == model.Tanh {
						tolG[i] = safety * 4 * u * math.Abs(float64(g[i])) * (1 + yi*yi)
					}
				}
				mm.check("grad", h.get(mg), wantG, tolG, cols)
				mm.checkBits("out (input of ActivationGrad)", h.get(mx), y, cols)
				mm.report()
			})
		}
	}
}

// TestArgminRows checks the index of the smallest entry of each row, ties
// to the lowest index, with K = 1, duplicated minima, +-0, infinities and
// a row of nothing but +Inf (its answer is 0: every entry ties).
func TestArgminRows(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	for _, s := range [][2]int{{1, 1}, {7, 1}, {33, 2}, {257, 7}, {31, 33}, {7, 1000}, {3, 257}} {
		t.Run(fmt.Sprintf("B=%d/K=%d", s[0], s[1]), func(t *testing.T) {
			h := newHelper(t, b)
			rows, k := s[0], s[1]
			e := h.uniform(rows*k, -5, 5)
			inf := float32(math.Inf(1))
			for r := 0; r < rows; r++ {
				row := e[r*k : (r+1)*k]
				switch r % 5 {
				case 1: // the minimum repeated, at random places
					lo := row[0]
					for _, v := range row {
						lo = min(lo, v)
					}
					for range 3 {
						row[h.rng.IntN(k)] = lo
					}
				case 2: // every entry equal
					for j := range row {
						row[j] = 0.5
					}
				case 3: // +Inf everywhere
					for j := range row {
						row[j] = inf
					}
				case 4: // signed zeros (equal, so tied) and huge values
					for j := range row {
						switch h.rng.IntN(4) {
						case 0:
							row[j] = 0
						case 1:
							row[j] = float32(math.Copysign(0, -1))
						case 2:
							row[j] = 1e30
						default:
							row[j] = -inf
						}
					}
				}
			}
			me := h.mat(rows, k, e)
			out := h.poisonedInts(rows)
			must(t, "ArgminRows", func() error { return b.ArgminRows(me, out) })
			want := make([]int32, rows)
			e64 := to64(e)
			for r := range want {
				want[r] = int32(refArgmin(e64[r*k : (r+1)*k]))
			}
			mm := newMismatches(t, "ArgminRows(%dx%d)", rows, k)
			mm.checkInts("argmin", h.getInts(out), want)
			mm.checkBits("e (input)", h.get(me), e, k)
			mm.report()
		})
	}
}

// TestGather checks GatherRows and GatherInts with repeated indices, fewer
// and more indices than source rows, and one-row sources.
func TestGather(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	for _, s := range [][3]int{{1, 1, 1}, {1, 7, 5}, {33, 7, 1}, {33, 31, 40}, {257, 33, 31}, {7, 1, 257}, {1000, 3, 1000}} {
		srcRows, cols, n := s[0], s[1], s[2]
		t.Run(fmt.Sprintf("src=%dx%d/idx=%d", srcRows, cols, n), func(t *testing.T) {
			h := newHelper(t, b)
			src := h.uniform(srcRows*cols, -1, 1)
			idx := make([]int32, n)
			for i := range idx {
				idx[i] = int32(h.rng.IntN(srcRows))
			}
			srcInts := make([]int32, srcRows)
			for i := range srcInts {
				srcInts[i] = int32(h.rng.Uint32())
			}
			ms, mi, msi := h.mat(srcRows, cols, src), h.ints(idx), h.ints(srcInts)
			dst := h.poisoned(n, cols)
			must(t, "GatherRows", func() error { return b.GatherRows(dst, ms, mi) })
			want := make([]float32, n*cols)
			for r, i := range idx {
				copy(want[r*cols:(r+1)*cols], src[int(i)*cols:(int(i)+1)*cols])
			}
			mm := newMismatches(t, "GatherRows(src %dx%d, %d indices)", srcRows, cols, n)
			mm.checkBits("dst", h.get(dst), want, cols)
			mm.checkBits("src (input)", h.get(ms), src, cols)
			mm.report()

			dsti := h.poisonedInts(n)
			must(t, "GatherInts", func() error { return b.GatherInts(dsti, msi, mi) })
			wantI := make([]int32, n)
			for r, i := range idx {
				wantI[r] = srcInts[i]
			}
			mg := newMismatches(t, "GatherInts(src %d, %d indices)", srcRows, n)
			mg.checkInts("dst", h.getInts(dsti), wantI)
			mg.checkInts("idx (input)", h.getInts(mi), idx)
			mg.report()
		})
	}
}
