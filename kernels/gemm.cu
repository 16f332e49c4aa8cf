// gemm.cu: C = alpha * op(A) * op(B) + beta * C for row-major float32
// matrices, op(X) = X or X^T. The three products of a layer are all here:
// energies E = X W^T (NT), input gradient dX = dE W (NN), weight gradient
// dW = dE^T X (TN).
//
// op(A) is M x K, op(B) is K x N, C is M x N. One register-blocked body
// serves three tile shapes (BM x BN outputs per block, 256 threads each):
//   128 x 128, BK = 8,  8 x 8 outputs per thread: large products;
//   128 x  64, BK = 16, 8 x 4 outputs per thread: N too small, or too few
//                       128 x 128 tiles to fill the GPU;
//    64 x  64, BK = 16, 4 x 4 outputs per thread: small products.
// device.Backend picks the shape by problem size. Launch: grid
// (ceil(N/BN), ceil(M/BM)), block 256, no dynamic shared memory.
//
// Per block: walk K in slabs of BK. A slab of op(A) (BM x BK) and of op(B)
// (BK x BN) is staged in shared memory k-major (As[k][m], Bs[k][n]), so a
// thread reads its 4 consecutive m (or n) of one k as one 128-bit load. The
// next slab is fetched from global memory into registers while the current
// one is multiplied, then stored into the other of two shared buffers: one
// barrier per slab, and the global loads' latency overlaps the FMAs.
//
// Global loads are 128-bit (4 floats along the stored matrix's contiguous
// dimension) when device.Backend allows it for that operand (its base is
// 16-byte aligned and its row stride a multiple of 4: bit GT_GEMM_VEC_A /
// _B / _C of flags) and the slab lies inside the matrix; otherwise, at the
// edges, each of the 4 floats is loaded alone with bounds checks and zero
// padding, so every size is correct. All index arithmetic that can exceed
// 2^31 is 64-bit.
//
// Bank conflicts: a slab stored along k (A as stored, or B transposed) is
// transposed on its way into shared memory; rows of BM + 4 floats put the
// two (BK = 8) k-groups of a warp's stores on disjoint banks (with BK = 16,
// four k-groups, two share a bank: a 2-way conflict on one store per slab,
// in the small-tile kernels only). Reads in the FMA loop are 128-bit and
// the warp is laid out 4 x 8 threads, so a warp reads 4 + 8 distinct float4
// per k: one wavefront each.
//
// Determinism: each output is a sum over k in increasing order by one
// thread: no atomics, no split-K, the same bits run after run.
#include "gemm_epilogue.cuh"

#define GT_GEMM_PAD 4 // floats of padding per shared slab row (keeps 16-byte alignment)

// Floats of static shared memory of a BM x BN x BK kernel: two buffers, each
// a BK x (BM + PAD) slab of op(A) and a BK x (BN + PAD) slab of op(B).
#define GT_GEMM_SMEM(BM, BN, BK) (2 * (BK) * ((BM) + (BN) + 2 * GT_GEMM_PAD))

// gt_gemm_fetch loads this thread's share of one BT x BK slab of a stored
// matrix X (row stride ld) into r: L float4 groups, zero past the edges.
// ALONG_K: X's rows run along k (A as stored, B transposed); the slab's
// element (t, k) is X[(t0 + t) * ld + k0 + k], and each group is 4
// consecutive k of one row t. Otherwise X's rows run along m or n (A
// transposed, B as stored): element (t, k) is X[(k0 + k) * ld + t0 + t], and
// each group is 4 consecutive t of one k. T is the extent of the tile
// dimension (M or N). vec: the whole slab is inside X and 128-bit loads are
// allowed.
template <bool ALONG_K, int BT, int BK, int L>
__device__ __forceinline__ void gt_gemm_fetch(float (&r)[L][4], const float* __restrict__ X, long long ld,
                                              long long t0, long long T, long long k0, long long K, bool vec) {
#pragma unroll
    for (int l = 0; l < L; l++) {
        const int e = threadIdx.x + l * GT_THREADS;
        long long t, k;
        if (ALONG_K) {
            t = t0 + e / (BK / 4);
            k = k0 + 4 * (e % (BK / 4));
        } else {
            k = k0 + e / (BT / 4);
            t = t0 + 4 * (e % (BT / 4));
        }
        const float* p = ALONG_K ? X + t * ld + k : X + k * ld + t;
        if (vec) {
            const gt_f4 v = gt_ldg4(p);
            r[l][0] = v.x;
            r[l][1] = v.y;
            r[l][2] = v.z;
            r[l][3] = v.w;
        } else {
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const bool in = ALONG_K ? (t < T && k + j < K) : (k < K && t + j < T);
                r[l][j] = in ? p[j] : 0.0f;
            }
        }
    }
}

