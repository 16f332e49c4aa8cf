package cpu

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// model.StepOps on the CPU: the same semantics as device.Backend's, with the
// state in Go memory, so a readback is ready at once. The updates are those
// of SGDStep, MomentumStep and AdamStep (optim.go), so a fused step is
// bitwise a sequence of per-parameter ones; the loss of a step is summed in
// float64 in row order, as ColumnSums sums it.

var _ model.StepOps = (*Backend)(nil)

type stepState struct {
	b      *Backend
	spec   model.StepSpec
	params [][]*Matrix
	freed  bool

	planned              bool
	order                []int32
	lr                   []float32
	base                 int
	cursor, current      int
	halt                 bool
	lossStep, weightStep int
	bad                  []bool
	losses               []float32
	inFlight             int
}

func (b *Backend) state(x model.StepState, op string) (*stepState, error) {
	if err := b.open(); err != nil {
		return nil, err
	}
	s, ok := x.(*stepState)
	switch {
	case x == nil || (ok && s == nil):
		return nil, fmt.Errorf("cpu: %s: nil step state", op)
	case !ok:
		return nil, fmt.Errorf("cpu: %s: a %T is not a step state of the cpu backend", op, x)
	case s.b != b:
		return nil, fmt.Errorf("cpu: %s: the step state belongs to another cpu backend", op)
	case s.freed:
		return nil, fmt.Errorf("cpu: %s: the step state has been freed", op)
	}
	return s, nil
}

// NewStepState returns the state of a training loop of spec's shape.
func (b *Backend) NewStepState(spec model.StepSpec) (model.StepState, error) {
	if err := b.open(); err != nil {
		return nil, err
	}
	s := &stepState{b: b}
	for i, p := range spec.Params {
		var ms []*Matrix
		for j, h := range append([]model.Mat{p.W, p.G}, p.State...) {
			m, err := b.mat(h, fmt.Sprintf("NewStepState parameter %d (%s) tensor %d", i, p.Name, j))
			if err != nil {
				return nil, err
			}
			ms = append(ms, m)
		}
		s.params = append(s.params, ms)
	}
	if err := backendcheck.StepSpec(spec); err != nil {
		return nil, fmt.Errorf("cpu: NewStepState: %w", err)
	}
	spec.Params = append([]model.ParamSlots(nil), spec.Params...)
	s.spec = spec
	s.order = make([]int32, spec.Steps*spec.Batch)
	s.lr = make([]float32, spec.Steps)
	s.losses = make([]float32, spec.Steps)
	s.bad = make([]bool, len(spec.Params))
	return s, nil
}

// Free releases the state (Go memory: it only makes it unusable).
func (s *stepState) Free() error {
	if s != nil {
		s.freed = true
	}
	return nil
}

// PlanEpoch starts an epoch.
func (b *Backend) PlanEpoch(st model.StepState, plan model.EpochPlan) error {
	s, err := b.state(st, "PlanEpoch")
	if err != nil {
		return err
	}
	if err := backendcheck.EpochPlan(s.spec, plan); err != nil {
		return fmt.Errorf("cpu: PlanEpoch: %w", err)
	}
	copy(s.order, plan.Order)
	copy(s.lr, plan.LR)
	s.base, s.cursor, s.current = plan.StepBase, plan.First, plan.First
	s.halt, s.lossStep, s.weightStep = false, 0, 0
	clear(s.bad)
	nan := float32(math.NaN())
	for i := range s.losses {
		s.losses[i] = nan
	}
	s.planned = true
	return nil
}

func (s *stepState) requirePlan(op string) error {
	if !s.planned {
		return fmt.Errorf("cpu: %s: no epoch planned (call PlanEpoch first)", op)
	}
	return nil
}

// GatherStep copies the cursor's rows, as GatherRows and GatherInts do.
func (b *Backend) GatherStep(st model.StepState, xm model.Mat, yv model.Ints, srcm model.Mat, srcyv model.Ints) error {
	s, err := b.state(st, "GatherStep")
	if err != nil {
		return err
	}
	x, err := b.mat(xm, "GatherStep x")
	if err != nil {
		return err
	}
	y, err := b.ints(yv, "GatherStep y")
	if err != nil {
		return err
	}
	src, err := b.mat(srcm, "GatherStep srcX")
	if err != nil {
		return err
	}
	srcY, err := b.ints(srcyv, "GatherStep srcY")
	if err != nil {
		return err
	}
	if err := backendcheck.GatherStepShapes(s.spec, x, y, src, srcY); err != nil {
		return fmt.Errorf("cpu: GatherStep: %w", err)
	}
	if err := s.requirePlan("GatherStep"); err != nil {
		return err
	}
	if s.cursor >= s.spec.Steps {
		return nil // past the plan: the device writes nothing either
	}
	B, d := s.spec.Batch, src.cols
	idx := s.order[s.cursor*B : (s.cursor+1)*B]
	for r, i := range idx {
		copy(x.data[r*d:(r+1)*d], src.data[int(i)*d:(int(i)+1)*d])
		y.data[r] = srcY.data[i]
	}
	return nil
}

