package cpu

import (
	"fmt"
	"math"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// EnergyLoss is the fused energy-loss operation of model.Backend. Each row
// is swept first with float32 comparisons only, for the argmin (whose -beta*E
// is the max of the log-sum-exp), E_C and the most offending E_I; a second
// sweep sums exp(-beta*E_y - max) in float64, so log Z takes one exp per
// answer, never overflows and needs no rescaling (energies of +-1e30 are
// fine). NLL and MEE keep those exps in the row and a third sweep turns them
// into gradients; the other losses zero the row and write at most two
// entries. Rows are split over goroutines, each row whole in one of them, so
// the bits do not depend on the split.
func (b *Backend) EnergyLoss(em model.Mat, labelv model.Ints, loss model.Loss, gradScale float32, statm model.Mat, argv model.Ints) error {
	return b.energyLoss("EnergyLoss", em, labelv, loss, gradScale, statm, argv, true)
}

var _ model.ForwardLoss = (*Backend)(nil)

// EnergyStats is EnergyLoss without the gradient (model.ForwardLoss): the
// same sweeps, so the statistics and argmin are bitwise EnergyLoss's, and e
// is left as it was.
func (b *Backend) EnergyStats(em model.Mat, labelv model.Ints, loss model.Loss, statm model.Mat, argv model.Ints) error {
	return b.energyLoss("EnergyStats", em, labelv, loss, 0, statm, argv, false)
}

func (b *Backend) energyLoss(op string, em model.Mat, labelv model.Ints, loss model.Loss, gradScale float32, statm model.Mat, argv model.Ints, grad bool) error {
	if err := b.open(); err != nil {
		return err
	}
	e, err := b.mat(em, op+" e")
	if err != nil {
		return err
	}
	labels, err := b.ints(labelv, op+" labels")
	if err != nil {
		return err
	}
	stats, err := b.mat(statm, op+" stats")
	if err != nil {
		return err
	}
	amin, err := b.ints(argv, op+" argmin")
	if err != nil {
		return err
	}
	if err := loss.Validate(); err != nil {
		return fmt.Errorf("cpu: %s: %w", op, err)
	}
	B, K := e.rows, e.cols
	if err := backendcheck.EnergyLossShapes(e, labels, stats, amin); err != nil {
		return fmt.Errorf("cpu: %s: %w", op, err)
	}
	if i, bad := backendcheck.FirstBadIndex(labels.data, K, true); bad {
		return fmt.Errorf("cpu: %s: %w", op, backendcheck.LabelError(i, labels.data[i], K))
	}
	b.parallelRows(B, rowChunk(K), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			st := energyLossRow(e.data[i*K:(i+1)*K], int(labels.data[i]), loss, float64(gradScale), grad)
			copy(stats.data[i*model.NumStats:(i+1)*model.NumStats], st.stats[:])
			amin.data[i] = int32(st.argmin)
		}
	})
	return nil
}

type rowResult struct {
	stats  [model.NumStats]float32
	argmin int
}

