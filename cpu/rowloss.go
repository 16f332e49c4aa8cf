package cpu

import (
	"math"

	"github.com/gputrain/gputrain/model"
)

// The per-row arithmetic shared by EnergyLoss (a row of stored energies)
// and the energy head (a row folded tile by tile): from a row's reduction
// to its loss and the coefficients of its gradient.

// rowStats is the reduction of one row of energies at beta.
type rowStats struct {
	eMin float64 // the smallest energy (the log-sum-exp's shift)
	am   int     // its index, ties to the lowest (the argmin)
	eC   float64 // E_C, the label's energy (0 for an ignored row)
	eI   float64 // E_I, the smallest energy off the label; +Inf when K == 1
	off  int     // its index, ties to the lowest; -1 when K == 1
	s    float64 // sum_y exp(-beta (E_y - eMin)), in [1, K] for finite energies
}

// logZ returns log sum_y exp(-beta E_y) = -beta eMin + log s; an infinite
// eMin makes it that infinity (s is then NaN or 0 and says nothing).
func (r *rowStats) logZ(beta float64) float64 {
	mx := -beta * r.eMin
	if math.IsInf(mx, 0) {
		return mx
	}
	return mx + math.Log(r.s)
}

// rowCoef is one row's loss and its gradient, in the form every loss has:
//
//	dL/dE_y = a 1[y == label] + b 1[y == other] + c P_y,
//	P_y = exp(-beta (E_y - eMin)) / s.
type rowCoef struct {
	loss    float64
	a, b, c float64
	other   int // -1: no second answer
}

// lossCoef evaluates loss l (model/loss.go) for a row with the given label
// (not IgnoreLabel) and reduction r.
func lossCoef(l model.Loss, label int, r *rowStats) rowCoef {
	k := rowCoef{other: r.off}
	eC, eI := r.eC, r.eI
	d := eC - eI
	switch l.Kind {
	case model.Energy:
		k.loss, k.a = eC, 1
	case model.Perceptron:
		// The minimum over all answers, the correct one included: nothing
		// to push when the argmin is the label.
		k.other = r.am
		if r.am != label {
			k.loss, k.a, k.b = eC-r.eMin, 1, -1
		}
	case model.Hinge:
		if h := l.Margin + d; h > 0 {
			k.loss, k.a, k.b = h, 1, -1
		}
	case model.Log:
		// log(1 + exp(d)) and sigmoid(d), both without overflow.
		sg := sigmoid(d)
		k.loss, k.a, k.b = math.Max(d, 0)+math.Log1p(math.Exp(-math.Abs(d))), sg, -sg
	case model.LVQ2:
		if r.off < 0 {
			break // K == 1: no incorrect answer, nothing to compare with
		}
		D, dD := 1.0, 0.0 // D and dD/dE_I
		if eI > 1 {
			D, dD = eI, 1
		}
		ratio := d / (l.Delta * D)
		switch {
		case ratio >= 1:
			k.loss = 1
		case ratio > 0:
			// d ratio/dE_C = 1/(delta D); d ratio/dE_I = (-D - d dD)/(delta D^2).
			k.loss, k.a, k.b = ratio, 1/(l.Delta*D), (-D-d*dD)/(l.Delta*D*D)
		}
	case model.MCE:
		sg := sigmoid(d)
		k.loss, k.a, k.b = sg, sg*(1-sg), -sg*(1-sg)
	case model.SquareSquare:
		h := math.Max(0, l.Margin-eI)
		k.loss, k.a, k.b = eC*eC+h*h, 2*eC, -2*h
	case model.SquareExp:
		ex := l.Gamma * math.Exp(-eI)
		k.loss, k.a, k.b = eC*eC+ex, 2*eC, -ex
	case model.NLL:
		// E_C + log Z/beta as (E_C - E_min) + log(s)/beta, so that E_C and
		// log Z/beta of 1e30 cancel exactly.
		k.loss, k.a, k.c, k.other = (eC-r.eMin)+math.Log(r.s)/l.Beta, 1, -1, -1
	case model.MEE:
		pC := math.Exp(-l.Beta*(eC-r.eMin)) / r.s
		k.loss, k.a, k.c, k.other = 1-pC, l.Beta*pC, -l.Beta*pC, -1
	}
	if k.other == label {
		k.other = -1 // the perceptron's argmin at the label: a and b cancel
		k.a, k.b = 0, 0
	}
	return k
}

// statsRow writes one row's statistics.
func statsRow(dst []float32, l model.Loss, label int, r *rowStats, k *rowCoef) {
	dst[model.StatLoss], dst[model.StatLogZ] = 0, float32(r.logZ(l.Beta))
	dst[model.StatCorrect], dst[model.StatOffending] = 0, 0
	if label == model.IgnoreLabel {
		return
	}
	dst[model.StatLoss] = float32(k.loss)
	dst[model.StatCorrect] = float32(r.eC)
	dst[model.StatOffending] = float32(r.eI)
}

// sigmoid is 1/(1+exp(-x)) computed without overflow for either sign.
func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	ex := math.Exp(x)
	return ex / (1 + ex)
}