// gt_gemm_stash stores fetched groups into a k-major shared slab S (row
// stride BT + PAD floats), mirroring gt_gemm_fetch's element mapping, each
// element rounded as the GT_GEMM_ROUND_* bits of flags say.
template <bool ALONG_K, int BT, int BK, int L>
__device__ __forceinline__ void gt_gemm_stash(float* S, const float (&r)[L][4], long long flags) {
    constexpr int ST = BT + GT_GEMM_PAD;
#pragma unroll
    for (int l = 0; l < L; l++) {
        const int e = threadIdx.x + l * GT_THREADS;
        if (ALONG_K) {
            const int t = e / (BK / 4), k = 4 * (e % (BK / 4));
#pragma unroll
            for (int j = 0; j < 4; j++) S[(k + j) * ST + t] = gt_round_operand(r[l][j], flags);
        } else {
            const int k = e / (BT / 4), t = 4 * (e % (BT / 4));
            gt_f4 v;
            v.x = gt_round_operand(r[l][0], flags);
            v.y = gt_round_operand(r[l][1], flags);
            v.z = gt_round_operand(r[l][2], flags);
            v.w = gt_round_operand(r[l][3], flags);
            gt_sts4(S + k * ST + t, v);
        }
    }
}

// gt_gemm_store writes the epilogue (gemm_epilogue.cuh: alpha * acc +
// beta * C, then bias, activation or activation derivative as flags say;
// tanh in a second pass over the stored outputs)
// of this thread's outputs (rows g*64 + 4 ty + i, columns g*64 + 4 tx + j
// of the tile at (m0, n0)): 4 consecutive columns at a time, one 128-bit
// access when C allows it (GT_GEMM_VEC_C) and they lie inside C. beta == 0
// only writes: C may hold garbage (even NaN) on entry.
template <int BM, int BN>
__device__ __forceinline__ void gt_gemm_store(const float (&acc)[BM / 16][BN / 16], long long M, long long N,
                                              long long m0, long long n0, int ty, int tx, float alpha, float beta,
                                              float* __restrict__ C, long long flags, const float* __restrict__ bias,
                                              const float* __restrict__ aux) {
    constexpr int TM = BM / 16, TN = BN / 16;
    const bool vecC = (flags & GT_GEMM_VEC_C) != 0;
#pragma unroll
    for (int i = 0; i < TM; i++) {
        const long long m = m0 + (i / 4) * 64 + 4 * ty + i % 4;
        if (m >= M) continue;
        float* crow = C + m * N;
#pragma unroll
        for (int g = 0; g < TN / 4; g++) {
            const long long n = n0 + g * 64 + 4 * tx;
            if (vecC && n + 4 <= N) {
                gt_f4 c;
                c.x = c.y = c.z = c.w = 0.0f;
                if (beta != 0.0f) c = gt_load4(crow + n);
                gt_f4 v;
                v.x = gt_epilogue(acc[i][4 * g + 0], c.x, m, n + 0, N, alpha, beta, flags, bias, aux);
                v.y = gt_epilogue(acc[i][4 * g + 1], c.y, m, n + 1, N, alpha, beta, flags, bias, aux);
                v.z = gt_epilogue(acc[i][4 * g + 2], c.z, m, n + 2, N, alpha, beta, flags, bias, aux);
                v.w = gt_epilogue(acc[i][4 * g + 3], c.w, m, n + 3, N, alpha, beta, flags, bias, aux);
                gt_store4(crow + n, v);
            } else {
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    if (n + j >= N) break;
                    float* c = crow + n + j;
                    const float cin = beta == 0.0f ? 0.0f : *c;
                    *c = gt_epilogue(acc[i][4 * g + j], cin, m, n + j, N, alpha, beta, flags, bias, aux);
                }
            }
        }
    }
    if (flags & GT_EPI_TANH) {
        gt_tanh_outputs(C, N, TM * TN, [&](int e, long long& m, long long& n) {
            const int i = e / TN, j = e % TN;
            m = m0 + (i / 4) * 64 + 4 * ty + i % 4;
            n = n0 + (j / 4) * 64 + 4 * tx + j % 4;
            return m < M && n < N;
        });
    }
}

