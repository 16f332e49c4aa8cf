//go:build !purego

#include "textflag.h"

// func kern6x16(kc int, a, b, c *float32)
//
// c[r*16+j] = sum_{p<kc} a[p*6+r] * b[p*16+j] for r < 6, j < 16: one 6x16
// tile of C from a packed 6-row micro-panel of A and a packed 16-column
// micro-panel of B. Twelve ymm accumulators (Y4-Y15) hold the tile; each
// step loads 16 floats of B into Y0/Y1, broadcasts the 6 floats of A and
// issues 12 independent FMAs, enough to cover the FMA latency.
TEXT ·kern6x16(SB), NOSPLIT, $0-32
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15
	TESTQ CX, CX
	JLE   store

loop:
	VMOVUPS      (DI), Y0
	VMOVUPS      32(DI), Y1
	VBROADCASTSS (SI), Y2
	VFMADD231PS  Y0, Y2, Y4
	VFMADD231PS  Y1, Y2, Y5
	VBROADCASTSS 4(SI), Y3
	VFMADD231PS  Y0, Y3, Y6
	VFMADD231PS  Y1, Y3, Y7
	VBROADCASTSS 8(SI), Y2
	VFMADD231PS  Y0, Y2, Y8
	VFMADD231PS  Y1, Y2, Y9
	VBROADCASTSS 12(SI), Y3
	VFMADD231PS  Y0, Y3, Y10
	VFMADD231PS  Y1, Y3, Y11
	VBROADCASTSS 16(SI), Y2
	VFMADD231PS  Y0, Y2, Y12
	VFMADD231PS  Y1, Y2, Y13
	VBROADCASTSS 20(SI), Y3
	VFMADD231PS  Y0, Y3, Y14
	VFMADD231PS  Y1, Y3, Y15
	ADDQ         $24, SI
	ADDQ         $64, DI
	DECQ         CX
	JNZ          loop

store:
	VMOVUPS Y4, (DX)
	VMOVUPS Y5, 32(DX)
	VMOVUPS Y6, 64(DX)
	VMOVUPS Y7, 96(DX)
	VMOVUPS Y8, 128(DX)
	VMOVUPS Y9, 160(DX)
	VMOVUPS Y10, 192(DX)
	VMOVUPS Y11, 224(DX)
	VMOVUPS Y12, 256(DX)
	VMOVUPS Y13, 288(DX)
	VMOVUPS Y14, 320(DX)
	VMOVUPS Y15, 352(DX)
	VZEROUPPER
	RET

// func adamAVX2(wp, gp, mp, vp *float32, n int, c *[8]float32)
//
// The Adam update of optim.go on 8 lanes at a time, operation for operation
// (no fused multiply-adds), so it gives the same bits as the Go loop; n is a
// multiple of 8. c holds beta1, 1-beta1, beta2, 1-beta2, 1/(1-beta2^t),
// eps, lr*weightDecay, lr/(1-beta1^t).
TEXT ·adamAVX2(SB), NOSPLIT, $0-48
	MOVQ wp+0(FP), DI
	MOVQ gp+8(FP), SI
	MOVQ mp+16(FP), R8
	MOVQ vp+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), AX
	VBROADCASTSS (AX), Y8   // beta1
	VBROADCASTSS 4(AX), Y9  // 1-beta1
	VBROADCASTSS 8(AX), Y10 // beta2
	VBROADCASTSS 12(AX), Y11 // 1-beta2
	VBROADCASTSS 16(AX), Y12 // 1/bc2
	VBROADCASTSS 20(AX), Y13 // eps
	VBROADCASTSS 24(AX), Y14 // decay
	VBROADCASTSS 28(AX), Y15 // lr/bc1
	SHRQ $3, CX
	JZ   adamdone

adamloop:
	VMOVUPS (SI), Y0        // g
	VMULPS  (R8), Y8, Y1    // beta1*m
	VMULPS  Y0, Y9, Y2      // (1-beta1)*g
	VADDPS  Y2, Y1, Y1      // m'
	VMOVUPS Y1, (R8)
	VMULPS  (R9), Y10, Y3   // beta2*v
	VMULPS  Y0, Y11, Y4     // (1-beta2)*g
	VMULPS  Y0, Y4, Y4      // (1-beta2)*g*g
	VADDPS  Y4, Y3, Y3      // v'
	VMOVUPS Y3, (R9)
	VMULPS  Y12, Y3, Y3     // v'/bc2
	VSQRTPS Y3, Y3
	VADDPS  Y13, Y3, Y3     // den
	VMULPS  Y15, Y1, Y1     // lr/bc1 * m'
	VDIVPS  Y3, Y1, Y1      // step
	VMOVUPS (DI), Y5        // w
	VMULPS  Y14, Y5, Y6     // decay*w
	VSUBPS  Y6, Y5, Y5      // w - decay*w
	VSUBPS  Y1, Y5, Y5      // - step
	VMOVUPS Y5, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, R8
	ADDQ    $32, R9
	DECQ    CX
	JNZ     adamloop

adamdone:
	VZEROUPPER
	RET
