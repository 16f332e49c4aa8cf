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

// ---- two-float accesses, tensor cores, asynchronous copies -----------------
//
// gt_f2 is two floats moved as one 64-bit access (an 8-byte aligned
// address): gt_lds2 from shared memory, gt_load2 / gt_store2 in global
// memory. Same reasons and rules as gt_f4 above.
#ifdef GT_EMU
struct alignas(8) gt_f2 {
    float x, y;
};
__device__ inline gt_f2 gt_lds2(const float* p) {
    gt_f2 v;
    memcpy(&v, p, sizeof v);
    return v;
}
__device__ inline gt_f2 gt_load2(const float* p) { return gt_lds2(p); }
__device__ inline void gt_store2(float* p, const gt_f2& v) { memcpy(p, &v, sizeof v); }
#else
typedef float2 gt_f2;
__device__ __forceinline__ gt_f2 gt_lds2(const float* p) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    gt_f2 v;
    asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(a) : "memory");
    return v;
}
__device__ __forceinline__ gt_f2 gt_load2(const float* p) {
    gt_f2 v;
    asm volatile("ld.global.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void gt_store2(float* p, const gt_f2& v) {
    asm volatile("st.global.v2.f32 [%0], {%1, %2};" ::"l"(p), "f"(v.x), "f"(v.y) : "memory");
}
#endif

// GT_HAVE_TENSOR_CORES is defined where the sm_80 instructions below exist:
// nvcc compiling for sm_80 or newer, and the emulator (device/emu/
// emu_tensor.h models them). Kernels that use them (named gt_tc_*) compile
// their bodies only then; elsewhere (the compute_70 PTX) their bodies trap,
// and device.Backend never launches them on a device below sm_80.
#if defined(GT_EMU) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
#define GT_HAVE_TENSOR_CORES 1
#endif

#ifdef GT_HAVE_TENSOR_CORES
// The PTX instructions of the tensor-core GEMMs, one wrapper each (PTX ISA
// 7.0+, sm_80+; the emulator implements each with the semantics the ISA
// documents, see device/emu/emu_tensor.h):
//
//   gt_cp_async16(dst, src, n)  cp.async.cg.shared.global [dst], [src], 16, n:
//                               copy n <= 16 bytes global -> shared
//                               asynchronously, zero-fill the rest of the 16;
//                               dst and src 16-byte aligned (src is not read
//                               when n == 0)
//   gt_cp_async4(dst, src, n)   cp.async.ca ... 4, n: the same for 4 bytes
//   gt_cp_async_commit()        cp.async.commit_group: the copies issued
//                               since the last commit form a group
//   gt_cp_async_wait<N>()       cp.async.wait_group N: wait until at most N
//                               of this thread's groups are pending; only
//                               then are its copies visible, to itself (other
//                               threads need a __syncthreads after it)
//   gt_cvt_tf32(x)              cvt.rna.tf32.f32: x rounded to TF32 (to
//                               nearest, ties away), as a .b32 operand
//   gt_pack_bf16x2(lo, hi)      cvt.rn.bf16x2.f32 d, hi, lo: two bfloat16
//                               (to nearest even), lo in the low half
//   gt_mma_tf32(d, a, b)        mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32
//                               d += A(16x8) B(8x8), warp-collective
//   gt_mma_bf16(d, a, b)        mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
//                               d += A(16x16) B(16x8), warp-collective
//
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k8" and
// "...m16n8k16 with floating point type"): lane = 4 g + t (g = groupID in
// [0, 8), t = threadID_in_group in [0, 4)).
//   m16n8k8 .tf32: a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4],
//                  a3 = A[g+8][t+4]; b0 = B[t][g], b1 = B[t+4][g]
//   m16n8k16 .bf16 (two per register, the lower k in the low half):
//                  a0 = A[g][2t..2t+1], a1 = A[g+8][2t..2t+1],
//                  a2 = A[g][2t+8..2t+9], a3 = A[g+8][2t+8..2t+9];
//                  b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
//   both, C and D: d0 = D[g][2t], d1 = D[g][2t+1], d2 = D[g+8][2t],
//                  d3 = D[g+8][2t+1]
#ifdef GT_EMU
__device__ inline void gt_cp_async16(float* dst, const float* src, int n) { ::gt_emu::cp_async(dst, src, 16, n); }
__device__ inline void gt_cp_async4(float* dst, const float* src, int n) { ::gt_emu::cp_async(dst, src, 4, n); }
__device__ inline void gt_cp_async_commit() { ::gt_emu::cp_async_commit_group(); }
template <int N>
__device__ inline void gt_cp_async_wait() {
    ::gt_emu::cp_async_wait_group(N);
}
__device__ inline unsigned gt_cvt_tf32(float x) { return ::gt_emu::cvt_rna_tf32(x); }
__device__ inline unsigned gt_pack_bf16x2(float lo, float hi) { return ::gt_emu::cvt_rn_bf16x2(hi, lo); }
__device__ inline void gt_mma_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    ::gt_emu::mma_m16n8k8_tf32(d, a, b, d);
}
__device__ inline void gt_mma_bf16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    ::gt_emu::mma_m16n8k16_bf16(d, a, b, d);
}
#else
__device__ __forceinline__ void gt_cp_async16(float* dst, const float* src, int n) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(n) : "memory");
}
__device__ __forceinline__ void gt_cp_async4(float* dst, const float* src, int n) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(d), "l"(src), "r"(n) : "memory");
}
__device__ __forceinline__ void gt_cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void gt_cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
__device__ __forceinline__ unsigned gt_cvt_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}
__device__ __forceinline__ unsigned gt_pack_bf16x2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
__device__ __forceinline__ void gt_mma_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void gt_mma_bf16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif
#endif  // GT_HAVE_TENSOR_CORES
