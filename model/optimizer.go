package model

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// OptimizerNames lists the optimizers NewOptimizer accepts.
func OptimizerNames() []string { return []string{"sgd", "momentum", "adam"} }

// OptimizerConfig selects an optimizer and its hyperparameters. Weight decay
// is decoupled (AdamW style) for all three: w -= lr*WeightDecay*w.
type OptimizerConfig struct {
	Name        string  // "sgd", "momentum" or "adam"
	LR          float64 // learning rate, > 0
	Momentum    float64 // mu of "momentum", in [0, 1)
	Beta1       float64 // Adam's first-moment decay, in [0, 1)
	Beta2       float64 // Adam's second-moment decay, in [0, 1)
	Eps         float64 // Adam's denominator floor, > 0
	WeightDecay float64 // >= 0
}

// Validate reports the first invalid field, for the optimizer named (fields
// another optimizer uses are not checked).
func (c OptimizerConfig) Validate() error {
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	name := strings.ToLower(c.Name)
	switch name {
	case "sgd", "momentum", "adam":
	default:
		return fmt.Errorf("unknown optimizer %q (valid: %s)", c.Name, strings.Join(OptimizerNames(), ", "))
	}
	if !(c.LR > 0) || !finite(c.LR) {
		return fmt.Errorf("learning rate must be a finite number > 0, got %v", c.LR)
	}
	if !(c.WeightDecay >= 0) || !finite(c.WeightDecay) {
		return fmt.Errorf("weight decay must be a finite number >= 0, got %v", c.WeightDecay)
	}
	if name == "momentum" && !(c.Momentum >= 0 && c.Momentum < 1) {
		return fmt.Errorf("momentum must be in [0, 1), got %v", c.Momentum)
	}
	if name == "adam" {
		if !(c.Beta1 >= 0 && c.Beta1 < 1) {
			return fmt.Errorf("adam beta1 must be in [0, 1), got %v", c.Beta1)
		}
		if !(c.Beta2 >= 0 && c.Beta2 < 1) {
			return fmt.Errorf("adam beta2 must be in [0, 1), got %v", c.Beta2)
		}
		if !(c.Eps > 0) || !finite(c.Eps) {
			return fmt.Errorf("adam eps must be a finite number > 0, got %v", c.Eps)
		}
	}
	return nil
}

// StateTensor is one named piece of optimizer state on the Backend, e.g.
// "adam/m/layer0/W". Checkpoints save and restore these by name.
type StateTensor struct {
	Name string
	Mat  Mat
}

// Optimizer updates a fixed list of parameters from their gradients. Its
// state (velocities, moments) lives on the Backend as Mats, so a step never
// leaves the device.
type Optimizer interface {
	// Step applies one update to every parameter from its Grad.
	Step() error
	// Steps is the number of Steps taken (Adam's t); SetSteps restores it
	// from a checkpoint.
	Steps() int
	SetSteps(t int)
	// State lists the optimizer's state tensors (none for SGD).
	State() []StateTensor
	// Free releases the state.
	Free() error
}

// NewOptimizer returns the optimizer cfg names for params, with zeroed state.
func NewOptimizer(b Backend, cfg OptimizerConfig, params []*Param) (Optimizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errors.New("NewOptimizer: nil backend")
	}
	o := &optimizer{b: b, cfg: cfg, kind: strings.ToLower(cfg.Name), params: params}
	perParam := map[string][]string{"sgd": nil, "momentum": {"v"}, "adam": {"m", "v"}}[o.kind]
	for _, p := range params {
		var mats []Mat
		for _, s := range perParam {
			r, c := p.Shape()
			m, err := b.Alloc(r, c)
			if err == nil {
				// Zero state: momentum and Adam both start from zero moments.
				err = b.Upload(m, make([]float32, r*c))
				if err != nil {
					_ = b.Free(m)
				}
			}
			if err != nil {
				_ = o.Free()
				return nil, fmt.Errorf("allocating %s state of %s: %w", o.kind, p.Name, err)
			}
			mats = append(mats, m)
			o.state = append(o.state, StateTensor{Name: o.kind + "/" + s + "/" + p.Name, Mat: m})
		}
		o.per = append(o.per, mats)
	}
	return o, nil
}

type optimizer struct {
	b      Backend
	cfg    OptimizerConfig
	kind   string
	params []*Param
	per    [][]Mat // state per parameter, in params order
	state  []StateTensor
	t      int
}

func (o *optimizer) Steps() int           { return o.t }
func (o *optimizer) SetSteps(t int)       { o.t = t }
func (o *optimizer) State() []StateTensor { return o.state }

// Step applies one update with the configured learning rate.
func (o *optimizer) Step() error { return o.stepWith(float32(o.cfg.LR)) }

// stepWith applies one update with learning rate lr, parameter by
// parameter (the host-synchronized step; the trainer's other steps update
// all parameters at once with StepOps.FusedOptimizerStep, bitwise the same).
func (o *optimizer) stepWith(lr float32) error {
	o.t++
	c := o.cfg
	wd := float32(c.WeightDecay)
	for i, p := range o.params {
		var err error
		switch o.kind {
		case "sgd":
			err = o.b.SGDStep(p.Value, p.Grad, lr, wd)
		case "momentum":
			err = o.b.MomentumStep(p.Value, p.Grad, o.per[i][0], lr, float32(c.Momentum), wd)
		case "adam":
			err = o.b.AdamStep(p.Value, p.Grad, o.per[i][0], o.per[i][1], lr, float32(c.Beta1), float32(c.Beta2), float32(c.Eps), wd, o.t)
		}
		if err != nil {
			return fmt.Errorf("%s step %d on %s: %w", o.kind, o.t, p.Name, err)
		}
	}
	return nil
}

// fused describes the optimizer for StepOps: its fixed hyperparameters,
// rounded to float32 as stepWith passes them, and every parameter with its
// state tensors, in the order of params.
func (o *optimizer) fused() (OptimizerSpec, []ParamSlots) {
	c := o.cfg
	spec := OptimizerSpec{Mu: float32(c.Momentum), Beta1: float32(c.Beta1), Beta2: float32(c.Beta2), Eps: float32(c.Eps),
		WeightDecay: float32(c.WeightDecay)}
	switch o.kind {
	case "sgd":
		spec.Kind = OptSGD
	case "momentum":
		spec.Kind = OptMomentum
	case "adam":
		spec.Kind = OptAdam
	}
	slots := make([]ParamSlots, len(o.params))
	for i, p := range o.params {
		slots[i] = ParamSlots{Name: p.Name, W: p.Value, G: p.Grad, State: o.per[i]}
	}
	return spec, slots
}

func (o *optimizer) Free() error {
	var xs []any
	for _, s := range o.state {
		xs = append(xs, s.Mat)
	}
	o.state, o.per = nil, nil
	return freeAll(o.b, xs...)
}
