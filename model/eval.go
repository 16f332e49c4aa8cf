package model

import (
	"errors"
	"fmt"
	"math"
)

// EvalResult summarizes a model on a labelled data set.
type EvalResult struct {
	N        int     // rows evaluated
	Accuracy float64 // fraction of rows whose lowest-energy answer is the label
	// NLL is the mean negative log-likelihood at the loss's beta, E_C +
	// (1/beta) log Z, whatever loss the model was trained with, so that
	// models trained with different losses compare on one scale.
	NLL float64
	// Loss is the mean per-row value of the loss the model is trained with
	// (the Loss given to Evaluate), so it compares with the training loss.
	Loss float64
	// Margin is the mean of E_I - E_C: positive when the correct answer is
	// below the most offending incorrect one.
	Margin float64
	// Violations is the fraction of rows with E_C + m >= E_I, m being the
	// loss's margin: rows that a hinge loss with that margin would still
	// push on (with m = 0: misclassified rows or ties).
	Violations float64
	// MeanCorrect is the mean E_C and MeanOffending the mean E_I; they show
	// the energy scale. A collapsing loss drives both toward -inf.
	MeanCorrect, MeanOffending float64
	// Stalled is the fraction of rows that are misclassified and yet get
	// (almost) no gradient from the loss: max(|dL/dE_C|, |dL/dE_I|) <
	// StallThreshold. It measures the saturation of MCE, LVQ2 and MEE on
	// very wrong rows, and the margin-0 stop of the perceptron (which has
	// none on misclassified rows).
	Stalled float64
	// Margins holds E_I - E_C of every row, in row order, when the caller
	// asked for them (Trainer.KeepMargins); nil otherwise. Plots show their
	// distribution, which the mean alone hides.
	Margins []float32
	// Positions and PositionAccuracy are set for chain models, whose
	// answers are sequences: there N, Accuracy (exact match of the whole
	// sequence), NLL, Loss and the margins are per sequence, and these
	// count the positions and the fraction answered right.
	Positions        int
	PositionAccuracy float64
	// LogZAudit, for a model trained with a sampled loss, compares its
	// estimate of log Z with the exact one on these rows; nil otherwise.
	LogZAudit *LogZAudit
}

// StallThreshold is the gradient magnitude under which EvalResult counts a
// misclassified row as stalled.
const StallThreshold = 1e-3

// rowGradient returns max(|dL/dE_C|, |dL/dE_I|) of one row for loss, from
// its E_C, E_I and log Z at loss.Beta, following the formulas in loss.go.
// wrong says whether the row's argmin is not its label.
func rowGradient(loss Loss, ec, ei, logZ float64, wrong bool) float64 {
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	pc := math.Exp(-loss.Beta*ec - logZ)
	switch loss.Kind {
	case Energy:
		return 1
	case Perceptron:
		if wrong {
			return 1
		}
		return 0
	case Hinge:
		if loss.Margin+ec-ei > 0 {
			return 1
		}
		return 0
	case Log:
		return sig(ec - ei)
	case LVQ2:
		d := 1.0
		if ei > 1 {
			d = ei
		}
		dd := 0.0 // dD/dE_I
		if ei > 1 {
			dd = 1
		}
		if r := (ec - ei) / (loss.Delta * d); r > 0 && r < 1 {
			gi := (-d - (ec-ei)*dd) / (loss.Delta * d * d)
			return math.Max(1/(loss.Delta*d), math.Abs(gi))
		}
		return 0
	case MCE:
		s := sig(ec - ei)
		return s * (1 - s)
	case SquareSquare:
		return math.Max(2*math.Abs(ec), 2*math.Max(0, loss.Margin-ei))
	case SquareExp:
		return math.Max(2*math.Abs(ec), loss.Gamma*math.Exp(-ei))
	case NLL:
		return 1 - pc
	case MEE:
		return loss.Beta * pc * (1 - pc)
	}
	return math.NaN()
}

