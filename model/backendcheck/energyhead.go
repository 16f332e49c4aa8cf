package backendcheck

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
)

// EnergyHeadShapes checks the operands of model.EnergyHeadOps: hidden rows
// h (B x D), weights w (K x D, K >= 1 unless B == 0), bias 1 x K, labels
// and argmin of length B (different vectors), stats B x model.NumStats, and,
// for EnergyHeadGrad, dw like w, db like bias and dh (may be nil) like h,
// every output distinct from every input and from each other. The labels'
// values are checked separately (FirstBadIndex, LabelError).
func EnergyHeadShapes(h, w, bias model.Mat, labels model.Ints, stats model.Mat, argmin model.Ints, dh, dw, db model.Mat, grad bool) error {
	B, D, K := h.Rows(), h.Cols(), w.Rows()
	switch {
	case w.Cols() != D:
		return fmt.Errorf("w is %s, want K x %d (the columns of h %s)", Shape(w), D, Shape(h))
	case K == 0 && B > 0:
		return fmt.Errorf("w %s has no answers (K = 0)", Shape(w))
	case bias.Rows() != 1 || bias.Cols() != K:
		return fmt.Errorf("bias is %s, want 1x%d (the rows of w %s)", Shape(bias), K, Shape(w))
	case labels.Len() != B:
		return fmt.Errorf("labels have length %d, want %d (the rows of h %s)", labels.Len(), B, Shape(h))
	case stats.Rows() != B || stats.Cols() != model.NumStats:
		return fmt.Errorf("stats is %s, want %dx%d", Shape(stats), B, model.NumStats)
	case argmin.Len() != B:
		return fmt.Errorf("argmin has length %d, want %d (the rows of h %s)", argmin.Len(), B, Shape(h))
	case sameHandle(labels, argmin):
		return fmt.Errorf("labels and argmin must be different vectors")
	}
	if !grad {
		return Distinct(h, w, bias, stats)
	}
	switch {
	case dw == nil || db == nil:
		return fmt.Errorf("dw and db are required (dh may be nil)")
	case dw.Rows() != K || dw.Cols() != D:
		return fmt.Errorf("dw is %s, want %s (the shape of w)", Shape(dw), Shape(w))
	case db.Rows() != 1 || db.Cols() != K:
		return fmt.Errorf("db is %s, want 1x%d (the shape of bias)", Shape(db), K)
	}
	if dh == nil {
		return Distinct(h, w, bias, stats, dw, db)
	}
	if dh.Rows() != B || dh.Cols() != D {
		return fmt.Errorf("dh is %s, want %s (the shape of h)", Shape(dh), Shape(h))
	}
	return Distinct(h, w, bias, stats, dw, db, dh)
}
