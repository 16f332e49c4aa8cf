// gemm_tc.cu: C = alpha*op(A)*op(B) + beta*C on tensor cores (mma.sync,
// sm_80 and newer), with the fused dense-layer epilogue of
// gemm_epilogue.cuh; float32 storage, float32 accumulation. Three operand
// precisions (device.Backend maps model.Precision onto them):
//   tf32    each operand element converted with cvt.rna.tf32.f32, one
//           m16n8k8 mma per 16x8x8 step;
//   3xtf32  x = hi + lo, hi = tf32(x), lo = tf32(x - hi), and three mma per
//           step: lo*hi + hi*lo + hi*hi, into the same accumulator, small
//           terms first (lo*lo, below float32's resolution, is dropped):
//           float32-level accuracy at tensor-core speed;
//   bf16    operand pairs converted with cvt.rn.bf16x2.f32, one m16n8k16
//           mma per 16x8x16 step.
// Shared memory holds the operands as float32 whatever the precision: the
// conversion happens as the fragments are loaded, so one copy pipeline
// serves every precision and the bias gradient (GT_EPI_COLSUM) sums the
// unrounded values.
//
// Kernels gt_tc_gemm_{nn,nt,tn}_{tf32,3xtf32,bf16}_{128x128,64x64}: the
// layer's three products (E = X W^T nt, dX = dE W nn, dW = dE^T X tn);
// device.Backend runs tt (no layer uses it) on the SIMT kernels, which
// round the operands the same way. Launch: 1-D grid of ceil(M/BM) *
// ceil(N/BN) blocks, NT threads, STAGES * (tile of op(A) + tile of op(B))
// floats of dynamic shared memory (gt_tc_smem_floats; device/gemm.go
// computes the same):
//
//   tile     BK  warps (m x n)  warp tile  threads  stages  shared memory
//   128x128  16  2 x 2          64 x 64    128      4       66-96 KiB (opt-in)
//   64x64    16  2 x 2          32 x 32    128      4       34-48 KiB
//
// Why 64 x 64 warp tiles: per 8 (tf32) or 16 (bf16) k a warp loads its A
// fragments (4 per 16 rows) and B fragments (2 per 8 columns) from shared
// memory; with a 64 x 64 warp tile that is 128 bytes of shared-memory
// traffic per mma, with 64 x 32 it was 192, and an SM moves 128 bytes per
// clock while its tensor cores finish about one m16n8k8 tf32 mma per clock:
// the larger warp tile is what keeps the loads from capping the mma rate.
// It costs registers (64 x 64 / 32 = 128 accumulators a lane; ptxas uses
// 200-246 without spilling), hence 4 warps and two blocks per SM.
//
// Pipeline: STAGES - 1 slabs of BK are in flight (cp.async, 16-byte copies
// where the operand allows 128-bit access, 4-byte ones otherwise, src-size
// zero-filling past the matrix edges) while one is multiplied; one
// __syncthreads per slab. Slab kt waits with cp.async.wait_group STAGES-2
// (every iteration commits a group, empty ones at the end, so the count is
// uniform), then the barrier publishes it to the whole block and also
// guarantees that every warp is done with slab kt-1, whose stage the copy
// issued next overwrites.
//
// Block order: the linear block index is mapped to tiles in groups of
// GT_TC_GROUP tile rows, column-major within a group, so consecutive
// blocks share the same few rows of op(A) and columns of op(B) while those
// are in L2 (Triton's "grouped ordering").
//
// Shared layouts and bank conflicts. An operand stored along k (A as
// stored, B transposed) is a [rows][BK + PADK] tile, one stored along m or
// n a [BK][rows + PADR] tile; the paddings make each fragment load of a
// warp hit 32 distinct banks: TF32 loads one word per lane, at (row g,
// k t) (rows 20 words apart: 20 g mod 32 is 8 distinct multiples of 4) or
// at k t, row g (rows of BM + 8 words: 8 t + g); BF16 loads two k-adjacent
// words, as one 64-bit access where k is contiguous (rows 24 words apart,
// each half-warp's 16 accesses cover the 32 banks once) or as two words 1
// row apart otherwise (rows of BM + 4 words: 8 t + g and 8 t + 4 + g).
//
// Determinism: each output is accumulated by one lane over k in increasing
// order, one mma chain; no split-K, no atomics. The column sums of the bias
// gradient are per-thread sums over k in order, then a fixed merge.
#include "gemm_epilogue.cuh"

