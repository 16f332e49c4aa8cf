package backendcheck

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// The checks see operands only through the Mat and Ints interfaces, so
// plain host stand-ins serve as handles here.
type testMat struct{ r, c int }

func (m *testMat) Rows() int { return m.r }
func (m *testMat) Cols() int { return m.c }

type testInts struct{ n int }

func (v *testInts) Len() int { return v.n }

// sliceMat is a handle type Go cannot compare with ==: the aliasing checks
// must treat it as never aliased rather than panic.
type sliceMat []float32

func (m sliceMat) Rows() int { return 1 }
func (m sliceMat) Cols() int { return len(m) }

func mat(r, c int) *testMat { return &testMat{r, c} }
func ivec(n int) *testInts  { return &testInts{n} }

// wantErr fails unless err is nil when want is "", or contains want.
func wantErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: unexpected error %v", what, err)
	case want != "" && err == nil:
		t.Errorf("%s: no error, want one containing %q", what, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("%s: error %q does not contain %q", what, err, want)
	}
}

func TestShape(t *testing.T) {
	if got := Shape(mat(7, 33)); got != "7x33" {
		t.Errorf("Shape(7x33) = %q", got)
	}
}

func TestCheckAllocDims(t *testing.T) {
	for _, tc := range []struct {
		rows, cols int
		want       string
	}{
		{0, 0, ""}, {1, 0, ""}, {0, 1000, ""}, {257, 31, ""}, {MaxElems, 1, ""}, {1, MaxElems, ""},
		{-1, 3, "negative dimension"}, {3, -1, "negative dimension"},
		{MaxElems + 1, 1, "too large"}, {math.MaxInt / 2, 3, "too large"}, {MaxElems/2 + 1, 2, "too large"},
	} {
		wantErr(t, "AllocDims", AllocDims(tc.rows, tc.cols), tc.want)
	}
}

func TestCheckAllocLen(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{{0, ""}, {1, ""}, {1000, ""}, {MaxElems, ""}, {-1, "invalid length"}, {MaxElems + 1, "invalid length"}} {
		wantErr(t, "AllocLen", AllocLen(tc.n), tc.want)
	}
}

func TestCheckLens(t *testing.T) {
	wantErr(t, "MatLen good", MatLen("src", 7*31, "dst", mat(7, 31)), "")
	wantErr(t, "MatLen empty", MatLen("src", 0, "dst", mat(0, 33)), "")
	wantErr(t, "MatLen bad", MatLen("src", 2, "dst", mat(7, 31)), "src has 2 elements, dst is 7x31 (217)")
	wantErr(t, "IntsLen good", IntsLen("dst", 257, "src", ivec(257)), "")
	wantErr(t, "IntsLen bad", IntsLen("dst", 256, "src", ivec(257)), "dst has 256 elements, src has 257")
}

func TestSameHandle(t *testing.T) {
	a, b := mat(2, 3), mat(2, 3)
	if !sameHandle(a, a) || sameHandle(a, b) {
		t.Errorf("sameHandle: a, a = %v and a, b = %v; want true, false", sameHandle(a, a), sameHandle(a, b))
	}
	s := sliceMat{1, 2}
	if sameHandle(s, s) {
		t.Error("sameHandle of an incomparable handle type: true, want false (and no panic)")
	}
	if sameHandle(nil, nil) || sameHandle(a, nil) {
		t.Error("sameHandle with nil: true, want false")
	}
}

func TestCheckDistinct(t *testing.T) {
	a, b, c := mat(3, 4), mat(3, 4), mat(1, 4)
	wantErr(t, "none", Distinct(), "")
	wantErr(t, "one", Distinct(a), "")
	wantErr(t, "three distinct", Distinct(a, b, c), "")
	wantErr(t, "first and last", Distinct(a, b, a), "the same 3x4 matrix is passed as two operands that must be distinct")
	wantErr(t, "last two", Distinct(a, c, c), "the same 1x4 matrix")
	s := sliceMat{1}
	wantErr(t, "incomparable", Distinct(s, s), "")
}

func TestCheckSameShape(t *testing.T) {
	w, g, m, v := mat(7, 33), mat(7, 33), mat(7, 33), mat(7, 33)
	names := []string{"w", "g", "m", "v"}
	wantErr(t, "good", SameShape(names, w, g, m, v), "")
	wantErr(t, "rows", SameShape(names, w, g, mat(8, 33), v), "m is 8x33 but w is 7x33")
	wantErr(t, "cols", SameShape(names, w, g, m, mat(7, 32)), "v is 7x32 but w is 7x33")
	wantErr(t, "transposed", SameShape([]string{"out", "grad"}, w, mat(33, 7)), "grad is 33x7 but out is 7x33")
	wantErr(t, "names", SameShape(names[:2], w, g, m), "2 names for 3 matrices")
}

