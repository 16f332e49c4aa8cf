// energyloss.cu: the fused energy-loss operation (model.Backend.EnergyLoss).
//
// For every row i of the energies E (B x K) with label Y_i, one read of the
// row gives, with an online minimum/sum:
//   m     = min_y E_y and its argmin (ties to the lowest y),
//   s     = sum_y exp(-beta (E_y - m)), so log Z = -beta m + log s,
//   E_I   = min_{y != Y_i} E_y and its index (ties lowest; +Inf if K == 1),
// and E_C = E_{Y_i}. From (E_C, E_I, log Z) follow the loss and its gradient
// for all ten losses of model/loss.go; the gradient is written over E in
// place as gradScale * dL/dE (no second B x K buffer), and the row's
// statistics (loss, log Z, E_C, E_I) and argmin are stored.
//
// Every loss's gradient has the form
//   dL/dE_y = a 1[y == Y_i] + b 1[y == J] + c P_y,  P_y = exp(-beta E_y) / Z,
// with J the most offending answer (the overall argmin for the perceptron),
// so a row is finished by three coefficients.
//
// Launch plans, chosen by device.Backend:
//   gt_energy_loss_cached           the row is kept in (dynamic) shared
//       memory between the reduction and the gradient, so E is read from
//       global memory once and the gradient written once: the compulsory
//       traffic. Block (T, R): R rows per block, T threads per row. T = 32,
//       R = 8 ("a warp per row") for short rows; T up to 1024, R = 1 ("a
//       block per row") for rows up to the shared-memory limit (227 KiB on
//       an H100: K up to about 58000).
//   gt_energy_loss                  one block per row, no cache: it reads
//       the row twice (the second time mostly from L2 for short rows). For
//       drivers that allow too little shared memory for the row.
//   gt_energy_loss_partial + _merge rows too long for one block (K up to
//       millions): blocks reduce chunks of a row to partials, then every
//       block of the merge kernel folds all partials of its row in the same
//       fixed order (so all agree bitwise) and writes its chunk's gradient.
//       This reads E twice (partial, then merge) and writes it once: the
//       gradient needs the whole row's minimum and sum, which no block of a
//       split row has until the others finish, and a row of K = 131072
//       floats (512 KiB) exceeds one SM's shared memory and registers
//       together. The way to a single pass there is an H100 thread-block
//       cluster: 4 blocks of a cluster each cache a quarter of the row in
//       their shared memory and exchange partials through distributed
//       shared memory (cluster.sync()); not used here because the CPU
//       emulator, which tests these sources, has no clusters.
// All reduce in a fixed order: the same inputs give the same bits, run
// after run, whatever order the hardware schedules blocks and threads in.
#include "gputrain.cuh"
#include "energyrow.cuh"

// GT_LOSS_NO_GRADIENT, OR-ed into the kind argument of gt_energy_loss,
// gt_energy_loss_cached and gt_energy_loss_merge, makes them forward-only
// (model.ForwardLoss, evaluation): the statistics and argmin exactly as
// with the gradient, and E left as it was.
#define GT_LOSS_NO_GRADIENT 0x100

// gt_part_reduce folds the threads' summaries in a fixed tree (blockDim.x is
// a power of two) and returns the block's summary to every thread.
__device__ inline gt_row_part gt_part_reduce(gt_row_part* sh, gt_row_part p, float beta) {
    const int t = threadIdx.x;
    sh[t] = p;
    __syncthreads();
    for (int off = blockDim.x / 2; off > 0; off >>= 1) {
        if (t < off) sh[t] = gt_part_merge(sh[t], sh[t + off], beta);
        __syncthreads();
    }
    gt_row_part r = sh[0];
    // sh is reused by the next reduction: everyone must have read sh[0].
    __syncthreads();
    return r;
}

// gt_part_scan summarises E[lo, hi) of one row: thread t takes lo+t,
// lo+t+blockDim.x, ... (coalesced), then the block reduces.
__device__ inline gt_row_part gt_part_scan(gt_row_part* sh, const float* row, long long lo, long long hi,
                                           int label, float beta) {
    gt_row_part p = gt_part_empty();
    for (long long y = lo + threadIdx.x; y < hi; y += blockDim.x) gt_part_add(p, row[y], (int)y, label, beta);
    return gt_part_reduce(sh, p, beta);
}

// gt_row_write overwrites E[lo, hi) of one row with the gradient.
__device__ inline void gt_row_write(float* row, long long lo, long long hi, const gt_row_coef& k, float beta) {
    for (long long y = lo + threadIdx.x; y < hi; y += blockDim.x) row[y] = gt_grad(row[y], y, k, beta);
}