// Evaluate runs m over dd in batches of batch rows and measures it with the
// beta and margin of loss. It allocates its own batch buffers.
func Evaluate(b Backend, m EnergyModel, dd *DeviceData, loss Loss, batch int) (EvalResult, error) {
	if batch < 1 {
		return EvalResult{}, fmt.Errorf("evaluate: batch must be >= 1, got %d", batch)
	}
	if err := loss.Validate(); err != nil {
		return EvalResult{}, err
	}
	if dd == nil || dd.X == nil {
		return EvalResult{}, errors.New("evaluate: no data (nil or freed)")
	}
	bt, err := newBatcher(b, rowsPerStep(batch, dd.Host.N), dd.Host.D)
	if err != nil {
		return EvalResult{}, err
	}
	defer bt.free()
	return evaluate(b, m, dd, loss, bt, false)
}

// evaluate measures m on dd; with keepMargins it also returns every row's
// E_I - E_C.
func evaluate(b Backend, m EnergyModel, dd *DeviceData, loss Loss, bt *batcher, keepMargins bool) (EvalResult, error) {
	d := dd.Host
	if m.Inputs() != d.D || m.Classes() != d.Classes {
		return EvalResult{}, fmt.Errorf("evaluate: model takes %d inputs and %d classes, data has %d and %d", m.Inputs(), m.Classes(), d.D, d.Classes)
	}
	stats := make([]float32, bt.size*NumStats)
	argmin := make([]int32, bt.size)
	rows := make([]int32, 0, bt.size)
	var r EvalResult
	var correct, violations, stalled int
	var sumNLL, sumLoss, sumMargin, sumEC, sumEI float64
	var margins []float32
	if keepMargins {
		margins = make([]float32, 0, d.N)
	}
	for start := 0; start < d.N; start += bt.size {
		end := min(start+bt.size, d.N)
		rows = rows[:0]
		for i := start; i < end; i++ {
			rows = append(rows, int32(i))
		}
		if err := bt.load(dd, rows); err != nil {
			return r, fmt.Errorf("evaluate rows %d..%d: %w", start, end-1, err)
		}
		// One loss pass with the training loss gives both that loss and,
		// from E_C and log Z at loss.Beta, the NLL; no gradient (the fused
		// head's forward, or Forward and energyStats).
		if _, err := lossPass(b, m, bt.x, bt.y, loss, 1, bt.stats, bt.argmin, false); err != nil {
			return r, fmt.Errorf("evaluate rows %d..%d: %w", start, end-1, err)
		}
		if err := b.Download(stats, bt.stats); err != nil {
			return r, err
		}
		if err := b.DownloadInts(argmin, bt.argmin); err != nil {
			return r, err
		}
		for i := 0; i < end-start; i++ {
			s := stats[i*NumStats : (i+1)*NumStats]
			y := d.Y[start+i]
			if argmin[i] == y {
				correct++
			}
			ec, ei := float64(s[StatCorrect]), float64(s[StatOffending])
			sumNLL += ec + float64(s[StatLogZ])/loss.Beta
			sumLoss += float64(s[StatLoss])
			sumMargin += ei - ec
			if keepMargins {
				margins = append(margins, s[StatOffending]-s[StatCorrect])
			}
			sumEC += ec
			sumEI += ei
			if argmin[i] != y && rowGradient(loss, ec, ei, float64(s[StatLogZ]), true) < StallThreshold {
				stalled++
			}
			if ec+loss.Margin >= ei {
				violations++
			}
		}
	}
	n := float64(d.N)
	r = EvalResult{
		N:             d.N,
		Accuracy:      float64(correct) / n,
		NLL:           sumNLL / n,
		Loss:          sumLoss / n,
		Margin:        sumMargin / n,
		Violations:    float64(violations) / n,
		MeanCorrect:   sumEC / n,
		MeanOffending: sumEI / n,
		Stalled:       float64(stalled) / n,
		Margins:       margins,
	}
	// Non-finite energies give NaN/Inf statistics here rather than an
	// error: a diverged model is a result worth reporting.
	return r, nil
}

// energyStats is the loss statistics of e without its gradient: the
// backend's forward-only kernel where it has one (ForwardLoss), else
// EnergyLoss, which also overwrites e with a gradient nobody reads.
func energyStats(b Backend, e Mat, labels Ints, loss Loss, stats Mat, argmin Ints) error {
	if f, ok := b.(ForwardLoss); ok {
		return f.EnergyStats(e, labels, loss, stats, argmin)
	}
	return b.EnergyLoss(e, labels, loss, 1, stats, argmin)
}
