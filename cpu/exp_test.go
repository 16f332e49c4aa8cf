package cpu

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// expWant is exp(x) correctly rounded to float32 (float64 math.Exp is
// accurate to well under a float32 ulp), as float64 for the error.
func expWant(x float32) float64 { return math.Exp(float64(x)) }

// expErr returns the error of got against the exact e: in ulps of e's
// float32 binade where e is normal, in units of the smallest subnormal
// (2^-149) below.
func expErr(got float32, e float64) float64 {
	if math.IsInf(float64(float32(e)), 1) {
		if math.IsInf(float64(got), 1) {
			return 0
		}
		return math.Inf(1)
	}
	if e < 0x1p-126 {
		return math.Abs(float64(got)-e) / 0x1p-149
	}
	_, exp := math.Frexp(e) // e = f 2^exp, f in [0.5, 1)
	ulp := math.Ldexp(1, exp-24)
	return math.Abs(float64(got)-e) / ulp
}

// expChunks calls f with chunks (of at most 1<<20) of a dense sample of
// [expMin, expMax]: every step-th float32 bit pattern of each sign (all of
// them with step 1), then the boundaries and their neighbours. Chunks keep
// the exhaustive run (2.2e9 inputs) in a few MiB.
func expChunks(step uint32, f func(xs []float32)) {
	buf := make([]float32, 0, 1<<20)
	emit := func(x float32) {
		if x < expMin || x > expMax {
			return // the special cases of TestExpSpecial
		}
		buf = append(buf, x)
		if len(buf) == cap(buf) {
			f(buf)
			buf = buf[:0]
		}
	}
	span := func(lo, hi float32) {
		for b := uint64(math.Float32bits(lo)); b <= uint64(math.Float32bits(hi)); b += uint64(step) {
			emit(math.Float32frombits(uint32(b)))
		}
	}
	span(0, expMax)                             // +0 .. expMax
	span(float32(math.Copysign(0, -1)), expMin) // -0 .. expMin: negative bit patterns grow with the magnitude
	for _, x := range []float32{expMax, expMin, 0, 1, -1, 0x1p-149, -0x1p-149, 88.72283, -87.33654, -87.3366, -103.9720771} {
		for _, y := range []float32{x, math.Nextafter32(x, float32(math.Inf(1))), math.Nextafter32(x, float32(math.Inf(-1)))} {
			emit(y)
		}
	}
	if len(buf) > 0 {
		f(buf)
	}
}

// TestExpAccuracy bounds the error of the Go exp (expf32) and of the
// assembly one (expSlice) over a dense sample of [expMin, expMax] (every
// 61st float32; GPUTRAIN_EXP_EXHAUSTIVE=1 takes every one, about 2.2e9,
// some minutes): at most 2 ulp where exp(x) is a normal float32, at most
// one unit of 2^-149 where it is subnormal.
func TestExpAccuracy(t *testing.T) {
	step := uint32(61)
	if testing.Short() {
		step = 1009
	}
	if os.Getenv("GPUTRAIN_EXP_EXHAUSTIVE") != "" {
		step = 1
	}
	var worstGo, worstVec, worstSub float64
	var atGo, atVec float32
	n := 0
	got := make([]float32, 1<<20)
	expChunks(step, func(xs []float32) {
		got := got[:len(xs)]
		expSlice(got, xs)
		n += len(xs)
		for i, x := range xs {
			e := expWant(x)
			eg := expErr(expf32(x), e)
			ev := expErr(got[i], e)
			if e < 0x1p-126 {
				worstSub = math.Max(worstSub, math.Max(eg, ev))
				continue
			}
			if eg > worstGo {
				worstGo, atGo = eg, x
			}
			if ev > worstVec {
				worstVec, atVec = ev, x
			}
		}
	})
	t.Logf("%d inputs: worst error %.3f ulp (Go, at %v), %.3f ulp (vector, at %v), %.3f units of 2^-149 where subnormal",
		n, worstGo, atGo, worstVec, atVec, worstSub)
	if worstGo > 2 || worstVec > 2 {
		t.Errorf("exp error above 2 ulp: Go %.3f at %v, vector %.3f at %v", worstGo, atGo, worstVec, atVec)
	}
	if worstSub > 1 {
		t.Errorf("exp error above one subnormal unit where the result is subnormal: %.3f", worstSub)
	}
}

