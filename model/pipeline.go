package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
)

// StepMode selects how Trainer runs its training steps. Every mode trains
// bitwise the same weights; they differ in how often the host waits for
// the backend. See docs/KERNELS.md, "The training step".
type StepMode int

const (
	// StepAuto uses StepGraph where the backend can capture the step,
	// else StepLaunches, and StepHostSync on a backend without StepOps
	// or with data streamed from the host.
	StepAuto StepMode = iota
	// StepGraph captures the step once (StepCapturer: a CUDA graph) and
	// replays it with one launch per step; it is an error if the step
	// cannot be captured. A short last batch, whose loss scale differs,
	// runs as StepLaunches.
	StepGraph
	// StepLaunches issues the StepOps operations one by one each step:
	// no host synchronization, one launch per operation.
	StepLaunches
	// StepHostSync is the step of a backend without StepOps: a blocking
	// upload of the batch indices, the loss read back (a synchronization)
	// and checked before the update, then one optimizer launch per
	// parameter and a download of the weights to check them.
	StepHostSync
)

func (m StepMode) String() string {
	switch m {
	case StepAuto:
		return "auto"
	case StepGraph:
		return "graph"
	case StepLaunches:
		return "launches"
	case StepHostSync:
		return "host-sync"
	}
	return fmt.Sprintf("StepMode(%d)", int(m))
}

// DefaultLossEvery is Trainer.LossEvery's default: the losses (and the
// divergence record) are read back every 32 steps, and after steps 1, 2,
// 4, 8 and 16 of each epoch so that progress shows a loss early. Each read
// is one asynchronous copy of a few hundred bytes; the host runs at most
// two reads (64 steps) ahead of the backend.
const DefaultLossEvery = 32

// maxPendingReads is how many loss read-backs may be in flight before the
// host waits for the oldest: the bound on how far it runs ahead.
const maxPendingReads = 2

// pipeline is the trainer's StepOps machinery: the backend state, the host
// plan buffers, the captured step, and the read-backs in flight.
type pipeline struct {
	ops     StepOps
	st      StepState
	spec    StepSpec
	order   []int32
	lr      []float32
	graph   Captured
	tryCap  bool   // capture at the next full step
	noGraph string // why the steps run as launches under StepAuto
	warm    bool   // a full step has run plainly (buffers allocated, scratch grown)
	path    string // what the last epoch ran, for StepPath
	pending []StepReadback
	// The epoch's known losses: steps [first, known) have been read back,
	// their losses (with those of the steps before first, resumed) summing
	// to sum over rows data rows; requested is the step count of the last
	// read-back started.
	first, known, requested int
	sum                     float64
	rows                    int
	losses                  []float64 // per step of the epoch, once known
	fail                    error     // a divergence found in a read-back
}

// usePipeline reports whether the trainer's steps go through StepOps.
func (t *Trainer) usePipeline() (StepOps, bool) {
	ops, ok := t.b.(StepOps)
	_, builtin := t.Optimizer.(*optimizer)
	// Data parallel (allreduce.go): the host-synchronized step, whose
	// all-reduce hook sits between backward and the optimizer step. Chain
	// models (chaintrain.go) take it too.
	return ops, ok && builtin && !t.train.Streamed && t.Step != StepHostSync && t.dist == nil && t.seq == nil
}

// newPipeline allocates the backend state of the trainer's loop.
func (t *Trainer) newPipeline(ops StepOps) (*pipeline, error) {
	capErr := fmt.Errorf("the %s backend cannot capture a step", t.b.Name())
	if c, ok := t.b.(StepCapturer); ok {
		if capErr = c.CanCapture(); capErr != nil {
			capErr = fmt.Errorf("the %s backend cannot capture a step: %w", t.b.Name(), capErr)
		}
	}
	if t.Step == StepGraph && capErr != nil {
		return nil, fmt.Errorf("trainer: StepGraph: %w", capErr)
	}
	o := t.Optimizer.(*optimizer)
	opt, params := o.fused()
	steps := t.StepsPerEpoch()
	spec := StepSpec{Batch: t.cfg.Batch, Steps: steps, Rows: t.train.Host.N + 1, Optimizer: opt, Params: params}
	st, err := ops.NewStepState(spec)
	if err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	p := &pipeline{ops: ops, st: st, spec: spec, order: make([]int32, steps*t.cfg.Batch), lr: make([]float32, steps),
		tryCap: capErr == nil && (t.Step == StepAuto || t.Step == StepGraph), losses: make([]float64, steps)}
	if t.Step == StepAuto && capErr != nil {
		p.noGraph = capErr.Error()
	}
	return p, nil
}

