//go:build !purego

#include "textflag.h"

// The AVX2+FMA exp of exp.go, 8 float32 lanes at a time; see expf32 for
// the algorithm, the range and the special cases. Constants are 8-lane
// vectors in read-only memory, used as memory operands.


#define VEC8(name, bits) \
	DATA name<>+0(SB)/4, bits; \
	DATA name<>+4(SB)/4, bits; \
	DATA name<>+8(SB)/4, bits; \
	DATA name<>+12(SB)/4, bits; \
	DATA name<>+16(SB)/4, bits; \
	DATA name<>+20(SB)/4, bits; \
	DATA name<>+24(SB)/4, bits; \
	DATA name<>+28(SB)/4, bits; \
	GLOBL name<>(SB), RODATA|NOPTR, $32

VEC8(expMaxV, $0x42b17218)   // 88.72283935546875: above, +Inf
VEC8(expMinV, $0xc2cff1b5)   // -103.97208404541 (float32 nearest)
VEC8(expLog2eV, $0x3fb8aa3b) // log2(e)
VEC8(expNegC1V, $0xbf318000) // -0.693359375
VEC8(expNegC2V, $0x395e8083) // +2.12194440e-4
VEC8(expP0V, $0x39506967)    // 1.9875691500e-4
VEC8(expP1V, $0x3ab743ce)    // 1.3981999507e-3
VEC8(expP2V, $0x3c088908)    // 8.3334519073e-3
VEC8(expP3V, $0x3d2aa9c1)    // 4.1665795894e-2
VEC8(expP4V, $0x3e2aaaaa)    // 1.6666665459e-1
VEC8(expP5V, $0x3f000000)    // 5.0000001201e-1 (rounds to 0.5 in float32)
VEC8(expOneV, $0x3f800000)   // 1
VEC8(expBiasV, $0x0000007f)  // 127 (int32)
VEC8(expInfV, $0x7f800000)   // +Inf

// EXP8 sets Y0 = exp(Y0), using Y1-Y5.
#define EXP8 \
	VMINPS   expMaxV<>(SB), Y0, Y1; \
	VMAXPS   expMinV<>(SB), Y1, Y1; \
	VMULPS   expLog2eV<>(SB), Y1, Y2; \
	VROUNDPS $0, Y2, Y2; \
	VFMADD231PS expNegC1V<>(SB), Y2, Y1; \
	VFMADD231PS expNegC2V<>(SB), Y2, Y1; \
	VMOVUPS  expP0V<>(SB), Y3; \
	VFMADD213PS expP1V<>(SB), Y1, Y3; \
	VFMADD213PS expP2V<>(SB), Y1, Y3; \
	VFMADD213PS expP3V<>(SB), Y1, Y3; \
	VFMADD213PS expP4V<>(SB), Y1, Y3; \
	VFMADD213PS expP5V<>(SB), Y1, Y3; \
	VMULPS   Y1, Y1, Y4; \
	VFMADD213PS Y1, Y4, Y3; \
	VADDPS   expOneV<>(SB), Y3, Y3; \
	VCVTPS2DQ Y2, Y2; \
	VPSRAD   $1, Y2, Y4; \
	VPSUBD   Y4, Y2, Y2; \
	VPADDD   expBiasV<>(SB), Y4, Y4; \
	VPSLLD   $23, Y4, Y4; \
	VPADDD   expBiasV<>(SB), Y2, Y2; \
	VPSLLD   $23, Y2, Y2; \
	VMULPS   Y4, Y3, Y3; \
	VMULPS   Y2, Y3, Y3; \
	VCMPPS   $0x1e, expMaxV<>(SB), Y0, Y5; \
	VBLENDVPS Y5, expInfV<>(SB), Y3, Y3; \
	VCMPPS   $0x11, expMinV<>(SB), Y0, Y5; \
	VANDNPS  Y3, Y5, Y3; \
	VCMPPS   $3, Y0, Y0, Y5; \
	VBLENDVPS Y5, Y0, Y3, Y0

// func expAVX2(dst, src *float32, n int)
// dst[i] = exp(src[i]) for i < n, n a multiple of 8.
TEXT ·expAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   expdone
exploop:
	VMOVUPS (SI), Y0
	EXP8
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  exploop
expdone:
	VZEROUPPER
	RET

// func expSumAVX2(x *float32, n int, shift, scale float32) float64
// sum_i exp(scale*(x[i]-shift)) for i < n (a multiple of 8): the
// exponentials in float32, widened and summed in two float64 accumulators
// of 4 lanes each, folded in a fixed order at the end.
TEXT ·expSumAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS shift+16(FP), Y8
	VBROADCASTSS scale+20(FP), Y9
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	SHRQ $3, CX
	JZ   sumdone
sumloop:
	VMOVUPS (SI), Y0
	VSUBPS  Y8, Y0, Y0
	VMULPS  Y9, Y0, Y0
	EXP8
	VCVTPS2PD X0, Y1
	VEXTRACTF128 $1, Y0, X2
	VCVTPS2PD X2, Y2
	VADDPD  Y1, Y6, Y6
	VADDPD  Y2, Y7, Y7
	ADDQ $32, SI
	DECQ CX
	JNZ  sumloop
sumdone:
	VADDPD  Y7, Y6, Y6
	VEXTRACTF128 $1, Y6, X1
	VADDPD  X1, X6, X6
	VPERMILPD $1, X6, X1
	VADDSD  X1, X6, X6
	MOVSD   X6, ret+24(FP)
	VZEROUPPER
	RET

// func expScaleAVX2(dst, src *float32, n int, shift, scale, mul float32) float64
// dst[i] = mul*exp(scale*(src[i]-shift)) for i < n (a multiple of 8);
// returns the sum of the exponentials as expSumAVX2 does. dst may be src.
TEXT ·expScaleAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS shift+24(FP), Y8
	VBROADCASTSS scale+28(FP), Y9
	VBROADCASTSS mul+32(FP), Y10
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	SHRQ $3, CX
	JZ   scaledone
scaleloop:
	VMOVUPS (SI), Y0
	VSUBPS  Y8, Y0, Y0
	VMULPS  Y9, Y0, Y0
	EXP8
	VCVTPS2PD X0, Y1
	VEXTRACTF128 $1, Y0, X2
	VCVTPS2PD X2, Y2
	VADDPD  Y1, Y6, Y6
	VADDPD  Y2, Y7, Y7
	VMULPS  Y10, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  scaleloop
scaledone:
	VADDPD  Y7, Y6, Y6
	VEXTRACTF128 $1, Y6, X1
	VADDPD  X1, X6, X6
	VPERMILPD $1, X6, X1
	VADDSD  X1, X6, X6
	MOVSD   X6, ret+40(FP)
	VZEROUPPER
	RET
