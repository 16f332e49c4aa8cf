// energyhead.cu: the fused energy head (model.EnergyHeadOps). For hidden
// rows H (B x D), answer weights W (K x D) and biases b (1 x K), the
// energies E = -(H W^T + b) are computed in 64 x 64 tiles and never stored:
//
//   gt_eh_forward    grid (ceil(B/64), nChunks): block (x, c) computes the
//                    tiles of rows 64x.. over the answers of chunk c, and
//                    the GEMM epilogue folds each energy into its row's
//                    online summary (energyrow.cuh: minimum and argmin, the
//                    sum at beta rescaled when the minimum drops, E_I, E_C);
//                    the 16 threads that share a row merge their summaries
//                    in a fixed order and write one partial per (row, chunk).
//   gt_eh_merge      one thread per row folds its chunks' partials in chunk
//                    order and finishes the row (gt_row_finish): statistics,
//                    argmin, and the coefficients of dL/dE (a, b, c, the
//                    indices of E_C and of the other answer, m, 1/s).
//   gt_eh_grad_w     grid ceil(K/64): block n owns answers 64n.. of dW and
//                    db; for every block of 64 rows it recomputes the energy
//                    tile, forms dE in shared memory (gt_grad, the expression
//                    EnergyLoss uses) and adds -dE^T H to its rows of dW (in
//                    global memory, which only it writes) and -colsums(dE)
//                    to db, rows in order.
//   gt_eh_grad_h     grid (ceil(B/64), G): block (x, g) owns rows 64x.. of
//                    the g-th partial of dH and adds -dE W over the answers
//                    of group g, tiles in order; gt_eh_grad_h_merge sums the
//                    G partials in order (G = 1 writes dH directly).
//
// No atomics and no order that depends on scheduling: every output element
// is accumulated by one thread, in a fixed order, so the same inputs give
// the same bits. The energies the backward kernels recompute are bitwise
// those the forward folded (the same product, gt_eh_tile of the same P), so
// P_y <= 1 holds exactly against the forward's minimum.
//
// The inner product is gt_eh_tile alone, in gemm.cu's 64 x 64 layout
// (256 threads, thread (ty, tx) owns rows 4ty+i and answers 4tx+j).
// Everything else (epilogues, reductions) sees only its accumulator and
// that layout. The products (the template parameter P of every body, one
// set of entry points per product; device.Backend.headKernels picks):
//
//   gt_eh_*             P = GT_EH_FP32: gt_eh_product, the register-blocked
//                       SIMT tile (float32 FMA, k in increasing order). The
//                       reference; flags is ignored (0).
//   gt_eh_*_rounded     P = GT_EH_ROUNDED: the same product with the
//                       operands rounded on their way into shared memory as
//                       flags says (GT_GEMM_ROUND_TF32/BF16,
//                       gemm_epilogue.cuh): the fallback of the tf32/bf16
//                       precisions on a device without tensor cores (3xtf32
//                       there is plain float32, gt_eh_*, as for the SIMT
//                       GEMMs).
//   gt_tc_eh_*_{tf32,3xtf32,bf16}
//                       P = GT_EH_TF32/3XTF32/BF16: gt_eh_tc_product, the
//                       same 64 x 64 tile on tensor cores (mma.sync m16n8k8
//                       tf32 or m16n8k16 bf16; 3xtf32 the split of
//                       gemm_tc.cu, lo*hi + hi*lo + hi*hi), operands
//                       converted as the fragments are loaded (cvt.rna.tf32,
//                       cvt.rn.bf16x2). The 8 warps tile the 64 x 64 block
//                       4 x 2 (16 x 32 each, 4 mma per k step); the warp
//                       accumulators are then staged through shared memory
//                       (the memory of the slabs, free once the k loop ends)
//                       into the (ty, tx) layout, so the epilogues below are
//                       those of the SIMT path, unchanged. The flags
//                       argument is ignored.
//
// The backward kernels recompute each tile with the product and precision
// of the forward (the same P, the same operands), so the energies are
// bitwise the forward's and P_y <= 1 holds exactly against its minimum.
// The two backward products, dW = -dE^T H and dH = -dE W, stay float32 SIMT
// (gt_eh_accumulate) on unrounded dE, H and W in every precision: rounding
// dE to tf32/bf16 would add a relative error of about u sqrt(B) (dW) or
// u sqrt(K) (dH, K up to 10^6) to gradients the float32 sums give at
// float32 accuracy. They are two of the five tile products of a dense
// loss's call (forward, two recomputes, two gradient products), so the
// tensor-core head is expected at about 2/5 of the SIMT head's time for
// NLL and MEE; moving them to mma too is the next step (docs/KERNELS.md,
// "Fused energy head on tensor cores"). The CPU head (cpu/energyhead.go)
// does the same: rounded operands for the energies, float32 products for
// the gradients.
//
// The sparse part of dE: every loss's gradient is a 1[y = label] + b
// 1[y = other] + c P_y (energyrow.cuh). The losses without the c term
// (all but NLL and MEE) need no energies in the backward pass: their
// contributions are added row by row from the coefficients alone
// (gt_eh_sparse_w, gt_eh_sparse_h), and no tile is recomputed.
//
// Gradient filtering (filterEps > 0, off by default): a recomputed tile
// whose probabilities P_y are all below filterEps contributes only its
// rows' label and other answer, added exactly by the sparse path: the
// dropped terms are c P_y with P_y < filterEps. The rows' C and I are
// therefore never filtered. Each block counts the dense tiles it examined
// and those it did not use in full (counts), so the skipped fraction can
// be reported.
#include "gemm_epilogue.cuh"
#include "energyrow.cuh"

