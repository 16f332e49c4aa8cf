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
// sweep sums exp(-beta*(E_y - E_min)), each term in [0, 1], by the
// vectorized float32 exp of exp.go into a float64 sum, so log Z never
// overflows and needs no rescaling (energies of +-1e30 are fine) and the
// sweep runs at memory speed rather than at one float64 math.Exp per
// answer. NLL and MEE keep those exps in the row and a third sweep turns them
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
// only read, and the statistics are the same bits: the sum of sweep 2 is
// taken the same way whether its terms are kept or not). label is
// IgnoreLabel or in range.
func energyLossRow(row []float32, label int, loss model.Loss, scale float64, grad bool) rowResult {
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
	r := rowStats{eMin: float64(row[am]), am: am, eI: math.Inf(1), off: off}
	if label >= 0 {
		r.eC = float64(row[label])
	}
	if off >= 0 {
		r.eI = float64(row[off])
	}
	// Sweep 2: s = sum_y exp(-beta (E_y - E_min)), every term in [0, 1]
	// and the sum in [1, K]. NLL and MEE keep the terms in the row for
	// sweep 3.
	shift, nbeta := row[am], float32(-loss.Beta)
	touchAll := loss.Kind.TouchesAll() && label >= 0
	if touchAll && grad {
		r.s = expScaleShifted(row, row, shift, nbeta, 1)
	} else {
		r.s = expSumShifted(row, shift, nbeta)
	}

	var res rowResult
	res.argmin = am
	if label == model.IgnoreLabel {
		statsRow(res.stats[:], loss, label, &r, nil)
		if grad {
			clear(row)
		}
		return res
	}
	k := lossCoef(loss, label, &r)
	statsRow(res.stats[:], loss, label, &r, &k)
	if !grad {
		return res
	}
	if touchAll {
		// P_y = exp(-beta (E_y - E_min)) / s, the terms of sweep 2, so that
		// the P_y sum to 1 even where log Z has lost the low bits (E ~ 1e30).
		f := float32(scale * k.c / r.s)
		for j, ex := range row {
			row[j] = f * ex
		}
		pC := math.Exp(-loss.Beta*(r.eC-r.eMin)) / r.s
		row[label] = float32(scale * (k.a + k.c*pC))
		return res
	}
	// The other losses touch at most E_C and one other answer.
	clear(row)
	row[label] = float32(scale * k.a)
	if k.other >= 0 {
		row[k.other] = float32(scale * k.b)
	}
	return res
}
