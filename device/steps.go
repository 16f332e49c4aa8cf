package device

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// model.StepOps on the device: kernels/step.cu. The state of a loop is one
// allocation (layout below, mirrored from step.cu), the parameter table a
// second one. The plan is uploaded once per epoch with one CopyIn; a step
// then makes no copy and no synchronization, and its launches have the same
// arguments every time, so a captured graph replays it.

// Control words and layout of a step state (GT_CTL_* in step.cu).
const (
	ctlCursor     = 0
	ctlCurrent    = 1
	ctlBase       = 2
	ctlHalt       = 3
	ctlLossStep   = 4
	ctlWeightStep = 5
	ctlBad        = 8 // + parameter index

	haltOverrun = 3 // GT_HALT_OVERRUN

	schedLR     = 0 // GT_SCHED_*
	schedC1     = 1
	schedC2     = 2
	schedFields = 4

	// The parameter table of the multi-tensor kernels (GT_PT_* in step.cu):
	// ptFields int64 per parameter; mtChunk elements per virtual block.
	ptFields = 8
	ptW      = 0
	ptG      = 1
	ptS1     = 2
	ptS2     = 3
	ptN      = 4
	ptBlock0 = 5
	mtChunk  = 4 * threads

	recordThreads = threads // the one block of gt_step_record
)

var _ model.StepOps = (*Backend)(nil)

// stepState is the device's model.StepState.
type stepState struct {
	b      *Backend
	spec   model.StepSpec
	params [][]*Matrix // the spec's tensors, resolved
	freed  bool
	// mem holds, as int32/float32 words: ctl (ctlLen), losses (steps),
	// sched (steps x schedFields), order (steps x batch).
	mem                       Ptr
	ctlLen                    int64 // words of ctl: ctlBad + parameters
	lossOff, schedOff, ordOff int64 // word offsets
	words                     int64
	staging                   []int32 // host image of mem for PlanEpoch
	table                     Ptr     // parameter table: params x ptFields int64
	vblocks                   int64
	kernel                    string
	args                      []uint64 // the optimizer launch's arguments (fixed)
	planned                   bool
	async                     AsyncCopier // nil: readbacks with CopyOut
	slots                     [model.MaxReadbacks]readSlot
	reads                     uint64 // readbacks started, to name them
}

// readSlot is the host buffer of one readback in flight.
type readSlot struct {
	host  []byte // [ctl | losses] as copied; pinned when async
	busy  bool
	fence Fence
	id    uint64 // the readback using it
}

func (b *Backend) state(x model.StepState, op string) (*stepState, error) {
	if err := b.open(); err != nil {
		return nil, err
	}
	s, ok := x.(*stepState)
	switch {
	case x == nil || (ok && s == nil):
		return nil, fmt.Errorf("device: %s: nil step state", op)
	case !ok:
		return nil, fmt.Errorf("device: %s: a %T is not a step state of the device backend", op, x)
	case s.b != b:
		return nil, fmt.Errorf("device: %s: the step state belongs to another device backend", op)
	case s.freed:
		return nil, fmt.Errorf("device: %s: the step state has been freed", op)
	}
	return s, nil
}

