package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/gputrain/gputrain/comm"
)

// Reduction says how the per-row losses of a batch combine into the loss
// whose gradient is taken.
type Reduction int

const (
	Mean Reduction = iota // gradient scaled by 1/(valid rows in the batch)
	Sum                   // gradient of the plain sum
)

func (r Reduction) String() string {
	switch r {
	case Mean:
		return "mean"
	case Sum:
		return "sum"
	}
	return fmt.Sprintf("Reduction(%d)", int(r))
}

// ParseReduction returns the reduction named "mean" or "sum".
func ParseReduction(s string) (Reduction, error) {
	switch strings.ToLower(s) {
	case "mean":
		return Mean, nil
	case "sum":
		return Sum, nil
	}
	return 0, fmt.Errorf("unknown reduction %q (valid: mean, sum)", s)
}

// Config is everything that determines a training run. Together with the
// data and the backend it determines the trained weights bitwise.
type Config struct {
	Model      string // see ParseSpec: "linear", "mlp:256,128"
	Activation string // "relu" or "tanh" for the hidden layers; "" keeps the spec's (default relu)
	Loss       Loss
	Optimizer  OptimizerConfig
	Epochs     int // >= 1
	Batch      int // rows per step, >= 1
	Seed       uint64
	Reduction  Reduction
	// Vars, when not empty, makes the model a JointModel (joint.go) over
	// output variables of Vars[i] values each; Model is then its trunk, the
	// data's Classes must be prod Vars and its labels joint indices.
	Vars []int
	// NoPairwise leaves the pairwise tables out of a joint model.
	NoPairwise bool
	// Chain makes the model a ChainModel (chain.go) whose answers are
	// sequences; it trains with NewSequenceTrainer, Batch counting
	// sequences and Model being the trunk of the unary energies.
	Chain bool
	// StreamData keeps the data sets on the host and uploads each batch,
	// as happens by itself when a set does not fit the backend's memory.
	// It does not change the trained weights.
	StreamData bool
	// Schedule varies the learning rate with the global step (schedule.go);
	// the zero value keeps Optimizer.LR.
	Schedule Schedule
	// EarlyStop stops training when the held-out metric stops improving
	// (earlystop.go); the zero value trains every epoch.
	EarlyStop EarlyStop
	// Sampled, when its Kind is set, trains with a sampled approximation
	// of NLL (sampled softmax or NCE: sampled.go) instead of the exact
	// loss; evaluation stays exact and audits the sampled log Z.
	Sampled SampledConfig
	// Precision is how the dense layers' products round their operands
	// (precision.go); FP32, the zero value, does not. Saved in checkpoints.
	Precision Precision
}