func TestCheckRowVector(t *testing.T) {
	wantErr(t, "good", RowVector("v", mat(1, 31), "m", mat(257, 31)), "")
	wantErr(t, "empty m", RowVector("v", mat(1, 31), "m", mat(0, 31)), "")
	wantErr(t, "rows", RowVector("v", mat(2, 31), "m", mat(257, 31)), "v is 2x31, want 1x31 to match m 257x31")
	wantErr(t, "cols", RowVector("dst", mat(1, 30), "src", mat(7, 31)), "dst is 1x30, want 1x31 to match src 7x31")
}

func TestGemmDims(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 7, 31, 33, 257, 1000}
	pick := func() int { return sizes[rng.IntN(len(sizes))] }
	op := func(rows, cols int, trans bool) *testMat {
		if trans {
			return mat(cols, rows)
		}
		return mat(rows, cols)
	}
	for range 200 {
		m, n, k := pick(), pick(), pick()
		tA, tB := rng.IntN(2) == 1, rng.IntN(2) == 1
		a, b, c := op(m, k, tA), op(k, n, tB), mat(m, n)
		gm, gn, gk, err := GemmDims(tA, tB, a, b, c)
		if err != nil || gm != m || gn != n || gk != k {
			t.Fatalf("GemmDims(%v, %v, %s, %s, %s) = %d, %d, %d, %v; want %d, %d, %d, nil",
				tA, tB, Shape(a), Shape(b), Shape(c), gm, gn, gk, err, m, n, k)
		}
		// One dimension off by one anywhere is an error.
		for i, bad := range [][3]*testMat{
			{op(m, k+1, tA), b, c}, {a, op(k+1, n, tB), c}, {a, b, mat(m+1, n)}, {a, b, mat(m, n+1)},
		} {
			if _, _, _, err := GemmDims(tA, tB, bad[0], bad[1], bad[2]); err == nil || !strings.Contains(err.Error(), "shapes do not match") {
				t.Fatalf("GemmDims case %d with m=%d n=%d k=%d: error %v, want a shape mismatch", i, m, n, k, err)
			}
		}
	}
	sq := mat(33, 33)
	_, _, _, err := GemmDims(false, false, sq, mat(33, 33), sq)
	wantErr(t, "C is A", err, "C (33x33) must not be the same matrix as A or B")
	_, _, _, err = GemmDims(false, true, mat(33, 33), sq, sq)
	wantErr(t, "C is B", err, "must not be the same matrix as A or B")
	_, _, _, err = GemmDims(true, false, mat(7, 31), mat(33, 1), mat(31, 1))
	wantErr(t, "message", err, "op(A) 31x7 (A 7x31, transA=true) * op(B) 33x1 (B 33x1, transB=false) -> C 31x1")
}

func TestCheckArgminShapes(t *testing.T) {
	wantErr(t, "good", ArgminShapes(mat(257, 10), ivec(257)), "")
	wantErr(t, "empty", ArgminShapes(mat(0, 0), ivec(0)), "")
	wantErr(t, "length", ArgminShapes(mat(257, 10), ivec(256)), "out has length 256, want 257 (the rows of e 257x10)")
	wantErr(t, "no columns", ArgminShapes(mat(7, 0), ivec(7)), "e 7x0 has no columns")
}

func TestCheckEnergyLossShapes(t *testing.T) {
	e, l, s, a := mat(31, 10), ivec(31), mat(31, model.NumStats), ivec(31)
	wantErr(t, "good", EnergyLossShapes(e, l, s, a), "")
	wantErr(t, "empty", EnergyLossShapes(mat(0, 0), ivec(0), mat(0, model.NumStats), ivec(0)), "")
	wantErr(t, "K = 0", EnergyLossShapes(mat(31, 0), l, s, a), "energies 31x0 have no answers (K = 0)")
	wantErr(t, "labels", EnergyLossShapes(e, ivec(30), s, a), "labels have length 30, want 31 (the rows of e 31x10)")
	wantErr(t, "stats rows", EnergyLossShapes(e, l, mat(30, model.NumStats), a), "stats is 30x4, want 31x4")
	wantErr(t, "stats cols", EnergyLossShapes(e, l, mat(31, model.NumStats+1), a), "stats is 31x5, want 31x4")
	wantErr(t, "argmin", EnergyLossShapes(e, l, s, ivec(5)), "argmin has length 5, want 31")
	wantErr(t, "labels is argmin", EnergyLossShapes(e, l, s, l), "labels and argmin must be different vectors")
	sq := mat(7, model.NumStats)
	wantErr(t, "e is stats", EnergyLossShapes(sq, ivec(7), sq, ivec(7)), "the same 7x4 matrix")
}

