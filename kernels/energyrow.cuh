// energyrow.cuh: the per-row arithmetic of the energy loss, shared by
// energyloss.cu (rows of stored energies) and energyhead.cu (rows folded
// tile by tile, never stored): the online summary of a set of energies
// (minimum and argmin, the sum at beta relative to the minimum, the most
// offending incorrect answer), how two summaries merge, and how a row's
// summary becomes its loss, statistics and gradient coefficients. One copy,
// so the fused head and the materializing path compute the same thing.
#pragma once
#include "gputrain.cuh"

// gt_row_part summarises a set of energies of one row.
struct gt_row_part {
    float m;  // min E_y (the log-sum-exp shift); +Inf when empty
    float s;  // sum exp(-beta (E_y - m)); 0 when empty
    int am;   // argmin, ties lowest; GT_NONE when empty (or all NaN)
    float mi; // min over y != label (E_I candidate)
    int ai;   // its index; GT_NONE when none
};

// Per-row results broadcast from thread 0 to the block for the write phase.
struct gt_row_coef {
    float a, b, c; // gradient coefficients, already times gradScale
    int ic, ij;    // their indices (GT_NONE: no such answer)
    float m, invS; // P_y = exp(-beta (E_y - m)) * invS
};

__device__ inline gt_row_part gt_part_empty() {
    gt_row_part p;
    p.m = INFINITY;
    p.s = 0.0f;
    p.am = GT_NONE;
    p.mi = INFINITY;
    p.ai = GT_NONE;
    return p;
}

// gt_rescale is the factor that moves a sum taken relative to shift x onto
// shift m <= x. Equal shifts give exactly 1, which also covers x = m = +-Inf
// where x - m would be NaN.
__device__ inline float gt_rescale(float x, float m, float beta) {
    return x == m ? 1.0f : expf(-beta * (x - m));
}

// gt_part_add adds energy e of answer y (online log-sum-exp: when the minimum
// drops, the running sum is rescaled to the new shift).
__device__ inline void gt_part_add(gt_row_part& p, float e, int y, int label, float beta) {
    if (gt_take_min(e, y, p.m, p.am)) {
        p.s = p.s * gt_rescale(p.m, e, beta) + 1.0f;
        p.m = e;
        p.am = y;
    } else {
        // e >= m (or NaN, which poisons the sum and so log Z, as it should).
        p.s += gt_rescale(e, p.m, beta);
    }
    if (y != label && gt_take_min(e, y, p.mi, p.ai)) {
        p.mi = e;
        p.ai = y;
    }
}

// gt_part_merge combines two summaries; the minima keep ties on the lowest
// index whichever side they come from.
__device__ inline gt_row_part gt_part_merge(const gt_row_part& x, const gt_row_part& y, float beta) {
    gt_row_part r = x;
    if (gt_take_min(y.m, y.am, x.m, x.am)) {
        r.m = y.m;
        r.am = y.am;
    }
    r.s = x.s * gt_rescale(x.m, r.m, beta) + y.s * gt_rescale(y.m, r.m, beta);
    if (gt_take_min(y.mi, y.ai, x.mi, x.ai)) {
        r.mi = y.mi;
        r.ai = y.ai;
    }
    return r;
}

__device__ inline double gt_sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    const double z = exp(x);
    return z / (1.0 + z);
}

