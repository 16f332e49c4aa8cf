package backendcheck

import (
	"errors"
	"fmt"

	"github.com/gputrain/gputrain/model"
)

// The checks of model.ChainOps. Shapes first (ChainShapes and the
// per-operation checks), then the values of the offsets and labels
// (ChainOffsets, ChainLabels), which a backend may hold on the host or
// have to fetch.

// ChainShapes checks a model.Chain's matrices: U is R x K with K >= 1, P
// K x K, Start and Final 1 x K, all distinct, and Offsets has at least one
// entry. It returns B (sequences), R (rows) and K.
func ChainShapes(c model.Chain) (b, r, k int, err error) {
	r, k = c.U.Rows(), c.U.Cols()
	switch {
	case k < 1:
		return 0, 0, 0, fmt.Errorf("U is %s: want K >= 1 states", Shape(c.U))
	case c.P.Rows() != k || c.P.Cols() != k:
		return 0, 0, 0, fmt.Errorf("P is %s, want %dx%d (K x K for U %s)", Shape(c.P), k, k, Shape(c.U))
	case c.Start.Rows() != 1 || c.Start.Cols() != k:
		return 0, 0, 0, fmt.Errorf("Start is %s, want 1x%d", Shape(c.Start), k)
	case c.Final.Rows() != 1 || c.Final.Cols() != k:
		return 0, 0, 0, fmt.Errorf("Final is %s, want 1x%d", Shape(c.Final), k)
	case c.Offsets.Len() < 1:
		return 0, 0, 0, errors.New("Offsets is empty: want B+1 entries (0 for no sequence)")
	}
	if err := Distinct(c.U, c.P, c.Start, c.Final); err != nil {
		return 0, 0, 0, err
	}
	return c.Offsets.Len() - 1, r, k, nil
}

// chainOutputs checks that the outputs outs are none of the chain's inputs.
func chainOutputs(c model.Chain, outs ...model.Mat) error {
	return Distinct(append([]model.Mat{c.U, c.P, c.Start, c.Final}, outs...)...)
}

// ChainLossShapes checks the operands of ChainOps.ChainLoss: labels and
// path of length R (and different vectors, neither the offsets), stats B x
// NumStats, and the gradients all set (K x K, 1 x K, 1 x K) or all nil.
func ChainLossShapes(c model.Chain, labels model.Ints, stats model.Mat, path model.Ints, g model.ChainGrads) error {
	b, r, k, err := ChainShapes(c)
	if err != nil {
		return err
	}
	switch {
	case labels.Len() != r:
		return fmt.Errorf("labels have length %d, want %d (the rows of U %s)", labels.Len(), r, Shape(c.U))
	case path.Len() != r:
		return fmt.Errorf("path has length %d, want %d (the rows of U %s)", path.Len(), r, Shape(c.U))
	case stats.Rows() != b || stats.Cols() != model.NumStats:
		return fmt.Errorf("stats is %s, want %dx%d (B = %d sequences)", Shape(stats), b, model.NumStats, b)
	case sameHandle(labels, path) || sameHandle(path, c.Offsets) || sameHandle(labels, c.Offsets):
		return errors.New("labels, path and Offsets must be different vectors")
	}
	none := g.P == nil && g.Start == nil && g.Final == nil
	if none {
		return chainOutputs(c, stats)
	}
	switch {
	case g.P == nil || g.Start == nil || g.Final == nil:
		return errors.New("the gradients P, Start and Final must be all set or all nil")
	case g.P.Rows() != k || g.P.Cols() != k:
		return fmt.Errorf("gradient P is %s, want %dx%d", Shape(g.P), k, k)
	case g.Start.Rows() != 1 || g.Start.Cols() != k || g.Final.Rows() != 1 || g.Final.Cols() != k:
		return fmt.Errorf("gradients Start %s and Final %s, want 1x%d", Shape(g.Start), Shape(g.Final), k)
	}
	return chainOutputs(c, stats, g.P, g.Start, g.Final)
}

