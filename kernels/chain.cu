// chain.cu: chain energies (model.ChainOps): the dynamic program of
// cpu/chain_semiring.go, run in three semirings, and what follows from its
// messages (log Z, marginals, pairwise marginals, the Viterbi and the most
// offending sequences, the loss and its gradients).
//
// A message m_t(k) summarises the paths of positions 1..t ending in state k:
//   m_1(k) = S(k) + U(1,k),   m_t(k) = (⊕_j m_{t-1}(j) + P'(j,k)) + U(t,k)
// with ⊕ the semiring's: a soft-min at beta (log; online minimum and sum,
// so nothing overflows), a min with a backpointer (Viterbi), or the two
// lowest of distinct paths with backpointers (2-best). Run on the reversed
// chain (P' = P^T, S and F swapped), the same recursion gives the backward
// messages. The per-position step is the K x K semiring product of the
// previous message with P'. Two launch plans compute it, with the same
// accumulation order (j ascending), so they agree bitwise:
//   gt_chain_block_*  one block per sequence walks all its positions; P'
//                     sits in shared memory when it fits (K up to ~100 in
//                     48 KiB, ~230 in 227 KiB), else is read from global
//                     memory (L2);
//   gt_chain_step_*   one launch per position index: a tile of GT_CH_TB
//                     sequences x GT_CH_TK states per block, P' and the
//                     previous messages staged through shared memory in
//                     chunks of GT_CH_TJ, so that each P' element read
//                     serves GT_CH_TB sequences (large K).
// Messages of every position are kept in global memory: backtracking,
// marginals and pairwise marginals read them. Everything after the
// recursion is a fixed-order loop per output (no atomics): bitwise
// reproducible.
//
// Layout (model.Chain): U is R x K, sequence b the rows off[b]..off[b+1]-1;
// P is K x K row-major; PJ is the j-major matrix P' of the direction run
// (P forward, P^T reverse), PJ[j*K+k] = P'(j, k).
#include "gputrain.cuh"

// An absent entry of a 2-best message (fewer than two paths exist).
#define GT_CH_NONE (-1)

// The tiled step's tile: sequences x states per block, j per chunk.
#define GT_CH_TB 16
#define GT_CH_TK 64
#define GT_CH_TJ 32
#define GT_CH_TQ (GT_CH_TK / 16) // states per thread (blocks of 16 x 16)

// Messages of the min and 2-best semirings. bp is the previous state; a
// 2-best code is j<<1 | r (rank r of state j at the previous position).
struct gt_ch_min {
    float e;
    int bp;
};
struct gt_ch_top2 {
    float e0, e1;
    int c0, c1;
};

// Soft-min semiring at beta. The accumulator is an online minimum m and the
// sum s of exp(-beta (x - m)) over the terms so far, rescaled when the
// minimum drops (as energyloss.cu's log-sum-exp).
struct gt_ch_log {
    typedef float V;
    struct A {
        float m, s;
    };
    float beta;
    __device__ A zero() const {
        A a;
        a.m = INFINITY;
        a.s = 0.0f;
        return a;
    }
    __device__ V start(float s, float u) const { return s + u; }
    __device__ void add(A& a, float prev, float p, int) const {
        const float x = prev + p;
        if (x == INFINITY) return; // an impossible path adds nothing
        if (x < a.m) {
            a.s = a.s * expf(-beta * (a.m - x)) + 1.0f;
            a.m = x;
        } else {
            a.s += expf(-beta * (x - a.m)); // NaN poisons the sum, as it should
        }
    }
    __device__ V finish(const A& a, float u) const {
        if (a.m == INFINITY) return INFINITY;
        return (a.m - logf(a.s) / beta) + u;
    }
};

