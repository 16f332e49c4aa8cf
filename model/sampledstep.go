package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Training with a sampled loss (Config.Sampled, sampled.go) and the audit
// of its log Z estimate. A step is the trainer's usual one (either loop:
// trainer.go's host-synchronized step or pipeline.go's) with trainPass
// below for its forward half: the layers below the head forward, S samples
// drawn from the proposal by a generator seeded from Config.Seed and the
// global step (so an interrupted or resumed run draws the same samples),
// SampledOps for the statistics and the head's gradients. Evaluation stays
// exact (the fused head or EnergyLoss): the test NLL is the true one.

// sampledState is a trainer's sampled-loss machinery.
type sampledState struct {
	ops      SampledOps
	head     headModel
	proposal *Proposal
	logQ     Mat  // 1 x K
	samples  Ints // S
	stats    Mat  // batch x NumStats: the audit's estimates
	host     []int32
}

// sampledSeedStream separates the samples' generator from the others.
const sampledSeedStream = 0x73616d70

func (c Config) validateSampled() error {
	if c.Sampled.Kind == SampledNone {
		return nil
	}
	if err := c.Sampled.Validate(); err != nil {
		return err
	}
	if c.Loss.Kind != NLL {
		return fmt.Errorf("a sampled loss approximates NLL; the loss must be nll, not %v", c.Loss.Kind)
	}
	if len(c.Vars) > 0 {
		return errors.New("a sampled loss needs a dense or CBOW model, not a joint one")
	}
	return nil
}

// newSampled prepares the sampled loss of t, whose model is built.
func (t *Trainer) newSampled(train *Data) error {
	sc := t.cfg.Sampled
	ops, ok := t.b.(SampledOps)
	if !ok {
		return fmt.Errorf("the sampled loss %v needs a backend with model.SampledOps (the cpu backend has it); %s has none", sc.Kind, t.b.Name())
	}
	hm, ok := t.Model.(headModel)
	if !ok {
		return fmt.Errorf("the sampled loss %v needs a model ending in a linear energy head (dense or CBOW), not %T", sc.Kind, t.Model)
	}
	p, err := NewProposal(sc.Proposal, train.Classes, train.Y)
	if err != nil {
		return err
	}
	s := &sampledState{ops: ops, head: hm, proposal: p, host: make([]int32, sc.Samples)}
	t.sampled = s
	if s.logQ, err = t.b.Alloc(1, train.Classes); err != nil {
		return err
	}
	if err := t.b.Upload(s.logQ, p.LogQ); err != nil {
		return err
	}
	if s.samples, err = t.b.AllocInts(sc.Samples); err != nil {
		return err
	}
	s.stats, err = t.b.Alloc(t.bt.size, NumStats)
	return err
}

func (s *sampledState) free(b Backend) error {
	if s == nil {
		return nil
	}
	return freeAll(b, s.logQ, s.samples, s.stats)
}

// draw uploads the samples of one step (or of one held-out batch, with a
// stream of its own).
func (s *sampledState) draw(b Backend, seed, stream, index uint64) error {
	s.proposal.Draw(rand.New(rand.NewPCG(seed^stream, index)), s.host)
	return b.UploadInts(s.samples, s.host)
}

// trainPass is the forward half of a training step on the batch in t.bt:
// the statistics into bt.stats and the head's gradients (lossPass, or the
// sampled loss), returning the backward pass of the layers below, which
// the step runs after its check. Both step loops (the host-synchronized
// step and the pipelined one) call it.
func (t *Trainer) trainPass(scale float32) (backward func() error, err error) {
	bt := t.bt
	if t.sampled == nil {
		b := t.b
		if t.NoEnergyHead {
			b = plain{b}
		}
		return lossPass(b, t.Model, bt.x, bt.y, t.cfg.Loss, scale, bt.stats, bt.argmin, true)
	}
	s := t.sampled
	// The samples of global step Steps()+1, whichever loop runs it.
	if err := s.draw(t.b, t.cfg.Seed, sampledSeedStream, uint64(t.Optimizer.Steps())); err != nil {
		return nil, err
	}
	h, w, bias, err := s.head.headForward(bt.x)
	if err != nil {
		return nil, err
	}
	if err := s.ops.SampledHead(t.cfg.Sampled.Kind, h, w.Value, bias.Value, bt.y, s.samples, s.logQ, t.cfg.Loss.Beta, scale,
		bt.stats, s.head.headInputGrad(), w.Grad, bias.Grad); err != nil {
		return nil, fmt.Errorf("sampled %v: %w", t.cfg.Sampled.Kind, err)
	}
	return s.head.headBackward, nil
}