#define GT_EH_T 64   // rows and answers per tile
#define GT_EH_BK 16  // columns of D per slab of the tile product
#define GT_EH_PAD 4  // floats of padding per shared slab row
#define GT_EH_SP 65  // row stride of the 64 x 64 shared tiles (odd: conflict-free columns)
#define GT_EH_COEF_F 5 // floats per row coefficient: a, b, c, m, invS
#define GT_EH_COEF_I 2 // ints per row coefficient: ic, ij
#define GT_EH_PART_F 4 // floats per forward partial: m, s, mi, E_C
#define GT_EH_PART_I 2 // ints per forward partial: am, ai

// gt_eh_thread is a thread's place in the 64 x 64 tile: rows 4 ty + i and
// answers (or columns) 4 tx + j, i, j < 4. Warps are 4 x 2 of 4 x 8 lanes.
struct gt_eh_thread {
    int ty, tx;
};

__device__ inline gt_eh_thread gt_eh_layout() {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    gt_eh_thread t;
    t.ty = (warp / 2) * 4 + lane / 8;
    t.tx = (warp % 2) * 8 + lane % 8;
    return t;
}

// gt_eh_slabs is the shared memory of the tile product: a k-major slab of
// H's rows and of W's rows.
struct gt_eh_slabs {
    float a[GT_EH_BK][GT_EH_T + GT_EH_PAD];
    float b[GT_EH_BK][GT_EH_T + GT_EH_PAD];
};

