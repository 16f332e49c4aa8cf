package backendtest

// The naive float64 reference of every Backend operation. It is written
// from the doc comments of model/backend.go and model/loss.go alone, as
// plainly as possible (loops, no blocking, no cleverness beyond what float64
// itself needs), so that it can be checked by eye and by the hand-derived
// cases of reference_test.go. Inputs are the float64 values of the float32
// data the backend gets, so the only differences between a backend and this
// reference are the backend's own roundings.

import (
	"math"

	"github.com/gputrain/gputrain/model"
)

// refGemm returns C = alpha*op(A)*op(B) + beta*C for row-major A (ar x ac),
// B (br x bc) and C (m x n). When beta == 0, C is not read (it may hold
// NaNs). mag receives alpha*sum_l |op(A)_il op(B)_lj| + |beta C_ij|, the
// magnitude the rounding error of a float32 GEMM is proportional to.
func refGemm(transA, transB bool, alpha float64, a []float32, ar, ac int, b []float32, br, bc int, beta float64, c []float32, m, n int) (out, mag []float64) {
	opA := func(i, l int) float64 {
		if transA {
			return float64(a[l*ac+i])
		}
		return float64(a[i*ac+l])
	}
	opB := func(l, j int) float64 {
		if transB {
			return float64(b[j*bc+l])
		}
		return float64(b[l*bc+j])
	}
	k := ac
	if transA {
		k = ar
	}
	out = make([]float64, m*n)
	mag = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for l := 0; l < k; l++ {
				p := opA(i, l) * opB(l, j)
				s += p
				sa += math.Abs(p)
			}
			out[i*n+j] = alpha * s
			mag[i*n+j] = math.Abs(alpha) * sa
			if beta != 0 {
				out[i*n+j] += beta * float64(c[i*n+j])
				mag[i*n+j] += math.Abs(beta * float64(c[i*n+j]))
			}
		}
	}
	return out, mag
}

// refColumnSums returns alpha*sum_i src[i,j] + beta*dst[j] and its
// magnitude alpha*sum_i |src[i,j]| + |beta dst[j]|. dst is not read when
// beta == 0.
func refColumnSums(dst []float32, alpha float64, src []float32, rows, cols int, beta float64) (out, mag []float64) {
	out = make([]float64, cols)
	mag = make([]float64, cols)
	for j := 0; j < cols; j++ {
		var s, sa float64
		for i := 0; i < rows; i++ {
			s += float64(src[i*cols+j])
			sa += math.Abs(float64(src[i*cols+j]))
		}
		out[j] = alpha * s
		mag[j] = math.Abs(alpha) * sa
		if beta != 0 {
			out[j] += beta * float64(dst[j])
			mag[j] += math.Abs(beta * float64(dst[j]))
		}
	}
	return out, mag
}

// refActivate returns act(x).
func refActivate(act model.Activation, x float64) float64 {
	if act == model.ReLU {
		return math.Max(0, x)
	}
	return math.Tanh(x)
}

// refActivationGrad returns grad * act'(.) from the activation's output y.
func refActivationGrad(act model.Activation, grad, y float64) float64 {
	if act == model.ReLU {
		if y > 0 {
			return grad
		}
		return 0
	}
	return grad * (1 - y*y)
}

// refArgmin returns the index of the smallest entry of row, the lowest one
// on ties.
func refArgmin(row []float64) int {
	best := 0
	for j := 1; j < len(row); j++ {
		if row[j] < row[best] {
			best = j
		}
	}
	return best
}

// refLogZ returns log sum_y exp(-beta e_y) by the two-pass method: the
// largest exponent m first, then the sum s of the shifted exponentials, so
// that nothing overflows even for energies of 1e30. It also returns m and
// s, from which probabilities are computed as exp(-beta e_y - m)/s rather
// than exp(-beta e_y - log Z): with exponents of 3e30 the latter loses
// log(s) to rounding and gives P = 0 for an answer whose P is 1/2.
func refLogZ(e []float64, beta float64) (logZ, m, s float64) {
	m = math.Inf(-1)
	for _, v := range e {
		m = math.Max(m, -beta*v)
	}
	for _, v := range e {
		s += math.Exp(-beta*v - m)
	}
	return m + math.Log(s), m, s
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// softplus is log(1 + exp(x)), written so that exp cannot overflow: the
// log loss of a row whose energies are 1e30 apart is 2e30, not +Inf.
func softplus(x float64) float64 {
	return math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x)))
}

// refRow is the reference result of EnergyLoss for one row.
type refRow struct {
	loss, logZ, ec, ei float64
	argmin             int
	offending          int       // index of E_I; -1 when K == 1 or the row is ignored
	grad               []float64 // dL/dE, not yet multiplied by gradScale
	prob               []float64 // P(y|X) at beta, for the tolerances
}

