package backendtest

// Tolerances. A backend computes in float32 (possibly accumulating in
// float64, possibly with FMAs, in any fixed summation order); the reference
// computes in float64 from the same float32 inputs. The allowed difference
// is the classical a-priori error bound of the float32 computation, with a
// safety factor of 2, so that any correct float32 algorithm passes and a
// wrong one (a lost term, a wrong index, a missed tie, a sign) fails:
//
//   - one float32 operation on values of magnitude x: u*|x|, where u = 2^-24
//     is float32's unit roundoff;
//   - a sum or dot product of n terms in any order: gamma(n)*sum|terms|,
//     gamma(n) = n*u (Higham, "Accuracy and Stability of Numerical
//     Algorithms", section 3.1); this is linear in n because a backend may
//     sum sequentially;
//   - a composite expression: the first-order propagation of those errors
//     through its derivative, spelled out per output below.
//
// The error bound scales with the magnitude of the inputs, not of the
// result, so for rows with energies of 1e30 the tolerances are of that
// order too: there the suite checks that outputs are finite exactly where
// the mathematics is, that E_C, E_I and the argmin are exact, and the
// values to float32's relative precision of the inputs.

import (
	"math"

	"github.com/gputrain/gputrain/model"
)

// u is float32's unit roundoff, 2^-24.
const u = 0x1p-24

// safety multiplies every bound: it absorbs the constant factors that the
// bounds below leave out (conversions, a final rounding), not sloppiness.
const safety = 2

// gamma is the error factor of an n-term reduction plus c further
// operations.
func gamma(n, c int) float64 { return safety * float64(n+c) * u }

// close32 reports whether the float32 got matches the float64 reference
// want within tol. When want rounds to an infinity in float32 (it overflows
// float32's range, or is infinite), got must be that infinity; a NaN want
// requires a NaN; otherwise got must be finite and within tol of want (or
// equal to float32(want), which covers tol == 0).
func close32(got float32, want, tol float64) bool {
	w32 := float32(want)
	switch {
	case math.IsNaN(want):
		return got != got
	case math.IsInf(float64(w32), 0):
		return got == w32
	case got != got || math.IsInf(float64(got), 0):
		return false
	}
	return got == w32 || math.Abs(float64(got)-want) <= tol
}

// rowTol holds the allowed errors of one row of EnergyLoss, before
// multiplying the gradient's by |gradScale|, and whether the row sits so
// close to a kink of the loss (a point where its gradient jumps) that a
// correct float32 backend may land on either side: its gradient is then not
// compared (the loss is continuous, so it still is).
type rowTol struct {
	logZ, loss float64
	grad       []float64
	nearKink   bool
}