#define GT_TC_TF32 0
#define GT_TC_3XTF32 1
#define GT_TC_BF16 2
#define GT_TC_GROUP 8  // tile rows per group of the block order

// Paddings (floats) of the shared tiles: along-k tiles and along-m/n tiles.
#define GT_TC_PADK(P) ((P) == GT_TC_BF16 ? 8 : 4)
#define GT_TC_PADR(P) ((P) == GT_TC_BF16 ? 4 : 8)

// gt_tc_tile_floats: floats of one stage of one operand's tile: rows x BK
// values, stored along k (KC) or along the rows.
#define GT_TC_TILE_FLOATS(KC, ROWS, BK, P) ((KC) ? (ROWS) * ((BK) + GT_TC_PADK(P)) : (BK) * ((ROWS) + GT_TC_PADR(P)))

// gt_tc_smem_floats: the dynamic shared memory of a kernel, in floats.
#define GT_TC_SMEM_FLOATS(TA, TB, BM, BN, BK, P, STAGES) \
    ((STAGES) * (GT_TC_TILE_FLOATS(!(TA), BM, BK, P) + GT_TC_TILE_FLOATS(TB, BN, BK, P)))

#ifdef GT_HAVE_TENSOR_CORES

// gt_tc_load_tile issues the copies of one stage of one operand: the ROWS x
// BK block of op(X) at (r0, k0), where op(X) is R x K. KC: X is stored
// along k (element (r, k) at X[r * ld + k]); otherwise along the rows
// (X[k * ld + r]). Groups of 4 consecutive floats along the stored
// dimension are one 16-byte copy when vec (X's base and row stride allow
// it), else 4 copies of 4 bytes; src-size cuts each copy at the edge of X
// and the rest of the destination is zero-filled.
template <bool KC, int ROWS, int BK, int P, int NT>
__device__ __forceinline__ void gt_tc_load_tile(float* S, const float* __restrict__ X, long long ld, long long r0,
                                                long long R, long long k0, long long K, bool vec) {
    constexpr int SK = BK + GT_TC_PADK(P);    // row stride of an along-k tile
    constexpr int SR = ROWS + GT_TC_PADR(P);  // row stride of an along-rows tile
    constexpr int CHUNKS = ROWS * BK / 4;
    static_assert(CHUNKS % NT == 0, "whole chunks per thread");
#pragma unroll
    for (int i = 0; i < CHUNKS / NT; i++) {
        const int c = threadIdx.x + i * NT;
        long long r, k, lim;  // lim: valid floats from the chunk's start
        float* dst;
        const float* src;
        if (KC) {
            const int rr = c / (BK / 4), kk = 4 * (c % (BK / 4));
            r = r0 + rr;
            k = k0 + kk;
            dst = S + rr * SK + kk;
            src = X + r * ld + k;
            lim = r < R ? K - k : 0;
        } else {
            const int kk = c / (ROWS / 4), rr = 4 * (c % (ROWS / 4));
            r = r0 + rr;
            k = k0 + kk;
            dst = S + kk * SR + rr;
            src = X + k * ld + r;
            lim = k < K ? R - r : 0;
        }
        if (vec) {
            const int n = lim <= 0 ? 0 : lim >= 4 ? 16 : (int)(4 * lim);
            gt_cp_async16(dst, n > 0 ? src : X, n);
        } else {
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const bool in = j < lim;
                gt_cp_async4(dst + j, in ? src + j : X, in ? 4 : 0);
            }
        }
    }
}

// gt_tc_at reads element (r, k) of a shared tile (see gt_tc_load_tile).
template <bool KC, int ROWS, int BK, int P>
__device__ __forceinline__ float gt_tc_at(const float* S, int r, int k) {
    return KC ? S[r * (BK + GT_TC_PADK(P)) + k] : S[k * (ROWS + GT_TC_PADR(P)) + r];
}