// gt_energy_loss: one block per row (grid-stride over rows), blockDim.x a
// power of two <= GT_THREADS, no cache: reads the row twice. Labels were
// validated before the launch (for every plan).
extern "C" __global__ void gt_energy_loss(float* E, const int* labels, long long B, long long K,
                                          long long kind, double beta, double margin, double gamma,
                                          double delta, double gradScale, float* stats, int* argmin) {
    __shared__ gt_row_part sh[GT_THREADS];
    __shared__ gt_row_coef coef;
    const bool grad = (kind & GT_LOSS_NO_GRADIENT) == 0;
    kind &= ~(long long)GT_LOSS_NO_GRADIENT;
    const float fbeta = (float)beta;
    for (long long i = blockIdx.x; i < B; i += gridDim.x) {
        float* row = E + i * K;
        const int label = labels[i];
        const gt_row_part p = gt_part_scan(sh, row, 0, K, label, fbeta);
        // Every thread has finished reading the row (gt_part_reduce ends
        // with a barrier), so thread 0 may read E_C and others may write.
        if (threadIdx.x == 0) {
            const float ec = label == GT_IGNORE ? 0.0f : row[label];
            coef = gt_row_finish(p, ec, label, kind, beta, margin, gamma, delta, gradScale,
                                 stats + i * GT_NUM_STATS, argmin + i);
        }
        __syncthreads();
        const gt_row_coef k = coef;
        if (grad) gt_row_write(row, 0, K, k, fbeta);
        // coef is rewritten for the next row.
        __syncthreads();
    }
}

// ---- the cached plan ----

// Most row groups (and warps) of a gt_energy_loss_cached block: 1024 / 32.
#define GT_EL_MAX_GROUPS 32

// gt_part_shfl_down is __shfl_down_sync of a whole summary, field by field.
__device__ inline gt_row_part gt_part_shfl_down(const gt_row_part& p, int off) {
    gt_row_part q;
    q.m = __shfl_down_sync(0xffffffffu, p.m, off);
    q.s = __shfl_down_sync(0xffffffffu, p.s, off);
    q.am = __shfl_down_sync(0xffffffffu, p.am, off);
    q.mi = __shfl_down_sync(0xffffffffu, p.mi, off);
    q.ai = __shfl_down_sync(0xffffffffu, p.ai, off);
    return q;
}

// gt_part_warp_reduce folds the 32 lanes' summaries in a fixed tree (lane l
// takes lane l + off for off = 16, 8, 4, 2, 1); lane 0 gets the warp's.
__device__ inline gt_row_part gt_part_warp_reduce(gt_row_part p, float beta) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) p = gt_part_merge(p, gt_part_shfl_down(p, off), beta);
    return p;
}

// gt_el_sync orders the shared-memory accesses of a row group: its warp
// when a row has one warp (the groups then run independently), else the
// block. blockDim.x is uniform, so every thread takes the same branch.
__device__ inline void gt_el_sync() {
    if (blockDim.x == 32)
        __syncwarp();
    else
        __syncthreads();
}