// gt_eh_product sets acc[i][j] = sum_{k < D} H[m0 + 4ty + i, k] * W[n0 +
// 4tx + j, k], k in increasing order, 0 for rows >= B or answers >= K; with
// ROUND, the operands rounded as the GT_GEMM_ROUND_* bits of flags say
// (the fp32 kernels do not have the rounding code at all: compiled in, it
// cost them 22 registers). All threads of the block must call it (it has
// barriers).
template <bool ROUND>
__device__ inline void gt_eh_product(gt_eh_slabs& sl, const float* __restrict__ H, const float* __restrict__ W,
                                     long long B, long long K, long long D, long long m0, long long n0,
                                     gt_eh_thread t, long long flags, float (&acc)[4][4]) {
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    for (long long k0 = 0; k0 < D; k0 += GT_EH_BK) {
        // 64 x 16 floats of each operand: 4 per thread, 16 consecutive k
        // of one row per 16 threads.
#pragma unroll
        for (int l = 0; l < 4; l++) {
            const int e = threadIdx.x + l * GT_THREADS;
            const int r = e / GT_EH_BK, kk = e % GT_EH_BK;
            const long long k = k0 + kk, m = m0 + r, n = n0 + r;
            const float a = (m < B && k < D) ? H[m * D + k] : 0.0f;
            const float b = (n < K && k < D) ? W[n * D + k] : 0.0f;
            sl.a[kk][r] = ROUND ? gt_round_operand(a, flags) : a;
            sl.b[kk][r] = ROUND ? gt_round_operand(b, flags) : b;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GT_EH_BK; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = sl.a[kk][4 * t.ty + i];
#pragma unroll
            for (int j = 0; j < 4; j++) b[j] = sl.b[kk][4 * t.tx + j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
        }
        // The slabs are rewritten by the next step.
        __syncthreads();
    }
}

// The products (template parameter P of the kernel bodies); the tensor-core
// values are gemm_tc.cu's GT_TC_* codes. GT_EH_ROUNDED is the SIMT product
// rounding its operands as flags says (the tf32/bf16 fallback below sm_80).
#define GT_EH_ROUNDED (-2)
#define GT_EH_FP32 (-1)
#define GT_EH_TF32 0
#define GT_EH_3XTF32 1
#define GT_EH_BF16 2

// The tensor-core tile product: GT_EH_TC_BK columns of D per slab, each
// operand's slab stored along k ([64][BK + PADK] floats, as gemm_tc.cu's
// along-k tiles and with its paddings, so that every fragment load of a
// warp hits 32 distinct banks: tf32 rows 20 words apart, 4g + t; bf16 24
// words, one 64-bit access per k pair). GT_EH_TC_SMEM floats hold either
// the two slabs (at most 2 x 64 x 24 = 3072) or the staged 64 x 64
// accumulator (row stride GT_EH_SP): a 64 x GT_EH_SP tile of the backward
// kernels (G, free while a tile is recomputed) can serve as this memory.
#define GT_EH_TC_BK 16
#define GT_EH_TC_PADK(P) ((P) == GT_EH_BF16 ? 8 : 4)
#define GT_EH_TC_SMEM (GT_EH_T * GT_EH_SP)

#ifdef GT_HAVE_TENSOR_CORES
// gt_eh_tc_split is gemm_tc.cu's gt_tc_split: hi = tf32(x) and the
// remainder lo = tf32(x - hi) (0 when hi is not finite).
__device__ __forceinline__ void gt_eh_tc_split(float x, unsigned& hi, unsigned& lo) {
    hi = gt_cvt_tf32(x);
    const float h = __int_as_float((int)hi);
    lo = isfinite(h) ? gt_cvt_tf32(x - h) : 0u;
}
#endif

// gt_eh_tc_product is gt_eh_product on tensor cores at precision P: acc is
// the same sums in the same (ty, tx) layout, the operands converted for
// the mma (see the top of the file), each output accumulated by one lane
// over k in increasing order (one mma chain per 16 x 8 tile), so the same
// inputs give the same bits. Global loads of the next slab are issued
// before the mma of the current one (held in registers) so that their
// latency overlaps the tensor-core work. sm: GT_EH_TC_SMEM floats of
// shared memory. All threads of the block must call it (it has barriers).
template <int P>
__device__ inline void gt_eh_tc_product(float* sm, const float* __restrict__ H, const float* __restrict__ W,
                                        long long B, long long K, long long D, long long m0, long long n0,
                                        gt_eh_thread t, float (&acc)[4][4]) {
#ifdef GT_HAVE_TENSOR_CORES
    constexpr int BK = GT_EH_TC_BK;
    constexpr int SK = BK + GT_EH_TC_PADK(P);
    constexpr int KSTEP = P == GT_EH_BF16 ? 16 : 8;
    static_assert(2 * GT_EH_T * SK <= GT_EH_TC_SMEM, "the slabs fit the staging tile");
    static_assert(GT_EH_T * BK == 4 * GT_THREADS, "4 elements of each operand per thread and slab");
    float* const As = sm;
    float* const Bs = sm + GT_EH_T * SK;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, q = lane % 4;
    const int wm0 = (warp / 2) * 16, wn0 = (warp % 2) * 32; // the warp's 16 x 32 block
    float d[4][4];
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int v = 0; v < 4; v++) d[j][v] = 0.0f;
    // 64 x 16 floats of each operand per slab: 4 per thread, 16 consecutive
    // k of one row per 16 threads (64-byte runs of H and W).
    float ra[4], rb[4];
    auto fetch = [&](long long k0) {
#pragma unroll
        for (int l = 0; l < 4; l++) {
            const int e = threadIdx.x + l * GT_THREADS;
            const int r = e / BK, kk = e % BK;
            const long long k = k0 + kk, m = m0 + r, n = n0 + r;
            ra[l] = (m < B && k < D) ? H[m * D + k] : 0.0f;
            rb[l] = (n < K && k < D) ? W[n * D + k] : 0.0f;
        }
    };
    if (D > 0) fetch(0);
    for (long long k0 = 0; k0 < D; k0 += BK) {
#pragma unroll
        for (int l = 0; l < 4; l++) {
            const int e = threadIdx.x + l * GT_THREADS;
            const int r = e / BK, kk = e % BK;
            As[r * SK + kk] = ra[l];
            Bs[r * SK + kk] = rb[l];
        }
        __syncthreads();
        if (k0 + BK < D) fetch(k0 + BK);
#pragma unroll
        for (int ks = 0; ks < BK; ks += KSTEP) {
            unsigned ah[4], al[4], bh[4][2], bl[4][2];
            const int r = wm0 + g;
            if (P == GT_EH_BF16) {
                const gt_f2 p0 = gt_lds2(As + r * SK + ks + 2 * q);
                const gt_f2 p1 = gt_lds2(As + (r + 8) * SK + ks + 2 * q);
                const gt_f2 p2 = gt_lds2(As + r * SK + ks + 2 * q + 8);
                const gt_f2 p3 = gt_lds2(As + (r + 8) * SK + ks + 2 * q + 8);
                ah[0] = gt_pack_bf16x2(p0.x, p0.y);
                ah[1] = gt_pack_bf16x2(p1.x, p1.y);
                ah[2] = gt_pack_bf16x2(p2.x, p2.y);
                ah[3] = gt_pack_bf16x2(p3.x, p3.y);
            } else {
                const float x[4] = {As[r * SK + ks + q], As[(r + 8) * SK + ks + q], As[r * SK + ks + q + 4],
                                    As[(r + 8) * SK + ks + q + 4]};
#pragma unroll
                for (int v = 0; v < 4; v++) {
                    if (P == GT_EH_3XTF32)
                        gt_eh_tc_split(x[v], ah[v], al[v]);
                    else
                        ah[v] = gt_cvt_tf32(x[v]);
                }
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int n = wn0 + 8 * j + g;
                if (P == GT_EH_BF16) {
                    const gt_f2 p0 = gt_lds2(Bs + n * SK + ks + 2 * q);
                    const gt_f2 p1 = gt_lds2(Bs + n * SK + ks + 2 * q + 8);
                    bh[j][0] = gt_pack_bf16x2(p0.x, p0.y);
                    bh[j][1] = gt_pack_bf16x2(p1.x, p1.y);
                    gt_mma_bf16(d[j], ah, bh[j]);
                } else if (P == GT_EH_3XTF32) {
                    gt_eh_tc_split(Bs[n * SK + ks + q], bh[j][0], bl[j][0]);
                    gt_eh_tc_split(Bs[n * SK + ks + q + 4], bh[j][1], bl[j][1]);
                    // Small terms first, as gemm_tc.cu (and cpu.GemmPrecision).
                    gt_mma_tf32(d[j], al, bh[j]);
                    gt_mma_tf32(d[j], ah, bl[j]);
                    gt_mma_tf32(d[j], ah, bh[j]);
                } else {
                    bh[j][0] = gt_cvt_tf32(Bs[n * SK + ks + q]);
                    bh[j][1] = gt_cvt_tf32(Bs[n * SK + ks + q + 4]);
                    gt_mma_tf32(d[j], ah, bh[j]);
                }
            }
        }
        // The slabs are rewritten by the next step (or by the staging).
        __syncthreads();
    }
    // Stage: lane (g, q) holds rows g and g + 8, columns 2q and 2q + 1 of
    // each 16 x 8 tile j; the block reads them back in the (ty, tx) layout.
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float* row = sm + (wm0 + g + 8 * h) * GT_EH_SP + wn0 + 8 * j + 2 * q;
            row[0] = d[j][2 * h];
            row[1] = d[j][2 * h + 1];
        }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = sm[(4 * t.ty + i) * GT_EH_SP + 4 * t.tx + j];
    // sm is the next product's slabs (or, in the backward, G).
    __syncthreads();
#else
    // Below sm_80 (the compute_70 PTX): device.Backend never launches the
    // gt_tc_eh_* kernels there.
    __trap();
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
#endif
}

