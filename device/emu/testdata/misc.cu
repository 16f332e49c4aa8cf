// misc.cu: test kernels of device/emu (not part of gputrain): indexing,
// shared memory, and kernels that must fail.
#include "../../../kernels/gputrain.cuh"

// emutest_grid_stride: y[i] = 2 x[i] + 1 by a grid-stride loop.
extern "C" __global__ void emutest_grid_stride(const float* x, float* y, long long n) {
    for (long long i = gt_global_id(); i < n; i += gt_global_stride()) y[i] = 2.0f * x[i] + 1.0f;
}

// emutest_coords: every thread of a 3-D grid of 3-D blocks writes its
// coordinates and the shapes into 12 slots of out, at its global linear
// index (x fastest: thread, then block).
extern "C" __global__ void emutest_coords(long long* out) {
    const long long tpb = (long long)blockDim.x * blockDim.y * blockDim.z;
    const long long b = blockIdx.x + (long long)gridDim.x * (blockIdx.y + (long long)gridDim.y * blockIdx.z);
    const long long t = threadIdx.x + (long long)blockDim.x * (threadIdx.y + (long long)blockDim.y * threadIdx.z);
    long long* o = out + 12 * (b * tpb + t);
    o[0] = threadIdx.x; o[1] = threadIdx.y; o[2] = threadIdx.z;
    o[3] = blockIdx.x; o[4] = blockIdx.y; o[5] = blockIdx.z;
    o[6] = blockDim.x; o[7] = blockDim.y; o[8] = blockDim.z;
    o[9] = gridDim.x; o[10] = gridDim.y; o[11] = gridDim.z;
}

// emutest_grid2d: out[r*w + c] = in[r*w + c] * 10 + r - c over a w x h
// matrix covered by a 2-D grid of 2-D blocks, edges masked.
extern "C" __global__ void emutest_grid2d(const float* in, float* out, long long w, long long h) {
    const long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long r = (long long)blockIdx.y * blockDim.y + threadIdx.y;
    if (c < w && r < h) out[r * w + c] = in[r * w + c] * 10.0f + (float)(r - c);
}

// emutest_reverse_dynamic reverses each block's chunk of x through dynamic
// shared memory: floats first, then (after blockDim.x floats) an int copy
// of the thread index, to check that both views are usable. Needs
// sharedBytes >= blockDim.x * 8.
extern "C" __global__ void emutest_reverse_dynamic(const float* x, float* y, int* who, long long n) {
    GT_DYNAMIC_SHARED(float, buf);
    int* ids = (int*)(buf + blockDim.x);
    const int t = threadIdx.x;
    const long long base = (long long)blockIdx.x * blockDim.x;
    const long long i = base + t;
    buf[t] = i < n ? x[i] : -1.0f;
    ids[t] = t;
    __syncthreads();
    const int r = blockDim.x - 1 - t;
    if (i < n) {
        y[i] = buf[r];
        who[i] = ids[r];
    }
}

// emutest_early_exit: threads past n return before the barrier (which
// CUDA and the emulator allow); the rest reverse x[0..n) within the block.
extern "C" __global__ void emutest_early_exit(const float* x, float* y, long long n) {
    __shared__ float s[1024];
    const int t = threadIdx.x;
    if (t >= n) return;
    s[t] = x[t];
    __syncthreads();
    y[t] = s[n - 1 - t];
}

#define EMUTEST_TILE 32