// LogZAudit compares a sampled loss's estimate of log Z with the exact
// value on the held-out rows: the importance-sampling estimate log((1/S)
// sum_j exp(-beta E_{s_j}) / Q(s_j)) from S samples per held-out batch
// (drawn like a training step's, from a stream of their own), against
// log Z over every answer. For NCE, which assumes a self-normalized model
// (log Z = 0), SelfNormalizedBias is that assumption's error.
type LogZAudit struct {
	Kind      SampledKind
	Samples   int
	Rows      int
	Batches   int
	MeanExact float64 // mean exact log Z per row
	MeanEst   float64 // mean estimate per row
	// Bias is the mean of (estimate - exact) over the rows; RowStd its
	// standard deviation over the rows; BatchStd the standard deviation
	// over the batches of each batch's mean (estimate - exact).
	Bias, RowStd, BatchStd float64
	// SelfNormalizedBias is the mean of (0 - exact log Z): NCE's implied
	// estimate against the truth.
	SelfNormalizedBias float64
}

// sampledAuditStream is the held-out batches' sample stream.
const sampledAuditStream = 0x61756474

// logZAudit runs the audit over the held-out data (the trainer's eval set).
func (t *Trainer) logZAudit() (*LogZAudit, error) {
	s, bt, dd := t.sampled, t.bt, t.eval
	a := &LogZAudit{Kind: t.cfg.Sampled.Kind, Samples: t.cfg.Sampled.Samples}
	n := dd.Host.N
	stats := make([]float32, bt.size*NumStats)
	sst := make([]float32, bt.size*NumStats)
	rows := make([]int32, 0, bt.size)
	var sumEx, sumEst, sumD, sumD2, sumB, sumB2 float64
	for start := 0; start < n; start += bt.size {
		end := min(start+bt.size, n)
		rows = rows[:0]
		for i := start; i < end; i++ {
			rows = append(rows, int32(i))
		}
		if err := bt.load(dd, rows); err != nil {
			return nil, err
		}
		if _, err := lossPass(t.b, t.Model, bt.x, bt.y, t.cfg.Loss, 1, bt.stats, bt.argmin, false); err != nil {
			return nil, err
		}
		if err := t.b.Download(stats, bt.stats); err != nil {
			return nil, err
		}
		if err := s.draw(t.b, t.cfg.Seed, sampledAuditStream, uint64(a.Batches)); err != nil {
			return nil, err
		}
		h, w, bias, err := s.head.headForward(bt.x)
		if err != nil {
			return nil, err
		}
		if err := s.ops.SampledHead(a.Kind, h, w.Value, bias.Value, bt.y, s.samples, s.logQ, t.cfg.Loss.Beta, 1, s.stats, nil, nil, nil); err != nil {
			return nil, err
		}
		if err := t.b.Download(sst, s.stats); err != nil {
			return nil, err
		}
		var batchD float64
		for i := 0; i < end-start; i++ {
			ex := float64(stats[i*NumStats+StatLogZ])
			est := float64(sst[i*NumStats+StatLogZ])
			d := est - ex
			sumEx += ex
			sumEst += est
			sumD += d
			sumD2 += d * d
			batchD += d
		}
		batchD /= float64(end - start)
		sumB += batchD
		sumB2 += batchD * batchD
		a.Batches++
		a.Rows += end - start
	}
	r, nb := float64(a.Rows), float64(a.Batches)
	a.MeanExact, a.MeanEst, a.Bias = sumEx/r, sumEst/r, sumD/r
	a.RowStd = math.Sqrt(math.Max(0, sumD2/r-a.Bias*a.Bias))
	mb := sumB / nb
	a.BatchStd = math.Sqrt(math.Max(0, sumB2/nb-mb*mb))
	a.SelfNormalizedBias = -a.MeanExact
	return a, nil
}