// Min semiring: ties keep the lowest j (j ascending, strict <).
struct gt_ch_minsr {
    typedef gt_ch_min V;
    typedef gt_ch_min A;
    __device__ A zero() const {
        A a;
        a.e = INFINITY;
        a.bp = 0; // all +Inf (or NaN): state 0, any path will do
        return a;
    }
    __device__ V start(float s, float u) const {
        V v;
        v.e = s + u;
        v.bp = -1;
        return v;
    }
    __device__ void add(A& a, const V& prev, float p, int j) const {
        const float x = prev.e + p;
        if (x < a.e) {
            a.e = x;
            a.bp = j;
        }
    }
    __device__ V finish(const A& a, float u) const {
        V v;
        v.e = a.e + u;
        v.bp = a.bp;
        return v;
    }
};

// gt_ch_offer inserts (x, code) into the two best: strictly lower wins, so
// among equal energies the earlier candidate (lower j, then lower rank)
// stays ahead.
__device__ inline void gt_ch_offer(gt_ch_top2& a, float x, int code) {
    if (a.c0 == GT_CH_NONE || x < a.e0) {
        a.e1 = a.e0;
        a.c1 = a.c0;
        a.e0 = x;
        a.c0 = code;
    } else if (a.c1 == GT_CH_NONE || x < a.e1) {
        a.e1 = x;
        a.c1 = code;
    }
}

__device__ inline gt_ch_top2 gt_ch_top2_empty() {
    gt_ch_top2 a;
    a.e0 = a.e1 = INFINITY;
    a.c0 = a.c1 = GT_CH_NONE;
    return a;
}

// 2-best semiring (k-best Viterbi, k = 2).
struct gt_ch_top2sr {
    typedef gt_ch_top2 V;
    typedef gt_ch_top2 A;
    __device__ A zero() const { return gt_ch_top2_empty(); }
    __device__ V start(float s, float u) const {
        V v = gt_ch_top2_empty();
        v.e0 = s + u;
        v.c0 = 0;
        return v;
    }
    __device__ void add(A& a, const V& prev, float p, int j) const {
        if (prev.c0 == GT_CH_NONE) return;
        gt_ch_offer(a, prev.e0 + p, j << 1);
        if (prev.c1 != GT_CH_NONE) gt_ch_offer(a, prev.e1 + p, (j << 1) | 1);
    }
    __device__ V finish(const A& a, float u) const {
        V v = a;
        if (v.c0 != GT_CH_NONE) v.e0 += u;
        if (v.c1 != GT_CH_NONE) v.e1 += u;
        return v;
    }
};

// ---- the recursion, plan 1: a block per sequence ----

// gt_ch_block_run runs sr over sequences blockIdx.x, +gridDim.x, ...: thread
// t of the block computes states t, t+blockDim.x, ... of every position.
// Dynamic shared memory: P' (K*K floats) when pShared, then two K-message
// buffers. reverse walks each sequence from its end (PJ is then P^T and
// first is F).
template <class SR>
__device__ void gt_ch_block_run(const SR& sr, typename SR::V* msgs, const float* U, const float* PJ,
                                const float* first, const int* off, long long B, long long K, long long reverse,
                                long long pShared, float* shared) {
    typedef typename SR::V V;
    const long long tid = threadIdx.x, nt = blockDim.x;
    const float* P = PJ;
    V* buf = reinterpret_cast<V*>(shared);
    if (pShared) {
        for (long long i = tid; i < K * K; i += nt) shared[i] = PJ[i];
        P = shared;
        buf = reinterpret_cast<V*>(shared + K * K);
    }
    __syncthreads();
    for (long long b = blockIdx.x; b < B; b += gridDim.x) {
        const long long lo = off[b], hi = off[b + 1], T = hi - lo;
        if (T == 0) continue; // uniform in the block
        V* prev = buf;
        V* next = buf + K;
        long long t = reverse ? hi - 1 : lo;
        for (long long k = tid; k < K; k += nt) {
            const V m = sr.start(first[k], U[t * K + k]);
            msgs[t * K + k] = m;
            prev[k] = m;
        }
        __syncthreads();
        for (long long i = 1; i < T; i++) {
            t = reverse ? hi - 1 - i : lo + i;
            for (long long k = tid; k < K; k += nt) {
                typename SR::A a = sr.zero();
                for (long long j = 0; j < K; j++) sr.add(a, prev[j], P[j * K + k], (int)j);
                const V m = sr.finish(a, U[t * K + k]);
                msgs[t * K + k] = m;
                next[k] = m;
            }
            __syncthreads();
            V* x = prev;
            prev = next;
            next = x;
        }
        // The next sequence rewrites the buffers.
        __syncthreads();
    }
}