// gt_gemm_body computes one BM x BN tile of C. smem holds
// GT_GEMM_SMEM(BM, BN, BK) floats (declared by the kernel, so that its size
// is static). TA and TB select each operand's load pattern at compile time.
template <bool TA, bool TB, int BM, int BN, int BK>
__device__ __forceinline__ void gt_gemm_body(float* smem, long long M, long long N, long long K, float alpha,
                                             const float* __restrict__ A, const float* __restrict__ B, float beta,
                                             float* __restrict__ C, long long flags,
                                             const float* __restrict__ bias = nullptr,
                                             const float* __restrict__ aux = nullptr,
                                             float* __restrict__ colsum = nullptr) {
    constexpr int TM = BM / 16, TN = BN / 16; // outputs per thread along m and n
    constexpr int SA = BM + GT_GEMM_PAD, SB = BN + GT_GEMM_PAD;
    constexpr int LA = BM * BK / (4 * GT_THREADS), LB = BN * BK / (4 * GT_THREADS);
    static_assert(TM % 4 == 0 && TN % 4 == 0, "each thread owns groups of 4 rows and 4 columns");
    static_assert(LA >= 1 && LA * 4 * GT_THREADS == BM * BK, "a slab of op(A) is a whole number of float4 per thread");
    static_assert(LB >= 1 && LB * 4 * GT_THREADS == BN * BK, "a slab of op(B) is a whole number of float4 per thread");
    float* const As = smem;              // [2][BK][SA]
    float* const Bs = smem + 2 * BK * SA; // [2][BK][SB]

    // Row strides of the stored (not the transposed) matrices.
    const long long lda = TA ? M : K;
    const long long ldb = TB ? K : N;
    const long long m0 = (long long)blockIdx.y * BM;
    const long long n0 = (long long)blockIdx.x * BN;

    // The 16 x 16 threads of the block: warps 4 x 2, a warp's lanes 4 x 8
    // (ty, tx). Thread (ty, tx) owns rows g*64 + 4 ty + i and columns
    // g*64 + 4 tx + j of the tile: groups of 4, 64 apart, so its reads of
    // a shared slab row are 128-bit and a warp's are contiguous.
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int ty = (warp / 2) * 4 + lane / 8;
    const int tx = (warp % 2) * 8 + lane % 8;

    // Whether the tile lies inside op(A) rows / op(B) columns: then a slab
    // that also lies inside K may use 128-bit loads (if allowed).
    const bool vecA = (flags & GT_GEMM_VEC_A) && m0 + BM <= M;
    const bool vecB = (flags & GT_GEMM_VEC_B) && n0 + BN <= N;

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    // alpha == 0 leaves C = beta*C without reading A and B, as BLAS does, so
    // NaNs in A or B do not leak into a product that is scaled away. The
    // test is uniform across the block, so the barriers stay safe.
    const long long kEnd = alpha == 0.0f ? 0 : K;
    float ra[LA][4], rb[LB][4];
    if (kEnd > 0) {
        const bool full = BK <= K;
        gt_gemm_fetch<!TA, BM, BK, LA>(ra, A, lda, m0, M, 0, K, vecA && full);
        gt_gemm_fetch<TB, BN, BK, LB>(rb, B, ldb, n0, N, 0, K, vecB && full);
        gt_gemm_stash<!TA, BM, BK, LA>(As, ra, flags);
        gt_gemm_stash<TB, BN, BK, LB>(Bs, rb, flags);
    }
    __syncthreads();
    // The bias gradient: the blocks of the first tile column sum op(A)'s
    // rows over all of K (uniform per block, so the barriers stay safe).
    // The SIMT fallback rounds operands in the slab; the sums must not see
    // that, so they are taken only when no rounding is asked for (device
    // never fuses the column sums into a rounding SIMT GEMM).
    const bool sumCols = (flags & GT_EPI_COLSUM) && blockIdx.x == 0;
    double csum = 0.0;

    int buf = 0;
    for (long long k0 = 0; k0 < kEnd; k0 += BK) {
        // Fetch the next slab into registers; its loads are in flight while
        // this slab's FMAs run.
        const long long k1 = k0 + BK;
        const bool more = k1 < kEnd;
        if (more) {
            const bool full = k1 + BK <= K;
            gt_gemm_fetch<!TA, BM, BK, LA>(ra, A, lda, m0, M, k1, K, vecA && full);
            gt_gemm_fetch<TB, BN, BK, LB>(rb, B, ldb, n0, N, k1, K, vecB && full);
        }
        const float* a_s = As + buf * (BK * SA);
        const float* b_s = Bs + buf * (BK * SB);
        if (sumCols) gt_colsum_slab<BM, BK, GT_THREADS>(csum, a_s, SA, 1);
#pragma unroll
        for (int kk = 0; kk < BK; kk++) {
            float a[TM], b[TN];
#pragma unroll
            for (int g = 0; g < TM / 4; g++) {
                const gt_f4 v = gt_lds4(a_s + kk * SA + g * 64 + 4 * ty);
                a[4 * g + 0] = v.x;
                a[4 * g + 1] = v.y;
                a[4 * g + 2] = v.z;
                a[4 * g + 3] = v.w;
            }
#pragma unroll
            for (int g = 0; g < TN / 4; g++) {
                const gt_f4 v = gt_lds4(b_s + kk * SB + g * 64 + 4 * tx);
                b[4 * g + 0] = v.x;
                b[4 * g + 1] = v.y;
                b[4 * g + 2] = v.z;
                b[4 * g + 3] = v.w;
            }
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] += a[i] * b[j];
        }
        // The other buffer was last read before the previous barrier, so it
        // may be overwritten now; the barrier below publishes it and also
        // guarantees everyone is done with this buffer before it is reused.
        if (more) {
            gt_gemm_stash<!TA, BM, BK, LA>(As + (buf ^ 1) * (BK * SA), ra, flags);
            gt_gemm_stash<TB, BN, BK, LB>(Bs + (buf ^ 1) * (BK * SB), rb, flags);
        }
        __syncthreads();
        buf ^= 1;
    }

    if (flags & GT_EPI_COLSUM) {
        // After the loop's last barrier nobody reads the slabs any more.
        if (blockIdx.x == 0)
            gt_colsum_finish<BM, GT_THREADS>(csum, reinterpret_cast<double*>(smem), m0, M, alpha, colsum);
    }
    gt_gemm_store<BM, BN>(acc, M, N, m0, n0, ty, tx, alpha, beta, C, flags, bias, aux);
}

