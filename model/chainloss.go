package model

import "math"

// LossTerms is a loss's value and gradient for one example as a function
// of E_C, E_I, E_min = min_y E_y and log Z: every loss of loss.go has
//
//	dL/dE_y = C 1[y = Y_i] + I 1[y = Ybar] + All P(y | X)
//
// where Ybar is the most offending incorrect answer, or the argmin when
// Argmin is set (the perceptron). A structured answer space (ChainOps)
// applies the coefficients to indicator counts and marginals instead of to
// a row of energies; backends whose answers are a flat row (EnergyLoss)
// fold the same formulas into their own pass.
type LossTerms struct {
	Loss       float64
	C, I, All  float64
	UsesArgmin bool
}

// Terms evaluates the loss at eC = E_C, eI = E_I (+Inf when no incorrect
// answer exists), eMin = E of the argmin and logZ = log sum exp(-beta E);
// argminIsLabel says whether the argmin is Y_i itself (equal energies are
// not enough: a tie between Y_i and another answer still pushes). The
// formulas are those of loss.go.
func (l Loss) Terms(eC, eI, eMin, logZ float64, argminIsLabel bool) LossTerms {
	var t LossTerms
	d := eC - eI
	switch l.Kind {
	case Energy:
		t.Loss, t.C = eC, 1
	case Perceptron:
		t.UsesArgmin = true
		if !argminIsLabel {
			t.Loss, t.C, t.I = eC-eMin, 1, -1
		}
	case Hinge:
		if h := l.Margin + d; h > 0 {
			t.Loss, t.C, t.I = h, 1, -1
		}
	case Log:
		s := stableSigmoid(d)
		t.Loss, t.C, t.I = math.Max(d, 0)+math.Log1p(math.Exp(-math.Abs(d))), s, -s
	case LVQ2:
		if math.IsInf(eI, 1) {
			break // no incorrect answer to compare with
		}
		D, dD := 1.0, 0.0 // D and dD/dE_I
		if eI > 1 {
			D, dD = eI, 1
		}
		switch r := d / (l.Delta * D); {
		case r >= 1:
			t.Loss = 1
		case r > 0:
			t.Loss, t.C, t.I = r, 1/(l.Delta*D), (-D-d*dD)/(l.Delta*D*D)
		}
	case MCE:
		s := stableSigmoid(d)
		t.Loss, t.C, t.I = s, s*(1-s), -s*(1-s)
	case SquareSquare:
		h := math.Max(0, l.Margin-eI)
		t.Loss, t.C, t.I = eC*eC+h*h, 2*eC, -2*h
	case SquareExp:
		x := l.Gamma * math.Exp(-eI)
		t.Loss, t.C, t.I = eC*eC+x, 2*eC, -x
	case NLL:
		t.Loss, t.C, t.All = eC+logZ/l.Beta, 1, -1
	case MEE:
		pc := math.Exp(-l.Beta*eC - logZ)
		t.Loss, t.C, t.All = 1-pc, l.Beta*pc, -l.Beta*pc
	}
	return t
}

// stableSigmoid is 1/(1+exp(-x)) without overflow for either sign.
func stableSigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}