// gt_energy_loss_cached: block (T, R), T a power of two in [32, 1024],
// R * T <= 1024; thread (x, y) works on row y of the block's R rows. Dynamic
// shared memory: R rows of ldc = K rounded up to a multiple of 4 floats.
// Grid-stride over groups of R rows. vec != 0: K is a multiple of 4 and E
// 16-byte aligned, so rows are read and written 128 bits at a time.
//
// Per row: the row's threads read it once from global memory (thread x
// takes float4 x, x+T, ... : coalesced), copy it to shared memory and fold
// each value into an online summary in order; the summaries are reduced by
// warp shuffles and then, with several warps per row, across warps through
// shared memory, both in a fixed tree. Thread 0 of the row finishes it
// (E_C from the cached row), and every thread writes the gradient of the
// elements it cached itself from shared memory: E is read once and
// written once. 1024 threads per row need at most 64 registers each.
extern "C" __global__ void __launch_bounds__(1024)
    gt_energy_loss_cached(float* E, const int* labels, long long B, long long K, long long kind, double beta,
                          double margin, double gamma, double delta, double gradScale, float* stats, int* argmin,
                          long long vec) {
    GT_DYNAMIC_SHARED(gt_f4, gt_el_cache);
    __shared__ gt_row_part warpParts[GT_EL_MAX_GROUPS];
    __shared__ gt_row_coef coefs[GT_EL_MAX_GROUPS];
    const int T = blockDim.x, R = blockDim.y, x = threadIdx.x, ry = threadIdx.y;
    const int lane = x % 32, W = T / 32, w = x / 32; // warps per row, this thread's warp in the row
    const bool grad = (kind & GT_LOSS_NO_GRADIENT) == 0;
    kind &= ~(long long)GT_LOSS_NO_GRADIENT;
    const float fbeta = (float)beta;
    const long long ldc = (K + 3) / 4 * 4;
    float* const cache = reinterpret_cast<float*>(gt_el_cache) + ry * ldc;
    const long long nq = K / 4; // float4 groups of a row (vec only)
    // Independent 128-bit loads in flight per thread before any is used.
    const int U = 4;

    for (long long i0 = (long long)blockIdx.x * R; i0 < B; i0 += (long long)gridDim.x * R) {
        // Rows past B: their threads still reach every barrier.
        const long long i = i0 + ry;
        const bool active = i < B;
        float* const row = E + i * K;
        const int label = active ? labels[i] : GT_IGNORE;

        gt_row_part p = gt_part_empty();
        if (active && vec) {
            for (long long q0 = x; q0 < nq; q0 += U * T) {
                gt_f4 v[U];
#pragma unroll
                for (int u = 0; u < U; u++)
                    if (q0 + u * T < nq) v[u] = gt_load4(row + 4 * (q0 + u * T));
#pragma unroll
                for (int u = 0; u < U; u++) {
                    const long long q = q0 + u * T;
                    if (q < nq) {
                        gt_sts4(cache + 4 * q, v[u]);
                        gt_part_add(p, v[u].x, (int)(4 * q + 0), label, fbeta);
                        gt_part_add(p, v[u].y, (int)(4 * q + 1), label, fbeta);
                        gt_part_add(p, v[u].z, (int)(4 * q + 2), label, fbeta);
                        gt_part_add(p, v[u].w, (int)(4 * q + 3), label, fbeta);
                    }
                }
            }
        } else if (active) {
            for (long long y0 = x; y0 < K; y0 += U * T) {
                float v[U];
#pragma unroll
                for (int u = 0; u < U; u++)
                    if (y0 + u * T < K) v[u] = row[y0 + u * T];
#pragma unroll
                for (int u = 0; u < U; u++) {
                    const long long y = y0 + u * T;
                    if (y < K) {
                        cache[y] = v[u];
                        gt_part_add(p, v[u], (int)y, label, fbeta);
                    }
                }
            }
        }

        // Reduce: within each warp, then (several warps per row) across the
        // row's warps, whose summaries lane 0s leave in warpParts.
        p = gt_part_warp_reduce(p, fbeta);
        if (W > 1 && lane == 0) warpParts[ry * W + w] = p;
        // Also publishes the cached row to thread 0, which reads E_C.
        gt_el_sync();
        if (W > 1 && w == 0) {
            p = lane < W ? warpParts[ry * W + lane] : gt_part_empty();
            p = gt_part_warp_reduce(p, fbeta);
        }
        if (x == 0 && active) {
            const float ec = label == GT_IGNORE ? 0.0f : cache[label];
            coefs[ry] = gt_row_finish(p, ec, label, kind, beta, margin, gamma, delta, gradScale,
                                      stats + i * GT_NUM_STATS, argmin + i);
        }
        gt_el_sync();

        // Write the gradient of the elements this thread cached. The next
        // row's first barrier comes after every thread has read coefs[ry]
        // and warpParts, so no barrier is needed before they are rewritten.
        if (active && grad) {
            const gt_row_coef k = coefs[ry];
            if (vec) {
                for (long long q = x; q < nq; q += T) {
                    const gt_f4 v = gt_lds4(cache + 4 * q);
                    gt_f4 g;
                    g.x = gt_grad(v.x, 4 * q + 0, k, fbeta);
                    g.y = gt_grad(v.y, 4 * q + 1, k, fbeta);
                    g.z = gt_grad(v.z, 4 * q + 2, k, fbeta);
                    g.w = gt_grad(v.w, 4 * q + 3, k, fbeta);
                    gt_store4(row + 4 * q, g);
                }
            } else {
                for (long long y = x; y < K; y += T) row[y] = gt_grad(cache[y], y, k, fbeta);
            }
        }
    }
}