extern "C" __global__ void gt_chain_block_log(float* msgs, const float* U, const float* PJ, const float* first,
                                              const int* off, long long B, long long K, long long reverse,
                                              long long pShared, double beta) {
    GT_DYNAMIC_SHARED(float, gt_ch_shared_log);
    gt_ch_log sr;
    sr.beta = (float)beta;
    gt_ch_block_run(sr, msgs, U, PJ, first, off, B, K, reverse, pShared, gt_ch_shared_log);
}

extern "C" __global__ void gt_chain_block_min(gt_ch_min* msgs, const float* U, const float* PJ, const float* first,
                                              const int* off, long long B, long long K, long long reverse,
                                              long long pShared) {
    GT_DYNAMIC_SHARED(float, gt_ch_shared_min);
    gt_ch_minsr sr;
    gt_ch_block_run(sr, msgs, U, PJ, first, off, B, K, reverse, pShared, gt_ch_shared_min);
}

extern "C" __global__ void gt_chain_block_top2(gt_ch_top2* msgs, const float* U, const float* PJ,
                                               const float* first, const int* off, long long B, long long K,
                                               long long reverse, long long pShared) {
    GT_DYNAMIC_SHARED(float, gt_ch_shared_top2);
    gt_ch_top2sr sr;
    gt_ch_block_run(sr, msgs, U, PJ, first, off, B, K, reverse, pShared, gt_ch_shared_top2);
}

// ---- the recursion, plan 2: a tiled step per position index ----

// gt_ch_tile_step computes step i of every sequence (position lo+i, or
// hi-1-i in reverse) for the tile of block (blockIdx.x: GT_CH_TB
// sequences, blockIdx.y: GT_CH_TK states); block (16, 16): thread (x, y)
// has sequence y of the tile and states x, x+16, x+32, x+48. Step 0 is the
// start; step i > 0 reads the messages step i-1 left in msgs.
template <class SR>
__device__ void gt_ch_tile_step(const SR& sr, typename SR::V* msgs, const float* U, const float* PJ,
                                const float* first, const int* off, long long B, long long K, long long i,
                                long long reverse, typename SR::V* sPrev, float* sP) {
    typedef typename SR::V V;
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
    const long long b0 = (long long)blockIdx.x * GT_CH_TB, k0 = (long long)blockIdx.y * GT_CH_TK;
    // pos returns the row of step s of sequence b, or -1 past its end.
    auto pos = [&](long long b, long long s) -> long long {
        if (b >= B || s < 0) return -1;
        const long long lo = off[b], hi = off[b + 1];
        if (s >= hi - lo) return -1;
        return reverse ? hi - 1 - s : lo + s;
    };
    const long long t = pos(b0 + ty, i);
    if (i == 0) {
        for (int q = 0; q < GT_CH_TQ; q++) {
            const long long k = k0 + tx + 16 * q;
            if (t >= 0 && k < K) msgs[t * K + k] = sr.start(first[k], U[t * K + k]);
        }
        return;
    }
    typename SR::A acc[GT_CH_TQ];
    for (int q = 0; q < GT_CH_TQ; q++) acc[q] = sr.zero();
    for (long long j0 = 0; j0 < K; j0 += GT_CH_TJ) {
        for (int l = tid; l < GT_CH_TJ * GT_CH_TK; l += 256) {
            const long long j = j0 + l / GT_CH_TK, k = k0 + l % GT_CH_TK;
            sP[l] = (j < K && k < K) ? PJ[j * K + k] : 0.0f;
        }
        for (int l = tid; l < GT_CH_TB * GT_CH_TJ; l += 256) {
            const long long j = j0 + l % GT_CH_TJ;
            const long long tp = pos(b0 + l / GT_CH_TJ, i - 1);
            if (tp >= 0 && j < K) sPrev[l] = msgs[tp * K + j];
        }
        __syncthreads();
        const long long nj = K - j0 < GT_CH_TJ ? K - j0 : GT_CH_TJ;
        if (t >= 0) {
            for (long long jj = 0; jj < nj; jj++) {
                const V pv = sPrev[ty * GT_CH_TJ + jj];
                for (int q = 0; q < GT_CH_TQ; q++) sr.add(acc[q], pv, sP[jj * GT_CH_TK + tx + 16 * q], (int)(j0 + jj));
            }
        }
        __syncthreads();
    }
    for (int q = 0; q < GT_CH_TQ; q++) {
        const long long k = k0 + tx + 16 * q;
        if (t >= 0 && k < K) msgs[t * K + k] = sr.finish(acc[q], U[t * K + k]);
    }
}

