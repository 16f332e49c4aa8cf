package model

import (
	"fmt"
	"math"
	"strings"
)

// LossKind names one of the ten losses of LeCun et al., "A Tutorial on
// Energy-Based Learning" (2006), section 2.2 and table 1. Every loss is a
// function of E_C = E(W, Y_i, X_i) (the correct answer's energy), E_I =
// min_{y != Y_i} E(W, y, X_i) (the most offending incorrect answer, ties to
// the lowest y), and log Z = log sum_y exp(-beta E_y). "Margin" below is the
// tutorial's: the gap E_I - E_C that the loss keeps pushing for.
type LossKind int

const (
	// Energy: L = E_C. dL/dE_C = 1. No margin: it only pushes the correct
	// answer down, so unless the architecture ties energies together it
	// collapses (every energy goes to -inf). A linear model with free biases
	// does collapse: that is the tutorial's warning, kept measurable.
	Energy LossKind = iota
	// Perceptron (generalized perceptron): L = E_C - min_y E_y (min over all
	// answers, the correct one included). dL/dE_C = 1, dL/dE_argmin = -1
	// (both vanish when the argmin is Y_i). Margin 0: it stops as soon as
	// the correct answer is the argmin, by any gap.
	Perceptron
	// Hinge: L = max(0, m + E_C - E_I). While active, dL/dE_C = 1 and
	// dL/dE_I = -1. Margin m (Loss.Margin).
	Hinge
	// Log: L = log(1 + exp(E_C - E_I)), the soft hinge. With s = sigmoid(E_C
	// - E_I): dL/dE_C = s, dL/dE_I = -s. Infinite margin: it never stops
	// pushing, ever more weakly.
	Log
	// LVQ2: L = min(1, max(0, (E_C - E_I) / (delta*D))) with D = E_I when
	// E_I > 1 and D = 1 otherwise. The tutorial divides by delta*E_I, which
	// assumes positive energies (distances); energies here are negated scores
	// and may be negative, so D is floored at 1. Active only while the ratio
	// is strictly between 0 and 1. Margin 0: it stops when E_C < E_I, and it
	// gives up (zero gradient) on rows that are very wrong. Loss.Delta.
	LVQ2
	// MCE (minimum classification error): L = sigmoid(E_C - E_I). With s =
	// sigmoid(E_C - E_I): dL/dE_C = s(1-s), dL/dE_I = -s(1-s). Margin > 0
	// but vanishing; like LVQ2, it saturates on very wrong rows.
	MCE
	// SquareSquare: L = E_C^2 + max(0, m - E_I)^2. dL/dE_C = 2 E_C,
	// dL/dE_I = -2 max(0, m - E_I). Margin m; it assumes energies >= 0 (it
	// pulls E_C to 0, not to -inf).
	SquareSquare
	// SquareExp (square-exponential): L = E_C^2 + gamma exp(-E_I).
	// dL/dE_C = 2 E_C, dL/dE_I = -gamma exp(-E_I). Margin > 0 (infinite, but
	// weakening). Loss.Gamma.
	SquareExp
	// NLL (negative log-likelihood, MMI): L = E_C + (1/beta) log Z.
	// dL/dE_y = 1[y == Y_i] - P(y|X), P(y|X) = exp(-beta E_y) / Z. It pulls
	// up every answer, weighted by its probability. Margin > 0 (infinite).
	// Loss.Beta.
	NLL
	// MEE (minimum empirical error): L = 1 - P(Y_i|X). dL/dE_y = beta P_C
	// (1[y == Y_i] - P_y). Margin > 0, but like MCE it saturates on very wrong
	// rows (P_C ~ 0 gives no gradient). Loss.Beta.
	MEE
	numLossKinds
)

var lossNames = [...]string{
	Energy:       "energy",
	Perceptron:   "perceptron",
	Hinge:        "hinge",
	Log:          "log",
	LVQ2:         "lvq2",
	MCE:          "mce",
	SquareSquare: "square-square",
	SquareExp:    "square-exp",
	NLL:          "nll",
	MEE:          "mee",
}

func (k LossKind) String() string {
	if k >= 0 && k < numLossKinds {
		return lossNames[k]
	}
	return fmt.Sprintf("LossKind(%d)", int(k))
}

// LossKinds lists every loss in the tutorial's order.
func LossKinds() []LossKind {
	ks := make([]LossKind, numLossKinds)
	for i := range ks {
		ks[i] = LossKind(i)
	}
	return ks
}

// LossNames lists the names ParseLossKind accepts.
func LossNames() []string { return append([]string(nil), lossNames[:]...) }

// ParseLossKind returns the loss with the given name (see LossNames).
func ParseLossKind(name string) (LossKind, error) {
	for i, n := range lossNames {
		if strings.EqualFold(name, n) {
			return LossKind(i), nil
		}
	}
	return 0, fmt.Errorf("unknown loss %q (valid: %s)", name, strings.Join(lossNames[:], ", "))
}

// Loss is a loss and its parameters. Parameters a loss does not use are
// ignored by it; Beta is always used for the reported log Z.
type Loss struct {
	Kind   LossKind
	Beta   float64 // inverse temperature of the Gibbs distribution (NLL, MEE, log Z); > 0
	Margin float64 // m of Hinge and SquareSquare; >= 0
	Gamma  float64 // gamma of SquareExp; > 0
	Delta  float64 // delta of LVQ2; > 0
}

// DefaultLoss returns kind with beta = 1, margin = 1, gamma = 1, delta = 1.
func DefaultLoss(kind LossKind) Loss {
	return Loss{Kind: kind, Beta: 1, Margin: 1, Gamma: 1, Delta: 1}
}

// Validate reports the first invalid parameter.
func (l Loss) Validate() error {
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch {
	case l.Kind < 0 || l.Kind >= numLossKinds:
		return fmt.Errorf("unknown loss kind %d (valid: %s)", int(l.Kind), strings.Join(lossNames[:], ", "))
	case !(l.Beta > 0) || !finite(l.Beta):
		return fmt.Errorf("beta must be a finite number > 0, got %v", l.Beta)
	case !(l.Margin >= 0) || !finite(l.Margin):
		return fmt.Errorf("margin must be a finite number >= 0, got %v", l.Margin)
	case !(l.Gamma > 0) || !finite(l.Gamma):
		return fmt.Errorf("gamma must be a finite number > 0, got %v", l.Gamma)
	case !(l.Delta > 0) || !finite(l.Delta):
		return fmt.Errorf("delta must be a finite number > 0, got %v", l.Delta)
	}
	return nil
}

// TouchesAll reports whether the loss's gradient is nonzero, in general, for
// every answer (NLL, MEE) rather than only for Y_i and one other answer.
func (k LossKind) TouchesAll() bool { return k == NLL || k == MEE }

func (l Loss) String() string {
	s := l.Kind.String()
	switch l.Kind {
	case Hinge, SquareSquare:
		s += fmt.Sprintf("(m=%g)", l.Margin)
	case SquareExp:
		s += fmt.Sprintf("(gamma=%g)", l.Gamma)
	case LVQ2:
		s += fmt.Sprintf("(delta=%g)", l.Delta)
	case NLL, MEE:
		s += fmt.Sprintf("(beta=%g)", l.Beta)
	}
	return s
}