// emutest_tiled_matmul: C = A B for n x n row-major matrices, 32 x 32
// tiles in static shared memory, block 32 x 32 (edges zero-padded).
extern "C" __global__ void emutest_tiled_matmul(const float* A, const float* B, float* C, long long n) {
    __shared__ float As[EMUTEST_TILE][EMUTEST_TILE];
    __shared__ float Bs[EMUTEST_TILE][EMUTEST_TILE + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const long long row = (long long)blockIdx.y * EMUTEST_TILE + ty;
    const long long col = (long long)blockIdx.x * EMUTEST_TILE + tx;
    float acc = 0.0f;
    for (long long k0 = 0; k0 < n; k0 += EMUTEST_TILE) {
        As[ty][tx] = (row < n && k0 + tx < n) ? A[row * n + k0 + tx] : 0.0f;
        Bs[ty][tx] = (col < n && k0 + ty < n) ? B[(k0 + ty) * n + col] : 0.0f;
        __syncthreads();
#pragma unroll
        for (int k = 0; k < EMUTEST_TILE; k++) acc += As[ty][k] * Bs[k][tx];
        __syncthreads();
    }
    if (row < n && col < n) C[row * n + col] = acc;
}

// emutest_trivial: x[i] = i for one block; the launch-rate benchmark.
extern "C" __global__ void emutest_trivial(float* x) { x[threadIdx.x] = (float)threadIdx.x; }

// emutest_math exercises the math of the contract on x, 8 outputs per
// element.
extern "C" __global__ void emutest_math(const float* x, float* y, long long n) {
    for (long long i = gt_global_id(); i < n; i += gt_global_stride()) {
        const float v = x[i];
        float* o = y + 8 * i;
        o[0] = __expf(v) + expm1f(v);
        o[1] = __logf(fabsf(v) + 1.0f) + log1pf(fabsf(v));
        o[2] = __fdividef(v, 3.0f) + sqrtf(fabsf(v));
        o[3] = fmaxf(v, 0.5f) + fminf(v, -0.5f);
        o[4] = isnan(v / 0.0f - v / 0.0f) ? 1.0f : 0.0f;
        o[5] = isinf(-INFINITY) && FLT_MAX > 3e38f ? 2.0f : 0.0f;
        o[6] = (float)min((int)i, 5) + (float)max((long long)i, 3ll);
        o[7] = __int_as_float(__float_as_int(v));
    }
}

// emutest_big_shared uses 40000 bytes of static shared memory: with 10000
// dynamic bytes more it exceeds the default 48 KiB.
#define EMUTEST_BIG 10000
extern "C" __global__ void emutest_big_shared(float* out) {
    __shared__ float big[EMUTEST_BIG];
    for (int i = threadIdx.x; i < EMUTEST_BIG; i += blockDim.x) big[i] = (float)i;
    __syncthreads();
    if (threadIdx.x == 0) out[0] = big[EMUTEST_BIG - 1];
}

// emutest_local_shared sizes its shared array with a kernel-local constant,
// which the generator cannot evaluate at file scope: its static size is
// not counted (see the generated file), but it runs.
extern "C" __global__ void emutest_local_shared(float* out) {
    constexpr int kLocal = 64;
    __shared__ float s[kLocal];
    s[threadIdx.x % kLocal] = (float)threadIdx.x;
    __syncthreads();
    if (threadIdx.x == 0) out[0] = s[kLocal - 1];
}

// ---- kernels that must make Launch fail ----------------------------------

// emutest_exit_then_shuffle: lane `who` returns, the rest of its warp
// shuffles with the full mask.
extern "C" __global__ void emutest_exit_then_shuffle(float* out, long long who) {
    if (threadIdx.x == who) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffff, (float)threadIdx.x, 1);
}

// emutest_barrier_vs_shuffle: half a warp waits at __syncthreads, the
// other half at a shuffle: a GPU hangs.
extern "C" __global__ void emutest_barrier_vs_shuffle(float* out) {
    float v = (float)threadIdx.x;
    if (threadIdx.x % 32 < 16) __syncthreads();
    else v = __shfl_xor_sync(0xffffffff, v, 1);
    out[threadIdx.x] = v;
}

// emutest_shuffle_delta shuffles down by delta within segments of width
// lanes in a block that may end in a partial warp: reading a lane past the
// block's end is an error.
extern "C" __global__ void emutest_shuffle_delta(float* out, long long delta, long long width) {
    out[threadIdx.x] = __shfl_down_sync(0xffffffff, (float)threadIdx.x, (unsigned)delta, (int)width);
}

// emutest_partial_mask uses a mask the emulator does not support.
extern "C" __global__ void emutest_partial_mask(float* out) {
    out[threadIdx.x] = __shfl_xor_sync(0x0000ffff, (float)threadIdx.x, 1);
}

// emutest_diverged_warp: even lanes shuffle, odd lanes __syncwarp.
extern "C" __global__ void emutest_diverged_warp(float* out) {
    float v = (float)threadIdx.x;
    if (threadIdx.x % 2 == 0) v = __shfl_xor_sync(0xffffffff, v, 2);
    else __syncwarp();
    out[threadIdx.x] = v;
}
