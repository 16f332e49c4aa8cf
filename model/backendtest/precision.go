package backendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// refRound rounds x to a binary float with bits explicit mantissa bits and
// float32's exponent range (so its subnormals have the quantum
// 2^(-126-bits)), to nearest with ties away from zero (tiesAway) or to
// even. It is written with float64 arithmetic, independently of
// model.RoundTF32 and RoundBF16 (which work on the bits): TF32 is
// refRound(x, 10, true) (cvt.rna.tf32.f32), bfloat16 refRound(x, 7, false)
// (cvt.rn.bf16.f32). Infinities and NaN pass; a result beyond float32's
// range is an infinity.
func refRound(x float32, bits int, tiesAway bool) float64 {
	v := float64(x)
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	_, e := math.Frexp(math.Abs(v)) // |v| in [2^(e-1), 2^e)
	exp := max(e-1, -126)
	q := math.Ldexp(1, exp-bits) // the spacing of the target format here
	r := v / q                   // exact: a power-of-two scaling
	if tiesAway {
		r = math.Round(r)
	} else {
		r = math.RoundToEven(r)
	}
	out := r * q
	if math.Abs(out) > math.MaxFloat32 {
		return math.Copysign(math.Inf(1), v)
	}
	return out
}

// refOperand is an operand element as precision p hands it to the product.
// TF32x3 returns x itself: the reference of 3xTF32 is the exact product,
// which its split approximates to float32 accuracy.
func refOperand(p model.Precision, x float32) float32 {
	switch p {
	case model.TF32:
		return float32(refRound(x, 10, true))
	case model.BF16:
		return float32(refRound(x, 7, false))
	}
	return x
}

// precisionGemmTol is the allowed error of a GEMM at precision p with inner
// dimension k, relative to the magnitude sum_l |op(A)_il op(B)_lj| (+ |beta
// C|) of the reference on the rounded operands. Tensor cores accumulate in
// float32 but with their own, undocumented alignment and rounding (known to
// truncate), so the bound is twice the float32 one; 3xTF32 accumulates
// three products per k, and its split drops A_lo B_lo and rounds the
// remainders (each below 2^-22 of |a b|, about 12u in all per product):
// 16u of the magnitude on top.
func precisionGemmTol(p model.Precision, k int) float64 {
	switch p {
	case model.FP32:
		return gamma(k, 3)
	case model.TF32x3:
		return 2*gamma(3*k, 3) + safety*8*u
	}
	return 2 * gamma(k, 3)
}

// withTies replaces about one element in 8 of x by a value exactly halfway
// between two neighbours of precision p's format (TF32 or BF16), chosen so
// that ties-away and ties-to-even round it differently half of the time:
// a backend rounding ties the wrong way then misses the reference.
func withTies(p model.Precision, x []float32, rng interface{ IntN(int) int }) {
	bits := 10
	if p == model.BF16 {
		bits = 7
	}
	for i := range x {
		if rng.IntN(8) != 0 || x[i] == 0 {
			continue
		}
		v := float64(x[i])
		_, e := math.Frexp(math.Abs(v))
		q := math.Ldexp(1, max(e-1, -126)-bits)
		x[i] = float32(math.Trunc(v/q)*q + math.Copysign(q/2, v))
	}
}

// precisionShapes are the (m, n, k) of the precision tests: awkward sizes,
// partial tiles of both tensor-core tiles (64 and 128), odd k.
var precisionShapes = [][3]int{
	{1, 1, 1}, {1, 7, 3}, {7, 1, 33}, {33, 31, 7}, {31, 33, 257}, {65, 63, 31}, {130, 129, 17}, {257, 7, 33}, {1000, 10, 65},
}

// TestGemmPrecision checks model.PrecisionOps.GemmPrecision (skipped on a
// backend without it) at tf32, bf16 and 3xtf32 for the four transpose
// cases: against the float64 product of the operands rounded as the
// precision says (refRound: TF32 ties away, bfloat16 ties to even, with
// inputs that include exact ties), within precisionGemmTol; beta = 0 over a
// NaN-poisoned C; A and B untouched; two calls bitwise equal. A rounding
// that ignores its precision, rounds ties the wrong way, truncates, or a
// 3xtf32 that drops a term, misses by far more than the tolerance.
func TestGemmPrecision(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	po, ok := b.(model.PrecisionOps)
	if !ok {
		t.Skipf("%s has no model.PrecisionOps (fp32 products only)", b.Name())
	}
	for _, p := range []model.Precision{model.TF32x3, model.TF32, model.BF16} {
		for _, s := range precisionShapes {
			m, n, k := s[0], s[1], s[2]
			for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
				for _, sc := range [][2]float32{{1, 0}, {-0.75, 2.5}} {
					name := fmt.Sprintf("%v/m=%d,n=%d,k=%d/transA=%v,transB=%v/alpha=%v,beta=%v", p, m, n, k, tr[0], tr[1], sc[0], sc[1])
					t.Run(name, func(t *testing.T) {
						skipIfBig(t, m >= 1000)
						testGemmPrecisionCase(t, b, po, p, tr[0], tr[1], m, n, k, sc[0], sc[1])
					})
				}
			}
		}
	}
}

func testGemmPrecisionCase(t *testing.T, b model.Backend, po model.PrecisionOps, p model.Precision, transA, transB bool, m, n, k int, alpha, beta float32) {
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
	if p != model.TF32x3 {
		withTies(p, a, h.rng)
		withTies(p, bb, h.rng)
	}
	c := h.uniform(m*n, -1, 1)
	if beta == 0 {
		c = nans(m * n)
	}
	ma, mb, mc := h.mat(ar, ac, a), h.mat(br, bc, bb), h.mat(m, n, c)
	call := func() {
		must(t, "GemmPrecision", func() error { return po.GemmPrecision(p, transA, transB, alpha, ma, mb, beta, mc) })
	}
	call()
	got := h.get(mc)
	ra, rb := make([]float32, len(a)), make([]float32, len(bb))
	for i, v := range a {
		ra[i] = refOperand(p, v)
	}
	for i, v := range bb {
		rb[i] = refOperand(p, v)
	}
	want, mag := refGemm(transA, transB, float64(alpha), ra, ar, ac, rb, br, bc, float64(beta), c, m, n)
	tol := make([]float64, len(mag))
	for i := range mag {
		tol[i] = precisionGemmTol(p, k) * mag[i]
	}
	mm := newMismatches(t, "GemmPrecision(%v, transA=%v, transB=%v, alpha=%v, A %dx%d, B %dx%d, beta=%v)", p, transA, transB, alpha, ar, ac, br, bc, beta)
	mm.check("C", got, want, tol, n)
	mm.checkBits("A (input)", h.get(ma), a, ac)
	mm.checkBits("B (input)", h.get(mb), bb, bc)
	must(t, "Upload", func() error { return b.Upload(mc, c) })
	call()
	mm.checkBits("C of a second identical call", h.get(mc), got, n)
	mm.report()
}
