// tensor.cu: test kernels of device/emu for the sm_80 instructions of
// emu_tensor.h (mma.sync, cp.async, cvt to tf32/bf16), driven by
// tensor_test.go with golden values worked out from the PTX ISA.
#include "../../../kernels/gputrain.cuh"

// emutest_mma_tf32: one mma.m16n8k8 .tf32 per warp on raw fragment
// registers: lane l of warp w takes a[(32w + l)*4 + i], b[...*2 + i] and
// c[...*4 + i] and writes its d registers to d[...*4 + i].
extern "C" __global__ void emutest_mma_tf32(const unsigned* a, const unsigned* b, const float* c, float* d) {
    const int l = threadIdx.x;
    unsigned ra[4] = {a[4 * l], a[4 * l + 1], a[4 * l + 2], a[4 * l + 3]};
    unsigned rb[2] = {b[2 * l], b[2 * l + 1]};
    float acc[4] = {c[4 * l], c[4 * l + 1], c[4 * l + 2], c[4 * l + 3]};
    gt_mma_tf32(acc, ra, rb);
    for (int i = 0; i < 4; i++) d[4 * l + i] = acc[i];
}

// emutest_mma_bf16: the same for mma.m16n8k16 .bf16.
extern "C" __global__ void emutest_mma_bf16(const unsigned* a, const unsigned* b, const float* c, float* d) {
    const int l = threadIdx.x;
    unsigned ra[4] = {a[4 * l], a[4 * l + 1], a[4 * l + 2], a[4 * l + 3]};
    unsigned rb[2] = {b[2 * l], b[2 * l + 1]};
    float acc[4] = {c[4 * l], c[4 * l + 1], c[4 * l + 2], c[4 * l + 3]};
    gt_mma_bf16(acc, ra, rb);
    for (int i = 0; i < 4; i++) d[4 * l + i] = acc[i];
}

// emutest_mma_early_exit: lane 5 returns before the warp's mma (a kernel
// bug: mma.sync needs every lane of the warp).
extern "C" __global__ void emutest_mma_early_exit(float* d) {
    if (threadIdx.x == 5) return;
    unsigned ra[4] = {0, 0, 0, 0}, rb[2] = {0, 0};
    float acc[4] = {0, 0, 0, 0};
    gt_mma_tf32(acc, ra, rb);
    d[threadIdx.x] = acc[0];
}

// emutest_cvt: tf32[i] = cvt.rna.tf32.f32(x[i]); bf16[i] =
// cvt.rn.bf16x2.f32(x[i], -x[i]) (x[i] in the high half).
extern "C" __global__ void emutest_cvt(const float* x, unsigned* tf32, unsigned* bf16, long long n) {
    for (long long i = gt_global_id(); i < n; i += gt_global_stride()) {
        tf32[i] = gt_cvt_tf32(x[i]);
        bf16[i] = gt_pack_bf16x2(-x[i], x[i]);
    }
}

// emutest_cp_async_groups: thread 0 of one block walks the group semantics
// of cp.async and writes a snapshot of its 20 shared floats (dynamic, so
// they start as 0xff poison) after each step to out[20 * step ...]:
//   issue A: src[0..4) -> s[0..4)    commit (group 0)
//   issue B: src[4..8) -> s[4..8)    commit (group 1)
//   issue C: src[8..12) -> s[8..12)  (not committed)
//   issue D: 8 of 16 bytes src[12..14) -> s[12..16) (not committed)
//   step 0: snapshot (nothing waited for)
//   wait_group 1: snapshot 1 (group 0 done)
//   wait_group 0: snapshot 2 (group 1 done; C and D are in no group)
//   commit (group 2 = C, D), wait_group 0: snapshot 3
// s[16..20) is never a destination and stays poison.
extern "C" __global__ void emutest_cp_async_groups(const float* src, float* out) {
    GT_DYNAMIC_SHARED(gt_f4, s4);
    float* s = reinterpret_cast<float*>(s4);
    if (threadIdx.x != 0) return;
    gt_cp_async16(s, src, 16);
    gt_cp_async_commit();
    gt_cp_async16(s + 4, src + 4, 16);
    gt_cp_async_commit();
    gt_cp_async16(s + 8, src + 8, 16);
    gt_cp_async16(s + 12, src + 12, 8);
    for (int i = 0; i < 20; i++) out[i] = s[i];
    gt_cp_async_wait<1>();
    for (int i = 0; i < 20; i++) out[20 + i] = s[i];
    gt_cp_async_wait<0>();
    for (int i = 0; i < 20; i++) out[40 + i] = s[i];
    gt_cp_async_commit();
    gt_cp_async_wait<0>();
    for (int i = 0; i < 20; i++) out[60 + i] = s[i];
}

// emutest_cp_async_stage: each of the block's threads copies its 4 floats
// of src into shared memory with one 16-byte cp.async (4-byte ones when
// scalar), then: wait == 1 waits for its group and, with barrier == 1,
// __syncthreads; then every thread reads the floats of thread
// (t + shift) % blockDim into out. Only wait + barrier is correct: without
// the wait even a thread's own copy has not landed, without the barrier
// another thread's may not have.
extern "C" __global__ void emutest_cp_async_stage(const float* src, float* out, long long wait, long long barrier,
                                                  long long scalar, long long shift) {
    GT_DYNAMIC_SHARED(gt_f4, s4);
    float* s = reinterpret_cast<float*>(s4);
    const int t = threadIdx.x, n = blockDim.x;
    if (scalar) {
        for (int j = 0; j < 4; j++) gt_cp_async4(s + 4 * t + j, src + 4 * t + j, 4);
    } else {
        gt_cp_async16(s + 4 * t, src + 4 * t, 16);
    }
    gt_cp_async_commit();
    if (wait) gt_cp_async_wait<0>();
    if (barrier) __syncthreads();
    const int u = (int)((t + shift) % n);
    for (int j = 0; j < 4; j++) out[4 * t + j] = s[4 * u + j];
    if (!wait) gt_cp_async_wait<0>();  // leave no copy pending
}

// emutest_cp_async_bad: one thread issues a cp.async that breaks a rule:
// kind 0: a misaligned 16-byte destination; 1: src-size 20 > cp-size 16;
// 2: a misaligned source; 3: cp-size 4 with src-size 0 and a misaligned
// source (allowed: the source is not read).
extern "C" __global__ void emutest_cp_async_bad(const float* src, long long kind) {
    GT_DYNAMIC_SHARED(gt_f4, s4);
    float* s = reinterpret_cast<float*>(s4);
    switch (kind) {
    case 0: gt_cp_async16(s + 1, src, 16); break;
    case 1: gt_cp_async16(s, src, 20); break;
    case 2: gt_cp_async16(s, src + 1, 16); break;
    default: gt_cp_async4(s, reinterpret_cast<const float*>(reinterpret_cast<const char*>(src) + 1), 0); break;
    }
    gt_cp_async_commit();
    gt_cp_async_wait<0>();
}

// emutest_cp_async_leak: thread 0 of block 0 returns with a copy pending
// (never waited for); the next block's thread 0 starts a copy of its own.
extern "C" __global__ void emutest_cp_async_leak(const float* src) {
    GT_DYNAMIC_SHARED(gt_f4, s4);
    float* s = reinterpret_cast<float*>(s4);
    if (threadIdx.x != 0) return;
    gt_cp_async16(s, src, 16);
    gt_cp_async_commit();
    if (blockIdx.x == 0) return;
    gt_cp_async_wait<0>();
}