// The entry points differ in op(A), op(B) (N = as stored, T = transposed)
// and the tile shape (no suffix: 64 x 64). Each declares its shared buffers
// (static shared memory lives in the kernel) and hands them to the body.
// They are spelled out rather than macro-generated so that tools scanning
// for extern "C" kernels see them. The 128 x 128 kernels are bounded to 128
// registers per thread so that two blocks fit an SM. The parameters are
// those of every GEMM kernel (gemm_epilogue.cuh).

// ---- 64 x 64 tiles ----

extern "C" __global__ void __launch_bounds__(256)
gt_gemm_nn(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    __shared__ __align__(16) float smem[GT_GEMM_SMEM(64, 64, 16)];
    gt_gemm_body<false, false, 64, 64, 16>(smem, M, N, K, (float)alpha, A, B, (float)beta, C, flags,
        bias, aux, colsum);
}

extern "C" __global__ void __launch_bounds__(256)
gt_gemm_nt(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    __shared__ __align__(16) float smem[GT_GEMM_SMEM(64, 64, 16)];
    gt_gemm_body<false, true, 64, 64, 16>(smem, M, N, K, (float)alpha, A, B, (float)beta, C, flags,
        bias, aux, colsum);
}

extern "C" __global__ void __launch_bounds__(256)
gt_gemm_tn(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    __shared__ __align__(16) float smem[GT_GEMM_SMEM(64, 64, 16)];
    gt_gemm_body<true, false, 64, 64, 16>(smem, M, N, K, (float)alpha, A, B, (float)beta, C, flags,
        bias, aux, colsum);
}