// ChainMarginalsShapes checks the operands of ChainOps.ChainMarginals:
// logZ B x 1, marg R x K, pair (nil allowed) K x K, and beta > 0.
func ChainMarginalsShapes(c model.Chain, beta float64, logZ, marg, pair model.Mat) error {
	b, r, k, err := ChainShapes(c)
	if err != nil {
		return err
	}
	switch {
	case !(beta > 0) || beta > 1e300:
		return fmt.Errorf("beta = %v, want a finite beta > 0", beta)
	case logZ.Rows() != b || logZ.Cols() != 1:
		return fmt.Errorf("logZ is %s, want %dx1 (B = %d sequences)", Shape(logZ), b, b)
	case marg.Rows() != r || marg.Cols() != k:
		return fmt.Errorf("marg is %s, want %s (the shape of U)", Shape(marg), Shape(c.U))
	}
	if pair == nil {
		return chainOutputs(c, logZ, marg)
	}
	if pair.Rows() != k || pair.Cols() != k {
		return fmt.Errorf("pair is %s, want %dx%d", Shape(pair), k, k)
	}
	return chainOutputs(c, logZ, marg, pair)
}

// ChainViterbiShapes checks the operands of ChainOps.ChainViterbi: path
// of length R (not the offsets), energy B x 1.
func ChainViterbiShapes(c model.Chain, path model.Ints, energy model.Mat) error {
	b, r, _, err := ChainShapes(c)
	if err != nil {
		return err
	}
	switch {
	case path.Len() != r:
		return fmt.Errorf("path has length %d, want %d (the rows of U %s)", path.Len(), r, Shape(c.U))
	case sameHandle(path, c.Offsets):
		return errors.New("path and Offsets must be different vectors")
	case energy.Rows() != b || energy.Cols() != 1:
		return fmt.Errorf("energy is %s, want %dx1 (B = %d sequences)", Shape(energy), b, b)
	}
	return chainOutputs(c, energy)
}

// ChainOffsets checks the values of the offsets against R rows: first >=
// 0, non-decreasing, last <= R.
func ChainOffsets(off []int32, r int) error {
	if len(off) == 0 {
		return errors.New("Offsets is empty")
	}
	if off[0] < 0 {
		return fmt.Errorf("Offsets[0] = %d is negative", off[0])
	}
	for b := 1; b < len(off); b++ {
		if off[b] < off[b-1] {
			return fmt.Errorf("Offsets[%d] = %d is below Offsets[%d] = %d (sequences are packed in order)", b, off[b], b-1, off[b-1])
		}
	}
	if last := off[len(off)-1]; int(last) > r {
		return fmt.Errorf("Offsets[%d] = %d is past the %d rows of U", len(off)-1, last, r)
	}
	return nil
}

// ChainLabels checks the labels of every sequence: each in [0, K), or the
// whole sequence IgnoreLabel. Rows outside every sequence are not looked
// at.
func ChainLabels(labels, off []int32, k int) error {
	for b := 0; b+1 < len(off); b++ {
		lo, hi := int(off[b]), int(off[b+1])
		if lo == hi {
			continue
		}
		ignored := labels[lo] == model.IgnoreLabel
		for i := lo; i < hi; i++ {
			y := labels[i]
			switch {
			case ignored && y != model.IgnoreLabel:
				return fmt.Errorf("sequence %d (rows %d..%d) mixes IgnoreLabel with labels: row %d has %d (ignore a sequence whole)", b, lo, hi-1, i, y)
			case !ignored && y == model.IgnoreLabel:
				return fmt.Errorf("sequence %d (rows %d..%d) mixes labels with IgnoreLabel at row %d (ignore a sequence whole)", b, lo, hi-1, i)
			case !ignored && (y < 0 || int(y) >= k):
				return fmt.Errorf("label %d of row %d (sequence %d) is outside [0, %d)", y, i, b, k)
			}
		}
	}
	return nil
}
