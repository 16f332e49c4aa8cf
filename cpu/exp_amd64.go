//go:build !purego

package cpu

// haveExpKernel reports whether the AVX2+FMA exp of exp_amd64.s can run.
var haveExpKernel = haveKernel

// expAVX2 sets dst[i] = exp(src[i]) for i < n (a multiple of 8).
//
//go:noescape
func expAVX2(dst, src *float32, n int)

// expSumAVX2 returns sum_{i<n} exp(scale*(x[i]-shift)), n a multiple of 8.
//
//go:noescape
func expSumAVX2(x *float32, n int, shift, scale float32) float64

// expScaleAVX2 sets dst[i] = mul*exp(scale*(src[i]-shift)) for i < n (a
// multiple of 8) and returns the sum of the exponentials.
//
//go:noescape
func expScaleAVX2(dst, src *float32, n int, shift, scale, mul float32) float64