extern "C" __global__ void __launch_bounds__(256)
gt_gemm_tt(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    __shared__ __align__(16) float smem[GT_GEMM_SMEM(64, 64, 16)];
    gt_gemm_body<true, true, 64, 64, 16>(smem, M, N, K, (float)alpha, A, B, (float)beta, C, flags,
        bias, aux, colsum);
}

// ---- 128 x 64 tiles ----

extern "C" __global__ void __launch_bounds__(256)
gt_gemm_nn_128x64(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    __shared__ __align__(16) float smem[GT_GEMM_SMEM(128, 64, 16)];
    gt_gemm_body<false, false, 128, 64, 16>(smem, M, N, K, (float)alpha, A, B, (float)beta, C, flags,
        bias, aux, colsum);
}

extern "C" __global__ void __launch_bounds__(256)
gt_gemm_nt_128x64(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    __shared__ __align__(16) float smem[GT_GEMM_SMEM(128, 64, 16)];
    gt_gemm_body<false, true, 128, 64, 16>(smem, M, N, K, (float)alpha, A, B, (float)beta, C, flags,
        bias, aux, colsum);
}

extern "C" __global__ void __launch_bounds__(256)
gt_gemm_tn_128x64(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    __shared__ __align__(16) float smem[GT_GEMM_SMEM(128, 64, 16)];
    gt_gemm_body<true, false, 128, 64, 16>(smem, M, N, K, (float)alpha, A, B, (float)beta, C, flags,
        bias, aux, colsum);
}

extern "C" __global__ void __launch_bounds__(256)
gt_gemm_tt_128x64(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    __shared__ __align__(16) float smem[GT_GEMM_SMEM(128, 64, 16)];
    gt_gemm_body<true, true, 128, 64, 16>(smem, M, N, K, (float)alpha, A, B, (float)beta, C, flags,
        bias, aux, colsum);
}

// ---- 128 x 128 tiles ----

extern "C" __global__ void __launch_bounds__(256, 2)
gt_gemm_nn_128x128(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    __shared__ __align__(16) float smem[GT_GEMM_SMEM(128, 128, 8)];
    gt_gemm_body<false, false, 128, 128, 8>(smem, M, N, K, (float)alpha, A, B, (float)beta, C, flags,
        bias, aux, colsum);
}

extern "C" __global__ void __launch_bounds__(256, 2)
gt_gemm_nt_128x128(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    __shared__ __align__(16) float smem[GT_GEMM_SMEM(128, 128, 8)];
    gt_gemm_body<false, true, 128, 128, 8>(smem, M, N, K, (float)alpha, A, B, (float)beta, C, flags,
        bias, aux, colsum);
}

extern "C" __global__ void __launch_bounds__(256, 2)
gt_gemm_tn_128x128(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    __shared__ __align__(16) float smem[GT_GEMM_SMEM(128, 128, 8)];
    gt_gemm_body<true, false, 128, 128, 8>(smem, M, N, K, (float)alpha, A, B, (float)beta, C, flags,
        bias, aux, colsum);
}

extern "C" __global__ void __launch_bounds__(256, 2)
gt_gemm_tt_128x128(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    __shared__ __align__(16) float smem[GT_GEMM_SMEM(128, 128, 8)];
    gt_gemm_body<true, true, 128, 128, 8>(smem, M, N, K, (float)alpha, A, B, (float)beta, C, flags,
        bias, aux, colsum);
}