// DefaultConfig is a linear model trained with NLL (beta 1) by Adam (lr
// 1e-3), batch 128, 5 epochs, seed 1.
func DefaultConfig() Config {
	return Config{
		Model:     "linear",
		Loss:      DefaultLoss(NLL),
		Optimizer: OptimizerConfig{Name: "adam", LR: 1e-3, Momentum: 0.9, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		Epochs:    5,
		Batch:     128,
		Seed:      1,
		Reduction: Mean,
	}
}

// Spec parses Model and applies Activation.
func (c Config) Spec() (Spec, error) {
	s, err := ParseSpec(c.Model)
	if err != nil {
		return Spec{}, err
	}
	if c.Activation != "" {
		a, err := ParseActivation(c.Activation)
		if err != nil {
			return Spec{}, err
		}
		if strings.Count(c.Model, ":") == 2 && a != s.Activation {
			return Spec{}, fmt.Errorf("activation %q contradicts the model %q", c.Activation, c.Model)
		}
		s.Activation = a
	}
	return s, nil
}

// Validate reports the first invalid setting, with the valid choices.
func (c Config) Validate() error {
	if _, err := c.Spec(); err != nil {
		return err
	}
	if err := c.Loss.Validate(); err != nil {
		return err
	}
	if err := c.Optimizer.Validate(); err != nil {
		return err
	}
	if c.Epochs < 1 {
		return fmt.Errorf("epochs must be >= 1, got %d", c.Epochs)
	}
	if c.Batch < 1 {
		return fmt.Errorf("batch must be >= 1, got %d", c.Batch)
	}
	if c.Reduction != Mean && c.Reduction != Sum {
		return fmt.Errorf("unknown reduction %v (valid: mean, sum)", c.Reduction)
	}
	if err := c.Schedule.Validate(); err != nil {
		return fmt.Errorf("learning-rate schedule: %w", err)
	}
	if err := c.EarlyStop.Validate(); err != nil {
		return err
	}
	if err := c.validateChain(); err != nil {
		return err
	}
	if err := c.validateSampled(); err != nil {
		return err
	}
	if err := c.Precision.Validate(); err != nil {
		return err
	}
	return c.validateJoint()
}

// StepInfo is passed to Trainer.OnStep after every step has been issued.
type StepInfo struct {
	Epoch      int // 1-based
	Step       int // 1-based within the epoch
	Steps      int // steps per epoch
	GlobalStep int // steps since the start of training
	// Loss is the running mean loss per row over the epoch's first
	// LossSteps steps, those whose losses have come back from the backend
	// (NaN while none has). With StepHostSync, and on a backend whose
	// reads are immediate (cpu), the steps read back lag the step issued by
	// at most Trainer.LossEvery; on a GPU by at most about 2*LossEvery.
	Loss      float64
	LossSteps int
	// LR is the learning rate of the step (Config.Schedule, schedule.go).
	LR float64
}

// EpochResult is passed to Trainer.OnEpoch and returned by Run.
type EpochResult struct {
	Epoch     int     // 1-based
	TrainLoss float64 // mean loss per training row over the epoch (before each step)
	// Eval is measured on the held-out data after the epoch; nil without
	// held-out data.
	Eval        *EvalResult
	Seconds     float64 // training time of the epoch
	EvalSeconds float64
	// With Config.EarlyStop: Best marks the epoch whose held-out metric is
	// the best so far, which is BestValue, reached at epoch BestEpoch.
	Best      bool
	BestEpoch int
	BestValue float64
}

// Trainer trains an energy model on a data set uploaded once to a Backend.
type Trainer struct {
	Model     EnergyModel
	Optimizer Optimizer
	// OnStep and OnEpoch, when set, are called after each step and epoch.
	OnStep  func(StepInfo)
	OnEpoch func(EpochResult)
	// KeepMargins makes Evaluate fill EvalResult.Margins with every
	// held-out row's E_I - E_C (N float32 per evaluation).
	KeepMargins bool
	// Step selects how training steps run (see StepMode; the zero value,
	// StepAuto, is the fastest the backend allows). LossEvery is the
	// number of steps between read-backs of the losses and of the
	// divergence check (0: DefaultLossEvery).
	Step      StepMode
	LossEvery int
	// NoEnergyHead makes the training steps take the materializing path
	// (Forward, EnergyLoss, Backward) even where the backend has the fused
	// energy head (head.go): for comparisons, and for tests that count a
	// step's operations. Evaluation uses the head either way.
	NoEnergyHead bool

	cfg   Config
	b     Backend
	train *DeviceData
	eval  *DeviceData
	bt    *batcher
	// The shuffle RNG. Its state at the start of an epoch fixes that
	// epoch's order; PCG marshals, so a checkpoint can save it.
	pcg   *rand.PCG
	rng   *rand.Rand
	perm  []int32
	epoch int // completed epochs
	// Resume state (see checkpoint.go). epochRNG is the PCG state at the
	// start of epoch epoch+1, before its shuffle; done steps of that epoch
	// have been taken (0 between epochs), their losses summing to doneLoss.
	// Together with the weights and optimizer state they let an
	// interrupted epoch continue exactly where it stopped.
	epochRNG []byte
	done     int
	doneLoss float64
	// seq is set for chain models (chaintrain.go): the units of an epoch
	// are sequences, and steps and evaluations go through the chain's
	// dynamic programs.
	seq *seqRun
	// pipe runs the steps through StepOps (pipeline.go); diverged, once
	// set, is returned by every later TrainEpoch: a run never continues on
	// non-finite weights.
	pipe     *pipeline
	diverged error
	checkBuf []float32 // checkWeights' download buffer
	// dist is the data-parallel state (allreduce.go); nil alone.
	dist *distributed
	// dataSHA256 caches DataFingerprint of the training data (integrity.go).
	dataSHA256 string
	early      earlyStopState // earlystop.go
	// sampled is the sampled loss's state (sampledstep.go); nil for the
	// exact loss.
	sampled *sampledState
}

// NewTrainer validates cfg and the data, uploads train (and eval, which may
// be nil) once, and builds the model and optimizer from cfg.Seed.
func NewTrainer(b Backend, cfg Config, train, eval *Data) (*Trainer, error) {
	if cfg.Chain {
		return nil, errors.New("NewTrainer: a chain model trains on sequences: use NewSequenceTrainer")
	}
	return newTrainer(b, cfg, nil, train, eval)
}

// newTrainer is NewTrainer with a communicator (NewDistributedTrainer);
// NewSequenceTrainer extends what it builds.
func newTrainer(b Backend, cfg Config, c comm.Comm, train, eval *Data) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errors.New("NewTrainer: nil backend")
	}
	if err := train.Validate(); err != nil {
		return nil, fmt.Errorf("training %w", err)
	}
	if eval != nil {
		if err := eval.Validate(); err != nil {
			return nil, fmt.Errorf("held-out %w", err)
		}
		if eval.D != train.D || eval.Classes != train.Classes {
			return nil, fmt.Errorf("held-out data has %d features and %d classes, training data %d and %d", eval.D, eval.Classes, train.D, train.Classes)
		}
	}
	spec, _ := cfg.Spec()
	if spec.Embed > 0 {
		// A CBOW model's inputs are word ids (cbow.go).
		for _, d := range []*Data{train, eval} {
			if d != nil {
				if err := CheckWordIDs(d, d.Classes); err != nil {
					return nil, err
				}
			}
		}
	}
	// A batch of the training rows or more is one step over all of them
	// (data.go, rowsPerStep): no buffer is sized by a larger one.
	cfg.Batch = rowsPerStep(cfg.Batch, train.N)
	t := &Trainer{cfg: cfg, b: b}
	t.setComm(c)
	if err := t.checkAgreement(train, eval); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = t.Close()
		}
	}()
	var err error
	// Separate streams: the initial weights do not depend on how many
	// shuffles were drawn, and vice versa.
	initRNG := rand.New(rand.NewPCG(cfg.Seed, 0x696e6974))
	if t.Model, err = newConfiguredModel(b, cfg, spec, train.D, train.Classes, initRNG); err != nil {
		return nil, err
	}
	if t.Optimizer, err = NewOptimizer(b, cfg.Optimizer, t.Model.Params()); err != nil {
		return nil, err
	}
	upload := Upload
	if cfg.StreamData {
		upload = UploadStreamed
	}
	if t.train, err = upload(b, train); err != nil {
		return nil, err
	}
	if eval != nil {
		if t.eval, err = upload(b, eval); err != nil {
			return nil, err
		}
	}
	if t.bt, err = newBatcher(b, t.localBatch(), train.D); err != nil {
		return nil, err
	}
	if cfg.Sampled.Kind != SampledNone {
		if err := t.newSampled(train); err != nil {
			return nil, err
		}
	}
	t.pcg = rand.NewPCG(cfg.Seed, 0x73687566)
	t.rng = rand.New(t.pcg)
	t.epochRNG, _ = t.pcg.MarshalBinary() // never fails
	t.perm = make([]int32, train.N)
	ok = true
	return t, nil
}

