// step.cu: the kernels of a training step whose per-step values live on the
// device (device.Backend's model.StepOps), so that a step needs no host
// synchronization and can be captured once as a CUDA graph and replayed:
// every launch of a step has the same arguments, step after step, and what
// changes (which rows, which learning rate, Adam's t) is read from the
// step state below, which the kernels themselves advance.
//
// The step state is one int32 allocation, the control words then, in the
// same allocation, the epoch's plan:
//
//   ctl[GT_CTL_*]            control words (below), then one flag per parameter
//   losses[steps]            float: the loss sum of every step of the epoch
//   sched[steps][4]          float: lr, c1, c2 (Adam's bias corrections), 0
//   order[steps][B]          int: the rows each step gathers
//
// A step runs gt_gather_step (reads the cursor), the model, the energy loss,
// gt_step_record (writes the step's loss, advances the cursor, sets the halt
// word), the backward pass and one gt_*_multi (reads the step gt_step_record
// recorded, skips everything once halted). The host uploads the plan once
// per epoch and copies [ctl | losses] back asynchronously every few steps.
#include "gputrain.cuh"
#include "optim.cuh"

// Control words (model.StepReport, device/steps.go).
#define GT_CTL_CURSOR 0      // the next step of the plan: gt_gather_step reads it, gt_step_record advances it
#define GT_CTL_CURRENT 1     // the step gt_step_record last recorded: the optimizer's step
#define GT_CTL_BASE 2        // optimizer steps before step 0 of the plan: step s is global step BASE + s + 1
#define GT_CTL_HALT 3        // nonzero: every later update is skipped (GT_HALT_*)
#define GT_CTL_LOSS_STEP 4   // the global step whose batch loss was not finite (0: none)
#define GT_CTL_WEIGHT_STEP 5 // the global step whose update made a weight non-finite (0: none)
#define GT_CTL_BAD 8         // GT_CTL_BAD + p: parameter p has a non-finite weight

#define GT_HALT_LOSS 1    // a batch loss was not finite: that step's update and all later ones skipped
#define GT_HALT_WEIGHTS 2 // an update made a weight non-finite: all later updates skipped
#define GT_HALT_OVERRUN 3 // more steps than the plan holds were recorded

// Per-step scalars of the plan.
#define GT_SCHED_LR 0
#define GT_SCHED_C1 1
#define GT_SCHED_C2 2
#define GT_SCHED_FIELDS 4

// gt_gather_step: x row r = src row order[s*B + r] and y[r] = srcY[that row]
// for the cursor's step s (x is B x cols, src has srcRows rows): a shuffled
// batch assembled from a data set that stays on the device, at a step the
// device knows. The order was validated when the host uploaded it; an
// index out of range, or a cursor past the plan's steps, writes nothing.
// Grid-stride over the B*cols elements; the thread of column 0 of a row
// also copies its label. Same element loop as gt_gather_rows.
extern "C" __global__ void gt_gather_step(float* x, int* y, const float* src, const int* srcY, const int* order,
                                          const int* ctl, long long B, long long cols, long long srcRows,
                                          long long steps) {
    const long long s = ctl[GT_CTL_CURSOR];
    if (s < 0 || s >= steps) return;
    const int* idx = order + s * B;
    const long long stride = gt_global_stride(), dr = stride / cols, dj = stride % cols;
    const long long e0 = gt_global_id();
    for (long long r = e0 / cols, j = e0 % cols; r < B;) {
        const long long i = idx[r];
        if (i >= 0 && i < srcRows) {
            x[r * cols + j] = src[i * cols + j];
            if (j == 0) y[r] = srcY[i];
        }
        r += dr;
        j += dj;
        if (j >= cols) {
            j -= cols;
            r++;
        }
    }
}

// gt_step_record: one block of GT_THREADS threads. Sums the loss column of
// the step's statistics (B x GT_NUM_STATS) in double, in a fixed order
// (thread t takes rows t, t + blockDim.x, ..., then a fixed tree), stores
// it as the float loss of the cursor's step, makes that step the current
// one and advances the cursor. Then the halt word: a weight made
// non-finite by the previous update halts (GT_HALT_WEIGHTS); else a
// non-finite loss halts (GT_HALT_LOSS) before this step's update, so the
// weights stay those that gave it. Only thread 0 touches ctl.
extern "C" __global__ void gt_step_record(const float* stats, long long B, int* ctl, float* losses,
                                          long long steps) {
    __shared__ double sh[GT_THREADS];
    double acc = 0.0;
    for (long long i = threadIdx.x; i < B; i += blockDim.x) acc += (double)stats[i * GT_NUM_STATS + GT_STAT_LOSS];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int off = blockDim.x / 2; off > 0; off >>= 1) {
        if ((int)threadIdx.x < off) sh[threadIdx.x] += sh[threadIdx.x + off];
        __syncthreads();
    }
    if (threadIdx.x != 0) return;
    const int s = ctl[GT_CTL_CURSOR];
    const float loss = (float)sh[0];
    if (s < 0 || s >= steps) {
        if (ctl[GT_CTL_HALT] == 0) ctl[GT_CTL_HALT] = GT_HALT_OVERRUN;
        return;
    }
    losses[s] = loss;
    ctl[GT_CTL_CURRENT] = s;
    ctl[GT_CTL_CURSOR] = s + 1;
    if (ctl[GT_CTL_HALT] != 0) return;
    if (ctl[GT_CTL_WEIGHT_STEP] != 0) {
        ctl[GT_CTL_HALT] = GT_HALT_WEIGHTS;
    } else if (!isfinite(loss)) {
        ctl[GT_CTL_HALT] = GT_HALT_LOSS;
        ctl[GT_CTL_LOSS_STEP] = ctl[GT_CTL_BASE] + s + 1;
    }
}

