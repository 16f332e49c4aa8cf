// gemm_epilogue.cuh: what the GEMM kernels of gemm.cu (SIMT, fp32 FMA) and
// gemm_tc.cu (tensor cores) share: the bits of their flags argument, the
// operand rounding of the precision modes, and the fused epilogue of a
// dense layer (bias, activation, activation derivative, bias gradient).
//
// Every GEMM kernel, SIMT or tensor-core, has the same 12 parameters:
//   (M, N, K, alpha, A, B, beta, C, flags, bias, aux, colsum)
// C = act(alpha*op(A)*op(B) + beta*C + alpha*bias) [* act'(aux)], and, with
// GT_EPI_COLSUM, colsum[m] = alpha * sum_k op(A)[m, k] (the bias gradient of
// dW = alpha dZ^T X: the column sums of dZ), written by the blocks whose
// tile starts at column 0, each summing over all of K in a fixed order.
// bias, aux and colsum are null unless their flag is set.
#pragma once

#include "gputrain.cuh"

// Operand may be loaded (C stored) 128 bits at a time: its base is 16-byte
// aligned and its row stride a multiple of 4 floats (device.Backend.vec4).
#define GT_GEMM_VEC_A 1
#define GT_GEMM_VEC_B 2
#define GT_GEMM_VEC_C 4
// SIMT kernels only: round each operand element on its way into shared
// memory, to TF32 (as cvt.rna.tf32.f32) or to bfloat16 (as cvt.rn.bf16): the
// fallback of the tf32/bf16 precisions where no tensor-core kernel serves
// (a device below sm_80, or both operands transposed). The tensor-core
// kernels convert in their fragment loads instead and ignore these bits.
#define GT_GEMM_ROUND_TF32 8
#define GT_GEMM_ROUND_BF16 16
// Epilogue: add alpha*bias[n] (bias: 1 x N), then apply ReLU or tanh.
#define GT_EPI_BIAS 32
#define GT_EPI_RELU 64
#define GT_EPI_TANH 128
// Epilogue: multiply by the derivative of ReLU or tanh taken from the
// activation's output aux (M x N, row-major like C): 1[aux > 0] or
// 1 - aux^2. This is dZ = dA * act'(A) of the layer below, fused into the
// GEMM that computes dA.
#define GT_EPI_DRELU 256
#define GT_EPI_DTANH 512
// colsum[m] = alpha * sum_k op(A)[m, k] (see the header comment).
#define GT_EPI_COLSUM 1024

