//go:build !amd64 || purego

package cpu

// No assembly micro-kernel on this architecture (or with -tags purego):
// Gemm uses gonum's Sgemm.
const haveKernel = false

func kern6x16(kc int, a, b, c *float32) { panic("cpu: kern6x16 without an assembly kernel") }

func adamAVX2(wp, gp, mp, vp *float32, n int, c *[8]float32) {
	panic("cpu: adamAVX2 without an assembly kernel")
}