// log(1 + exp(x)) without overflow.
__device__ inline double gt_softplus(double x) {
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

// gt_row_finish turns a row's summary into its loss, statistics and gradient
// coefficients. It runs on one thread per row, in double: it is a handful of
// operations and doing them in double keeps the loss close to the float64
// CPU reference. ec is E_{Y_i} (ignored when label == GT_IGNORE).
__device__ inline gt_row_coef gt_row_finish(const gt_row_part& p, float ec, int label, long long kind,
                                            double beta, double margin, double gamma, double delta,
                                            double gradScale, float* stats, int* argmin) {
    const double m = p.m, s = p.s;
    const double logZ = -beta * m + log(s);
    const int am = p.am == GT_NONE ? 0 : p.am; // an all-NaN row answers 0

    gt_row_coef k;
    k.m = p.m;
    k.invS = (float)(1.0 / s);
    k.ic = label;
    k.ij = GT_NONE;
    double a = 0, b = 0, c = 0, loss = 0, eC = 0, eI = 0;
    if (label != GT_IGNORE) {
        eC = ec;
        eI = p.mi; // +Inf when K == 1: no incorrect answer exists
        k.ij = p.ai;
        const double d = eC - eI;
        switch (kind) {
        case GT_LOSS_ENERGY:
            loss = eC;
            a = 1;
            break;
        case GT_LOSS_PERCEPTRON:
            // Against the overall argmin, the correct answer included: when
            // that is Y_i the two terms cancel and the loss is 0.
            loss = eC - m;
            k.ij = am;
            a = 1;
            b = -1;
            break;
        case GT_LOSS_HINGE:
            if (margin + d > 0) {
                loss = margin + d;
                a = 1;
                b = -1;
            }
            break;
        case GT_LOSS_LOG: {
            const double sg = gt_sigmoid(d);
            loss = gt_softplus(d);
            a = sg;
            b = -sg;
            break;
        }
        case GT_LOSS_LVQ2: {
            // r = d / (delta D), D = E_I floored at 1 (energies may be
            // negative). With no incorrect answer (E_I = +Inf) r -> -1/delta:
            // inactive.
            if (eI == INFINITY) break;
            const double D = eI > 1 ? eI : 1;
            const double r = d / (delta * D);
            if (r >= 1) {
                loss = 1;
            } else if (r > 0) {
                loss = r;
                a = 1 / (delta * D);
                // d r / d E_I: -1/(delta D) when D = 1; when D = E_I,
                // r = E_C/(delta E_I) - 1/delta, so -E_C / (delta E_I^2).
                b = eI > 1 ? -eC / (delta * eI * eI) : -1 / delta;
            }
            break;
        }
        case GT_LOSS_MCE: {
            const double sg = gt_sigmoid(d);
            loss = sg;
            a = sg * (1 - sg);
            b = -a;
            break;
        }
        case GT_LOSS_SQUARE_SQUARE: {
            const double h = margin - eI > 0 ? margin - eI : 0;
            loss = eC * eC + h * h;
            a = 2 * eC;
            b = -2 * h;
            break;
        }
        case GT_LOSS_SQUARE_EXP: {
            const double t = gamma * exp(-eI);
            loss = eC * eC + t;
            a = 2 * eC;
            b = -t;
            break;
        }
        case GT_LOSS_NLL:
            loss = eC + logZ / beta;
            a = 1;
            c = -1;
            break;
        case GT_LOSS_MEE: {
            const double pc = exp(-beta * (eC - m)) / s;
            loss = 1 - pc;
            a = beta * pc;
            c = -beta * pc;
            break;
        }
        }
    }
    k.a = (float)(gradScale * a);
    k.b = (float)(gradScale * b);
    k.c = (float)(gradScale * c);
    stats[GT_STAT_LOSS] = (float)loss;
    stats[GT_STAT_LOGZ] = (float)logZ;
    stats[GT_STAT_CORRECT] = (float)eC;
    stats[GT_STAT_OFFENDING] = (float)eI;
    *argmin = am;
    return k;
}

// gt_grad is the gradient at answer y of energy e: every plan computes it
// with this one expression, so they agree bitwise given the same
// coefficients.
__device__ inline float gt_grad(float e, long long y, const gt_row_coef& k, float beta) {
    float g = 0.0f;
    if (k.c != 0.0f) g = k.c * (expf(-beta * (e - k.m)) * k.invS);
    if (y == k.ic) g += k.a;
    if (y == k.ij) g += k.b;
    return g;
}