extern "C" __global__ void gt_chain_step_log(float* msgs, const float* U, const float* PJ, const float* first,
                                             const int* off, long long B, long long K, long long i,
                                             long long reverse, double beta) {
    __shared__ float sPrev[GT_CH_TB * GT_CH_TJ];
    __shared__ float sP[GT_CH_TJ * GT_CH_TK];
    gt_ch_log sr;
    sr.beta = (float)beta;
    gt_ch_tile_step(sr, msgs, U, PJ, first, off, B, K, i, reverse, sPrev, sP);
}

extern "C" __global__ void gt_chain_step_min(gt_ch_min* msgs, const float* U, const float* PJ, const float* first,
                                             const int* off, long long B, long long K, long long i,
                                             long long reverse) {
    __shared__ gt_ch_min sPrev[GT_CH_TB * GT_CH_TJ];
    __shared__ float sP[GT_CH_TJ * GT_CH_TK];
    gt_ch_minsr sr;
    gt_ch_tile_step(sr, msgs, U, PJ, first, off, B, K, i, reverse, sPrev, sP);
}

extern "C" __global__ void gt_chain_step_top2(gt_ch_top2* msgs, const float* U, const float* PJ,
                                              const float* first, const int* off, long long B, long long K,
                                              long long i, long long reverse) {
    __shared__ gt_ch_top2 sPrev[GT_CH_TB * GT_CH_TJ];
    __shared__ float sP[GT_CH_TJ * GT_CH_TK];
    gt_ch_top2sr sr;
    gt_ch_tile_step(sr, msgs, U, PJ, first, off, B, K, i, reverse, sPrev, sP);
}

// ---- after the recursion ----

// gt_loss_terms_of is a loss's value and gradient coefficients as a
// function of E_C, E_I, E_min and log Z, the device twin of
// model.Loss.Terms (model/chainloss.go):
//   dL/dE(Y) = c 1[Y == Y_i] + i 1[Y == Ybar] + all P(Y | X)
// with Ybar the most offending incorrect sequence (the argmin for the
// perceptron). energyloss.cu folds the same formulas into gt_row_finish
// for flat rows; a shared header for both would remove the duplication.
struct gt_loss_terms {
    double loss, c, i, all;
};

__device__ inline double gt_lt_sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    const double z = exp(x);
    return z / (1.0 + z);
}