func (p *pipeline) free() error {
	var errs []error
	if p.graph != nil {
		errs = append(errs, p.graph.Free())
		p.graph = nil
	}
	for _, r := range p.pending {
		_, err := r.Wait()
		errs = append(errs, err)
	}
	p.pending = nil
	errs = append(errs, p.st.Free())
	return errors.Join(errs...)
}

// StepPath says how the last epoch's steps ran: "graph", "launches",
// "launches (no graph: why)" or "host-sync (why)".
func (t *Trainer) StepPath() string {
	if t.pipe == nil {
		if _, ok := t.usePipeline(); !ok {
			return "host-sync (" + t.hostSyncReason() + ")"
		}
		return "not run yet"
	}
	return t.pipe.path
}

func (t *Trainer) hostSyncReason() string {
	switch _, builtin := t.Optimizer.(*optimizer); {
	case t.Step == StepHostSync:
		return "requested"
	case t.train.Streamed:
		return "the training data is streamed from the host"
	case t.seq != nil:
		return "a chain model: its steps run the chain's dynamic programs"
	case !builtin:
		return "a custom Optimizer"
	case t.dist != nil:
		return "data parallel: the gradients are all-reduced between backward and the optimizer step"
	}
	return fmt.Sprintf("the %s backend has no StepOps", t.b.Name())
}

// learningRate is the learning rate of global step step (1-based):
// Config.Schedule's (schedule.go); the pipelined steps read it from the
// epoch's plan.
func (t *Trainer) learningRate(step int) float64 {
	return t.cfg.Schedule.LR(t.cfg.Optimizer.LR, step-1, t.cfg.Epochs*t.StepsPerEpoch())
}