// TestExpSpecial checks the cases outside the polynomial's range, in both
// implementations and in every lane position of the vector one.
func TestExpSpecial(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	cases := []struct {
		x, want float32
	}{
		{inf, inf}, {float32(math.Inf(-1)), 0}, {expMax, inf}, {1e30, inf}, {math.MaxFloat32, inf},
		{-1e30, 0}, {-math.MaxFloat32, 0}, {expMin - 0.001, 0}, {-200, 0},
		{0, 1}, {float32(math.Copysign(0, -1)), 1}, {0x1p-149, 1}, {-0x1p-149, 1},
	}
	for _, c := range cases {
		if got := expf32(c.x); got != c.want {
			t.Errorf("expf32(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	if got := expf32(nan); got == got {
		t.Errorf("expf32(NaN) = %v, want NaN", got)
	}
	// Each special value in each lane, the other lanes ordinary.
	for _, c := range append(cases, struct{ x, want float32 }{nan, nan}) {
		for lane := 0; lane < 8; lane++ {
			src := []float32{0.5, -0.5, 1, -1, 2, -2, 3, -3, 0.25}
			src[lane] = c.x
			dst := make([]float32, len(src))
			expSlice(dst, src)
			got := dst[lane]
			if (c.want != c.want && got == got) || (c.want == c.want && got != c.want) {
				t.Errorf("lane %d: exp(%v) = %v, want %v", lane, c.x, got, c.want)
			}
			for j, x := range src {
				if j != lane && expErr(dst[j], expWant(x)) > 2 {
					t.Errorf("lane %d beside a special value: exp(%v) = %v", j, x, dst[j])
				}
			}
		}
	}
}

// TestExpSums checks the shifted sums and scaled exponentials against
// float64 at every length 0..40 (the vector body and the scalar tail) and
// a long row.
func TestExpSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range append([]int{1000, 131072}, func() []int {
		var ns []int
		for n := 0; n <= 40; n++ {
			ns = append(ns, n)
		}
		return ns
	}()...) {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.Float64()*20 - 10)
		}
		const shift, scale, mul = -10, -0.7, 0.375
		var want, wantAbs float64
		wantDst := make([]float64, n)
		for i, v := range x {
			e := math.Exp(float64(float32(scale * (v - shift))))
			want += e
			wantAbs += e
			wantDst[i] = mul * e
		}
		got := expSumShifted(x, shift, scale)
		// Each term carries the error of its argument (2 roundings of
		// values up to 7) and of exp (2 ulp); the float64 sum is exact
		// enough.
		tol := wantAbs * 0x1p-22
		if math.Abs(got-want) > tol {
			t.Errorf("n=%d: expSumShifted = %v, want %v within %v", n, got, want, tol)
		}
		dst := make([]float32, n)
		s := expScaleShifted(dst, x, shift, scale, mul)
		if math.Abs(s-want) > tol {
			t.Errorf("n=%d: expScaleShifted's sum = %v, want %v", n, s, want)
		}
		for i := range dst {
			if math.Abs(float64(dst[i])-wantDst[i]) > wantDst[i]*0x1p-21 {
				t.Errorf("n=%d: expScaleShifted[%d] = %v, want %v", n, i, dst[i], wantDst[i])
				break
			}
		}
		// In place.
		cp := append([]float32(nil), x...)
		expScaleShifted(cp, cp, shift, scale, mul)
		for i := range cp {
			if cp[i] != dst[i] {
				t.Errorf("n=%d: expScaleShifted in place differs at %d", n, i)
				break
			}
		}
	}
}

func BenchmarkExp(b *testing.B) {
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(i%200) * -0.05
	}
	dst := make([]float32, len(x))
	b.Run("vector", func(b *testing.B) {
		b.SetBytes(4 * int64(len(x)))
		for i := 0; i < b.N; i++ {
			expSlice(dst, x)
		}
	})
	b.Run("sum", func(b *testing.B) {
		b.SetBytes(4 * int64(len(x)))
		for i := 0; i < b.N; i++ {
			_ = expSumShifted(x, 0, 1)
		}
	})
	b.Run("go", func(b *testing.B) {
		b.SetBytes(4 * int64(len(x)))
		for i := 0; i < b.N; i++ {
			for j, v := range x {
				dst[j] = expf32(v)
			}
		}
	})
	b.Run("math.Exp", func(b *testing.B) {
		b.SetBytes(4 * int64(len(x)))
		for i := 0; i < b.N; i++ {
			for j, v := range x {
				dst[j] = float32(math.Exp(float64(v)))
			}
		}
	})
}
