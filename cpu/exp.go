package cpu

import "math"

// A float32 exp for the energy loss and the energy head, which take one
// exponential per answer: with float64 math.Exp per element the loss was
// expf-bound (0.5 GB/s at K = 131072). The algorithm is Cephes' expf, done
// identically in Go (expf32, the fallback and the reference of the tests)
// and, 8 lanes at a time, in AVX2+FMA assembly (exp_amd64.s):
//
//	n = round(x log2(e)),  r = x - n ln2  (ln2 in two parts, so r is
//	    nearly exact),  |r| <= ln2/2
//	exp(r) ~ 1 + r + r^2 P(r), P of degree 5 (Cephes' coefficients)
//	exp(x) = exp(r) 2^n1 2^n2 with n1 = floor(n/2), n2 = n - n1
//
// Splitting 2^n into two factors keeps both normal for every n the
// argument range gives (-150..128), so results that are subnormal come out
// gradually (one correctly rounded multiplication) instead of flushed to 0.
// Special cases: x > expMax gives +Inf, x < expMin gives +0, NaN gives NaN
// (+Inf and -Inf follow from the first two).
//
// Error (TestExpAccuracy measures it over every float32 in [expMin,
// expMax] of a dense sample): at most 2 ulp where the result is normal, at
// most 1 unit of the smallest subnormal (2^-149) below that.

const (
	expMax   = 88.72283935546875 // largest float32 x with exp(x) <= MaxFloat32 (rounded): above, +Inf
	expMin   = -103.97208404541  // below, exp(x) < 2^-150 rounds to 0
	expLog2e = 1.44269504088896341
	expC1    = 0.693359375    // ln2's high part: 9 bits, so n*C1 is exact
	expC2    = -2.12194440e-4 // ln2 - C1
	expP0    = 1.9875691500e-4
	expP1    = 1.3981999507e-3
	expP2    = 8.3334519073e-3
	expP3    = 4.1665795894e-2
	expP4    = 1.6666665459e-1
	expP5    = 5.0000001201e-1
)

// expf32 is the scalar algorithm, float32 operation for float32 operation
// (the assembly fuses some multiply-adds, so the two may differ by an ulp).
func expf32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > expMax:
		return float32(math.Inf(1))
	case x < expMin:
		return 0
	}
	n := float32(math.RoundToEven(float64(x * expLog2e)))
	r := x - n*expC1
	r -= n * expC2
	p := float32(expP0)
	p = p*r + expP1
	p = p*r + expP2
	p = p*r + expP3
	p = p*r + expP4
	p = p*r + expP5
	p = p*(r*r) + r + 1
	ni := int32(n)
	n1 := ni >> 1
	n2 := ni - n1
	s1 := math.Float32frombits(uint32(n1+127) << 23)
	s2 := math.Float32frombits(uint32(n2+127) << 23)
	return p * s1 * s2
}

// expSlice sets dst[i] = exp(src[i]) (len(dst) == len(src)).
func expSlice(dst, src []float32) {
	i := 0
	if haveExpKernel && len(src) >= 8 {
		n := len(src) &^ 7
		expAVX2(&dst[0], &src[0], n)
		i = n
	}
	for ; i < len(src); i++ {
		dst[i] = expf32(src[i])
	}
}

// expSumShifted returns sum_i exp(scale*(x[i] - shift)), each exponential
// in float32 and the sum in float64. Callers pass shift <= min x and scale
// < 0 (or shift = min x, scale = -beta), so every term is in [0, 1].
func expSumShifted(x []float32, shift, scale float32) float64 {
	var s float64
	i := 0
	if haveExpKernel && len(x) >= 8 {
		n := len(x) &^ 7
		s = expSumAVX2(&x[0], n, shift, scale)
		i = n
	}
	for ; i < len(x); i++ {
		s += float64(expf32(scale * (x[i] - shift)))
	}
	return s
}

// expScaleShifted sets dst[i] = mul * exp(scale*(src[i] - shift)) and
// returns the sum of the exponentials (before mul), in float64. dst may be
// src.
func expScaleShifted(dst, src []float32, shift, scale, mul float32) float64 {
	var s float64
	i := 0
	if haveExpKernel && len(src) >= 8 {
		n := len(src) &^ 7
		s = expScaleAVX2(&dst[0], &src[0], n, shift, scale, mul)
		i = n
	}
	for ; i < len(src); i++ {
		e := expf32(scale * (src[i] - shift))
		s += float64(e)
		dst[i] = mul * e
	}
	return s
}