// ---- one optimizer launch for every parameter ----

// The parameter table: GT_PT_FIELDS long longs per parameter, built once by
// device.Backend. Parameter p's n elements are cut into virtual blocks of
// GT_MT_CHUNK elements, numbered from table[p][GT_PT_BLOCK0] on, so one grid
// covers every parameter: block vb (grid-stride) finds its parameter by a
// binary search over the first virtual blocks and updates its chunk.
#define GT_PT_W 0      // weights
#define GT_PT_G 1      // gradient
#define GT_PT_S1 2     // momentum's v, Adam's m (0 for SGD)
#define GT_PT_S2 3     // Adam's v (0 otherwise)
#define GT_PT_N 4      // elements
#define GT_PT_BLOCK0 5 // first virtual block
#define GT_PT_FIELDS 8
#define GT_MT_CHUNK (4 * GT_THREADS)

#define GT_OPT_SGD 0
#define GT_OPT_MOMENTUM 1
#define GT_OPT_ADAM 2

// gt_multi_update updates every parameter of the table with the per-element
// update of optim.cuh for KIND, taking lr (and Adam's c1, c2) from the plan
// row of the current step. A thread whose new weight is not finite sets the
// flag of its parameter and the weight step (every writer of one launch
// stores the same values, so the order does not matter); gt_step_record
// turns that into a halt before the next update. The halt word is only
// written by gt_step_record, never during this kernel, so every block of a
// launch sees the same value and updates all or nothing.
template <int KIND>
__device__ inline void gt_multi_update(const long long* table, long long P, long long vblocks, int* ctl,
                                       const float* sched, double mu, double beta1, double beta2, double eps,
                                       double weightDecay) {
    if (ctl[GT_CTL_HALT] != 0) return;
    const int s = ctl[GT_CTL_CURRENT];
    const float* sc = sched + (long long)s * GT_SCHED_FIELDS;
    const float eta = sc[GT_SCHED_LR], decay = eta * (float)weightDecay;
    const float fmu = (float)mu, b1 = (float)beta1, b2 = (float)beta2, ep = (float)eps;
    const float fc1 = sc[GT_SCHED_C1], fc2 = sc[GT_SCHED_C2];
    const int step = ctl[GT_CTL_BASE] + s + 1;
    for (long long vb = blockIdx.x; vb < vblocks; vb += gridDim.x) {
        long long lo = 0, hi = P - 1; // the last p with block0(p) <= vb
        while (lo < hi) {
            const long long mid = (lo + hi + 1) / 2;
            if (table[mid * GT_PT_FIELDS + GT_PT_BLOCK0] <= vb)
                lo = mid;
            else
                hi = mid - 1;
        }
        const long long* pt = table + lo * GT_PT_FIELDS;
        float* w = reinterpret_cast<float*>(pt[GT_PT_W]);
        const float* g = reinterpret_cast<const float*>(pt[GT_PT_G]);
        float* s1 = reinterpret_cast<float*>(pt[GT_PT_S1]);
        float* s2 = reinterpret_cast<float*>(pt[GT_PT_S2]);
        const long long n = pt[GT_PT_N];
        const long long e0 = (vb - pt[GT_PT_BLOCK0]) * GT_MT_CHUNK;
        const long long e1 = e0 + GT_MT_CHUNK < n ? e0 + GT_MT_CHUNK : n;
        bool bad = false;
        for (long long e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
            float x;
            if (KIND == GT_OPT_SGD) {
                x = gt_sgd_update(w[e], g[e], eta, decay);
            } else if (KIND == GT_OPT_MOMENTUM) {
                float ve = s1[e];
                x = gt_momentum_update(w[e], g[e], ve, eta, fmu, decay);
                s1[e] = ve;
            } else {
                float me = s1[e], ve = s2[e];
                x = gt_adam_update(w[e], g[e], me, ve, eta, b1, b2, ep, decay, fc1, fc2);
                s1[e] = me;
                s2[e] = ve;
            }
            w[e] = x;
            bad = bad || !isfinite(x);
        }
        if (bad) {
            ctl[GT_CTL_BAD + lo] = 1;
            ctl[GT_CTL_WEIGHT_STEP] = step;
        }
    }
}

// gt_sgd_multi, gt_momentum_multi, gt_adam_multi: one launch updates all P
// parameters of table (vblocks virtual blocks in all; any grid, block
// GT_THREADS). mu, beta1, beta2, eps are used by the kinds that have them.
extern "C" __global__ void gt_sgd_multi(const long long* table, long long P, long long vblocks, int* ctl,
                                        const float* sched, double weightDecay) {
    gt_multi_update<GT_OPT_SGD>(table, P, vblocks, ctl, sched, 0, 0, 0, 0, weightDecay);
}

extern "C" __global__ void gt_momentum_multi(const long long* table, long long P, long long vblocks, int* ctl,
                                             const float* sched, double mu, double weightDecay) {
    gt_multi_update<GT_OPT_MOMENTUM>(table, P, vblocks, ctl, sched, mu, 0, 0, 0, weightDecay);
}

extern "C" __global__ void gt_adam_multi(const long long* table, long long P, long long vblocks, int* ctl,
                                         const float* sched, double beta1, double beta2, double eps,
                                         double weightDecay) {
    gt_multi_update<GT_OPT_ADAM>(table, P, vblocks, ctl, sched, 0, beta1, beta2, eps, weightDecay);
}