// gt_eh_tile is the tile product of precision P: the SIMT one (pm is a
// gt_eh_slabs; with GT_EH_ROUNDED flags says how the operands are rounded)
// or the tensor-core one (pm is GT_EH_TC_SMEM floats; flags unused).
template <int P>
__device__ __forceinline__ void gt_eh_tile(void* pm, const float* __restrict__ H, const float* __restrict__ W,
                                           long long B, long long K, long long D, long long m0, long long n0,
                                           gt_eh_thread t, long long flags, float (&acc)[4][4]) {
    if (P == GT_EH_FP32)
        gt_eh_product<false>(*static_cast<gt_eh_slabs*>(pm), H, W, B, K, D, m0, n0, t, flags, acc);
    else if (P == GT_EH_ROUNDED)
        gt_eh_product<true>(*static_cast<gt_eh_slabs*>(pm), H, W, B, K, D, m0, n0, t, flags, acc);
    else
        gt_eh_tc_product<P>(static_cast<float*>(pm), H, W, B, K, D, m0, n0, t, acc);
}

// gt_eh_energy is the energy of an accumulator element: -acc + (-b), the
// operations of Gemm(alpha = -1) followed by AddRowVector(alpha = -1).
__device__ inline float gt_eh_energy(float acc, float b) { return -acc + -1.0f * b; }

// gt_eh_forward_body: see the top of the file. chunk is a multiple of 64.
// Partial (row, c) is at index row * nChunks + c: floats m, s, mi and E_C
// (E_C only in the chunk that holds the label), ints am, ai. pm is the
// product's shared memory (gt_eh_tile), red and ecs the row merge's.
template <int P>
__device__ __forceinline__ void gt_eh_forward_body(void* pm, gt_row_part (*red)[16], float* ecs, const float* H,
                                                   const float* W, const float* bias, const int* labels, long long B,
                                                   long long D, long long K, long long chunk, double beta,
                                                   float* partF, int* partI, long long flags) {
    const gt_eh_thread t = gt_eh_layout();
    const long long m0 = (long long)blockIdx.x * GT_EH_T, c = blockIdx.y, nChunks = gridDim.y;
    const long long lo = c * chunk, hi = lo + chunk < K ? lo + chunk : K;
    const float fbeta = (float)beta;
    gt_row_part p[4];
#pragma unroll
    for (int i = 0; i < 4; i++) p[i] = gt_part_empty();
    for (long long n0 = lo; n0 < hi; n0 += GT_EH_T) {
        float acc[4][4];
        gt_eh_tile<P>(pm, H, W, B, K, D, m0, n0, t, flags, acc);
        // The epilogue: each energy into its row's summary, answers in
        // increasing order within the thread.
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if (m0 + 4 * t.ty + i >= B) continue;
            // The row's label, read per tile (an L1 hit): held across the
            // tile loop in a 4-element array it was spilled to local memory
            // on sm_80 (12 bytes, reloaded every tile anyway).
            const int lab = labels[m0 + 4 * t.ty + i];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const long long y = n0 + 4 * t.tx + j;
                if (y >= hi) continue;
                const float e = gt_eh_energy(acc[i][j], bias[y]);
                gt_part_add(p[i], e, (int)y, lab, fbeta);
                if (y == lab) ecs[4 * t.ty + i] = e; // one thread of the grid sees the label
            }
        }
    }
    // Merge the 16 summaries of each row, tx = 0..15 in order.
#pragma unroll
    for (int i = 0; i < 4; i++) red[4 * t.ty + i][t.tx] = p[i];
    __syncthreads();
    if (threadIdx.x < GT_EH_T) {
        const int r = threadIdx.x;
        const long long row = m0 + r;
        if (row < B) {
            gt_row_part q = red[r][0];
            for (int s = 1; s < 16; s++) q = gt_part_merge(q, red[r][s], fbeta);
            const int label = labels[row];
            const bool hasLabel = label != GT_IGNORE && label >= lo && label < hi;
            const long long o = row * nChunks + c;
            partF[o * GT_EH_PART_F + 0] = q.m;
            partF[o * GT_EH_PART_F + 1] = q.s;
            partF[o * GT_EH_PART_F + 2] = q.mi;
            partF[o * GT_EH_PART_F + 3] = hasLabel ? ecs[r] : 0.0f;
            partI[o * GT_EH_PART_I + 0] = q.am;
            partI[o * GT_EH_PART_I + 1] = q.ai;
        }
    }
}

// gt_eh_merge: one thread per row (grid-stride), the row's nChunks partials
// folded in chunk order; writes stats, argmin and the row's coefficients.
extern "C" __global__ void gt_eh_merge(const int* labels, long long B, long long nChunks, long long chunk,
                                       long long kind, double beta, double margin, double gamma, double delta,
                                       double gradScale, const float* partF, const int* partI, float* stats,
                                       int* argmin, float* coefF, int* coefI) {
    const float fbeta = (float)beta;
    for (long long row = gt_global_id(); row < B; row += gt_global_stride()) {
        gt_row_part p = gt_part_empty();
        for (long long c = 0; c < nChunks; c++) {
            const long long o = row * nChunks + c;
            gt_row_part q;
            q.m = partF[o * GT_EH_PART_F + 0];
            q.s = partF[o * GT_EH_PART_F + 1];
            q.mi = partF[o * GT_EH_PART_F + 2];
            q.am = partI[o * GT_EH_PART_I + 0];
            q.ai = partI[o * GT_EH_PART_I + 1];
            p = gt_part_merge(p, q, fbeta);
        }
        const int label = labels[row];
        const float ec = label == GT_IGNORE ? 0.0f : partF[(row * nChunks + label / chunk) * GT_EH_PART_F + 3];
        const gt_row_coef k = gt_row_finish(p, ec, label, kind, beta, margin, gamma, delta, gradScale,
                                            stats + row * GT_NUM_STATS, argmin + row);
        float* f = coefF + row * GT_EH_COEF_F;
        f[0] = k.a;
        f[1] = k.b;
        f[2] = k.c;
        f[3] = k.m;
        f[4] = k.invS;
        coefI[row * GT_EH_COEF_I + 0] = k.ic;
        coefI[row * GT_EH_COEF_I + 1] = k.ij;
    }
}