// Config returns the configuration the trainer was built with.
func (t *Trainer) Config() Config { return t.cfg }

// Epoch returns the number of completed epochs.
func (t *Trainer) Epoch() int { return t.epoch }

// StepsPerEpoch is ceil(N / Batch).
func (t *Trainer) StepsPerEpoch() int { return (t.units() + t.cfg.Batch - 1) / t.cfg.Batch }

// Run trains the remaining epochs up to Config.Epochs, evaluating after each
// on the held-out data. It stops at the first error, at a non-finite batch
// loss (the error names the epoch and step), when ctx is done, or when
// Config.EarlyStop says the held-out metric stopped improving.
func (t *Trainer) Run(ctx context.Context) ([]EpochResult, error) {
	var out []EpochResult
	for t.epoch < t.cfg.Epochs && !t.early.stopped {
		start := time.Now()
		loss, err := t.TrainEpoch(ctx)
		if err != nil {
			return out, err
		}
		r := EpochResult{Epoch: t.epoch, TrainLoss: loss, Seconds: time.Since(start).Seconds()}
		if t.eval != nil {
			start = time.Now()
			ev, err := t.Evaluate()
			if err != nil {
				return out, fmt.Errorf("epoch %d: %w", t.epoch, err)
			}
			r.Eval = &ev
			r.EvalSeconds = time.Since(start).Seconds()
		}
		t.observeEarlyStop(&r)
		out = append(out, r)
		if t.OnEpoch != nil {
			t.OnEpoch(r)
		}
	}
	return out, nil
}