// gt_tc_pair reads elements (r, k) and (r, k + 1), k even: one 64-bit
// access where the tile runs along k.
template <bool KC, int ROWS, int BK, int P>
__device__ __forceinline__ gt_f2 gt_tc_pair(const float* S, int r, int k) {
    if (KC) return gt_lds2(S + r * (BK + GT_TC_PADK(P)) + k);
    gt_f2 v;
    v.x = S[k * (ROWS + GT_TC_PADR(P)) + r];
    v.y = S[(k + 1) * (ROWS + GT_TC_PADR(P)) + r];
    return v;
}

// gt_tc_split converts x for the mma: hi = tf32(x) and, for 3xtf32, the
// remainder lo = tf32(x - hi) (0 when hi is not finite, so that an
// infinite operand gives the infinite product of float32, not Inf - Inf;
// model.SplitTF32 is the same).
__device__ __forceinline__ void gt_tc_split(float x, unsigned& hi, unsigned& lo) {
    hi = gt_cvt_tf32(x);
    const float h = __int_as_float((int)hi);
    lo = isfinite(h) ? gt_cvt_tf32(x - h) : 0u;
}

// gt_tc_gemm_body computes one BM x BN tile of C (see the file comment).
// smem: GT_TC_SMEM_FLOATS(...) floats, 16-byte aligned.
template <bool TA, bool TB, int P, int BM, int BN, int BK, int WM, int WN, int STAGES>
__device__ __forceinline__ void gt_tc_gemm_body(float* smem, long long M, long long N, long long K, float alpha,
                                                const float* __restrict__ A, const float* __restrict__ B, float beta,
                                                float* __restrict__ C, long long flags, const float* __restrict__ bias,
                                                const float* __restrict__ aux, float* __restrict__ colsum) {
    constexpr bool KCA = !TA, KCB = TB;  // tiles stored along k
    constexpr int WARPS_N = BN / WN;
    constexpr int NT = (BM / WM) * WARPS_N * 32;
    constexpr int MT = WM / 16, NTI = WN / 8;     // mma tiles per warp along m and n
    constexpr int KSTEP = P == GT_TC_BF16 ? 16 : 8;
    constexpr int TILE_A = GT_TC_TILE_FLOATS(KCA, BM, BK, P);
    constexpr int TILE_B = GT_TC_TILE_FLOATS(KCB, BN, BK, P);
    constexpr int STAGE = TILE_A + TILE_B;
    static_assert(BK % KSTEP == 0 && WM % 16 == 0 && WN % 8 == 0, "whole mma steps");
    static_assert(TILE_A % 4 == 0 && TILE_B % 4 == 0, "stages stay 16-byte aligned");
    static_assert(STAGES >= 3, "at least two slabs in flight");

    const long long lda = TA ? M : K;
    const long long ldb = TB ? K : N;

    // Block order: groups of GT_TC_GROUP tile rows (64-bit: the grid may
    // hold up to 2^31 - 1 blocks).
    const long long tilesN = (N + BN - 1) / BN, tilesM = (M + BM - 1) / BM;
    const long long pid = blockIdx.x;
    const long long inGroup = (long long)GT_TC_GROUP * tilesN;
    const long long firstM = (pid / inGroup) * GT_TC_GROUP;
    const long long rowsHere = min(tilesM - firstM, (long long)GT_TC_GROUP);
    const long long tm = firstM + (pid % inGroup) % rowsHere;
    const long long tn = (pid % inGroup) / rowsHere;
    const long long m0 = tm * BM, n0 = tn * BN;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, t = lane % 4;
    const int wm0 = (warp / WARPS_N) * WM, wn0 = (warp % WARPS_N) * WN;

    const bool vecA = (flags & GT_GEMM_VEC_A) != 0;
    const bool vecB = (flags & GT_GEMM_VEC_B) != 0;
    const bool sumCols = (flags & GT_EPI_COLSUM) && n0 == 0;  // uniform per block

    float acc[MT][NTI][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NTI; j++)
#pragma unroll
            for (int v = 0; v < 4; v++) acc[i][j][v] = 0.0f;
    double csum = 0.0;

    // alpha == 0 reads neither A nor B (BLAS semantics, as the SIMT kernels).
    const long long KT = alpha == 0.0f ? 0 : (K + BK - 1) / BK;
    auto load = [&](int stage, long long kt) {
        float* s = smem + stage * STAGE;
        gt_tc_load_tile<KCA, BM, BK, P, NT>(s, A, lda, m0, M, kt * BK, K, vecA);
        gt_tc_load_tile<KCB, BN, BK, P, NT>(s + TILE_A, B, ldb, n0, N, kt * BK, K, vecB);
    };
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < KT) load(s, s);
        gt_cp_async_commit();
    }

    for (long long kt = 0; kt < KT; kt++) {
        gt_cp_async_wait<STAGES - 2>();
        __syncthreads();
        {
            const long long nk = kt + STAGES - 1;
            if (nk < KT) load((int)(nk % STAGES), nk);
            gt_cp_async_commit();
        }
        const float* As = smem + (int)(kt % STAGES) * STAGE;
        const float* Bs = As + TILE_A;
        if (sumCols) {
            if (KCA)
                gt_colsum_slab<BM, BK, NT>(csum, As, 1, BK + GT_TC_PADK(P));
            else
                gt_colsum_slab<BM, BK, NT>(csum, As, BM + GT_TC_PADR(P), 1);
        }
#pragma unroll
        for (int ks = 0; ks < BK; ks += KSTEP) {
            // B fragments of every n tile first (kept), then A one m tile
            // at a time: fewer live registers than all of A at once.
            unsigned bh[NTI][2], bl[NTI][2];
#pragma unroll
            for (int j = 0; j < NTI; j++) {
                const int n = wn0 + 8 * j + g;
                if (P == GT_TC_BF16) {
                    const gt_f2 p0 = gt_tc_pair<KCB, BN, BK, P>(Bs, n, ks + 2 * t);
                    const gt_f2 p1 = gt_tc_pair<KCB, BN, BK, P>(Bs, n, ks + 2 * t + 8);
                    bh[j][0] = gt_pack_bf16x2(p0.x, p0.y);
                    bh[j][1] = gt_pack_bf16x2(p1.x, p1.y);
                } else if (P == GT_TC_3XTF32) {
                    gt_tc_split(gt_tc_at<KCB, BN, BK, P>(Bs, n, ks + t), bh[j][0], bl[j][0]);
                    gt_tc_split(gt_tc_at<KCB, BN, BK, P>(Bs, n, ks + t + 4), bh[j][1], bl[j][1]);
                } else {
                    bh[j][0] = gt_cvt_tf32(gt_tc_at<KCB, BN, BK, P>(Bs, n, ks + t));
                    bh[j][1] = gt_cvt_tf32(gt_tc_at<KCB, BN, BK, P>(Bs, n, ks + t + 4));
                }
            }
#pragma unroll
            for (int i = 0; i < MT; i++) {
                const int r = wm0 + 16 * i + g;
                unsigned ah[4], al[4];
                if (P == GT_TC_BF16) {
                    const gt_f2 p0 = gt_tc_pair<KCA, BM, BK, P>(As, r, ks + 2 * t);
                    const gt_f2 p1 = gt_tc_pair<KCA, BM, BK, P>(As, r + 8, ks + 2 * t);
                    const gt_f2 p2 = gt_tc_pair<KCA, BM, BK, P>(As, r, ks + 2 * t + 8);
                    const gt_f2 p3 = gt_tc_pair<KCA, BM, BK, P>(As, r + 8, ks + 2 * t + 8);
                    ah[0] = gt_pack_bf16x2(p0.x, p0.y);
                    ah[1] = gt_pack_bf16x2(p1.x, p1.y);
                    ah[2] = gt_pack_bf16x2(p2.x, p2.y);
                    ah[3] = gt_pack_bf16x2(p3.x, p3.y);
                } else {
                    const float x[4] = {gt_tc_at<KCA, BM, BK, P>(As, r, ks + t),
                                        gt_tc_at<KCA, BM, BK, P>(As, r + 8, ks + t),
                                        gt_tc_at<KCA, BM, BK, P>(As, r, ks + t + 4),
                                        gt_tc_at<KCA, BM, BK, P>(As, r + 8, ks + t + 4)};
#pragma unroll
                    for (int v = 0; v < 4; v++) {
                        if (P == GT_TC_3XTF32)
                            gt_tc_split(x[v], ah[v], al[v]);
                        else
                            ah[v] = gt_cvt_tf32(x[v]);
                    }
                }
#pragma unroll
                for (int j = 0; j < NTI; j++) {
                    if (P == GT_TC_BF16) {
                        gt_mma_bf16(acc[i][j], ah, bh[j]);
                    } else if (P == GT_TC_3XTF32) {
                        gt_mma_tf32(acc[i][j], al, bh[j]);
                        gt_mma_tf32(acc[i][j], ah, bl[j]);
                        gt_mma_tf32(acc[i][j], ah, bh[j]);
                    } else {
                        gt_mma_tf32(acc[i][j], ah, bh[j]);
                    }
                }
            }
        }
    }
    // Only empty groups can be pending here; waiting for them keeps every
    // thread's copy queue empty when the block ends. The barrier frees the
    // stages for the column sums' scratch.
    gt_cp_async_wait<0>();
    if (flags & GT_EPI_COLSUM) {
        __syncthreads();
        if (n0 == 0) gt_colsum_finish<BM, NT>(csum, reinterpret_cast<double*>(smem), m0, M, alpha, colsum);
    }

    // Epilogue: lane (g, t) holds rows g and g + 8, columns 2t and 2t + 1
    // of every 16 x 8 mma tile; pairs of columns are one 64-bit store where
    // C allows (its rows a multiple of 4 floats, so 2t is 8-byte aligned).
    const bool vecC = (flags & GT_GEMM_VEC_C) != 0;