// energyLossRow computes one row: it returns the statistics and the argmin
// and, when grad, overwrites row with scale * dL/dE (without grad, row is
// only read, and the statistics are the same bits). label is IgnoreLabel
// or in range.
func energyLossRow(row []float32, label int, loss model.Loss, scale float64, grad bool) rowResult {
	beta := loss.Beta
	// Sweep 1: argmin and most offending answer (the smallest energy off the
	// label), ties to the lowest index, by float32 comparisons.
	am, off := 0, -1
	if label != 0 {
		off = 0
	}
	for j := 1; j < len(row); j++ {
		x := row[j]
		if x < row[am] {
			am = j
		}
		if j != label && (off < 0 || x < row[off]) {
			off = j
		}
	}
	// Sweep 2: log Z = mx + log sum_y exp(-beta E_y - mx) with mx = -beta
	// E_min, the largest exponent, so every term is in [0, 1] and the sum in
	// [1, K]. An infinite E_min makes log Z that infinity.
	eMin := float64(row[am])
	mx := -beta * eMin
	eC, eI := 0.0, math.Inf(1) // E_I = +Inf when K == 1: no incorrect answer
	if label >= 0 {
		eC = float64(row[label])
	}
	if off >= 0 {
		eI = float64(row[off])
	}
	touchAll := loss.Kind.TouchesAll() && label >= 0
	var s float64
	if touchAll && grad {
		for j, x := range row {
			ex := math.Exp(-beta*float64(x) - mx)
			s += ex
			row[j] = float32(ex) // unnormalised P_y, for sweep 3
		}
	} else {
		for _, x := range row {
			s += math.Exp(-beta*float64(x) - mx)
		}
	}
	logZ := mx + math.Log(s)
	if math.IsInf(mx, 0) {
		logZ = mx
	}

	var r rowResult
	r.argmin = am
	r.stats[model.StatLogZ] = float32(logZ)
	if label == model.IgnoreLabel {
		if grad {
			clear(row)
		}
		return r
	}

	r.stats[model.StatCorrect] = float32(eC)
	r.stats[model.StatOffending] = float32(eI)

	if touchAll {
		// P_y = exp(-beta E_y - mx) / s, the exps of sweep 2, so that the
		// P_y sum to 1 even where log Z has lost the low bits (E ~ 1e30).
		// For the same reason NLL's E_C + log Z/beta is evaluated as
		// (E_C - E_min) + log(s)/beta.
		invS := 1 / s
		pC := math.Exp(-beta*eC-mx) * invS
		var L, factor float64
		if loss.Kind == model.NLL {
			L, factor = (eC-eMin)+math.Log(s)/beta, scale
		} else {
			L, factor = 1-pC, scale*beta*pC
		}
		r.stats[model.StatLoss] = float32(L)
		if !grad {
			return r
		}
		for j, ex := range row {
			row[j] = float32(factor * -(float64(ex) * invS))
		}
		row[label] = float32(factor * (1 - pC))
		return r
	}

	// The other losses touch at most E_C (gradient gC) and one other answer
	// (index other, gradient gO).
	var L, gC, gO float64
	other := off
	d := eC - eI
	switch loss.Kind {
	case model.Energy:
		L, gC = eC, 1
	case model.Perceptron:
		// The minimum over all answers, the correct one included: nothing
		// to push when the argmin is the label.
		other = am
		if am != label {
			L, gC, gO = eC-eMin, 1, -1
		}
	case model.Hinge:
		if h := loss.Margin + d; h > 0 {
			L, gC, gO = h, 1, -1
		}
	case model.Log:
		// log(1 + exp(d)) and sigmoid(d), both without overflow.
		sg := sigmoid(d)
		L, gC, gO = math.Max(d, 0)+math.Log1p(math.Exp(-math.Abs(d))), sg, -sg
	case model.LVQ2:
		if off < 0 {
			break // K == 1: no incorrect answer, nothing to compare with
		}
		D, dD := 1.0, 0.0 // D and dD/dE_I
		if eI > 1 {
			D, dD = eI, 1
		}
		ratio := d / (loss.Delta * D)
		switch {
		case ratio >= 1:
			L = 1
		case ratio > 0:
			// d ratio/dE_C = 1/(delta D); d ratio/dE_I = (-D - d dD)/(delta D^2).
			L, gC, gO = ratio, 1/(loss.Delta*D), (-D-d*dD)/(loss.Delta*D*D)
		}
	case model.MCE:
		sg := sigmoid(d)
		L, gC, gO = sg, sg*(1-sg), -sg*(1-sg)
	case model.SquareSquare:
		h := math.Max(0, loss.Margin-eI)
		L, gC, gO = eC*eC+h*h, 2*eC, -2*h
	case model.SquareExp:
		ex := loss.Gamma * math.Exp(-eI)
		L, gC, gO = eC*eC+ex, 2*eC, -ex
	}
	r.stats[model.StatLoss] = float32(L)
	if !grad {
		return r
	}
	clear(row)
	row[label] = float32(scale * gC)
	if other >= 0 && other != label {
		row[other] = float32(scale * gO)
	}
	return r
}

// sigmoid is 1/(1+exp(-x)) computed without overflow for either sign.
func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	ex := math.Exp(x)
	return ex / (1 + ex)
}
