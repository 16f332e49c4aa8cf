// reduce.cu: test kernels of device/emu (not part of gputrain): block and
// warp reductions, one of them deliberately missing a barrier.
#include "../../../kernels/gputrain.cuh"

#define EMUTEST_MAX_BLOCK 1024

// The tree of emutest_block_sum: the running sums move to the top of the
// block, s[t] += s[t - stride] for the top `stride` threads, with
// blockDim.x a power of two. Each thread reads below itself, so in index
// order a missing barrier before the first step goes unnoticed; in any
// other order it shows.
__device__ void emutest_tree_to_top(float* s, int t, int n) {
    for (int stride = n / 2; stride > 0; stride /= 2) {
        if (t >= n - stride) s[t] += s[t - stride];
        __syncthreads();
    }
}

// emutest_block_sum: out[b] = sum of x[b*blockDim.x ... +blockDim.x) (zero
// past n). Correct barriers.
extern "C" __global__ void emutest_block_sum(const float* x, long long n, float* out) {
    __shared__ float s[EMUTEST_MAX_BLOCK];
    const int t = threadIdx.x;
    const long long i = (long long)blockIdx.x * blockDim.x + t;
    s[t] = i < n ? x[i] : 0.0f;
    __syncthreads();
    emutest_tree_to_top(s, t, blockDim.x);
    if (t == blockDim.x - 1) out[blockIdx.x] = s[t];
}

// emutest_block_sum_nobarrier is emutest_block_sum without the barrier
// between the loads and the tree: a bug that index order hides.
extern "C" __global__ void emutest_block_sum_nobarrier(const float* x, long long n, float* out) {
    __shared__ float s[EMUTEST_MAX_BLOCK];
    const int t = threadIdx.x;
    const long long i = (long long)blockIdx.x * blockDim.x + t;
    s[t] = i < n ? x[i] : 0.0f;
    emutest_tree_to_top(s, t, blockDim.x);
    if (t == blockDim.x - 1) out[blockIdx.x] = s[t];
}

// emutest_warp_ops exercises the four shuffles on one value per thread
// (blockDim.x a multiple of 32, n = gridDim.x * blockDim.x), within
// segments of `width` lanes:
//   down[i]  = sum over the segment by __shfl_down_sync (valid at the
//              segment's first lane; others hold partial sums);
//   xsum[i]  = sum over the segment by __shfl_xor_sync (every lane);
//   scan[i]  = inclusive prefix sum within the segment by __shfl_up_sync;
//   bcast[i] = the value of lane (i + 3) mod width of the segment.
extern "C" __global__ void emutest_warp_ops(const float* x, long long width, float* down, float* xsum,
                                            float* scan, float* bcast) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const int w = (int)width;
    const int lane = threadIdx.x % warpSize;
    const float v = x[i];

    float d = v;
    for (int off = w / 2; off > 0; off /= 2) d += __shfl_down_sync(0xffffffff, d, off, w);
    down[i] = d;

    float s = v;
    for (int m = w / 2; m > 0; m /= 2) s += __shfl_xor_sync(0xffffffff, s, m, w);
    xsum[i] = s;

    float c = v;
    for (int off = 1; off < w; off *= 2) {
        float up = __shfl_up_sync(0xffffffff, c, off, w);
        if ((lane % w) >= off) c += up;
    }
    scan[i] = c;

    bcast[i] = __shfl_sync(0xffffffff, v, (lane % w) + 3, w);
}

// emutest_warp_sum_int: the per-warp sum of 64-bit integers (8-byte
// shuffles), written by lane 0; also checks __syncwarp.
extern "C" __global__ void emutest_warp_sum_int(const long long* x, long long* out) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long v = x[i];
    __syncwarp();
    for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffff, v, off);
    if (threadIdx.x % 32 == 0) out[i / 32] = v;
}

// emutest_atomic_sum: atomicAdd of every element into *sum and a count of
// them into *count.
extern "C" __global__ void emutest_atomic_sum(const float* x, long long n, float* sum, int* count) {
    for (long long i = gt_global_id(); i < n; i += gt_global_stride()) {
        atomicAdd(sum, x[i]);
        atomicAdd(count, 1);
    }
}