// energyLossTol derives the tolerances of one reference row r of energies e
// under loss l. K = len(e).
//
// log Z: the exponents -beta*E_y carry an error of u*|max exponent| once
// rounded (the terms that matter are within a few units of the largest;
// the others contribute nothing), and the K-term sum of exponentials a
// relative error of gamma(K), which becomes an absolute error in its log.
//
// Probabilities P_y = exp(-beta E_y - log Z) inherit the error of their
// exponent: P_y*(u*(beta|E_y| + |log Z|) + tol(log Z)).
func energyLossTol(e []float64, label int, l model.Loss, r refRow) rowTol {
	k := len(e)
	beta := l.Beta
	t := rowTol{grad: make([]float64, k)}
	maxExp := math.Inf(-1)
	for _, v := range e {
		maxExp = math.Max(maxExp, -beta*v)
	}
	t.logZ = gamma(k, 4) + safety*4*u*(math.Abs(r.logZ)+math.Abs(maxExp))
	// errP is the allowed absolute error of P_y.
	errP := func(y int) float64 {
		p := r.prob[y]
		return p*(safety*4*u*(beta*math.Abs(e[y])+math.Abs(r.logZ))+t.logZ) + safety*4*u
	}
	if label == model.IgnoreLabel {
		return t // loss 0 and a zero gradient must be exact
	}
	ec, ei := math.Abs(r.ec), math.Abs(r.ei)
	if math.IsInf(ei, 0) {
		ei = 0 // K == 1: E_I does not take part in any arithmetic that matters
	}
	d := r.ec - r.ei
	op := safety * 4 * u // a handful of float32 operations
	var gc, gi float64   // allowed errors of dL/dE_C and dL/dE_I
	switch l.Kind {
	case model.Energy:
		t.loss = op * ec
		gc = op
	case model.Perceptron:
		t.loss = op * (ec + math.Abs(e[r.argmin]))
		gc, gi = op, op
	case model.Hinge:
		scale := l.Margin + ec + ei
		t.loss = op * scale
		gc, gi = op, op
		// The kink: m + E_C - E_I == 0, known only to within op*scale.
		t.nearKink = math.Abs(l.Margin+d) <= op*scale
	case model.Log:
		s := sigmoid(d)
		t.loss = op * (ec + ei + math.Abs(r.loss) + 1)
		// d(s)/dd = s(1-s), and d carries op*(|E_C|+|E_I|).
		gc = op * (s + s*(1-s)*(ec+ei+1))
		gi = gc
	case model.LVQ2:
		dd := 1.0
		if r.ei > 1 {
			dd = r.ei
		}
		ratio := 0.0 // K == 1 (E_I = +Inf): the loss is 0, not -Inf/Inf
		if !math.IsInf(r.ei, 1) {
			ratio = d / (l.Delta * dd)
		}
		rscale := (ec+ei)/(l.Delta*dd) + math.Abs(ratio) + 1
		t.loss = op * rscale
		g1 := 1 / (l.Delta * dd)
		g2 := 1 / l.Delta
		if math.IsInf(r.ei, 1) {
			g1, g2 = 0, 0
		} else if r.ei > 1 {
			g2 = ec / (l.Delta * r.ei * r.ei)
		}
		gc = op * 2 * (g1 + g2)
		gi = gc
		// Kinks: the ratio crossing 0 or 1 and E_I crossing 1 (D changes
		// formula). Exactly tied E_C and E_I give a ratio of exactly 0 in
		// any arithmetic, so that case is not near a kink but on it, the
		// same for every backend.
		t.nearKink = (d != 0 && math.Abs(ratio) <= op*rscale) ||
			math.Abs(ratio-1) <= op*rscale ||
			(d > 0 && math.Abs(r.ei-1) <= op*(ei+1))
	case model.MCE:
		s := sigmoid(d)
		t.loss = op * (s*(1-s)*(ec+ei+1) + s)
		// d(s(1-s))/dd = s(1-s)(1-2s), at most s(1-s) in size; and 1 - s,
		// computed from a rounded s near 1, is only known to within u.
		gc = op * (s*(1-s)*(ec+ei+2) + s)
		gi = gc
	case model.SquareSquare:
		h := math.Max(0, l.Margin-r.ei)
		t.loss = op * (ec*ec + h*(h+l.Margin+ei))
		gc = op * ec
		gi = op * (h + l.Margin + ei)
	case model.SquareExp:
		x := l.Gamma * math.Exp(-r.ei)
		t.loss = op * (ec*ec + x*(ei+1))
		gc = op * ec
		gi = op * x * (ei + 1)
	case model.NLL:
		t.loss = op*(ec+math.Abs(r.logZ)/beta) + t.logZ/beta
		for y := range e {
			t.grad[y] = errP(y)
		}
		return t
	case model.MEE:
		pc := r.prob[label]
		epc := errP(label)
		t.loss = epc
		for y := range e {
			py := r.prob[y]
			t.grad[y] = beta*(epc*(1+py)+pc*errP(y)) + op*math.Abs(r.grad[y])
		}
		return t
	}
	t.grad[label] += gc
	if l.Kind == model.Perceptron {
		t.grad[r.argmin] += gi
	} else if r.offending >= 0 {
		t.grad[r.offending] += gi
	}
	return t
}

// kinkDistance returns how far, in units of energy, the row e is from the
// nearest point where the gradient of loss l jumps (or, for SquareSquare,
// where its derivative does), for choosing points at which central finite
// differences are meaningful. It includes the switches of E_I and of the
// argmin between answers.
func kinkDistance(e []float64, label int, l model.Loss) float64 {
	if label == model.IgnoreLabel {
		return math.Inf(1)
	}
	r := refEnergyLoss(e, label, l)
	dist := math.Inf(1)
	// Gap between the two smallest energies among those indexed by use.
	gap := func(use func(y int) bool) float64 {
		lo, lo2 := math.Inf(1), math.Inf(1)
		for y, v := range e {
			if !use(y) {
				continue
			}
			if v < lo {
				lo, lo2 = v, lo
			} else if v < lo2 {
				lo2 = v
			}
		}
		return lo2 - lo
	}
	if l.Kind == model.Perceptron {
		dist = math.Min(dist, gap(func(int) bool { return true }))
	} else if !l.Kind.TouchesAll() && l.Kind != model.Energy {
		dist = math.Min(dist, gap(func(y int) bool { return y != label }))
	}
	d := r.ec - r.ei
	switch l.Kind {
	case model.Hinge:
		dist = math.Min(dist, math.Abs(l.Margin+d))
	case model.LVQ2:
		dd := math.Max(1, r.ei)
		dist = math.Min(dist, math.Abs(d))
		dist = math.Min(dist, math.Abs(d-l.Delta*dd)/(1+1/l.Delta))
		dist = math.Min(dist, math.Abs(r.ei-1))
	case model.SquareSquare:
		dist = math.Min(dist, math.Abs(l.Margin-r.ei))
	}
	return dist
}
