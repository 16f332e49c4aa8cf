package model

import (
	"errors"
	"fmt"
)

// This file holds the optional Backend capabilities of a training step that
// never waits for the backend (see docs/KERNELS.md, "The training step"):
// StepOps keeps everything that changes from step to step (which rows, the
// learning rate, Adam's t, the loss, divergence) in backend memory, so that
// the same launches serve every step; StepCapturer records one step once and
// replays it with a single launch (a CUDA graph on device.Backend);
// ForwardLoss is the loss without its gradient, for evaluation. Trainer
// finds them by type assertion and falls back to the host-synchronized step
// (one blocking index upload and one loss read per step) on a backend
// without StepOps.

// OptimizerKind names the update rule of a fused optimizer step.
type OptimizerKind int

const (
	OptSGD      OptimizerKind = iota // Backend.SGDStep's rule
	OptMomentum                      // Backend.MomentumStep's rule
	OptAdam                          // Backend.AdamStep's rule
)

func (k OptimizerKind) String() string {
	switch k {
	case OptSGD:
		return "sgd"
	case OptMomentum:
		return "momentum"
	case OptAdam:
		return "adam"
	}
	return fmt.Sprintf("OptimizerKind(%d)", int(k))
}

// StateTensors is the number of state tensors per parameter of the kind:
// 0 for SGD, 1 (v) for momentum, 2 (m, v) for Adam.
func (k OptimizerKind) StateTensors() int {
	switch k {
	case OptMomentum:
		return 1
	case OptAdam:
		return 2
	}
	return 0
}

// OptimizerSpec is the part of an optimizer that stays fixed through a run,
// rounded to float32 as the per-parameter Backend steps receive it. The
// learning rate and the step count come from the EpochPlan, per step.
type OptimizerSpec struct {
	Kind                               OptimizerKind
	Mu, Beta1, Beta2, Eps, WeightDecay float32
}

// ParamSlots are the backend tensors of one parameter: its value W, its
// gradient G (same shape) and its optimizer state (OptimizerKind.
// StateTensors of them, same shape: momentum's v; Adam's m then v).
type ParamSlots struct {
	Name  string
	W, G  Mat
	State []Mat
}

// StepSpec sizes the backend-resident state of a training loop.
type StepSpec struct {
	Batch     int // rows per step, >= 1
	Steps     int // steps per epoch, >= 1: a plan holds Steps*Batch row indices
	Rows      int // rows of the data set the steps gather from (every index < Rows)
	Optimizer OptimizerSpec
	Params    []ParamSlots // the parameters FusedOptimizerStep updates, in this order
}

// EpochPlan is one epoch as the backend replays it.
type EpochPlan struct {
	// Order holds Steps*Batch row indices, each in [0, Rows): step s
	// gathers rows Order[s*Batch : (s+1)*Batch].
	Order []int32
	// First is the first step to run (> 0 when an interrupted epoch is
	// resumed): GatherStep and RecordStep start there.
	First int
	// StepBase is the number of optimizer steps taken before step 0 of
	// the epoch: step s is global step StepBase+s+1 (Adam's t).
	StepBase int
	// LR is the learning rate of every step (len Steps).
	LR []float32
}

// StepReport is a snapshot of a StepState, taken by ReadSteps after all the
// work issued before it.
type StepReport struct {
	// Cursor is the next step of the plan: RecordStep has recorded steps
	// First..Cursor-1.
	Cursor int
	// Losses[s] is the sum of the StatLoss column of step s's statistics
	// (a float32 of a sum taken in float64 in a fixed order), for s in
	// [First, Cursor); the other entries are unspecified.
	Losses []float32
	// LossStep is the first global step whose batch loss was not finite
	// (0: none). That step's update and every later one were skipped, so
	// the weights are those that gave it.
	LossStep int
	// WeightStep is the global step whose update first made a weight not
	// finite (0: none), and BadParams the indices into StepSpec.Params of
	// the parameters it made so. Every later update was skipped.
	WeightStep int
	BadParams  []int
}

// StepReadback is an asynchronous ReadSteps: the copy is under way.
type StepReadback interface {
	// Ready reports, without waiting, whether Wait would return at once.
	Ready() (bool, error)
	// Wait returns the report once the copy has landed. It may be called
	// once; it releases the readback.
	Wait() (StepReport, error)
}