// refEnergyLoss computes one row of EnergyLoss straight from the formulas
// of model/loss.go.
func refEnergyLoss(e []float64, label int, l model.Loss) refRow {
	k := len(e)
	logZ, m, s := refLogZ(e, l.Beta)
	// p is P(y|X) = exp(-beta E_y)/Z.
	p := func(y int) float64 { return math.Exp(-l.Beta*e[y]-m) / s }
	r := refRow{
		logZ:      logZ,
		argmin:    refArgmin(e),
		offending: -1,
		grad:      make([]float64, k),
		prob:      make([]float64, k),
	}
	for y := range r.prob {
		r.prob[y] = p(y)
	}
	if label == model.IgnoreLabel {
		return r
	}
	r.ec = e[label]
	r.ei = math.Inf(1)
	for y := 0; y < k; y++ {
		if y != label && e[y] < r.ei {
			r.ei, r.offending = e[y], y
		}
	}
	if r.offending < 0 && k > 1 {
		// Every incorrect energy is +Inf: the lowest incorrect index.
		r.offending = 0
		if label == 0 {
			r.offending = 1
		}
	}
	d := r.ec - r.ei   // -Inf when K == 1
	var gc, gi float64 // dL/dE_C and dL/dE_I
	switch l.Kind {
	case model.Energy:
		r.loss, gc = r.ec, 1
	case model.Perceptron:
		r.loss = r.ec - e[r.argmin]
		if r.argmin != label {
			r.grad[label], r.grad[r.argmin] = 1, -1
		}
	case model.Hinge:
		if z := l.Margin + d; z > 0 {
			r.loss, gc, gi = z, 1, -1
		}
	case model.Log:
		s := sigmoid(d)
		r.loss, gc, gi = softplus(d), s, -s
	case model.LVQ2:
		// (E_C - E_I)/(delta D) with D > 0 has the sign of E_C - E_I, so the
		// loss is 0 whenever E_C <= E_I; this also covers K == 1, where the
		// ratio itself would be -Inf/Inf.
		if d > 0 {
			dd := 1.0
			if r.ei > 1 {
				dd = r.ei
			}
			ratio := d / (l.Delta * dd)
			if ratio >= 1 {
				r.loss = 1
			} else {
				r.loss, gc = ratio, 1/(l.Delta*dd)
				if r.ei > 1 {
					// ratio = E_C/(delta E_I) - 1/delta.
					gi = -r.ec / (l.Delta * r.ei * r.ei)
				} else {
					gi = -1 / l.Delta
				}
			}
		}
	case model.MCE:
		s := sigmoid(d)
		r.loss, gc, gi = s, s*(1-s), -s*(1-s)
	case model.SquareSquare:
		h := math.Max(0, l.Margin-r.ei)
		r.loss, gc, gi = r.ec*r.ec+h*h, 2*r.ec, -2*h
	case model.SquareExp:
		x := l.Gamma * math.Exp(-r.ei)
		r.loss, gc, gi = r.ec*r.ec+x, 2*r.ec, -x
	case model.NLL:
		// E_C + log Z/beta written as -log(P_C)/beta, (beta E_C + m + log
		// s)/beta, so that E_C and log Z/beta of 1e30 cancel exactly.
		r.loss = (l.Beta*r.ec + m + math.Log(s)) / l.Beta
		for y := range e {
			r.grad[y] = -p(y)
		}
		r.grad[label]++
	case model.MEE:
		pc := p(label)
		r.loss = 1 - pc
		for y := range e {
			ind := 0.0
			if y == label {
				ind = 1
			}
			r.grad[y] = l.Beta * pc * (ind - p(y))
		}
	}
	if l.Kind != model.Perceptron && !l.Kind.TouchesAll() {
		r.grad[label] += gc
		if r.offending >= 0 {
			r.grad[r.offending] += gi
		}
	}
	return r
}

// refLossValue is the loss of one row alone, for finite differences.
func refLossValue(e []float64, label int, l model.Loss) float64 {
	return refEnergyLoss(e, label, l).loss
}

// refOptState is the float64 state of one optimizer run.
type refOptState struct {
	w, m, v []float64
}

// refSGDStep: w -= lr*wd*w + lr*g.
func refSGDStep(s *refOptState, g []float32, lr, wd float64) {
	for i := range s.w {
		s.w[i] -= lr*wd*s.w[i] + lr*float64(g[i])
	}
}

// refMomentumStep: v = mu*v + g; w -= lr*wd*w + lr*v (v is s.v).
func refMomentumStep(s *refOptState, g []float32, lr, mu, wd float64) {
	for i := range s.w {
		s.v[i] = mu*s.v[i] + float64(g[i])
		s.w[i] -= lr*wd*s.w[i] + lr*s.v[i]
	}
}

// refAdamStep: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// w -= lr*wd*w + lr (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps).
func refAdamStep(s *refOptState, g []float32, lr, b1, b2, eps, wd float64, t int) {
	c1 := 1 - math.Pow(b1, float64(t))
	c2 := 1 - math.Pow(b2, float64(t))
	for i := range s.w {
		gi := float64(g[i])
		s.m[i] = b1*s.m[i] + (1-b1)*gi
		s.v[i] = b2*s.v[i] + (1-b2)*gi*gi
		s.w[i] -= lr*wd*s.w[i] + lr*(s.m[i]/c1)/(math.Sqrt(s.v[i]/c2)+eps)
	}
}