// gt_eh_coef reads a row's coefficients (a zero gradient for rows >= B).
__device__ inline gt_row_coef gt_eh_coef(const float* coefF, const int* coefI, long long row, long long B) {
    gt_row_coef k;
    k.a = k.b = k.c = 0.0f;
    k.m = 0.0f;
    k.invS = 0.0f;
    k.ic = k.ij = GT_NONE;
    if (row < B) {
        const float* f = coefF + row * GT_EH_COEF_F;
        k.a = f[0];
        k.b = f[1];
        k.c = f[2];
        k.m = f[3];
        k.invS = f[4];
        k.ic = coefI[row * GT_EH_COEF_I + 0];
        k.ij = coefI[row * GT_EH_COEF_I + 1];
    }
    return k;
}

// gt_eh_or is a block-wide OR in a fixed order (warp shuffles, then the
// warps' results through shared memory); every thread gets the result.
__device__ inline int gt_eh_or(int x, int* warpFlags) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) x |= __shfl_xor_sync(0xffffffffu, x, off);
    if (threadIdx.x % 32 == 0) warpFlags[threadIdx.x / 32] = x;
    __syncthreads();
    int r = 0;
    for (int w = 0; w < GT_THREADS / 32; w++) r |= warpFlags[w];
    // warpFlags is rewritten by the next call.
    __syncthreads();
    return r;
}

// What a backward tile needs (gt_eh_grad_tile's result).
#define GT_EH_SKIP 0   // nothing: every element of dE is 0
#define GT_EH_FULL 1   // the whole tile: dE is in S
#define GT_EH_SPARSE 2 // only the rows' label and other answer (gt_eh_sparse_*)

// gt_eh_grad_tile recomputes the energies of rows m0.. and answers n0..
// (a dense loss: NLL, MEE) and decides what the tile needs: GT_EH_FULL,
// with dE in S (rows x answers, 0 outside), when some element is nonzero
// and, with filterEps > 0, some probability P_y >= filterEps; else
// GT_EH_SPARSE when some row's label or other answer (coefficients a, b)
// lies in the tile, else GT_EH_SKIP.
template <int P>
__device__ inline int gt_eh_grad_tile(void* pm, float (*S)[GT_EH_SP], int* warpFlags, const float* H,
                                      const float* W, const float* bias, long long B, long long K, long long D,
                                      long long m0, long long n0, const float* coefF, const int* coefI, float fbeta,
                                      float filterEps, gt_eh_thread t, long long roundFlags) {
    float acc[4][4];
    gt_eh_tile<P>(pm, H, W, B, K, D, m0, n0, t, roundFlags, acc);
    const bool filter = filterEps > 0.0f;
    int flags = 0; // bit 0: the dense part is needed; bit 1: a label or other answer is here
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const long long row = m0 + 4 * t.ty + i;
        const gt_row_coef k = gt_eh_coef(coefF, coefI, row, B);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const long long y = n0 + 4 * t.tx + j;
            float g = 0.0f;
            if (row < B && y < K) {
                const float e = gt_eh_energy(acc[i][j], bias[y]);
                g = gt_grad(e, y, k, fbeta);
                if (filter && ((y == k.ic && k.a != 0.0f) || (y == k.ij && k.b != 0.0f))) flags |= 2;
                if (!filter) {
                    if (g != 0.0f) flags |= 1;
                } else if (k.c != 0.0f && expf(-fbeta * (e - k.m)) * k.invS >= filterEps) {
                    flags |= 1;
                }
            }
            acc[i][j] = g;
        }
    }
    flags = gt_eh_or(flags, warpFlags);
    if ((flags & 1) == 0) return (flags & 2) ? GT_EH_SPARSE : GT_EH_SKIP;
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) S[4 * t.ty + i][4 * t.tx + j] = acc[i][j];
    __syncthreads();
    return GT_EH_FULL;
}

// gt_eh_sparse_w adds -a_i h_i to dW[ic_i] and -b_i h_i to dW[ij_i] for
// the rows i of [m0, m0+64) whose label ic_i (other answer ij_i) lies in
// [n0, n0+64), rows in order, the threads splitting D; and a_i (b_i) to
// the running column sums of dE that threads 0..63 hold for answers n0+t.
__device__ inline void gt_eh_sparse_w(float* dW, double& dbAcc, const float* H, long long B, long long D,
                                      long long m0, long long n0, const float* coefF, const int* coefI) {
    for (int r = 0; r < GT_EH_T && m0 + r < B; r++) {
        const long long row = m0 + r;
        const gt_row_coef k = gt_eh_coef(coefF, coefI, row, B);
        const long long ys[2] = {k.ic, k.ij};
        const float cs[2] = {k.a, k.b};
        for (int q = 0; q < 2; q++) {
            const long long y = ys[q];
            if (cs[q] == 0.0f || y < n0 || y >= n0 + GT_EH_T) continue;
            for (long long d = threadIdx.x; d < D; d += GT_THREADS) dW[y * D + d] += -(cs[q] * H[row * D + d]);
            if (threadIdx.x == y - n0) dbAcc += (double)cs[q];
        }
    }
    // Other threads update these elements next (gt_eh_accumulate).
    __syncthreads();
}