// trainEpochPipelined is TrainEpoch through StepOps: the epoch's order and
// learning rates are uploaded once, each step is issued without waiting,
// and the losses come back every few steps (see DefaultLossEvery).
func (t *Trainer) trainEpochPipelined(ctx context.Context, ops StepOps) (float64, error) {
	if t.pipe == nil {
		p, err := t.newPipeline(ops)
		if err != nil {
			return 0, err
		}
		t.pipe = p
	}
	p := t.pipe
	epoch, n, B := t.epoch+1, t.train.Host.N, t.cfg.Batch
	steps := t.StepsPerEpoch()
	if err := t.shuffle(); err != nil {
		return 0, err
	}
	pad := t.train.Pad()
	for s := range steps {
		k := copy(p.order[s*B:(s+1)*B], t.perm[s*B:min((s+1)*B, n)])
		for i := s*B + k; i < (s+1)*B; i++ {
			p.order[i] = pad
		}
	}
	o := t.Optimizer.(*optimizer)
	base := o.t - t.done // optimizer steps before step 0 of this epoch
	for s := range steps {
		p.lr[s] = float32(t.learningRate(base + s + 1))
	}
	if err := ops.PlanEpoch(p.st, EpochPlan{Order: p.order, First: t.done, StepBase: base, LR: p.lr}); err != nil {
		return 0, fmt.Errorf("epoch %d: %w", epoch, err)
	}
	p.first, p.known, p.requested, p.sum, p.rows, p.fail = t.done, t.done, t.done, t.doneLoss, t.done*B, nil
	switch {
	case p.graph != nil || p.tryCap:
		p.path = "graph"
	case p.noGraph != "":
		p.path = "launches (no graph: " + p.noGraph + ")"
	default:
		p.path = "launches"
	}
	every := t.LossEvery
	if every <= 0 {
		every = DefaultLossEvery
	}

	issued := t.done
	var stop error
	for s := t.done; s < steps && stop == nil; s++ {
		if err := ctx.Err(); err != nil {
			stop = fmt.Errorf("epoch %d step %d: %w", epoch, s+1, err)
			break
		}
		rows := min((s+1)*B, n) - s*B
		if err := t.issueStep(p, rows == B, rows); err != nil {
			stop = fmt.Errorf("epoch %d step %d: %w", epoch, s+1, err)
			break
		}
		issued, o.t = s+1, o.t+1
		if d := issued - p.first; d%every == 0 || (d < every && d&(d-1) == 0) || issued == steps {
			r, err := ops.ReadSteps(p.st)
			if err != nil {
				stop = fmt.Errorf("epoch %d step %d: %w", epoch, s+1, err)
				break
			}
			p.pending, p.requested = append(p.pending, r), issued
		}
		if err := p.collect(maxPendingReads); err != nil {
			stop = fmt.Errorf("epoch %d step %d: %w", epoch, s+1, err)
			break
		}
		if p.fail != nil {
			break
		}
		t.done = issued
		if t.OnStep != nil {
			loss := math.NaN()
			if p.rows > 0 {
				loss = p.sum / float64(p.rows)
			}
			t.OnStep(StepInfo{Epoch: epoch, Step: s + 1, Steps: steps, GlobalStep: o.t, Loss: loss, LossSteps: p.known, LR: float64(p.lr[s])})
		}
	}
	// Every step issued is read back before the epoch ends or is cut: the
	// losses of a checkpoint and the divergence record are complete.
	if issued > p.requested {
		if r, err := ops.ReadSteps(p.st); err != nil {
			stop = errors.Join(stop, fmt.Errorf("epoch %d: %w", epoch, err))
		} else {
			p.pending, p.requested = append(p.pending, r), issued
		}
	}
	if err := p.collect(0); err != nil {
		return 0, errors.Join(stop, fmt.Errorf("epoch %d: %w", epoch, err))
	}
	if p.fail != nil {
		return 0, t.diverge(p, epoch, base)
	}
	if p.known != issued && stop == nil {
		return 0, fmt.Errorf("epoch %d: the backend recorded %d steps, %d were issued", epoch, p.known, issued)
	}
	t.done, t.doneLoss = issued, p.sum
	if stop != nil {
		return 0, stop
	}
	total := p.sum
	t.epoch = epoch
	t.epochRNG, _ = t.pcg.MarshalBinary()
	t.done, t.doneLoss = 0, 0
	return total / float64(n), nil
}

// settle reads back every step issued so far, so that done and doneLoss
// describe the same steps (Checkpoint calls it: a checkpoint taken from
// OnStep, mid-epoch, then has the exact loss of the steps it holds).
func (t *Trainer) settle() error {
	p := t.pipe
	if p == nil || t.done <= p.known || p.fail != nil {
		return nil
	}
	if t.done > p.requested {
		r, err := p.ops.ReadSteps(p.st)
		if err != nil {
			return err
		}
		p.pending, p.requested = append(p.pending, r), t.done
	}
	if err := p.collect(0); err != nil {
		return err
	}
	if p.fail != nil {
		return fmt.Errorf("the run diverged at global step %d", p.fail.(*divergence).step)
	}
	t.doneLoss = p.sum
	return nil
}

// issueStep runs one step: the captured graph where there is one (full
// batches only: the loss scale of a short one differs), else the
// operations one by one; the first full step after a plain one is captured.
func (t *Trainer) issueStep(p *pipeline, full bool, rows int) error {
	scale := float32(1)
	if t.cfg.Reduction == Mean {
		scale = 1 / float32(rows)
	}
	if full && p.graph != nil {
		err := p.graph.Launch()
		if !errors.Is(err, ErrStaleCapture) {
			return err
		}
		// A scratch buffer it names was replaced: capture again.
		_ = p.graph.Free()
		p.graph, p.tryCap, p.warm = nil, true, false
	}
	if full && p.tryCap && p.warm {
		p.tryCap = false
		g, err := t.b.(StepCapturer).Capture(func() error { return t.stepOps(p, scale) })
		if err == nil {
			p.graph = g
			return g.Launch()
		}
		if t.Step == StepGraph {
			return fmt.Errorf("capturing the training step: %w", err)
		}
		// Nothing ran: the step runs plainly below, and so do the rest.
		p.noGraph = err.Error()
		p.path = "launches (no graph: " + p.noGraph + ")"
	}
	if err := t.stepOps(p, scale); err != nil {
		return err
	}
	p.warm = p.warm || full
	return nil
}