// gt_round_tf32 rounds x to TF32 exactly as PTX cvt.rna.tf32.f32 does (to
// nearest, ties away from zero; infinities and NaN pass), with integer
// arithmetic so that it also compiles for compute_70, where cvt.rna.tf32
// does not exist. model.RoundTF32 is the same function in Go.
__device__ __forceinline__ float gt_round_tf32(float x) {
    const unsigned u = (unsigned)__float_as_int(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;
    return __int_as_float((int)((u + 0x1000u) & ~0x1fffu));
}

// gt_round_bf16 rounds x to bfloat16 as cvt.rn.bf16.f32 (to nearest, ties
// to even), the result in a float32 with the low 16 bits zero
// (model.RoundBF16).
__device__ __forceinline__ float gt_round_bf16(float x) {
    const unsigned u = (unsigned)__float_as_int(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;
    return __int_as_float((int)((u + 0x7fffu + ((u >> 16) & 1u)) & ~0xffffu));
}

// gt_round_operand applies the SIMT rounding bits of flags to x.
__device__ __forceinline__ float gt_round_operand(float x, long long flags) {
    if (flags & GT_GEMM_ROUND_TF32) return gt_round_tf32(x);
    if (flags & GT_GEMM_ROUND_BF16) return gt_round_bf16(x);
    return x;
}

// gt_epilogue turns one accumulated product v (row m, column n of C) into
// the value stored: alpha*v [+ beta*c] [+ alpha*bias[n]], then ReLU or the
// activation derivative. tanh is not applied here but by a second, rolled
// loop over the thread's own outputs once they are stored
// (gt_tanh_outputs): tanhf inlined at each of a thread's 64 unrolled
// outputs made the kernels several times larger, and kept out of line its
// calls made ptxas spill the live accumulators around them. The expressions are those, in
// that order, of the SIMT store (gemm.cu) followed by gt_add_row_vector and
// gt_relu/gt_tanh (or gt_relu_grad/gt_tanh_grad) of elementwise.cu, each
// result rounded to float where theirs is stored, so that in the emulator
// (no FMA contraction) a fused layer gives bitwise what the unfused calls
// give; nvcc contracts the same shapes (x + a*b) into the same FMAs there.
// cin is C's old value, read by the caller only when beta != 0.
__device__ __forceinline__ float gt_epilogue(float v, float cin, long long m, long long n, long long N, float alpha,
                                             float beta, long long flags, const float* __restrict__ bias,
                                             const float* __restrict__ aux) {
    float out = alpha * v;
    if (beta != 0.0f) out += beta * cin;
    if (flags & GT_EPI_BIAS) out += alpha * bias[n];
    if (flags & GT_EPI_RELU) {
        if (out < 0.0f) out = 0.0f;  // NaN stays NaN, as gt_relu
    }
    if (flags & GT_EPI_DRELU) {
        if (!(aux[m * N + n] > 0.0f)) out = 0.0f;  // a select, as gt_relu_grad
    } else if (flags & GT_EPI_DTANH) {
        const float y = aux[m * N + n];
        out *= 1.0f - y * y;
    }
    return out;
}

// gt_colsum_slab adds column m's part of one shared slab of op(A) (BK
// values of k, BM of m; element (m, k) at As[k * SK + m * SM]) to this
// thread's running sum: thread t owns m = t % BM and k = t / BM,
// t / BM + NT / BM, ...; entries past K and past M are zero in the slab, so
// they add nothing. Each sum runs in increasing k, in double.
template <int BM, int BK, int NT>
__device__ __forceinline__ void gt_colsum_slab(double& sum, const float* As, int SK, int SM) {
    constexpr int R = NT / BM;  // threads per column
    static_assert(R >= 1 && NT % BM == 0, "whole threads per column");
    const int m = threadIdx.x % BM;
#pragma unroll
    for (int k = threadIdx.x / BM; k < BK; k += R) sum += (double)As[k * SK + m * SM];
}

// gt_colsum_finish combines the NT / BM partial sums of each column in
// order r = 0, 1, ... through scratch (NT doubles of shared memory not in
// use any more) and writes colsum[m0 + m] = alpha * sum for the rows of
// op(A) that exist. It has barriers: every thread of the block calls it.
template <int BM, int NT>
__device__ __forceinline__ void gt_colsum_finish(double sum, double* scratch, long long m0, long long M, float alpha,
                                                 float* __restrict__ colsum) {
    constexpr int R = NT / BM;
    scratch[threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.x < BM) {
        double s = 0.0;
#pragma unroll
        for (int r = 0; r < R; r++) s += scratch[r * BM + threadIdx.x];
        if (m0 + threadIdx.x < M) colsum[m0 + threadIdx.x] = (float)((double)alpha * s);
    }
}

// gt_tanh_outputs applies tanhf in place to the n outputs of this thread
// that out(i, &m, &col) names (false: outside C), after they are stored:
// each thread reads back only what it wrote itself, so no barrier is
// needed. The loop is not unrolled: one copy of tanhf per kernel, few live
// registers.
template <typename F>
__device__ __forceinline__ void gt_tanh_outputs(float* __restrict__ C, long long N, int n, F out) {
#pragma unroll 1
    for (int i = 0; i < n; i++) {
        long long m, col;
        if (out(i, m, col)) C[m * N + col] = tanhf(C[m * N + col]);
    }
}