// NewStepState allocates the state of a training loop (see model.StepOps)
// and uploads its parameter table.
func (b *Backend) NewStepState(spec model.StepSpec) (model.StepState, error) {
	if err := b.open(); err != nil {
		return nil, err
	}
	// Resolve every handle first, so that backendcheck sees this backend's.
	var params [][]*Matrix
	for i, p := range spec.Params {
		var ms []*Matrix
		for j, h := range append([]model.Mat{p.W, p.G}, p.State...) {
			m, err := b.mat(h, fmt.Sprintf("NewStepState parameter %d (%s) tensor %d", i, p.Name, j))
			if err != nil {
				return nil, err
			}
			ms = append(ms, m)
		}
		params = append(params, ms)
	}
	if err := backendcheck.StepSpec(spec); err != nil {
		return nil, fmt.Errorf("device: NewStepState: %w", err)
	}
	spec.Params = append([]model.ParamSlots(nil), spec.Params...)
	P := int64(len(spec.Params))
	s := &stepState{b: b, spec: spec, params: params, ctlLen: ctlBad + P}
	steps, batch := int64(spec.Steps), int64(spec.Batch)
	s.lossOff = s.ctlLen
	s.schedOff = s.lossOff + steps
	s.ordOff = s.schedOff + steps*schedFields
	s.words = s.ordOff + steps*batch
	var err error
	if s.mem, err = b.drv.Alloc(4 * s.words); err != nil {
		return nil, fmt.Errorf("device: NewStepState: allocating the plan of %d steps of %d rows: %w", steps, batch, err)
	}
	s.staging = make([]int32, s.words)

	// The parameter table: pointers, sizes and first virtual blocks.
	tab := make([]int64, P*ptFields)
	for i, ms := range params {
		n := ms[0].len()
		e := tab[int64(i)*ptFields:]
		e[ptW], e[ptG] = int64(ms[0].ptr), int64(ms[1].ptr)
		if len(ms) > 2 {
			e[ptS1] = int64(ms[2].ptr)
		}
		if len(ms) > 3 {
			e[ptS2] = int64(ms[3].ptr)
		}
		e[ptN], e[ptBlock0] = n, s.vblocks
		s.vblocks += ceilDiv(n, mtChunk)
	}
	if P > 0 {
		if s.table, err = b.drv.Alloc(8 * P * ptFields); err == nil {
			err = b.drv.CopyIn(s.table, unsafe.Slice((*byte)(unsafe.Pointer(&tab[0])), 8*len(tab)))
		}
		if err != nil {
			_ = s.release()
			return nil, fmt.Errorf("device: NewStepState: the table of %d parameters: %w", P, err)
		}
	}
	o := spec.Optimizer
	common := []uint64{PtrArg(s.table), IntArg(P), IntArg(s.vblocks), PtrArg(s.mem), PtrArg(s.mem + Ptr(4*s.schedOff))}
	switch o.Kind {
	case model.OptSGD:
		s.kernel, s.args = "gt_sgd_multi", append(common, FloatArg(float64(o.WeightDecay)))
	case model.OptMomentum:
		s.kernel, s.args = "gt_momentum_multi", append(common, FloatArg(float64(o.Mu)), FloatArg(float64(o.WeightDecay)))
	case model.OptAdam:
		s.kernel, s.args = "gt_adam_multi", append(common, FloatArg(float64(o.Beta1)), FloatArg(float64(o.Beta2)),
			FloatArg(float64(o.Eps)), FloatArg(float64(o.WeightDecay)))
	}

	// Readback buffers: pinned where the driver has them.
	readBytes := int(4 * (s.ctlLen + steps))
	if ac, ok := b.drv.(AsyncCopier); ok {
		s.async = ac
		for i := range s.slots {
			buf, err := ac.AllocHost(readBytes)
			if errors.Is(err, ErrUnsupported) && i == 0 {
				s.async = nil
				break
			}
			if err != nil {
				_ = s.release()
				return nil, fmt.Errorf("device: NewStepState: allocating %d bytes of pinned host memory: %w", readBytes, err)
			}
			s.slots[i].host = buf
		}
	}
	if s.async == nil {
		for i := range s.slots {
			s.slots[i].host = make([]byte, readBytes)
		}
	}
	b.live[s] = struct{}{}
	return s, nil
}

// Free releases the state.
func (s *stepState) Free() error {
	if s == nil || s.freed {
		return nil
	}
	if err := s.b.open(); err != nil {
		return err
	}
	delete(s.b.live, s)
	return s.release()
}