// StepState is the backend-resident state of a training loop: the epoch's
// plan, the step cursor, every step's loss and the divergence record.
type StepState interface {
	// Free releases it; the backend stays open.
	Free() error
}

// StepOps is an optional Backend capability: the operations of a training
// step whose per-step values live on the backend. A step is
//
//	GatherStep, Forward, EnergyLoss, RecordStep, Backward, FusedOptimizerStep
//
// and every call of it has the same arguments; the plan that PlanEpoch
// uploads once per epoch, and the cursor RecordStep advances, say which
// rows, learning rate and step count each one uses. Nothing in a step waits
// for the backend; ReadSteps brings the losses and the divergence record
// back without waiting, every few steps. cpu.Backend and device.Backend
// implement it; model/backendtest checks it against the per-operation
// Backend methods, bitwise.
type StepOps interface {
	// NewStepState allocates the state of a loop of spec's shape.
	NewStepState(spec StepSpec) (StepState, error)
	// PlanEpoch sets st to the start of an epoch: the plan's order and
	// per-step scalars (Adam's bias corrections computed from StepBase
	// as the backend's AdamStep computes them), the cursor at First,
	// and a clear divergence record.
	PlanEpoch(st StepState, plan EpochPlan) error
	// GatherStep sets x (Batch x D) and y (Batch) to the rows and labels of
	// srcX and srcY (Rows x D, Rows) that the cursor's step of the plan
	// names, bitwise as GatherRows and GatherInts would.
	GatherStep(st StepState, x Mat, y Ints, srcX Mat, srcY Ints) error
	// RecordStep stores the loss of the cursor's step (the sum of the
	// StatLoss column of stats, Batch x NumStats), makes it the step
	// FusedOptimizerStep updates with, and advances the cursor. A
	// non-finite loss halts: that step's update and all later ones are
	// skipped (StepReport.LossStep).
	RecordStep(st StepState, stats Mat) error
	// FusedOptimizerStep updates every parameter of the spec from its
	// gradient, with the learning rate and step count of the step
	// RecordStep last recorded: bitwise what SGDStep, MomentumStep or
	// AdamStep would do parameter by parameter (one launch on a GPU). It
	// checks every new weight and records the first step that made one
	// non-finite, and which parameters (StepReport.WeightStep); once that
	// has happened no later update changes anything.
	FusedOptimizerStep(st StepState) error
	// ReadSteps starts copying a StepReport of st to the host, ordered
	// after all work issued so far. A few may be in flight at once
	// (MaxReadbacks); Wait for the oldest before starting more.
	ReadSteps(st StepState) (StepReadback, error)
}

// MaxReadbacks is the number of StepReadbacks of one StepState that may be
// in flight at once.
const MaxReadbacks = 4

// Captured is a recording of backend work that Launch replays.
type Captured interface {
	// Launch runs the recording once more, after all work issued so far.
	Launch() error
	// Free releases it.
	Free() error
}

// StepCapturer is an optional Backend capability: Capture calls fn, which
// issues backend operations, and records them instead of running them, as
// one unit that Launch replays (device.Backend: a CUDA graph, through the
// driver's stream capture). The recording holds the operations' arguments
// as they were, so it is only right to replay work whose changing values
// live in backend memory (StepOps). An operation that would wait for the
// backend or copy host memory fails the capture; so may allocation.
// Capture returns an error, and nothing has run, when the backend cannot
// capture or fn failed.
type StepCapturer interface {
	// CanCapture returns nil when Capture may succeed, else why it cannot
	// (the driver has no graphs).
	CanCapture() error
	Capture(fn func() error) (Captured, error)
}

// ForwardLoss is an optional Backend capability: EnergyStats computes what
// EnergyLoss computes into stats and argmin, bitwise the same, without
// writing the gradient: e is left unchanged. Evaluation uses it.
type ForwardLoss interface {
	EnergyStats(e Mat, labels Ints, loss Loss, stats Mat, argmin Ints) error
}

// ErrStaleCapture is wrapped by Captured.Launch when the recording names
// backend memory that has been replaced since (a scratch buffer that grew):
// capture the work again.
var ErrStaleCapture = errors.New("the captured work names memory that has been reallocated since")
