// gputrain.cuh: shared by every kernels/*.cu file and by the CPU emulator
// (device/emu), which compiles the same sources as C++.
//
// Rules that let one source serve both (see ARCHITECTURE.md, "Kernel source
// rules"): entry points are extern "C" __global__; every parameter is a
// pointer, a long long or a double (cu copies 8 bytes per argument); shared
// memory is static, or dynamic only through GT_DYNAMIC_SHARED; reductions run
// in a fixed order so results are bitwise reproducible.
#pragma once

// GT_DYNAMIC_SHARED declares the block's dynamic shared memory. The emulator
// supplies its own definition before including this header.
#ifndef GT_DYNAMIC_SHARED
#define GT_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

// Threads per block of the elementwise kernels, and the largest block of the
// per-row reductions (the Go side launches power-of-two blocks up to this).
#define GT_THREADS 256

// GT_NONE is an "no index yet" sentinel of the min-with-index reductions; it
// loses every tie against a real index.
#define GT_NONE 0x7fffffff

// The label of a row whose loss and gradient are zero (model.IgnoreLabel).
#define GT_IGNORE (-1)

// Loss kinds, in the order of model.LossKind (model/loss.go).
enum {
    GT_LOSS_ENERGY = 0,
    GT_LOSS_PERCEPTRON = 1,
    GT_LOSS_HINGE = 2,
    GT_LOSS_LOG = 3,
    GT_LOSS_LVQ2 = 4,
    GT_LOSS_MCE = 5,
    GT_LOSS_SQUARE_SQUARE = 6,
    GT_LOSS_SQUARE_EXP = 7,
    GT_LOSS_NLL = 8,
    GT_LOSS_MEE = 9,
};

// Columns of the per-row statistics (model.StatLoss ... model.NumStats).
#define GT_STAT_LOSS 0
#define GT_STAT_LOGZ 1
#define GT_STAT_CORRECT 2
#define GT_STAT_OFFENDING 3
#define GT_NUM_STATS 4

// gt_f4 is four floats moved as one 128-bit access: CUDA's float4 under
// nvcc; a 16-byte aligned struct in the emulator, which has no vector types.
// The accessors need a 16-byte aligned address (the Go side allows vector
// paths only when the base pointer is 16-byte aligned and the row stride a
// multiple of 4 floats):
//   gt_ldg4                 global memory the kernel never writes (the
//                           read-only data path, __ldg),
//   gt_load4 / gt_store4    global memory,
//   gt_lds4 / gt_sts4       shared memory.
// Under nvcc they are __ldg and inline PTX rather than a dereferenced
// float4*: nvcc 11.8 splits such an access into four scalar ones and
// re-merges them in an order that depends on heap addresses, so the PTX,
// and the committed fatbin, would differ from build to build. The asm is
// volatile with a memory clobber so that it keeps its place among the
// kernel's other memory accesses and barriers (ptxas still schedules the
// machine code). In the emulator they copy with memcpy, which keeps g++'s
// aliasing rules.
#ifdef GT_EMU
struct alignas(16) gt_f4 {
    float x, y, z, w;
};
__device__ inline gt_f4 gt_load4(const float* p) {
    gt_f4 v;
    memcpy(&v, p, sizeof v);
    return v;
}
__device__ inline void gt_store4(float* p, const gt_f4& v) { memcpy(p, &v, sizeof v); }
__device__ inline gt_f4 gt_ldg4(const float* p) { return gt_load4(p); }
__device__ inline gt_f4 gt_lds4(const float* p) { return gt_load4(p); }
__device__ inline void gt_sts4(float* p, const gt_f4& v) { gt_store4(p, v); }
#else
typedef float4 gt_f4;
__device__ __forceinline__ gt_f4 gt_ldg4(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }
__device__ __forceinline__ gt_f4 gt_load4(const float* p) {
    gt_f4 v;
    asm volatile("ld.global.v4.f32 {%0, %1, %2, %3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
                 : "l"(p)
                 : "memory");
    return v;
}
__device__ __forceinline__ void gt_store4(float* p, const gt_f4& v) {
    asm volatile("st.global.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(p), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
                 : "memory");
}
__device__ __forceinline__ gt_f4 gt_lds4(const float* p) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    gt_f4 v;
    asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
                 : "r"(a)
                 : "memory");
    return v;
}
__device__ __forceinline__ void gt_sts4(float* p, const gt_f4& v) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("st.shared.v4.f32 [%0], {%1, %2, %3, %4};" ::"r"(a), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
                 : "memory");
}
#endif

// Grid-stride loop helpers with 64-bit indices: B*K may exceed 2^31.
__device__ inline long long gt_global_id() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ inline long long gt_global_stride() {
    return (long long)gridDim.x * blockDim.x;
}

// gt_take_min reports whether (v, i) beats the running minimum (m, mi):
// smaller value, or equal value at a lower index. Ties therefore go to the
// lowest index whatever order the candidates arrive in, which keeps argmin
// and E_I independent of the reduction tree. NaN never wins.
__device__ inline bool gt_take_min(float v, int i, float m, int mi) {
    return v < m || (v == m && i < mi);
}