func TestCheckGatherShapes(t *testing.T) {
	src, idx := mat(1000, 33), ivec(257)
	wantErr(t, "rows good", GatherRowsShapes(mat(257, 33), src, idx), "")
	wantErr(t, "rows count", GatherRowsShapes(mat(256, 33), src, idx), "dst is 256x33, want 257x33 (len(idx) x the columns of src 1000x33)")
	wantErr(t, "rows cols", GatherRowsShapes(mat(257, 32), src, idx), "dst is 257x32, want 257x33")
	sq := mat(7, 7)
	wantErr(t, "rows alias", GatherRowsShapes(sq, sq, ivec(7)), "the same 7x7 matrix")

	s, i := ivec(1000), ivec(257)
	wantErr(t, "ints good", GatherIntsShapes(ivec(257), s, i), "")
	wantErr(t, "ints length", GatherIntsShapes(ivec(256), s, i), "dst has length 256, idx has 257")
	wantErr(t, "ints dst is src", GatherIntsShapes(i, i, ivec(257)), "dst must not be the same vector as src or idx")
	wantErr(t, "ints dst is idx", GatherIntsShapes(i, s, i), "dst must not be the same vector as src or idx")
}

func TestFirstBadIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 7, 33, 1000} {
		hi := 1 + rng.IntN(50)
		xs := make([]int32, n)
		for i := range xs {
			xs[i] = int32(rng.IntN(hi))
		}
		if pos, found := FirstBadIndex(xs, hi, false); found {
			t.Fatalf("n=%d: found %d at %d, all in [0, %d)", n, xs[pos], pos, hi)
		}
		if n == 0 {
			continue
		}
		// Two offenders (one when p == q): the first is reported;
		// model.IgnoreLabel is one unless allowed.
		p, q := rng.IntN(n), rng.IntN(n)
		p, q = min(p, q), max(p, q)
		for _, bad := range []int32{model.IgnoreLabel, -2, int32(hi), math.MaxInt32} {
			ys := append([]int32(nil), xs...)
			ys[q], ys[p] = int32(hi)+5, bad
			pos, found := FirstBadIndex(ys, hi, false)
			if !found || pos != p {
				t.Fatalf("n=%d bad=%d at %d: got %d, %v", n, bad, p, pos, found)
			}
			pos, found = FirstBadIndex(ys, hi, true)
			want, wantFound := p, true
			if bad == model.IgnoreLabel {
				// The next offender, if p did not overwrite it (n == 1).
				want, wantFound = q, q != p
			}
			if found != wantFound || (found && pos != want) {
				t.Fatalf("n=%d bad=%d allowIgnore: got %d, %v; want %d", n, bad, pos, found, want)
			}
		}
	}
}

func TestIndexErrors(t *testing.T) {
	wantErr(t, "row", RowIndexError(3, 1000, mat(1000, 33)), "idx[3] = 1000 is outside [0, 1000) (the rows of src 1000x33)")
	wantErr(t, "int", IntIndexError(0, -1, 7), "idx[0] = -1 is outside [0, 7) (the length of src)")
	wantErr(t, "label", LabelError(5, 10, 10), "label 10 of row 5 is outside [0, 10) and is not model.IgnoreLabel (-1)")
}

func TestCheckAdamParams(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		b1, b2, eps float32
		t           int
		want        string
	}{
		{0.9, 0.999, 1e-8, 1, ""}, {0, 0, 0, 1000, ""},
		{0.9, 0.999, 1e-8, 0, "step t = 0, want t >= 1"},
		{1, 0.999, 1e-8, 1, "beta1 = 1 and beta2 = 0.999 must be in [0, 1)"},
		{0.9, -0.1, 1e-8, 1, "must be in [0, 1)"},
		{nan, 0.999, 1e-8, 1, "must be in [0, 1)"},
		{0.9, 0.999, -1, 1, "eps = -1, want eps >= 0"},
		{0.9, 0.999, nan, 1, "want eps >= 0"},
	} {
		wantErr(t, "AdamParams", AdamParams(tc.b1, tc.b2, tc.eps, tc.t), tc.want)
	}
}
