package cpu

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// The optimizer steps are elementwise in float32. Weight decay is decoupled
// and uses the w the gradient was taken at: w_new = w - lr*wd*w - lr*step,
// with both terms computed from the old w before either is applied.

// SGDStep sets w -= lr*weightDecay*w + lr*g.
func (b *Backend) SGDStep(wm, gm model.Mat, lr, weightDecay float32) error {
	ms, err := b.optArgs("SGDStep", []model.Mat{wm, gm}, []string{"w", "g"})
	if err != nil {
		return err
	}
	b.sgd(ms[0].data, ms[1].data, lr, weightDecay, nil)
	return nil
}

// The updates below are shared by the per-parameter steps and
// FusedOptimizerStep, which therefore agree bitwise. Each splits w over
// goroutines; when bad is not nil, a chunk whose new weights include a
// non-finite one sets it.

func (b *Backend) sgd(w, g []float32, lr, weightDecay float32, bad *atomic.Bool) {
	decay := lr * weightDecay
	b.parallelRows(len(w), elemChunk, func(lo, hi int) {
		w, g := w[lo:hi], g[lo:hi]
		for i, x := range w {
			w[i] = x - decay*x - lr*g[i]
		}
		flagNonFinite(w, bad)
	})
}

func (b *Backend) momentum(w, g, v []float32, lr, mu, weightDecay float32, bad *atomic.Bool) {
	decay := lr * weightDecay
	b.parallelRows(len(w), elemChunk, func(lo, hi int) {
		w, g, v := w[lo:hi], g[lo:hi], v[lo:hi]
		for i, x := range w {
			vi := mu*v[i] + g[i]
			v[i] = vi
			w[i] = x - decay*x - lr*vi
		}
		flagNonFinite(w, bad)
	})
}

// adamConstants are the scalars of one Adam step t, as adam and adamAVX2
// take them: the bias corrections in float64, folded into lr/bc1 and 1/bc2
// (one division and one square root per element).
func adamConstants(lr, beta1, beta2, eps, weightDecay float32, t int) [8]float32 {
	bc1 := 1 - math.Pow(float64(beta1), float64(t))
	bc2 := 1 - math.Pow(float64(beta2), float64(t))
	return [8]float32{beta1, 1 - beta1, beta2, 1 - beta2, float32(1 / bc2), eps, lr * weightDecay, float32(float64(lr) / bc1)}
}

func (b *Backend) adamUpdate(w, g, m, v []float32, c *[8]float32, bad *atomic.Bool) {
	b.parallelRows(len(w), elemChunk, func(lo, hi int) {
		l := lo
		if haveKernel {
			// The assembly does the same operations 8 lanes at a time.
			n8 := (hi - lo) &^ 7
			if n8 > 0 {
				adamAVX2(&w[lo], &g[lo], &m[lo], &v[lo], n8, c)
			}
			l += n8
		}
		adam(w[l:hi], g[l:hi], m[l:hi], v[l:hi], c)
		flagNonFinite(w[lo:hi], bad)
	})
}

// flagNonFinite sets bad when w holds an infinity or a NaN (x - x is 0 for
// every finite x and NaN otherwise). A nil bad skips the scan.
func flagNonFinite(w []float32, bad *atomic.Bool) {
	if bad == nil {
		return
	}
	var acc float32
	for _, x := range w {
		acc += x - x
	}
	if acc != 0 {
		bad.Store(true)
	}
}

// MomentumStep sets v = mu*v + g, then w -= lr*weightDecay*w + lr*v.
func (b *Backend) MomentumStep(wm, gm, vm model.Mat, lr, mu, weightDecay float32) error {
	ms, err := b.optArgs("MomentumStep", []model.Mat{wm, gm, vm}, []string{"w", "g", "v"})
	if err != nil {
		return err
	}
	b.momentum(ms[0].data, ms[1].data, ms[2].data, lr, mu, weightDecay, nil)
	return nil
}

// AdamStep sets m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2, then
// w -= lr*weightDecay*w + lr*(m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps).
// The bias corrections are computed once per call in float64.
func (b *Backend) AdamStep(wm, gm, mm, vm model.Mat, lr, beta1, beta2, eps, weightDecay float32, t int) error {
	ms, err := b.optArgs("AdamStep", []model.Mat{wm, gm, mm, vm}, []string{"w", "g", "m", "v"})
	if err != nil {
		return err
	}
	if err := backendcheck.AdamParams(beta1, beta2, eps, t); err != nil {
		return fmt.Errorf("cpu: AdamStep: %w", err)
	}
	c := adamConstants(lr, beta1, beta2, eps, weightDecay, t)
	b.adamUpdate(ms[0].data, ms[1].data, ms[2].data, ms[3].data, &c, nil)
	return nil
}

// adam is the Adam update on whole slices, c as for adamAVX2.
func adam(w, g, m, v []float32, c *[8]float32) {
	beta1, omb1, beta2, omb2, invBc2, eps, decay, lrBc1 := c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for i, x := range w {
		gi := g[i]
		mi := beta1*m[i] + omb1*gi
		vi := beta2*v[i] + omb2*gi*gi
		m[i], v[i] = mi, vi
		den := float32(math.Sqrt(float64(vi*invBc2))) + eps
		w[i] = x - decay*x - lrBc1*mi/den
	}
}

// optArgs resolves the operands of an optimizer step: all the same shape and
// all different matrices.
func (b *Backend) optArgs(op string, hs []model.Mat, names []string) ([]*Matrix, error) {
	if err := b.open(); err != nil {
		return nil, err
	}
	ms := make([]*Matrix, len(hs))
	for i, h := range hs {
		m, err := b.mat(h, op+" "+names[i])
		if err != nil {
			return nil, err
		}
		ms[i] = m
	}
	if err := backendcheck.SameShape(names, hs...); err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", op, err)
	}
	if err := backendcheck.Distinct(hs...); err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", op, err)
	}
	return ms, nil
}
