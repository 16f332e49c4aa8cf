package backendcheck

import (
	"fmt"
	"math"

	"github.com/gputrain/gputrain/model"
)

// The checks of model.StepOps, shared by every backend that implements it.
// The spec's matrices must already be resolved handles of the backend.

// StepSpec checks a StepSpec: sizes >= 1 with Steps*Batch indices within
// an int32, a known optimizer kind with hyperparameters in range, and for
// every parameter W, G and exactly Kind.StateTensors() state tensors, all
// of one shape and no matrix used twice anywhere in the spec.
func StepSpec(s model.StepSpec) error {
	switch {
	case s.Batch < 1 || s.Steps < 1 || s.Rows < 1:
		return fmt.Errorf("step spec: batch %d, steps %d and rows %d must all be >= 1", s.Batch, s.Steps, s.Rows)
	case int64(s.Batch)*int64(s.Steps) > math.MaxInt32:
		return fmt.Errorf("step spec: %d steps of %d rows exceed an int32 plan", s.Steps, s.Batch)
	case s.Rows > math.MaxInt32:
		return fmt.Errorf("step spec: %d rows exceed int32 indices", s.Rows)
	}
	o := s.Optimizer
	switch o.Kind {
	case model.OptSGD:
	case model.OptMomentum:
		if !(o.Mu >= 0 && o.Mu < 1) {
			return fmt.Errorf("step spec: momentum %v, want [0, 1)", o.Mu)
		}
	case model.OptAdam:
		if err := AdamParams(o.Beta1, o.Beta2, o.Eps, 1); err != nil {
			return fmt.Errorf("step spec: %w", err)
		}
	default:
		return fmt.Errorf("step spec: unknown optimizer kind %v", o.Kind)
	}
	if !(o.WeightDecay >= 0) || math.IsInf(float64(o.WeightDecay), 0) {
		return fmt.Errorf("step spec: weight decay %v, want a finite number >= 0", o.WeightDecay)
	}
	var all []model.Mat
	for i, p := range s.Params {
		if len(p.State) != o.Kind.StateTensors() {
			return fmt.Errorf("step spec: parameter %d (%s) has %d state tensors, %s needs %d", i, p.Name, len(p.State), o.Kind, o.Kind.StateTensors())
		}
		ms := append([]model.Mat{p.W, p.G}, p.State...)
		names := []string{"w", "g", "state 0", "state 1"}[:len(ms)]
		if err := SameShape(names, ms...); err != nil {
			return fmt.Errorf("step spec: parameter %d (%s): %w", i, p.Name, err)
		}
		all = append(all, ms...)
	}
	if err := Distinct(all...); err != nil {
		return fmt.Errorf("step spec: %w", err)
	}
	return nil
}

// EpochPlan checks a plan against its spec: Steps*Batch indices in [0,
// Rows), First in [0, Steps], StepBase >= 0 with every global step within
// an int32, and a finite learning rate >= 0 per step. The error names the
// first bad entry.
func EpochPlan(s model.StepSpec, p model.EpochPlan) error {
	if want := s.Steps * s.Batch; len(p.Order) != want {
		return fmt.Errorf("epoch plan: %d row indices, want steps*batch = %d*%d = %d", len(p.Order), s.Steps, s.Batch, want)
	}
	if len(p.LR) != s.Steps {
		return fmt.Errorf("epoch plan: %d learning rates, want one per step (%d)", len(p.LR), s.Steps)
	}
	if p.First < 0 || p.First > s.Steps {
		return fmt.Errorf("epoch plan: first step %d outside [0, %d]", p.First, s.Steps)
	}
	if p.StepBase < 0 || int64(p.StepBase)+int64(s.Steps) >= math.MaxInt32 {
		return fmt.Errorf("epoch plan: step base %d outside [0, %d)", p.StepBase, math.MaxInt32-s.Steps)
	}
	if i, bad := FirstBadIndex(p.Order, s.Rows, false); bad {
		return fmt.Errorf("epoch plan: row index %d of step %d (order[%d]) is outside [0, %d)", p.Order[i], i/s.Batch, i, s.Rows)
	}
	for i, lr := range p.LR {
		if !(lr >= 0) || math.IsInf(float64(lr), 0) {
			return fmt.Errorf("epoch plan: learning rate %v of step %d, want a finite number >= 0", lr, i)
		}
	}
	return nil
}

// GatherStepShapes checks the operands of StepOps.GatherStep: x is
// Batch x D and srcX Rows x D, y has Batch elements and srcY Rows.
func GatherStepShapes(s model.StepSpec, x model.Mat, y model.Ints, srcX model.Mat, srcY model.Ints) error {
	switch {
	case x.Rows() != s.Batch || x.Cols() != srcX.Cols() || x.Cols() < 1:
		return fmt.Errorf("x is %s, want %dx%d (batch x the columns of srcX %s)", Shape(x), s.Batch, srcX.Cols(), Shape(srcX))
	case srcX.Rows() != s.Rows:
		return fmt.Errorf("srcX is %s, want %d rows (the step spec's)", Shape(srcX), s.Rows)
	case y.Len() != s.Batch:
		return fmt.Errorf("y has %d elements, want the batch, %d", y.Len(), s.Batch)
	case srcY.Len() != s.Rows:
		return fmt.Errorf("srcY has %d elements, want %d (the step spec's rows)", srcY.Len(), s.Rows)
	}
	return nil
}

// StepStats checks the statistics of StepOps.RecordStep: Batch x NumStats.
func StepStats(s model.StepSpec, stats model.Mat) error {
	if stats.Rows() != s.Batch || stats.Cols() != model.NumStats {
		return fmt.Errorf("stats is %s, want %dx%d (batch x NumStats)", Shape(stats), s.Batch, model.NumStats)
	}
	return nil
}