// Partials of the split path: for chunk c of row i, 4 floats (m, s, mi, E_C)
// and 2 ints (am, ai) at index i * nChunks + c. Only chunk 0 stores E_C.
#define GT_PART_F 4
#define GT_PART_I 2

// gt_energy_loss_partial: grid (B, nChunks), block a power of two <=
// GT_THREADS; block (i, c) summarises E[i, c*chunk : (c+1)*chunk).
extern "C" __global__ void gt_energy_loss_partial(const float* E, const int* labels, long long B, long long K,
                                                  long long chunk, double beta, float* partF, int* partI) {
    __shared__ gt_row_part sh[GT_THREADS];
    const long long i = blockIdx.x, c = blockIdx.y;
    if (i >= B) return;
    const long long lo = c * chunk;
    const long long hi = lo + chunk < K ? lo + chunk : K;
    const int label = labels[i];
    const float* row = E + i * K;
    const gt_row_part p = gt_part_scan(sh, row, lo, hi, label, (float)beta);
    if (threadIdx.x == 0) {
        const long long o = i * gridDim.y + c;
        partF[o * GT_PART_F + 0] = p.m;
        partF[o * GT_PART_F + 1] = p.s;
        partF[o * GT_PART_F + 2] = p.mi;
        partF[o * GT_PART_F + 3] = (c == 0 && label != GT_IGNORE) ? row[label] : 0.0f;
        partI[o * GT_PART_I + 0] = p.am;
        partI[o * GT_PART_I + 1] = p.ai;
    }
}

// gt_energy_loss_merge: same grid as the partial kernel. Every block folds
// all partials of its row (thread t takes t, t+blockDim.x, ... in order, then
// the fixed tree), so the blocks of a row agree bitwise; block (i, 0) stores
// the statistics, and block (i, c) writes the gradient of chunk c.
extern "C" __global__ void gt_energy_loss_merge(float* E, const int* labels, long long B, long long K,
                                                long long chunk, long long kind, double beta, double margin,
                                                double gamma, double delta, double gradScale,
                                                const float* partF, const int* partI, float* stats,
                                                int* argmin) {
    __shared__ gt_row_part sh[GT_THREADS];
    __shared__ gt_row_coef coef;
    const long long i = blockIdx.x, c = blockIdx.y, nChunks = gridDim.y;
    if (i >= B) return;
    const bool grad = (kind & GT_LOSS_NO_GRADIENT) == 0;
    kind &= ~(long long)GT_LOSS_NO_GRADIENT;
    const float fbeta = (float)beta;
    const int label = labels[i];
    gt_row_part p = gt_part_empty();
    for (long long j = threadIdx.x; j < nChunks; j += blockDim.x) {
        const long long o = i * nChunks + j;
        gt_row_part q;
        q.m = partF[o * GT_PART_F + 0];
        q.s = partF[o * GT_PART_F + 1];
        q.mi = partF[o * GT_PART_F + 2];
        q.am = partI[o * GT_PART_I + 0];
        q.ai = partI[o * GT_PART_I + 1];
        p = gt_part_merge(p, q, fbeta);
    }
    p = gt_part_reduce(sh, p, fbeta);
    if (threadIdx.x == 0) {
        // Only block (i, 0) stores the row's results; the others compute the
        // same coefficients into a scratch copy.
        float scratchStats[GT_NUM_STATS];
        int scratchArgmin;
        const bool owner = c == 0;
        coef = gt_row_finish(p, partF[i * nChunks * GT_PART_F + 3], label, kind, beta, margin, gamma, delta,
                             gradScale, owner ? stats + i * GT_NUM_STATS : scratchStats,
                             owner ? argmin + i : &scratchArgmin);
    }
    __syncthreads();
    if (!grad) return;
    const long long lo = c * chunk;
    const long long hi = lo + chunk < K ? lo + chunk : K;
    gt_row_write(E + i * K, lo, hi, coef, fbeta);
}

// gt_check_labels sets *flag = 1 when some v[i] lies outside [0, hi) and is
// not GT_IGNORE (or is GT_IGNORE while allowIgnore == 0). The caller zeroes
// the flag first; racing threads all store the same 1. It guards the loss and
// gather kernels when the indices live only on the device.
extern "C" __global__ void gt_check_labels(const int* v, long long n, long long hi, long long allowIgnore,
                                           int* flag) {
    for (long long i = gt_global_id(); i < n; i += gt_global_stride()) {
        const int x = v[i];
        if ((x < 0 || x >= hi) && !(allowIgnore && x == GT_IGNORE)) *flag = 1;
    }
}
