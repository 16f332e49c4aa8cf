// optim.cuh: the per-element updates of the optimizers, shared by the
// per-parameter kernels (elementwise.cu: gt_sgd_step, gt_momentum_step,
// gt_adam_step) and the multi-tensor kernels (step.cu: gt_*_multi), so that
// both compute bitwise the same weights: one expression, compiled the same
// way wherever it is inlined. Weight decay is decoupled (AdamW): the decay
// term lr*wd*x uses the x the gradient was taken at, so each update reads w
// once and writes it once. Scalars arrive already rounded to float.
#pragma once

// gt_sgd_update returns x - lr*wd*x - lr*g (decay = lr*wd as a float product).
__device__ inline float gt_sgd_update(float x, float g, float eta, float decay) {
    return x - decay * x - eta * g;
}

// gt_momentum_update sets v = mu*v + g and returns x - lr*wd*x - lr*v.
__device__ inline float gt_momentum_update(float x, float g, float& v, float eta, float mu, float decay) {
    const float ve = mu * v + g;
    v = ve;
    return x - decay * x - eta * ve;
}

// gt_adam_update sets m = b1 m + (1-b1) g and v = b2 v + (1-b2) g^2 and
// returns x - lr*wd*x - lr * (m / c1) / (sqrt(v / c2) + eps), where c1 =
// 1 - b1^t and c2 = 1 - b2^t are the bias corrections of step t.
__device__ inline float gt_adam_update(float x, float g, float& m, float& v, float eta, float b1, float b2, float ep,
                                       float decay, float fc1, float fc2) {
    const float me = b1 * m + (1.0f - b1) * g;
    const float ve = b2 * v + (1.0f - b2) * g * g;
    m = me;
    v = ve;
    return x - decay * x - eta * (me / fc1) / (sqrtf(ve / fc2) + ep);
}
