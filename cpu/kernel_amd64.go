//go:build !purego

package cpu

import "golang.org/x/sys/cpu"

// haveKernel reports whether the AVX2+FMA micro-kernel can run here; without
// it Gemm falls back to gonum's Sgemm.
var haveKernel = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kern6x16 computes one 6x16 tile of packed A times packed B into c (row
// stride 16). See kernel_amd64.s.
//
//go:noescape
func kern6x16(kc int, a, b, c *float32)

// adamAVX2 runs the Adam update of AdamStep on n (a multiple of 8) elements;
// c holds beta1, 1-beta1, beta2, 1-beta2, 1/(1-beta2^t), eps, lr*weightDecay,
// lr/(1-beta1^t). See kernel_amd64.s.
//
//go:noescape
func adamAVX2(wp, gp, mp, vp *float32, n int, c *[8]float32)
