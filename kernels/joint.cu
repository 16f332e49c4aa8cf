// joint.cu: the joint-model operations (model.JointOps): energies over a
// product space of n variables built from unary energies S and pairwise
// tables P, and their gradients reduced onto S and P, without indicator
// matrices. Every sum is in double and in a fixed order (per-thread strided
// loop, then a fixed shared-memory tree; no atomics), so the same inputs give
// the same bits run after run.
//
// vt is the variable table the Go side uploads (device/joint.go), 3 ints per
// variable i: K_i (values), stride_i = K_{i+1} * ... * K_{n-1} (so the digit
// of variable i in joint index y is (y / stride_i) % K_i, the last variable
// fastest) and off_i (its first column in S). The pairwise tables follow
// each other for the pairs i < j in lexicographic order, each K_i x K_j
// row-major, so their offsets are a running sum.
#include "gputrain.cuh"

__device__ inline long long gt_joint_digit(const int* vt, long long i, long long y) {
    return (y / vt[3 * i + 1]) % vt[3 * i];
}

// gt_joint_pair_table: q[y] = sum_{i<j} P[poff_ij + y_i*K_j + y_j] in
// double, pairs in lexicographic order: the pairwise energy of every joint
// answer, shared by all rows. Grid-stride over the J answers.
extern "C" __global__ void gt_joint_pair_table(double* q, const float* P, const int* vt, long long n, long long J) {
    for (long long y = gt_global_id(); y < J; y += gt_global_stride()) {
        double acc = 0.0;
        long long poff = 0;
        for (long long i = 0; i < n; i++) {
            const long long a = gt_joint_digit(vt, i, y);
            for (long long j = i + 1; j < n; j++) {
                const long long kj = vt[3 * j];
                acc += (double)P[poff + a * kj + gt_joint_digit(vt, j, y)];
                poff += (long long)vt[3 * i] * kj;
            }
        }
        q[y] = acc;
    }
}

// gt_joint_energies: E[b,y] = sum_i S[b, off_i + y_i] + q[y] (q null: no
// pairwise term), the unary terms in variable order, in double. One thread
// per (b, y), grid-stride over B*J with 64-bit indices; consecutive threads
// write consecutive answers of a row (coalesced stores, q reads coalesced,
// S rows are small and cached).
extern "C" __global__ void gt_joint_energies(float* E, const float* S, const double* q, const int* vt, long long n,
                                             long long B, long long J, long long sumK) {
    const long long total = B * J;
    for (long long idx = gt_global_id(); idx < total; idx += gt_global_stride()) {
        const long long b = idx / J, y = idx % J;
        const float* srow = S + b * sumK;
        double acc = 0.0;
        for (long long i = 0; i < n; i++) acc += (double)srow[vt[3 * i + 2] + gt_joint_digit(vt, i, y)];
        if (q != nullptr) acc += q[y];
        E[idx] = (float)acc;
    }
}

// gt_joint_block_sum adds the blockDim.x (a power of two) values of sh as a
// fixed tree and returns the sum to every thread. Every thread of the block
// must call it; sh may be rewritten right after it returns.
__device__ inline double gt_joint_block_sum(double* sh, double v) {
    const int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int off = blockDim.x / 2; off > 0; off >>= 1) {
        if (t < off) sh[t] += sh[t + off];
        __syncthreads();
    }
    const double sum = sh[0];
    __syncthreads();
    return sum;
}

// gt_joint_unary_grad: dS[b, off_i + v] = sum_{y : y_i = v} dE[b,y]. One
// block per output (b, column c), grid-stride over the B*sumK outputs;
// blockDim.x a power of two <= GT_THREADS. The J/K_i answers with y_i = v
// are y = (h*K_i + v)*stride_i + l for l < stride_i, h < J/(K_i*stride_i),
// numbered m = h*stride_i + l; thread t takes m = t, t+blockDim.x, ... in
// order, then the block adds the threads' sums as a fixed tree.
extern "C" __global__ void gt_joint_unary_grad(float* dS, const float* dE, const int* vt, long long n, long long B,
                                               long long J, long long sumK) {
    __shared__ double sh[GT_THREADS];
    const long long outs = B * sumK;
    for (long long o = blockIdx.x; o < outs; o += gridDim.x) {
        const long long b = o / sumK, c = o % sumK;
        long long i = n - 1;
        while (i > 0 && vt[3 * i + 2] > c) i--;
        const long long k = vt[3 * i], stride = vt[3 * i + 1], v = c - vt[3 * i + 2];
        const long long count = J / k;
        const float* row = dE + b * J;
        double acc = 0.0;
        for (long long m = threadIdx.x; m < count; m += blockDim.x) {
            const long long h = m / stride, l = m % stride;
            acc += (double)row[(h * k + v) * stride + l];
        }
        const double sum = gt_joint_block_sum(sh, acc);
        if (threadIdx.x == 0) dS[o] = (float)sum;
    }
}

// gt_joint_pair_grad: dP[poff_ij + a*K_j + c] = sum_{y : y_i = a, y_j = c}
// colsum[y], where colsum[y] = sum_s part[s*J + y] adds, in order s = 0, 1,
// ..., the row-range partial column sums of dE (gt_column_sums_partial, in
// double). One block per table entry, grid-stride over the sumP entries;
// blockDim.x a power of two <= GT_THREADS. With s_i > s_j the strides, the
// answers of entry (i, j, a, c) are y = h*K_i*s_i + a*s_i + g*K_j*s_j +
// c*s_j + l for l < s_j, g < s_i/(K_j*s_j), h < J/(K_i*s_i), numbered m =
// (h*G + g)*s_j + l; thread t takes m = t, t+blockDim.x, ..., then a tree.
extern "C" __global__ void gt_joint_pair_grad(float* dP, const double* part, long long splits, const int* vt,
                                              long long n, long long J, long long sumP) {
    __shared__ double sh[GT_THREADS];
    for (long long e = blockIdx.x; e < sumP; e += gridDim.x) {
        // Find the pair (i, j) whose table holds entry e.
        long long i = 0, j = 1, poff = 0;
        for (;;) {
            const long long size = (long long)vt[3 * i] * vt[3 * j];
            if (e < poff + size) break;
            poff += size;
            if (++j == n) {
                i++;
                j = i + 1;
            }
        }
        const long long ki = vt[3 * i], si = vt[3 * i + 1], kj = vt[3 * j], sj = vt[3 * j + 1];
        const long long a = (e - poff) / kj, c = (e - poff) % kj;
        const long long G = si / (kj * sj);
        const long long count = J / (ki * kj);
        double acc = 0.0;
        for (long long m = threadIdx.x; m < count; m += blockDim.x) {
            const long long l = m % sj, g = (m / sj) % G, h = m / (sj * G);
            const long long y = h * ki * si + a * si + g * kj * sj + c * sj + l;
            double col = 0.0;
            for (long long s = 0; s < splits; s++) col += part[s * J + y];
            acc += col;
        }
        const double sum = gt_joint_block_sum(sh, acc);
        if (threadIdx.x == 0) dP[e] = (float)sum;
    }
}