// release frees the device and pinned memory (Free, Backend.Close).
func (s *stepState) release() error {
	s.freed = true
	var errs []error
	for _, p := range []Ptr{s.mem, s.table} {
		if p != 0 {
			errs = append(errs, s.b.drv.Free(p))
		}
	}
	s.mem, s.table = 0, 0
	for i := range s.slots {
		sl := &s.slots[i]
		if s.async != nil {
			if sl.busy {
				errs = append(errs, s.async.ReleaseFence(sl.fence))
			}
			if sl.host != nil {
				errs = append(errs, s.async.FreeHost(sl.host))
			}
		}
		*sl = readSlot{}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("device: freeing a step state: %w", err)
	}
	return nil
}

func (s *stepState) ptr(word int64) Ptr { return s.mem + Ptr(4*word) }

// PlanEpoch uploads the epoch's order, its per-step scalars and fresh
// control words in one copy. Adam's bias corrections are those AdamStep
// computes: 1 - beta^t in float64, rounded to float32.
func (b *Backend) PlanEpoch(st model.StepState, plan model.EpochPlan) error {
	s, err := b.state(st, "PlanEpoch")
	if err != nil {
		return err
	}
	if err := backendcheck.EpochPlan(s.spec, plan); err != nil {
		return fmt.Errorf("device: PlanEpoch: %w", err)
	}
	w := s.staging
	clear(w[:s.ctlLen])
	w[ctlCursor], w[ctlCurrent], w[ctlBase] = int32(plan.First), int32(plan.First), int32(plan.StepBase)
	nan := int32(math.Float32bits(float32(math.NaN())))
	for i := s.lossOff; i < s.schedOff; i++ {
		w[i] = nan // a loss never recorded shows as NaN
	}
	o := s.spec.Optimizer
	for i, lr := range plan.LR {
		sc := w[s.schedOff+int64(i)*schedFields:][:schedFields]
		sc[schedLR] = int32(math.Float32bits(lr))
		c1, c2 := float32(1), float32(1)
		if o.Kind == model.OptAdam {
			t := float64(plan.StepBase + i + 1)
			c1 = float32(1 - math.Pow(float64(o.Beta1), t))
			c2 = float32(1 - math.Pow(float64(o.Beta2), t))
		}
		sc[schedC1], sc[schedC2], sc[3] = int32(math.Float32bits(c1)), int32(math.Float32bits(c2)), 0
	}
	copy(w[s.ordOff:], plan.Order)
	if err := b.drv.CopyIn(s.mem, bytesOf(w)); err != nil {
		return fmt.Errorf("device: PlanEpoch: uploading the plan: %w", err)
	}
	s.planned = true
	return nil
}

func (s *stepState) requirePlan(op string) error {
	if !s.planned {
		return fmt.Errorf("device: %s: no epoch planned (call PlanEpoch first)", op)
	}
	return nil
}

// GatherStep gathers the cursor's batch (gt_gather_step).
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
		return fmt.Errorf("device: GatherStep: %w", err)
	}
	if err := s.requirePlan("GatherStep"); err != nil {
		return err
	}
	y.setGathered(srcY)
	grid, block := b.elemShape(x.len())
	return b.launch("GatherStep", "gt_gather_step", grid, block,
		PtrArg(x.ptr), PtrArg(y.ptr), PtrArg(src.ptr), PtrArg(srcY.ptr), PtrArg(s.ptr(s.ordOff)), PtrArg(s.mem),
		IntArg(int64(s.spec.Batch)), IntArg(int64(x.cols)), IntArg(int64(src.rows)), IntArg(int64(s.spec.Steps)))
}

// RecordStep records the cursor's loss and advances (gt_step_record).
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
		return fmt.Errorf("device: RecordStep: %w", err)
	}
	if err := s.requirePlan("RecordStep"); err != nil {
		return err
	}
	return b.launch("RecordStep", "gt_step_record", Dim3{X: 1, Y: 1, Z: 1}, Dim3{X: recordThreads, Y: 1, Z: 1},
		PtrArg(stats.ptr), IntArg(int64(stats.rows)), PtrArg(s.mem), PtrArg(s.ptr(s.lossOff)), IntArg(int64(s.spec.Steps)))
}