#pragma unroll
    for (int i = 0; i < MT; i++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const long long m = m0 + wm0 + 16 * i + g + 8 * h;
            if (m >= M) continue;
            float* crow = C + m * N;
#pragma unroll
            for (int j = 0; j < NTI; j++) {
                const long long n = n0 + wn0 + 8 * j + 2 * t;
                if (n >= N) continue;
                const float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
                if (vecC && n + 1 < N) {
                    gt_f2 c;
                    c.x = c.y = 0.0f;
                    if (beta != 0.0f) c = gt_load2(crow + n);
                    gt_f2 o;
                    o.x = gt_epilogue(v0, c.x, m, n, N, alpha, beta, flags, bias, aux);
                    o.y = gt_epilogue(v1, c.y, m, n + 1, N, alpha, beta, flags, bias, aux);
                    gt_store2(crow + n, o);
                } else {
                    crow[n] = gt_epilogue(v0, beta == 0.0f ? 0.0f : crow[n], m, n, N, alpha, beta, flags, bias, aux);
                    if (n + 1 < N)
                        crow[n + 1] = gt_epilogue(v1, beta == 0.0f ? 0.0f : crow[n + 1], m, n + 1, N, alpha, beta,
                                                  flags, bias, aux);
                }
            }
        }
    }
    if (flags & GT_EPI_TANH) {
        // Output e: tile i = e / (4 NTI), j = (e / 4) % NTI, register v = e % 4.
        gt_tanh_outputs(C, N, MT * NTI * 4, [&](int e, long long& m, long long& n) {
            const int i = e / (4 * NTI), j = (e / 4) % NTI, v = e % 4;
            m = m0 + wm0 + 16 * i + g + 8 * (v / 2);
            n = n0 + wn0 + 8 * j + 2 * t + v % 2;
            return m < M && n < N;
        });
    }
}

