// elementwise.cu: the memory-bound kernels of a layer and of the optimizer,
// one element per thread in grid-stride loops with 64-bit indices. Launch:
// block GT_THREADS, any grid (device.Backend caps it and the loops cover the
// rest). Scalars arrive as double (8-byte kernel arguments) and are rounded
// to float once, as the float32 CPU reference uses them.
#include "gputrain.cuh"
#include "optim.cuh"

// gt_add_row_vector: m[i,j] += alpha * v[j] for an rows x cols matrix m
// (the bias of a layer).
extern "C" __global__ void gt_add_row_vector(float* m, long long rows, long long cols, double alpha,
                                             const float* v) {
    const float a = (float)alpha;
    const long long n = rows * cols, stride = gt_global_stride();
    // The column advances by stride % cols per step: one 64-bit division per
    // thread instead of one per element.
    const long long dj = stride % cols;
    long long j = gt_global_id() % cols;
    for (long long e = gt_global_id(); e < n; e += stride) {
        m[e] += a * v[j];
        j += dj;
        if (j >= cols) j -= cols;
    }
}

// gt_relu: x = max(0, x) in place; NaN stays NaN so a diverging run shows.
extern "C" __global__ void gt_relu(float* x, long long n) {
    for (long long e = gt_global_id(); e < n; e += gt_global_stride())
        if (x[e] < 0.0f) x[e] = 0.0f;
}

extern "C" __global__ void gt_tanh(float* x, long long n) {
    for (long long e = gt_global_id(); e < n; e += gt_global_stride()) x[e] = tanhf(x[e]);
}

// gt_relu_grad: g *= 1[out > 0], as a select rather than a product so an
// infinite gradient on an inactive unit gives 0, not NaN.
extern "C" __global__ void gt_relu_grad(float* g, const float* out, long long n) {
    for (long long e = gt_global_id(); e < n; e += gt_global_stride())
        if (!(out[e] > 0.0f)) g[e] = 0.0f;
}

// gt_tanh_grad: g *= 1 - out^2 (tanh' from its output).
extern "C" __global__ void gt_tanh_grad(float* g, const float* out, long long n) {
    for (long long e = gt_global_id(); e < n; e += gt_global_stride()) {
        const float y = out[e];
        g[e] *= 1.0f - y * y;
    }
}

// Optimizer steps, one parameter per launch (the trainer updates all its
// parameters with one launch of step.cu's gt_*_multi instead; both use the
// per-element updates of optim.cuh, so they agree bitwise). lr*wd is a
// float32 product, as in the CPU reference.

// gt_sgd_step: w = w - lr*wd*w - lr*g.
extern "C" __global__ void gt_sgd_step(float* w, const float* g, long long n, double lr, double weightDecay) {
    const float eta = (float)lr, decay = (float)lr * (float)weightDecay;
    for (long long e = gt_global_id(); e < n; e += gt_global_stride()) w[e] = gt_sgd_update(w[e], g[e], eta, decay);
}

// gt_momentum_step: v = mu*v + g; w = w - lr*wd*w - lr*v.
extern "C" __global__ void gt_momentum_step(float* w, const float* g, float* v, long long n, double lr,
                                            double mu, double weightDecay) {
    const float eta = (float)lr, m = (float)mu, decay = (float)lr * (float)weightDecay;
    for (long long e = gt_global_id(); e < n; e += gt_global_stride()) {
        float ve = v[e];
        w[e] = gt_momentum_update(w[e], g[e], ve, eta, m, decay);
        v[e] = ve;
    }
}

// gt_adam_step: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// w = w - lr*wd*w - lr * (m / c1) / (sqrt(v / c2) + eps), with the bias
// corrections c1 = 1 - b1^t and c2 = 1 - b2^t computed once on the host.
extern "C" __global__ void gt_adam_step(float* w, const float* g, float* m, float* v, long long n, double lr,
                                        double beta1, double beta2, double eps, double weightDecay, double c1,
                                        double c2) {
    const float eta = (float)lr, b1 = (float)beta1, b2 = (float)beta2, ep = (float)eps;
    const float decay = (float)lr * (float)weightDecay, fc1 = (float)c1, fc2 = (float)c2;
    for (long long e = gt_global_id(); e < n; e += gt_global_stride()) {
        float me = m[e], ve = v[e];
        w[e] = gt_adam_update(w[e], g[e], me, ve, eta, b1, b2, ep, decay, fc1, fc2);
        m[e] = me;
        v[e] = ve;
    }
}

// gt_gather_rows: dst row r = src row idx[r] (dst is n x cols, src has
// srcRows rows): assembles a shuffled batch from a dataset kept on the
// device. Indices were validated before the launch; an out-of-range one is
// skipped rather than read out of bounds.
extern "C" __global__ void gt_gather_rows(float* dst, const float* src, const int* idx, long long n,
                                          long long cols, long long srcRows) {
    // Element e = r*cols + j of dst; (r, j) advance by the grid stride
    // without a division per element.
    const long long stride = gt_global_stride(), dr = stride / cols, dj = stride % cols;
    const long long e0 = gt_global_id();
    for (long long r = e0 / cols, j = e0 % cols; r < n;) {
        const long long s = idx[r];
        if (s >= 0 && s < srcRows) dst[r * cols + j] = src[s * cols + j];
        r += dr;
        j += dj;
        if (j >= cols) {
            j -= cols;
            r++;
        }
    }
}

// gt_gather_ints: dst[r] = src[idx[r]] for r < n (src has srcLen elements).
extern "C" __global__ void gt_gather_ints(int* dst, const int* src, const int* idx, long long n,
                                          long long srcLen) {
    for (long long r = gt_global_id(); r < n; r += gt_global_stride()) {
        const long long s = idx[r];
        if (s >= 0 && s < srcLen) dst[r] = src[s];
    }
}