// stepOps issues the operations of one step (see StepOps).
func (t *Trainer) stepOps(p *pipeline, scale float32) error {
	bt := t.bt
	if err := p.ops.GatherStep(p.st, bt.x, bt.y, t.train.X, t.train.Y); err != nil {
		return err
	}
	// Forward and loss (the fused energy head or the sampled loss where
	// they apply: trainPass, sampledstep.go).
	backward, err := t.trainPass(scale)
	if err != nil {
		return err
	}
	if err := p.ops.RecordStep(p.st, bt.stats); err != nil {
		return err
	}
	if err := backward(); err != nil {
		return err
	}
	// A gradient all-reduce across ranks goes here. One that waits for
	// the host fails the capture, and the steps then run as launches.
	return p.ops.FusedOptimizerStep(p.st)
}

// collect takes in the read-backs that have landed, oldest first, then
// waits for the oldest until at most keep are in flight.
func (p *pipeline) collect(keep int) error {
	for len(p.pending) > 0 {
		r := p.pending[0]
		if len(p.pending) <= keep {
			ready, err := r.Ready()
			if err != nil {
				return err
			}
			if !ready {
				return nil
			}
		}
		rep, err := r.Wait()
		p.pending = p.pending[1:]
		if err != nil {
			return err
		}
		p.take(rep)
	}
	return nil
}

// take adds the steps of rep not yet known, in step order, and notes a
// divergence: the first global step the backend halted at.
func (p *pipeline) take(rep StepReport) {
	for s := p.known; s < rep.Cursor && s < len(p.losses); s++ {
		p.losses[s] = float64(rep.Losses[s])
		p.sum += p.losses[s]
		p.known = s + 1
	}
	// Only an epoch's last step can be short.
	p.rows = min(p.known*p.spec.Batch, p.spec.Rows-1)
	if p.fail != nil {
		return
	}
	if rep.WeightStep != 0 {
		p.fail = &divergence{weights: true, step: rep.WeightStep, params: rep.BadParams}
	} else if rep.LossStep != 0 {
		p.fail = &divergence{step: rep.LossStep}
	}
}

// divergence is a halt the backend recorded.
type divergence struct {
	weights bool
	step    int // global, 1-based
	params  []int
}

func (d *divergence) Error() string { return "diverged" }

// diverge turns the recorded halt into the trainer's error, naming the
// epoch and step, and leaves the trainer where the weights are: after the
// step whose update made a weight non-finite, or before the one whose loss
// was not finite. The trainer refuses to train further.
func (t *Trainer) diverge(p *pipeline, epoch, base int) error {
	d := p.fail.(*divergence)
	s := d.step - base - 1 // the step within the epoch, 0-based
	o := t.Optimizer.(*optimizer)
	c := t.cfg.Optimizer
	var err error
	if d.weights {
		var names []string
		for _, i := range d.params {
			names = append(names, p.spec.Params[i].Name)
		}
		err = fmt.Errorf("epoch %d step %d: %w: the %s update with learning rate %g made %s non-finite",
			epoch, s+1, ErrDiverged, strings.ToLower(c.Name), p.lr[s], strings.Join(names, ", "))
		t.done, o.t = s+1, d.step
	} else {
		loss := math.NaN()
		if s < p.known {
			loss = p.losses[s]
		}
		err = fmt.Errorf("epoch %d step %d: %w: the batch loss is %v (%v, learning rate %g)", epoch, s+1, ErrDiverged, loss, t.cfg.Loss, p.lr[s])
		t.done, o.t = s, d.step-1
	}
	t.doneLoss = 0
	for i := p.first; i < t.done && i < p.known; i++ {
		t.doneLoss += p.losses[i]
	}
	t.diverged = err
	return err
}