// TrainEpoch runs one epoch over a freshly shuffled order and returns the
// mean training loss per row.
func (t *Trainer) TrainEpoch(ctx context.Context) (float64, error) {
	if t.bt == nil {
		return 0, errors.New("trainer: used after Close")
	}
	if t.diverged != nil {
		return 0, t.diverged
	}
	if ops, ok := t.usePipeline(); ok {
		return t.trainEpochPipelined(ctx, ops)
	}
	epoch := t.epoch + 1
	n := t.units()
	if err := t.shuffle(); err != nil {
		return 0, err
	}
	steps := t.StepsPerEpoch()
	sums := make([]float32, NumStats)
	total := t.doneLoss
	for s := t.done; s < steps; s++ {
		if err := t.stopRequested(ctx); err != nil {
			return 0, fmt.Errorf("epoch %d step %d: %w", epoch, s+1, err)
		}
		rows := t.perm[s*t.cfg.Batch : min((s+1)*t.cfg.Batch, n)]
		loss, err := t.step(rows, sums)
		if err != nil {
			err = fmt.Errorf("epoch %d step %d: %w", epoch, s+1, err)
			if errors.Is(err, ErrDiverged) {
				t.diverged = err
			}
			return 0, err
		}
		total += loss
		t.done, t.doneLoss = s+1, total
		if t.OnStep != nil {
			t.OnStep(StepInfo{Epoch: epoch, Step: s + 1, Steps: steps, GlobalStep: t.Optimizer.Steps(), Loss: total / float64(min((s+1)*t.cfg.Batch, n)), LossSteps: s + 1, LR: t.learningRate(t.Optimizer.Steps())})
		}
	}
	t.epoch = epoch
	t.epochRNG, _ = t.pcg.MarshalBinary()
	t.done, t.doneLoss = 0, 0
	if err := t.checkReplicas(epoch); err != nil {
		return 0, err
	}
	return total / float64(n), nil
}

// shuffle draws the epoch's order into perm. Rewinding to the epoch's
// start state makes an epoch that was interrupted (ctx) or restored from a
// checkpoint draw the same order.
func (t *Trainer) shuffle() error {
	if err := t.pcg.UnmarshalBinary(t.epochRNG); err != nil {
		return fmt.Errorf("trainer: shuffle state: %w", err)
	}
	for i := range t.perm {
		t.perm[i] = int32(i)
	}
	t.rng.Shuffle(len(t.perm), func(i, j int) { t.perm[i], t.perm[j] = t.perm[j], t.perm[i] })
	return nil
}