// RecordStep records the cursor's loss and advances.
func (b *Backend) RecordStep(st model.StepState, statm model.Mat) error {
	s, err := b.state(st, "RecordStep")
	if err != nil {
		return err
	}
	stats, err := b.mat(statm, "RecordStep stats")
	if err != nil {
		return err
	}
	if err := backendcheck.StepStats(s.spec, stats); err != nil {
		return fmt.Errorf("cpu: RecordStep: %w", err)
	}
	if err := s.requirePlan("RecordStep"); err != nil {
		return err
	}
	if s.cursor >= s.spec.Steps {
		return fmt.Errorf("cpu: RecordStep: all %d steps of the plan are recorded", s.spec.Steps)
	}
	var acc float64
	for i := 0; i < stats.rows; i++ {
		acc += float64(stats.data[i*model.NumStats+model.StatLoss])
	}
	loss := float32(acc)
	st0 := s.cursor
	s.losses[st0] = loss
	s.current, s.cursor = st0, st0+1
	if s.halt {
		return nil
	}
	l := float64(loss)
	switch {
	case s.weightStep != 0:
		s.halt = true
	case math.IsNaN(l) || math.IsInf(l, 0):
		s.halt, s.lossStep = true, s.base+st0+1
	}
	return nil
}

// FusedOptimizerStep updates every parameter, then checks the new weights.
func (b *Backend) FusedOptimizerStep(st model.StepState) error {
	s, err := b.state(st, "FusedOptimizerStep")
	if err != nil {
		return err
	}
	if err := s.requirePlan("FusedOptimizerStep"); err != nil {
		return err
	}
	if err := s.checkParams(); err != nil {
		return err
	}
	if s.halt {
		return nil
	}
	o := s.spec.Optimizer
	lr, t := s.lr[s.current], s.base+s.current+1
	c := adamConstants(lr, o.Beta1, o.Beta2, o.Eps, o.WeightDecay, t)
	for p, ms := range s.params {
		var bad atomic.Bool
		w, g := ms[0].data, ms[1].data
		switch o.Kind {
		case model.OptSGD:
			b.sgd(w, g, lr, o.WeightDecay, &bad)
		case model.OptMomentum:
			b.momentum(w, g, ms[2].data, lr, o.Mu, o.WeightDecay, &bad)
		case model.OptAdam:
			b.adamUpdate(w, g, ms[2].data, ms[3].data, &c, &bad)
		}
		if bad.Load() {
			s.bad[p], s.weightStep = true, t
		}
	}
	return nil
}

// ReadSteps returns a report that is ready at once.
func (b *Backend) ReadSteps(st model.StepState) (model.StepReadback, error) {
	s, err := b.state(st, "ReadSteps")
	if err != nil {
		return nil, err
	}
	if err := s.requirePlan("ReadSteps"); err != nil {
		return nil, err
	}
	if s.inFlight >= model.MaxReadbacks {
		return nil, fmt.Errorf("cpu: ReadSteps: %d readbacks already in flight (Wait for one first)", s.inFlight)
	}
	s.inFlight++
	r := &readback{s: s, rep: model.StepReport{Cursor: s.cursor, Losses: append([]float32(nil), s.losses...),
		LossStep: s.lossStep, WeightStep: s.weightStep}}
	for p, bad := range s.bad {
		if bad {
			r.rep.BadParams = append(r.rep.BadParams, p)
		}
	}
	return r, nil
}

type readback struct {
	s    *stepState
	rep  model.StepReport
	done bool
}

func (r *readback) Ready() (bool, error) {
	if r.done {
		return false, errors.New("cpu: step readback: already waited for")
	}
	return true, nil
}

func (r *readback) Wait() (model.StepReport, error) {
	if r.done {
		return model.StepReport{}, errors.New("cpu: step readback: already waited for")
	}
	r.done = true
	r.s.inFlight--
	return r.rep, nil
}

// checkParams makes sure no tensor of the spec has been freed since
// NewStepState, cheaply (this runs every step); an error names the tensor.
func (s *stepState) checkParams() error {
	for i, ms := range s.params {
		for j, m := range ms {
			if m.freed {
				p := s.spec.Params[i]
				_, err := s.b.mat(append([]model.Mat{p.W, p.G}, p.State...)[j], fmt.Sprintf("FusedOptimizerStep parameter %d (%s) tensor %d", i, p.Name, j))
				return err
			}
		}
	}
	return nil
}