// gt_loss_terms_of evaluates loss kind at eC, eI (+Inf: no incorrect
// answer), eMin and logZ; argminIsLabel says whether the argmin is Y_i.
__device__ inline gt_loss_terms gt_loss_terms_of(long long kind, double eC, double eI, double eMin, double logZ,
                                                 bool argminIsLabel, double beta, double margin, double gamma,
                                                 double delta) {
    gt_loss_terms t;
    t.loss = t.c = t.i = t.all = 0;
    const double d = eC - eI;
    switch (kind) {
    case GT_LOSS_ENERGY:
        t.loss = eC;
        t.c = 1;
        break;
    case GT_LOSS_PERCEPTRON:
        if (!argminIsLabel) {
            t.loss = eC - eMin;
            t.c = 1;
            t.i = -1;
        }
        break;
    case GT_LOSS_HINGE:
        if (margin + d > 0) {
            t.loss = margin + d;
            t.c = 1;
            t.i = -1;
        }
        break;
    case GT_LOSS_LOG: {
        const double s = gt_lt_sigmoid(d);
        t.loss = (d > 0 ? d : 0) + log1p(exp(-fabs(d)));
        t.c = s;
        t.i = -s;
        break;
    }
    case GT_LOSS_LVQ2: {
        if (eI == INFINITY) break;
        const double D = eI > 1 ? eI : 1, dD = eI > 1 ? 1 : 0;
        const double r = d / (delta * D);
        if (r >= 1) {
            t.loss = 1;
        } else if (r > 0) {
            t.loss = r;
            t.c = 1 / (delta * D);
            t.i = (-D - d * dD) / (delta * D * D);
        }
        break;
    }
    case GT_LOSS_MCE: {
        const double s = gt_lt_sigmoid(d);
        t.loss = s;
        t.c = s * (1 - s);
        t.i = -t.c;
        break;
    }
    case GT_LOSS_SQUARE_SQUARE: {
        const double h = margin - eI > 0 ? margin - eI : 0;
        t.loss = eC * eC + h * h;
        t.c = 2 * eC;
        t.i = -2 * h;
        break;
    }
    case GT_LOSS_SQUARE_EXP: {
        const double x = gamma * exp(-eI);
        t.loss = eC * eC + x;
        t.c = 2 * eC;
        t.i = -x;
        break;
    }
    case GT_LOSS_NLL:
        t.loss = eC + logZ / beta;
        t.c = 1;
        t.all = -1;
        break;
    case GT_LOSS_MEE: {
        const double pc = exp(-beta * eC - logZ);
        t.loss = 1 - pc;
        t.c = beta * pc;
        t.all = -beta * pc;
        break;
    }
    }
    return t;
}


// gt_chain_transpose: PT[k*K+j] = P[j*K+k], the j-major P' of the reverse
// direction.
extern "C" __global__ void gt_chain_transpose(float* PT, const float* P, long long K) {
    for (long long i = gt_global_id(); i < K * K; i += gt_global_stride()) PT[(i % K) * K + i / K] = P[i];
}

// gt_chain_padding zeroes rows [lo, hi) of U (K columns; U may be null) and
// sets path[lo..hi) to GT_IGNORE (path may be null): the rows outside every
// sequence.
extern "C" __global__ void gt_chain_padding(float* U, int* path, long long lo, long long hi, long long K) {
    for (long long i = gt_global_id(); i < (hi - lo) * K; i += gt_global_stride()) {
        if (U != nullptr) U[lo * K + i] = 0.0f;
        if (path != nullptr && i % K == 0) path[lo + i / K] = GT_IGNORE;
    }
}

// gt_ch_softmin_total is -1/beta log sum_k exp(-beta (last[k] + F[k])), in
// k order: the log semiring's total, -log Z / beta.
__device__ inline float gt_ch_softmin_total(const float* last, const float* F, long long K, float beta) {
    gt_ch_log sr;
    sr.beta = beta;
    gt_ch_log::A a = sr.zero();
    for (long long k = 0; k < K; k++) sr.add(a, last[k], F[k], (int)k);
    return sr.finish(a, 0.0f);
}