// step is the host-synchronized step (StepHostSync): it trains on the
// given rows (this rank's shard of them, data parallel) and returns the
// sum of their losses.
func (t *Trainer) step(rows []int32, sums []float32) (float64, error) {
	if t.seq != nil {
		return t.seq.step(t, rows, sums)
	}
	bt := t.bt
	if err := bt.load(t.train, t.shard(rows)); err != nil {
		return 0, err
	}
	scale := float32(1)
	if t.cfg.Reduction == Mean {
		scale = 1 / float32(len(rows))
	}
	// Forward and the loss (through the fused energy head when the backend
	// has one, head.go, or the sampled loss, sampledstep.go); the layers
	// below the head run backward before the all-reduce and the check.
	backward, err := t.trainPass(scale)
	if err != nil {
		return 0, err
	}
	// Padding rows have loss 0, so the column sum is the batch's loss.
	if err := t.b.ColumnSums(bt.sums, 1, bt.stats, 0); err != nil {
		return 0, err
	}
	if err := t.b.Download(sums, bt.sums); err != nil {
		return 0, err
	}
	if err := backward(); err != nil {
		return 0, err
	}
	// The ranks' gradients and losses summed (nothing to do alone).
	loss, err := t.allReduceStep(float64(sums[StatLoss]))
	if err != nil {
		return 0, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		// Stop before the step: the weights stay those that gave it.
		return 0, fmt.Errorf("%w: the batch loss is %v (%v, learning rate %g)", ErrDiverged, loss, t.cfg.Loss, t.cfg.Optimizer.LR)
	}
	return loss, t.update()
}

// update applies the optimizer step to the gradients of the host-
// synchronized step and checks the weights it made.
func (t *Trainer) update() error {
	o, builtin := t.Optimizer.(*optimizer)
	if !builtin {
		return t.Optimizer.Step()
	}
	if err := o.stepWith(float32(t.learningRate(o.t + 1))); err != nil {
		return err
	}
	return t.checkWeights()
}

// checkWeights downloads every parameter and fails, naming them, when one
// holds a non-finite value: the host-synchronized step's counterpart of
// FusedOptimizerStep's check. It is only taken on backends without StepOps.
func (t *Trainer) checkWeights() error {
	var bad []string
	for _, p := range t.Model.Params() {
		if cap(t.checkBuf) < p.Size() {
			t.checkBuf = make([]float32, p.Size())
		}
		v := t.checkBuf[:p.Size()]
		if err := t.b.Download(v, p.Value); err != nil {
			return err
		}
		var acc float32
		for _, x := range v {
			acc += x - x // 0 for every finite x, NaN otherwise
		}
		if acc != 0 {
			bad = append(bad, p.Name)
		}
	}
	if bad != nil {
		return fmt.Errorf("%w: the %s update with learning rate %g made %s non-finite", ErrDiverged,
			strings.ToLower(t.cfg.Optimizer.Name), t.learningRate(t.Optimizer.Steps()), strings.Join(bad, ", "))
	}
	return nil
}

// ErrDiverged is wrapped by the error Run returns when a batch loss is NaN
// or infinite.
var ErrDiverged = errors.New("training diverged")

// Evaluate measures the model on the held-out data given to NewTrainer.
func (t *Trainer) Evaluate() (EvalResult, error) {
	if t.eval == nil {
		return EvalResult{}, errors.New("trainer: no held-out data")
	}
	if t.bt == nil {
		return EvalResult{}, errors.New("trainer: used after Close")
	}
	if t.seq != nil {
		return t.seq.evaluate(t, t.KeepMargins)
	}
	r, err := evaluate(t.b, t.Model, t.eval, t.cfg.Loss, t.bt, t.KeepMargins)
	if err == nil && t.sampled != nil {
		r.LogZAudit, err = t.logZAudit()
	}
	return r, err
}

// Close frees everything the trainer allocated on the backend (the model
// included); the backend itself stays open.
func (t *Trainer) Close() error {
	var errs []error
	if t.pipe != nil {
		errs = append(errs, t.pipe.free())
		t.pipe = nil
	}
	if t.bt != nil {
		errs = append(errs, t.bt.free())
		t.bt = nil
	}
	errs = append(errs, t.seq.free())
	t.seq = nil
	if t.Optimizer != nil {
		errs = append(errs, t.Optimizer.Free())
	}
	errs = append(errs, t.sampled.free(t.b))
	t.sampled = nil
	if t.Model != nil {
		errs = append(errs, t.Model.Free())
	}
	errs = append(errs, t.train.Free(), t.eval.Free())
	return errors.Join(errs...)
}

// Streamed reports whether the training data stays on the host and is
// uploaded batch by batch (see DeviceData), and why.
func (t *Trainer) Streamed() (bool, string) {
	if t.train == nil {
		return false, ""
	}
	return t.train.Streamed, t.train.StreamReason
}
