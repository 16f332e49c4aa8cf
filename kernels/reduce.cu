// reduce.cu: reductions other than the energy loss, each in a fixed order
// (per-thread strided loop, then a fixed shared-memory tree, then, for the
// two-stage column sums, a sequential merge; no atomics), so the same inputs
// give the same bits run after run.
#include "gputrain.cuh"

#define GT_CS_COLS 32 // columns per block (one warp wide: coalesced rows)
#define GT_CS_ROWS 8  // row lanes per column (GT_THREADS / GT_CS_COLS)

// gt_cs_range sums rows [lo, hi) of column j of an rows x cols src into a
// double, lane ty of GT_CS_ROWS taking rows lo+ty, lo+ty+8, ... in order,
// then the 8 lanes added as a fixed tree through sh. Returns the sum on lane
// 0 (ty == 0). A warp reads 32 consecutive floats of a row: coalesced. The
// loop is unrolled so that 4 loads are in flight before the (in-order)
// additions that use them. Every thread of the block must call it.
__device__ inline double gt_cs_range(double (*sh)[GT_CS_COLS], const float* src, long long lo, long long hi,
                                     long long cols, long long j) {
    const int tx = threadIdx.x % GT_CS_COLS, ty = threadIdx.x / GT_CS_COLS;
    double acc = 0.0;
    if (j < cols) {
#pragma unroll 4
        for (long long r = lo + ty; r < hi; r += GT_CS_ROWS) acc += src[r * cols + j];
    }
    sh[ty][tx] = acc;
    __syncthreads();
    for (int off = GT_CS_ROWS / 2; off > 0; off >>= 1) {
        if (ty < off) sh[ty][tx] += sh[ty + off][tx];
        __syncthreads();
    }
    const double sum = sh[0][tx];
    // sh is rewritten by the next call.
    __syncthreads();
    return sum;
}

// gt_column_sums: dst[j] = alpha * sum_i src[i,j] + beta * dst[j] for an
// rows x cols src (the bias gradient: column sums of dE), in one pass.
// Block GT_THREADS threads seen as 8 row lanes x 32 columns, summing in
// double (this kernel is memory bound, so double costs nothing and keeps
// long sums accurate). beta == 0 never reads dst. Grid: ceil(cols/32)
// blocks (grid-stride). Enough blocks when cols is large; for few columns
// device.Backend uses the two-stage version below.
extern "C" __global__ void gt_column_sums(float* dst, double alpha, const float* src, long long rows,
                                          long long cols, double beta) {
    __shared__ double sh[GT_CS_ROWS][GT_CS_COLS];
    for (long long c0 = (long long)blockIdx.x * GT_CS_COLS; c0 < cols; c0 += (long long)gridDim.x * GT_CS_COLS) {
        const long long j = c0 + threadIdx.x % GT_CS_COLS;
        const double sum = gt_cs_range(sh, src, 0, rows, cols, j);
        if (threadIdx.x < GT_CS_COLS && j < cols) {
            double out = alpha * sum;
            if (beta != 0.0) out += beta * (double)dst[j];
            dst[j] = (float)out;
        }
    }
}

// gt_column_sums_partial: the first stage of the two-stage column sums.
// Grid (column groups, splits): block (c, s) sums rows [s*span,
// min((s+1)*span, rows)) of its 32 columns (grid-stride over column
// groups) into part[s * cols + j], in double. No atomics: the merge adds the
// splits in a fixed order.
extern "C" __global__ void gt_column_sums_partial(double* part, const float* src, long long rows, long long cols,
                                                  long long span) {
    __shared__ double sh[GT_CS_ROWS][GT_CS_COLS];
    const long long s = blockIdx.y;
    const long long lo = s * span, hi = lo + span < rows ? lo + span : rows;
    for (long long c0 = (long long)blockIdx.x * GT_CS_COLS; c0 < cols; c0 += (long long)gridDim.x * GT_CS_COLS) {
        const long long j = c0 + threadIdx.x % GT_CS_COLS;
        const double sum = gt_cs_range(sh, src, lo, hi, cols, j);
        if (threadIdx.x < GT_CS_COLS && j < cols) part[s * cols + j] = sum;
    }
}

// gt_column_sums_merge: dst[j] = alpha * sum_s part[s*cols + j] + beta *
// dst[j], adding the splits s = 0, 1, ... in order (so the result is the
// same bits run after run). One thread per column, grid-stride; reading
// part[s*cols + j] across j is coalesced.
extern "C" __global__ void gt_column_sums_merge(float* dst, double alpha, const double* part, long long splits,
                                                long long cols, double beta) {
    for (long long j = gt_global_id(); j < cols; j += gt_global_stride()) {
        double sum = 0.0;
        for (long long s = 0; s < splits; s++) sum += part[s * cols + j];
        double out = alpha * sum;
        if (beta != 0.0) out += beta * (double)dst[j];
        dst[j] = (float)out;
    }
}

// gt_argmin_rows: out[i] = argmin_y E[i,y], ties to the lowest y; NaN never
// wins, an all-NaN row gives 0. One block per row (grid-stride), blockDim.x
// a power of two <= GT_THREADS. vec != 0: K is a multiple of 4 and E is
// 16-byte aligned, so a thread reads 4 answers per load (thread t takes
// float4 t, t+blockDim.x, ...). gt_take_min makes the result independent of
// the order candidates are met in, so the two paths agree exactly.
extern "C" __global__ void gt_argmin_rows(const float* E, long long B, long long K, int* out, long long vec) {
    __shared__ float sv[GT_THREADS];
    __shared__ int si[GT_THREADS];
    const int t = threadIdx.x;
    for (long long i = blockIdx.x; i < B; i += gridDim.x) {
        const float* row = E + i * K;
        float v = INFINITY;
        int vi = GT_NONE;
        if (vec) {
#pragma unroll 2
            for (long long q = t; q < K / 4; q += blockDim.x) {
                const gt_f4 x = gt_load4(row + 4 * q);
                const float xs[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
                for (int j = 0; j < 4; j++)
                    if (gt_take_min(xs[j], (int)(4 * q + j), v, vi)) {
                        v = xs[j];
                        vi = (int)(4 * q + j);
                    }
            }
        } else {
#pragma unroll 4
            for (long long y = t; y < K; y += blockDim.x)
                if (gt_take_min(row[y], (int)y, v, vi)) {
                    v = row[y];
                    vi = (int)y;
                }
        }
        sv[t] = v;
        si[t] = vi;
        __syncthreads();
        for (int off = blockDim.x / 2; off > 0; off >>= 1) {
            if (t < off && gt_take_min(sv[t + off], si[t + off], sv[t], si[t])) {
                sv[t] = sv[t + off];
                si[t] = si[t + off];
            }
            __syncthreads();
        }
        if (t == 0) out[i] = si[0] == GT_NONE ? 0 : si[0];
        __syncthreads();
    }
}