// GT_TC_RUN expands to a kernel's body: the dynamic shared memory, then the
// body with its configuration.
#define GT_TC_RUN(TA, TB, P, BM, BN, WM, WN)                                                                    \
    GT_DYNAMIC_SHARED(gt_f4, gt_tc_smem);                                                                      \
    gt_tc_gemm_body<TA, TB, P, BM, BN, 16, WM, WN, 4>(reinterpret_cast<float*>(gt_tc_smem), M, N, K, (float)alpha, \
                                                      A, B, (float)beta, C, flags, bias, aux, colsum)
#else
// Below sm_80 (the compute_70 PTX): device.Backend never launches these.
#define GT_TC_RUN(TA, TB, P, BM, BN, WM, WN) __trap()
#endif  // GT_HAVE_TENSOR_CORES

// The entry points, spelled out so that tools scanning for extern "C"
// kernels see them (as in gemm.cu). Both tiles: 128 threads. 128x128: two
// blocks per SM (<= 255 registers); 64x64: 3xtf32 at least 3 blocks per SM,
// which lets ptxas go past the 128 registers where it otherwise spilled.

// ---- 128 x 128 ----

extern "C" __global__ void __launch_bounds__(128, 2)
gt_tc_gemm_nn_tf32_128x128(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(false, false, GT_TC_TF32, 128, 128, 64, 64);
}
extern "C" __global__ void __launch_bounds__(128, 2)
gt_tc_gemm_nt_tf32_128x128(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(false, true, GT_TC_TF32, 128, 128, 64, 64);
}
extern "C" __global__ void __launch_bounds__(128, 2)
gt_tc_gemm_tn_tf32_128x128(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(true, false, GT_TC_TF32, 128, 128, 64, 64);
}
extern "C" __global__ void __launch_bounds__(128, 2)
gt_tc_gemm_nn_3xtf32_128x128(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(false, false, GT_TC_3XTF32, 128, 128, 64, 64);
}
extern "C" __global__ void __launch_bounds__(128, 2)
gt_tc_gemm_nt_3xtf32_128x128(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(false, true, GT_TC_3XTF32, 128, 128, 64, 64);
}
extern "C" __global__ void __launch_bounds__(128, 2)
gt_tc_gemm_tn_3xtf32_128x128(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(true, false, GT_TC_3XTF32, 128, 128, 64, 64);
}
extern "C" __global__ void __launch_bounds__(128, 2)
gt_tc_gemm_nn_bf16_128x128(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(false, false, GT_TC_BF16, 128, 128, 64, 64);
}
extern "C" __global__ void __launch_bounds__(128, 2)
gt_tc_gemm_nt_bf16_128x128(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(false, true, GT_TC_BF16, 128, 128, 64, 64);
}
extern "C" __global__ void __launch_bounds__(128, 2)
gt_tc_gemm_tn_bf16_128x128(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(true, false, GT_TC_BF16, 128, 128, 64, 64);
}