// gt_eh_sparse_h adds -(a_i w_ic + b_i w_ij) to row i of out for the rows
// i of [m0, m0+64) whose label or other answer lies in [n0, n0+64).
__device__ inline void gt_eh_sparse_h(float* out, const float* W, long long B, long long D, long long m0,
                                      long long n0, const float* coefF, const int* coefI) {
    for (int r = 0; r < GT_EH_T && m0 + r < B; r++) {
        const long long row = m0 + r;
        const gt_row_coef k = gt_eh_coef(coefF, coefI, row, B);
        const long long ys[2] = {k.ic, k.ij};
        const float cs[2] = {k.a, k.b};
        for (int q = 0; q < 2; q++) {
            const long long y = ys[q];
            if (cs[q] == 0.0f || y < n0 || y >= n0 + GT_EH_T) continue;
            for (long long d = threadIdx.x; d < D; d += GT_THREADS) out[row * D + d] += -(cs[q] * W[y * D + d]);
        }
    }
    __syncthreads();
}

// gt_eh_accumulate adds -sum_{l < 64} X(l, r) G[l][c] to the 64 x 64 block
// of out at (r0, d0) (row stride D; rows < R, columns < D), where X(l, r)
// is S[l][r] (tr: S^T for dW) or S[r][l] (dH). Thread (ty, tx) owns out
// rows 4ty + i and columns 4tx + j; l runs in increasing order.
__device__ inline void gt_eh_accumulate(float* out, long long R, long long D, long long r0, long long d0,
                                        float (*S)[GT_EH_SP], float (*G)[GT_EH_SP], bool tr, gt_eh_thread t) {
    float s[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) s[i][j] = 0.0f;
    for (int l = 0; l < GT_EH_T; l++) {
        float x[4], g[4];
#pragma unroll
        for (int i = 0; i < 4; i++) x[i] = tr ? S[l][4 * t.ty + i] : S[4 * t.ty + i][l];
#pragma unroll
        for (int j = 0; j < 4; j++) g[j] = G[l][4 * t.tx + j];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) s[i][j] += x[i] * g[j];
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const long long r = r0 + 4 * t.ty + i;
        if (r >= R) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const long long d = d0 + 4 * t.tx + j;
            if (d < D) out[r * D + d] += -s[i][j];
        }
    }
}

// gt_eh_stage loads rows l0.. (< L) and columns d0.. (< D) of X (L x D)
// into G, zero outside.
__device__ inline void gt_eh_stage(float (*G)[GT_EH_SP], const float* X, long long L, long long D, long long l0,
                                   long long d0) {
    for (int e = threadIdx.x; e < GT_EH_T * GT_EH_T; e += GT_THREADS) {
        const int l = e / GT_EH_T, d = e % GT_EH_T;
        G[l][d] = (l0 + l < L && d0 + d < D) ? X[(l0 + l) * D + d0 + d] : 0.0f;
    }
}

// gt_eh_grad_w_body: block n owns dW[64n .. 64n+63, :] and the same
// entries of db. counts[2n] and counts[2n+1] receive the tiles it skipped
// and the tiles it examined. pm: the product's shared memory (for the
// tensor-core product G itself, which is free while a tile is recomputed).
template <int P>
__device__ __forceinline__ void gt_eh_grad_w_body(void* pm, float (*S)[GT_EH_SP], float (*G)[GT_EH_SP],
                                                  int* warpFlags, const float* H, const float* W, const float* bias,
                                                  long long B, long long D, long long K, double beta, long long dense,
                                                  double filterEps, const float* coefF, const int* coefI, float* dW,
                                                  float* db, long long* counts, long long flags) {
    const gt_eh_thread t = gt_eh_layout();
    const long long n0 = (long long)blockIdx.x * GT_EH_T;
    // This block's rows of dW start at zero; only this block touches them.
    for (long long e = threadIdx.x; e < GT_EH_T * D; e += GT_THREADS) {
        const long long y = n0 + e / D;
        if (y < K) dW[y * D + e % D] = 0.0f;
    }
    __syncthreads();
    double dbAcc = 0.0;
    long long skipped = 0, total = 0;
    for (long long m0 = 0; m0 < B; m0 += GT_EH_T) {
        const int what = dense ? gt_eh_grad_tile<P>(pm, S, warpFlags, H, W, bias, B, K, D, m0, n0, coefF, coefI,
                                                    (float)beta, (float)filterEps, t, flags)
                               : GT_EH_SPARSE;
        if (dense) {
            total++;
            skipped += what != GT_EH_FULL;
        }
        if (what == GT_EH_SPARSE) gt_eh_sparse_w(dW, dbAcc, H, B, D, m0, n0, coefF, coefI);
        if (what != GT_EH_FULL) continue;
        if (threadIdx.x < GT_EH_T)
            for (int r = 0; r < GT_EH_T; r++) dbAcc += (double)S[r][threadIdx.x];
        // S is read until here even when D == 0 (no barrier below).
        __syncthreads();
        for (long long d0 = 0; d0 < D; d0 += GT_EH_T) {
            gt_eh_stage(G, H, B, D, m0, d0);
            __syncthreads();
            gt_eh_accumulate(dW, K, D, n0, d0, S, G, true, t);
            // G (and, after the last d0, S) is rewritten next.
            __syncthreads();
        }
    }
    if (threadIdx.x < GT_EH_T && n0 + threadIdx.x < K) db[n0 + threadIdx.x] = (float)(-1.0 * dbAcc);
    if (threadIdx.x == 0) {
        counts[2 * blockIdx.x] = skipped;
        counts[2 * blockIdx.x + 1] = total;
    }
}

