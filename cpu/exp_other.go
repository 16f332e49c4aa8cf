//go:build !amd64 || purego

package cpu

// No assembly exp on this architecture (or with -tags purego): expf32 in
// Go does every element.
const haveExpKernel = false

func expAVX2(dst, src *float32, n int) { panic("cpu: expAVX2 without an assembly kernel") }

func expSumAVX2(x *float32, n int, shift, scale float32) float64 {
	panic("cpu: expSumAVX2 without an assembly kernel")
}

func expScaleAVX2(dst, src *float32, n int, shift, scale, mul float32) float64 {
	panic("cpu: expScaleAVX2 without an assembly kernel")
}