// ---- 64 x 64 ----

extern "C" __global__ void __launch_bounds__(128)
gt_tc_gemm_nn_tf32_64x64(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(false, false, GT_TC_TF32, 64, 64, 32, 32);
}
extern "C" __global__ void __launch_bounds__(128)
gt_tc_gemm_nt_tf32_64x64(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(false, true, GT_TC_TF32, 64, 64, 32, 32);
}
extern "C" __global__ void __launch_bounds__(128)
gt_tc_gemm_tn_tf32_64x64(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(true, false, GT_TC_TF32, 64, 64, 32, 32);
}
extern "C" __global__ void __launch_bounds__(128, 3)
gt_tc_gemm_nn_3xtf32_64x64(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(false, false, GT_TC_3XTF32, 64, 64, 32, 32);
}
extern "C" __global__ void __launch_bounds__(128, 3)
gt_tc_gemm_nt_3xtf32_64x64(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(false, true, GT_TC_3XTF32, 64, 64, 32, 32);
}
extern "C" __global__ void __launch_bounds__(128, 3)
gt_tc_gemm_tn_3xtf32_64x64(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(true, false, GT_TC_3XTF32, 64, 64, 32, 32);
}
extern "C" __global__ void __launch_bounds__(128)
gt_tc_gemm_nn_bf16_64x64(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(false, false, GT_TC_BF16, 64, 64, 32, 32);
}
extern "C" __global__ void __launch_bounds__(128)
gt_tc_gemm_nt_bf16_64x64(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(false, true, GT_TC_BF16, 64, 64, 32, 32);
}
extern "C" __global__ void __launch_bounds__(128)
gt_tc_gemm_tn_bf16_64x64(long long M, long long N, long long K, double alpha, const float* A, const float* B,
        double beta, float* C, long long flags, const float* bias, const float* aux, float* colsum) {
    GT_TC_RUN(true, false, GT_TC_BF16, 64, 64, 32, 32);
}