// gt_eh_grad_h_body: block (x, g) owns rows 64x.. of out + g*B*D (the g-th
// partial of dH, or dH itself when G = 1), summing over the answers
// [g*group, (g+1)*group) (group a multiple of 64). counts as
// gt_eh_grad_w's, at index x*G + g. pm as gt_eh_grad_w_body's.
template <int P>
__device__ __forceinline__ void gt_eh_grad_h_body(void* pm, float (*S)[GT_EH_SP], float (*G)[GT_EH_SP],
                                                  int* warpFlags, const float* H, const float* W, const float* bias,
                                                  long long B, long long D, long long K, long long group, double beta,
                                                  long long dense, double filterEps, const float* coefF,
                                                  const int* coefI, float* out, long long* counts, long long flags) {
    const gt_eh_thread t = gt_eh_layout();
    const long long m0 = (long long)blockIdx.x * GT_EH_T, g = blockIdx.y;
    const long long lo = g * group, hi = lo + group < K ? lo + group : K;
    float* const part = out + g * B * D;
    for (long long e = threadIdx.x; e < GT_EH_T * D; e += GT_THREADS) {
        const long long r = m0 + e / D;
        if (r < B) part[r * D + e % D] = 0.0f;
    }
    __syncthreads();
    long long skipped = 0, total = 0;
    for (long long n0 = lo; n0 < hi; n0 += GT_EH_T) {
        const int what = dense ? gt_eh_grad_tile<P>(pm, S, warpFlags, H, W, bias, B, K, D, m0, n0, coefF, coefI,
                                                    (float)beta, (float)filterEps, t, flags)
                               : GT_EH_SPARSE;
        if (dense) {
            total++;
            skipped += what != GT_EH_FULL;
        }
        if (what == GT_EH_SPARSE) gt_eh_sparse_h(part, W, B, D, m0, n0, coefF, coefI);
        if (what != GT_EH_FULL) continue;
        for (long long d0 = 0; d0 < D; d0 += GT_EH_T) {
            gt_eh_stage(G, W, K, D, n0, d0);
            __syncthreads();
            gt_eh_accumulate(part, B, D, m0, d0, S, G, false, t);
            __syncthreads();
        }
    }
    if (threadIdx.x == 0) {
        const long long o = (long long)blockIdx.x * gridDim.y + g;
        counts[2 * o] = skipped;
        counts[2 * o + 1] = total;
    }
}

// ---- The entry points ----
//
// Spelled out (as in gemm.cu) so that tools scanning for extern "C"
// kernels, and their static shared memory, see them. The SIMT kernels
// declare the SIMT slabs; the tensor-core ones a GT_EH_TC_SMEM-float tile
// instead (forward) or nothing extra (backward: the product runs in G).
// Every kernel of one pass has the same parameters, flags last, so
// device.Backend only changes the name.
//
// Registers: the SIMT forwards ask for 3 blocks per SM (<= 80 registers),
// which ptxas meets without spilling on sm_80 and sm_90 and which keeps the
// 3 blocks of 29 KiB an SM held before the kernels became templates (left
// alone, ptxas took 101 registers: 2 blocks). The tensor-core forwards spill
// 40-100 bytes under that bound, so they keep the default (86-87
// registers, 2 blocks); the backward kernels take 80 (SIMT) and 125-128
// (tensor cores) registers, 2 blocks of 41 or 33 KiB, without bounds.

#define GT_EH_FWD_PARAMS                                                                                        \
    const float *H, const float *W, const float *bias, const int *labels, long long B, long long D, long long K, \
        long long chunk, double beta, float *partF, int *partI, long long flags
#define GT_EH_FWD_ARGS H, W, bias, labels, B, D, K, chunk, beta, partF, partI, flags
#define GT_EH_GW_PARAMS                                                                                        \
    const float *H, const float *W, const float *bias, long long B, long long D, long long K, double beta,      \
        long long dense, double filterEps, const float *coefF, const int *coefI, float *dW, float *db,        \
        long long *counts, long long flags
#define GT_EH_GW_ARGS H, W, bias, B, D, K, beta, dense, filterEps, coefF, coefI, dW, db, counts, flags
#define GT_EH_GH_PARAMS                                                                                        \
    const float *H, const float *W, const float *bias, long long B, long long D, long long K, long long group, \
        double beta, long long dense, double filterEps, const float *coefF, const int *coefI, float *out,      \
        long long *counts, long long flags
#define GT_EH_GH_ARGS H, W, bias, B, D, K, group, beta, dense, filterEps, coefF, coefI, out, counts, flags