// FusedOptimizerStep updates every parameter with one launch (gt_*_multi).
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
	if s.vblocks == 0 {
		return nil
	}
	grid := Dim3{X: int(min(s.vblocks, b.maxBlocks)), Y: 1, Z: 1}
	return b.launch("FusedOptimizerStep", s.kernel, grid, Dim3{X: threads, Y: 1, Z: 1}, s.args...)
}

// ReadSteps copies [ctl | losses] to the host: asynchronously into pinned
// memory where the driver can, else with CopyOut.
func (b *Backend) ReadSteps(st model.StepState) (model.StepReadback, error) {
	s, err := b.state(st, "ReadSteps")
	if err != nil {
		return nil, err
	}
	if err := s.requirePlan("ReadSteps"); err != nil {
		return nil, err
	}
	var sl *readSlot
	for i := range s.slots {
		if !s.slots[i].busy {
			sl = &s.slots[i]
			break
		}
	}
	if sl == nil {
		return nil, fmt.Errorf("device: ReadSteps: %d readbacks already in flight (Wait for one first)", len(s.slots))
	}
	if s.async == nil {
		if err := b.drv.CopyOut(sl.host, s.mem); err != nil {
			return nil, fmt.Errorf("device: ReadSteps: %w", err)
		}
	} else {
		if err := s.async.CopyOutAsync(sl.host, s.mem); err != nil {
			return nil, fmt.Errorf("device: ReadSteps: %w", err)
		}
		f, err := s.async.RecordFence()
		if err != nil {
			return nil, fmt.Errorf("device: ReadSteps: %w", err)
		}
		sl.fence = f
	}
	s.reads++
	sl.busy, sl.id = true, s.reads
	return &readback{s: s, slot: sl, id: sl.id}, nil
}

// readback is one ReadSteps in flight.
type readback struct {
	s    *stepState
	slot *readSlot
	id   uint64
}

func (r *readback) check() error {
	if r.s.freed || !r.slot.busy || r.slot.id != r.id {
		return errors.New("device: step readback: already waited for, or its step state freed")
	}
	return nil
}

func (r *readback) Ready() (bool, error) {
	if err := r.check(); err != nil {
		return false, err
	}
	if r.s.async == nil {
		return true, nil
	}
	return r.s.async.FenceDone(r.slot.fence)
}

func (r *readback) Wait() (model.StepReport, error) {
	if err := r.check(); err != nil {
		return model.StepReport{}, err
	}
	sl, s := r.slot, r.s
	if s.async != nil {
		werr := s.async.WaitFence(sl.fence)
		rerr := s.async.ReleaseFence(sl.fence)
		if err := errors.Join(werr, rerr); err != nil {
			sl.busy = false
			return model.StepReport{}, fmt.Errorf("device: step readback: %w", err)
		}
	}
	sl.busy = false
	w := unsafe.Slice((*int32)(unsafe.Pointer(&sl.host[0])), len(sl.host)/4)
	if w[ctlHalt] == haltOverrun {
		return model.StepReport{}, fmt.Errorf("device: step readback: more steps were recorded than the plan's %d", s.spec.Steps)
	}
	rep := model.StepReport{
		Cursor:     int(w[ctlCursor]),
		Losses:     make([]float32, s.spec.Steps),
		LossStep:   int(w[ctlLossStep]),
		WeightStep: int(w[ctlWeightStep]),
	}
	for i := range rep.Losses {
		rep.Losses[i] = math.Float32frombits(uint32(w[s.lossOff+int64(i)]))
	}
	for p := range s.spec.Params {
		if w[ctlBad+int64(p)] != 0 {
			rep.BadParams = append(rep.BadParams, p)
		}
	}
	return rep, nil
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