// gt_ch_backtrack writes the path ending in entry code (k<<1 | r) into
// path[lo..hi) from the 2-best messages.
__device__ inline void gt_ch_backtrack(const gt_ch_top2* msgs, long long K, long long lo, long long hi, int code,
                                       int* path) {
    for (long long t = hi - 1; t >= lo; t--) {
        const int s = code >> 1;
        path[t] = s;
        const gt_ch_top2 m = msgs[t * K + s];
        code = (code & 1) ? m.c1 : m.c0;
    }
}

// gt_chain_finish_loss: per sequence (a thread each, grid-stride), from the
// forward log messages alpha and 2-best messages t2: log Z, the 2-best
// total and its backtracking (the Viterbi path into path; the most
// offending sequence, or for the perceptron the Viterbi path, into other,
// GT_IGNORE where the coefficient I is 0 or no such sequence exists), E_C
// along the labels in double, the loss terms, the statistics, and coef[b] =
// (C, I, All, log Z) for the gradient kernels.
extern "C" __global__ void gt_chain_finish_loss(float* stats, int* path, int* other, double* coef,
                                                const float* alpha, const gt_ch_top2* t2, const float* U,
                                                const float* P, const float* S, const float* F, const int* off,
                                                const int* labels, long long B, long long K, long long kind,
                                                double beta, double margin, double gamma, double delta) {
    for (long long b = gt_global_id(); b < B; b += gt_global_stride()) {
        const long long lo = off[b], hi = off[b + 1];
        float* st = stats + b * GT_NUM_STATS;
        double* cf = coef + b * 4;
        for (int s = 0; s < GT_NUM_STATS; s++) st[s] = 0.0f;
        cf[0] = cf[1] = cf[2] = cf[3] = 0.0;
        if (lo == hi) continue;
        const double logZ = -beta * (double)gt_ch_softmin_total(alpha + (hi - 1) * K, F, K, (float)beta);
        gt_ch_top2 tot = gt_ch_top2_empty();
        for (long long k = 0; k < K; k++) {
            const gt_ch_top2 m = t2[(hi - 1) * K + k];
            if (m.c0 == GT_CH_NONE) continue;
            gt_ch_offer(tot, m.e0 + F[k], (int)(k << 1));
            if (m.c1 != GT_CH_NONE) gt_ch_offer(tot, m.e1 + F[k], (int)((k << 1) | 1));
        }
        gt_ch_backtrack(t2, K, lo, hi, tot.c0, path);
        st[GT_STAT_LOGZ] = (float)logZ;
        for (long long t = lo; t < hi; t++) other[t] = GT_IGNORE;
        const int* y = labels;
        if (y[lo] == GT_IGNORE) continue;
        double eC = (double)S[y[lo]] + (double)U[lo * K + y[lo]];
        for (long long t = lo + 1; t < hi; t++) eC = (eC + (double)P[y[t - 1] * K + y[t]]) + (double)U[t * K + y[t]];
        eC += (double)F[y[hi - 1]];
        bool bestIsLabel = true;
        for (long long t = lo; t < hi; t++) bestIsLabel = bestIsLabel && path[t] == y[t];
        double eI = tot.e0;
        bool haveOther = true;
        if (bestIsLabel) {
            haveOther = tot.c1 != GT_CH_NONE;
            eI = haveOther ? tot.e1 : INFINITY;
            if (haveOther) gt_ch_backtrack(t2, K, lo, hi, tot.c1, other);
        } else {
            for (long long t = lo; t < hi; t++) other[t] = path[t];
        }
        const gt_loss_terms lt =
            gt_loss_terms_of(kind, eC, eI, tot.e0, logZ, bestIsLabel, beta, margin, gamma, delta);
        if (kind == GT_LOSS_PERCEPTRON) {
            for (long long t = lo; t < hi; t++) other[t] = path[t];
            haveOther = true;
        }
        if (lt.i == 0 || !haveOther)
            for (long long t = lo; t < hi; t++) other[t] = GT_IGNORE;
        st[GT_STAT_LOSS] = (float)lt.loss;
        st[GT_STAT_CORRECT] = (float)eC;
        st[GT_STAT_OFFENDING] = (float)eI;
        cf[0] = lt.c;
        cf[1] = lt.i;
        cf[2] = lt.all;
        cf[3] = logZ;
    }
}

