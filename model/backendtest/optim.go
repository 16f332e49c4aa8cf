package backendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// optSteps is how many steps each optimizer test runs: enough for the
// state (momentum, Adam's moments and bias correction) to matter.
const optSteps = 5

// TestOptimizers runs SGDStep, MomentumStep and AdamStep for several steps,
// with and without weight decay, each step with a fresh random gradient,
// and compares the weights and the optimizer state after every step with
// the float64 reference. The gradient must be left untouched.
//
// Tolerance: the rounding errors of each step (a few float32 operations on
// the magnitudes involved) are propagated, to first order, through the
// following steps and summed; see optTol.
func TestOptimizers(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	for _, opt := range []string{"sgd", "momentum", "adam"} {
		for _, wd := range []float32{0, 0.1} {
			for _, s := range [][2]int{{1, 1}, {7, 33}, {31, 257}} {
				t.Run(fmt.Sprintf("%s/weightDecay=%v/%dx%d", opt, wd, s[0], s[1]), func(t *testing.T) {
					testOptimizer(t, b, opt, wd, s[0], s[1])
				})
			}
		}
	}
}

// Hyperparameters, all exactly representable or converted once to float32;
// the reference uses the float64 values of the float32s the backend gets.
const (
	optLR    float32 = 0.05
	optMu    float32 = 0.9
	optBeta1 float32 = 0.9
	optBeta2 float32 = 0.999
	optEps   float32 = 1e-8
)

func testOptimizer(t *testing.T, b model.Backend, opt string, wd float32, rows, cols int) {
	h := newHelper(t, b)
	n := rows * cols
	w0 := h.uniform(n, -1, 1)
	mw := h.mat(rows, cols, w0)
	zeros := make([]float32, n)
	var mm1, mv model.Mat // optimizer state on the backend
	ref := &refOptState{w: to64(w0), m: make([]float64, n), v: make([]float64, n)}
	tol := newOptTol(n)
	switch opt {
	case "momentum":
		mv = h.mat(rows, cols, zeros)
	case "adam":
		mm1, mv = h.mat(rows, cols, zeros), h.mat(rows, cols, zeros)
	}
	lr, wd64 := float64(optLR), float64(wd)
	for step := 1; step <= optSteps; step++ {
		g := h.uniform(n, -1, 1)
		mg := h.mat(rows, cols, g)
		switch opt {
		case "sgd":
			must(t, "SGDStep", func() error { return b.SGDStep(mw, mg, optLR, wd) })
			tol.sgd(ref, g, lr, wd64)
			refSGDStep(ref, g, lr, wd64)
		case "momentum":
			must(t, "MomentumStep", func() error { return b.MomentumStep(mw, mg, mv, optLR, optMu, wd) })
			tol.momentum(ref, g, lr, float64(optMu), wd64)
			refMomentumStep(ref, g, lr, float64(optMu), wd64)
		case "adam":
			must(t, "AdamStep", func() error {
				return b.AdamStep(mw, mg, mm1, mv, optLR, optBeta1, optBeta2, optEps, wd, step)
			})
			tol.adam(ref, g, lr, float64(optBeta1), float64(optBeta2), float64(optEps), wd64, step)
			refAdamStep(ref, g, lr, float64(optBeta1), float64(optBeta2), float64(optEps), wd64, step)
		}
		mm := newMismatches(t, "%s step %d (%dx%d, lr=%v, weightDecay=%v)", opt, step, rows, cols, optLR, wd)
		mm.check("w", h.get(mw), ref.w, tol.w, cols)
		switch opt {
		case "momentum":
			mm.check("v", h.get(mv), ref.v, tol.v, cols)
		case "adam":
			mm.check("m", h.get(mm1), ref.m, tol.m, cols)
			mm.check("v", h.get(mv), ref.v, tol.v, cols)
		}
		mm.checkBits("g (input)", h.get(mg), g, cols)
		mm.report()
		if t.Failed() {
			return // later steps only repeat the first difference
		}
	}
}

// optTol tracks the allowed absolute error of each element of the weights
// and the optimizer state. Each step adds the rounding of its own float32
// operations (op times the magnitudes involved) to the error carried over,
// which the step scales by its own derivative (mu for momentum, beta1 and
// beta2 for Adam's moments, 1 + lr*wd, roughly 1, for the weights).
type optTol struct {
	w, m, v []float64
}

const op = safety * 4 * u

func newOptTol(n int) *optTol {
	return &optTol{w: make([]float64, n), m: make([]float64, n), v: make([]float64, n)}
}

// sgd must run before the reference step: it reads the old state.
func (o *optTol) sgd(s *refOptState, g []float32, lr, wd float64) {
	for i := range o.w {
		a := math.Abs(s.w[i])
		o.w[i] = o.w[i]*(1+lr*wd) + op*(a+lr*wd*a+lr*math.Abs(float64(g[i])))
	}
}

func (o *optTol) momentum(s *refOptState, g []float32, lr, mu, wd float64) {
	for i := range o.w {
		gi := math.Abs(float64(g[i]))
		v := math.Abs(mu*s.v[i] + float64(g[i]))
		o.v[i] = mu*o.v[i] + op*(mu*math.Abs(s.v[i])+gi)
		a := math.Abs(s.w[i])
		o.w[i] = o.w[i]*(1+lr*wd) + lr*o.v[i] + op*(a+lr*wd*a+lr*v)
	}
}

// adam propagates through the update q = mhat/(sqrt(vhat)+eps): an error
// em in m moves q by em/c1/(sqrt(vhat)+eps); an error ev in v moves it by
// |q| ev / (2 v) at most (sqrt halves relative errors); and its own
// operations add op*|q|, plus op*|q|/c for each bias correction c = 1 -
// beta^t, which loses that much relative precision when computed in
// float32 (c2 is 0.001 at t = 1).
func (o *optTol) adam(s *refOptState, g []float32, lr, b1, b2, eps, wd float64, t int) {
	c1 := 1 - math.Pow(b1, float64(t))
	c2 := 1 - math.Pow(b2, float64(t))
	for i := range o.w {
		gi := float64(g[i])
		m := b1*s.m[i] + (1-b1)*gi
		v := b2*s.v[i] + (1-b2)*gi*gi
		o.m[i] = b1*o.m[i] + op*(b1*math.Abs(s.m[i])+math.Abs(gi))
		o.v[i] = b2*o.v[i] + op*(b2*s.v[i]+gi*gi)
		den := math.Sqrt(v/c2) + eps
		q := math.Abs(m / c1 / den)
		eq := o.m[i]/c1/den + q*o.v[i]/(2*v) + op*q*(4+1/c1+1/c2)
		a := math.Abs(s.w[i])
		o.w[i] = o.w[i]*(1+lr*wd) + lr*eq + op*(a+lr*wd*a+lr*q)
	}
}