extern "C" __global__ void __launch_bounds__(256, 3) gt_eh_forward(GT_EH_FWD_PARAMS) {
    __shared__ gt_eh_slabs sl;
    __shared__ gt_row_part red[GT_EH_T][16];
    __shared__ float ecs[GT_EH_T];
    gt_eh_forward_body<GT_EH_FP32>(&sl, red, ecs, GT_EH_FWD_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) gt_eh_grad_w(GT_EH_GW_PARAMS) {
    __shared__ gt_eh_slabs sl;
    __shared__ float S[GT_EH_T][GT_EH_SP];
    __shared__ float G[GT_EH_T][GT_EH_SP];
    __shared__ int warpFlags[GT_THREADS / 32];
    gt_eh_grad_w_body<GT_EH_FP32>(&sl, S, G, warpFlags, GT_EH_GW_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) gt_eh_grad_h(GT_EH_GH_PARAMS) {
    __shared__ gt_eh_slabs sl;
    __shared__ float S[GT_EH_T][GT_EH_SP];
    __shared__ float G[GT_EH_T][GT_EH_SP];
    __shared__ int warpFlags[GT_THREADS / 32];
    gt_eh_grad_h_body<GT_EH_FP32>(&sl, S, G, warpFlags, GT_EH_GH_ARGS);
}
extern "C" __global__ void __launch_bounds__(256, 3) gt_eh_forward_rounded(GT_EH_FWD_PARAMS) {
    __shared__ gt_eh_slabs sl;
    __shared__ gt_row_part red[GT_EH_T][16];
    __shared__ float ecs[GT_EH_T];
    gt_eh_forward_body<GT_EH_ROUNDED>(&sl, red, ecs, GT_EH_FWD_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) gt_eh_grad_w_rounded(GT_EH_GW_PARAMS) {
    __shared__ gt_eh_slabs sl;
    __shared__ float S[GT_EH_T][GT_EH_SP];
    __shared__ float G[GT_EH_T][GT_EH_SP];
    __shared__ int warpFlags[GT_THREADS / 32];
    gt_eh_grad_w_body<GT_EH_ROUNDED>(&sl, S, G, warpFlags, GT_EH_GW_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) gt_eh_grad_h_rounded(GT_EH_GH_PARAMS) {
    __shared__ gt_eh_slabs sl;
    __shared__ float S[GT_EH_T][GT_EH_SP];
    __shared__ float G[GT_EH_T][GT_EH_SP];
    __shared__ int warpFlags[GT_THREADS / 32];
    gt_eh_grad_h_body<GT_EH_ROUNDED>(&sl, S, G, warpFlags, GT_EH_GH_ARGS);
}

extern "C" __global__ void __launch_bounds__(256) gt_tc_eh_forward_tf32(GT_EH_FWD_PARAMS) {
    __shared__ float tcs[GT_EH_TC_SMEM];
    __shared__ gt_row_part red[GT_EH_T][16];
    __shared__ float ecs[GT_EH_T];
    gt_eh_forward_body<GT_EH_TF32>(tcs, red, ecs, GT_EH_FWD_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) gt_tc_eh_grad_w_tf32(GT_EH_GW_PARAMS) {
    __shared__ float S[GT_EH_T][GT_EH_SP];
    __shared__ float G[GT_EH_T][GT_EH_SP];
    __shared__ int warpFlags[GT_THREADS / 32];
    gt_eh_grad_w_body<GT_EH_TF32>(&G[0][0], S, G, warpFlags, GT_EH_GW_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) gt_tc_eh_grad_h_tf32(GT_EH_GH_PARAMS) {
    __shared__ float S[GT_EH_T][GT_EH_SP];
    __shared__ float G[GT_EH_T][GT_EH_SP];
    __shared__ int warpFlags[GT_THREADS / 32];
    gt_eh_grad_h_body<GT_EH_TF32>(&G[0][0], S, G, warpFlags, GT_EH_GH_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) gt_tc_eh_forward_3xtf32(GT_EH_FWD_PARAMS) {
    __shared__ float tcs[GT_EH_TC_SMEM];
    __shared__ gt_row_part red[GT_EH_T][16];
    __shared__ float ecs[GT_EH_T];
    gt_eh_forward_body<GT_EH_3XTF32>(tcs, red, ecs, GT_EH_FWD_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) gt_tc_eh_grad_w_3xtf32(GT_EH_GW_PARAMS) {
    __shared__ float S[GT_EH_T][GT_EH_SP];
    __shared__ float G[GT_EH_T][GT_EH_SP];
    __shared__ int warpFlags[GT_THREADS / 32];
    gt_eh_grad_w_body<GT_EH_3XTF32>(&G[0][0], S, G, warpFlags, GT_EH_GW_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) gt_tc_eh_grad_h_3xtf32(GT_EH_GH_PARAMS) {
    __shared__ float S[GT_EH_T][GT_EH_SP];
    __shared__ float G[GT_EH_T][GT_EH_SP];
    __shared__ int warpFlags[GT_THREADS / 32];
    gt_eh_grad_h_body<GT_EH_3XTF32>(&G[0][0], S, G, warpFlags, GT_EH_GH_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) gt_tc_eh_forward_bf16(GT_EH_FWD_PARAMS) {
    __shared__ float tcs[GT_EH_TC_SMEM];
    __shared__ gt_row_part red[GT_EH_T][16];
    __shared__ float ecs[GT_EH_T];
    gt_eh_forward_body<GT_EH_BF16>(tcs, red, ecs, GT_EH_FWD_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) gt_tc_eh_grad_w_bf16(GT_EH_GW_PARAMS) {
    __shared__ float S[GT_EH_T][GT_EH_SP];
    __shared__ float G[GT_EH_T][GT_EH_SP];
    __shared__ int warpFlags[GT_THREADS / 32];
    gt_eh_grad_w_body<GT_EH_BF16>(&G[0][0], S, G, warpFlags, GT_EH_GW_ARGS);
}
extern "C" __global__ void __launch_bounds__(256) gt_tc_eh_grad_h_bf16(GT_EH_GH_PARAMS) {
    __shared__ float S[GT_EH_T][GT_EH_SP];
    __shared__ float G[GT_EH_T][GT_EH_SP];
    __shared__ int warpFlags[GT_THREADS / 32];
    gt_eh_grad_h_body<GT_EH_BF16>(&G[0][0], S, G, warpFlags, GT_EH_GH_ARGS);
}

// gt_eh_grad_h_merge: dH[e] = sum_{g < G} part[g][e], g in order.
extern "C" __global__ void gt_eh_grad_h_merge(float* dH, const float* part, long long n, long long G) {
    for (long long e = gt_global_id(); e < n; e += gt_global_stride()) {
        float s = part[e];
        for (long long g = 1; g < G; g++) s += part[g * n + e];
        dH[e] = s;
    }
}