// gt_ch_marginal is P(y_t = k | X) from the forward and backward messages
// of (t, k) (both include U(t, k)).
__device__ inline float gt_ch_marginal(float a, float r, float u, float beta, double logZ) {
    return expf(-beta * (a + r - u) - (float)logZ);
}

// gt_ch_grad is dL/dU(t, k) before the gradient scale: C 1[k == y_t] + I
// 1[k == other_t] + All P(y_t = k | X), in double, in that order.
__device__ inline double gt_ch_grad(const double* cf, long long t, long long k, const int* labels,
                                    const int* other, const float* alpha, const float* rev, const float* U,
                                    long long K, float beta) {
    double g = 0;
    if (cf[2] != 0) g = cf[2] * (double)gt_ch_marginal(alpha[t * K + k], rev[t * K + k], U[t * K + k], beta, cf[3]);
    if (labels[t] == k) g += cf[0];
    if (other[t] == k) g += cf[1];
    return g;
}

// gt_chain_ends: dS[k] and dF[k] = scale * the sums over the sequences, in
// order, of dL/dU at their first and last positions (S(y_1) and U(1, y_1)
// enter every energy together, and so do F and the last U). One thread per
// state. Runs before gt_chain_grad_u overwrites U.
extern "C" __global__ void gt_chain_ends(float* dS, float* dF, const int* labels, const int* other,
                                         const double* coef, const float* alpha, const float* rev, const float* U,
                                         const int* off, long long B, long long K, double beta, double scale) {
    for (long long k = gt_global_id(); k < K; k += gt_global_stride()) {
        double s = 0, f = 0;
        for (long long b = 0; b < B; b++) {
            const long long lo = off[b], hi = off[b + 1];
            if (lo == hi || labels[lo] == GT_IGNORE) continue;
            const double* cf = coef + b * 4;
            s += gt_ch_grad(cf, lo, k, labels, other, alpha, rev, U, K, (float)beta);
            f += gt_ch_grad(cf, hi - 1, k, labels, other, alpha, rev, U, K, (float)beta);
        }
        dS[k] = (float)(scale * s);
        dF[k] = (float)(scale * f);
    }
}

// gt_chain_grad_u overwrites U with scale * dL/dU: a block per sequence
// (grid-stride), its threads over the T x K elements; an ignored
// sequence's rows become 0.
extern "C" __global__ void gt_chain_grad_u(float* U, const int* labels, const int* other, const double* coef,
                                           const float* alpha, const float* rev, const int* off, long long B,
                                           long long K, double beta, double scale) {
    for (long long b = blockIdx.x; b < B; b += gridDim.x) {
        const long long lo = off[b], hi = off[b + 1];
        if (lo == hi) continue;
        const bool ignored = labels[lo] == GT_IGNORE;
        const double* cf = coef + b * 4;
        for (long long i = threadIdx.x; i < (hi - lo) * K; i += blockDim.x) {
            const long long t = lo + i / K, k = i % K;
            U[t * K + k] =
                ignored ? 0.0f : (float)(scale * gt_ch_grad(cf, t, k, labels, other, alpha, rev, U, K, (float)beta));
        }
    }
}

// gt_chain_pair: dP[j,k] = scale * sum over the sequences b in order and
// their transitions t in order of All_b P(y_{t-1} = j, y_t = k | X), plus,
// when labels is not null, C_b 1[(y_{t-1}, y_t) = (j, k)] + I_b 1[(other_{t-1},
// other_t) = (j, k)]. One thread per (j, k), grid-stride, in double; the
// warp's threads read consecutive k (coalesced) and one j.
extern "C" __global__ void gt_chain_pair(float* dP, const int* labels, const int* other, const double* coef,
                                         const float* alpha, const float* rev, const float* P, const int* off,
                                         long long B, long long K, double beta, double scale) {
    const float fbeta = (float)beta;
    for (long long e = gt_global_id(); e < K * K; e += gt_global_stride()) {
        const long long j = e / K, k = e % K;
        const float p = P[e];
        double acc = 0;
        for (long long b = 0; b < B; b++) {
            const long long lo = off[b], hi = off[b + 1];
            if (hi - lo < 2) continue;
            if (labels != nullptr && labels[lo] == GT_IGNORE) continue;
            const double* cf = coef + b * 4;
            const float lz = (float)cf[3];
            for (long long t = lo + 1; t < hi; t++) {
                if (cf[2] != 0) acc += cf[2] * (double)expf(-fbeta * (alpha[(t - 1) * K + j] + p + rev[t * K + k]) - lz);
                if (labels != nullptr) {
                    if (labels[t - 1] == j && labels[t] == k) acc += cf[0];
                    if (other[t - 1] == j && other[t] == k) acc += cf[1];
                }
            }
        }
        dP[e] = (float)(scale * acc);
    }
}

// gt_chain_logz: per sequence, log Z from the forward messages into logZ
// (float, B x 1) and coef[b] = (0, 0, 1, log Z) for the marginal kernels.
extern "C" __global__ void gt_chain_logz(float* logZ, double* coef, const float* alpha, const float* F,
                                         const int* off, long long B, long long K, double beta) {
    for (long long b = gt_global_id(); b < B; b += gt_global_stride()) {
        const long long lo = off[b], hi = off[b + 1];
        double z = 0;
        if (lo < hi) z = -beta * (double)gt_ch_softmin_total(alpha + (hi - 1) * K, F, K, (float)beta);
        logZ[b] = (float)z;
        double* cf = coef + b * 4;
        cf[0] = cf[1] = 0;
        cf[2] = 1;
        cf[3] = z;
    }
}

// gt_chain_marginals: marg[t,k] = P(y_t = k | X), a block per sequence.
extern "C" __global__ void gt_chain_marginals(float* marg, const float* alpha, const float* rev, const float* U,
                                              const double* coef, const int* off, long long B, long long K,
                                              double beta) {
    for (long long b = blockIdx.x; b < B; b += gridDim.x) {
        const long long lo = off[b], hi = off[b + 1];
        for (long long i = threadIdx.x; i < (hi - lo) * K; i += blockDim.x) {
            const long long x = lo * K + i;
            marg[x] = gt_ch_marginal(alpha[x], rev[x], U[x], (float)beta, coef[b * 4 + 3]);
        }
    }
}

// gt_chain_finish_viterbi: per sequence, the min semiring's total (ties to
// the lowest last state), its energy and its path.
extern "C" __global__ void gt_chain_finish_viterbi(int* path, float* energy, const gt_ch_min* msgs, const float* F,
                                                   const int* off, long long B, long long K) {
    for (long long b = gt_global_id(); b < B; b += gt_global_stride()) {
        const long long lo = off[b], hi = off[b + 1];
        energy[b] = 0.0f;
        if (lo == hi) continue;
        float best = INFINITY;
        int s = 0;
        for (long long k = 0; k < K; k++) {
            const float x = msgs[(hi - 1) * K + k].e + F[k];
            if (x < best) {
                best = x;
                s = (int)k;
            }
        }
        energy[b] = best;
        for (long long t = hi - 1; t >= lo; t--) {
            path[t] = s;
            s = msgs[t * K + s].bp;
        }
    }
}
