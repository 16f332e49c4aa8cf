package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Training with a sampled loss (Config.Sampled, sampled.go) and the audit
// of its log Z estimate. The step: the layers below the head forward, S
// samples drawn from the proposal by a generator seeded from Config.Seed
// and the global step (so an interrupted or resumed run draws the same
// samples), SampledOps for the loss and the head's gradients, the batch
// loss checked, the layers below backward, the optimizer. Evaluation stays
// exact (the fused head or EnergyLoss): the test NLL is the true one.

// sampledState is a trainer's sampled-loss machinery.
type sampledState struct {
	ops      SampledOps
	head     headModel
	proposal *Proposal
	logQ     Mat  // 1 x K
	samples  Ints // S
	stats    Mat  // batch x NumSampledStats
	sums     Mat  // 1 x NumSampledStats
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
	if s.stats, err = t.b.Alloc(t.cfg.Batch, NumSampledStats); err != nil {
		return err
	}
	s.sums, err = t.b.Alloc(1, NumSampledStats)
	return err
}

func (s *sampledState) free(b Backend) error {
	if s == nil {
		return nil
	}
	return freeAll(b, s.logQ, s.samples, s.stats, s.sums)
}

// draw uploads the samples of one step (or of one held-out batch, with a
// stream of its own).
func (s *sampledState) draw(b Backend, seed, stream, index uint64) error {
	s.proposal.Draw(rand.New(rand.NewPCG(seed^stream, index)), s.host)
	return b.UploadInts(s.samples, s.host)
}

// sampledStep is step for a sampled loss: it returns the sum of the rows'
// sampled losses.
func (t *Trainer) sampledStep(rows []int32) (float64, error) {
	s, bt := t.sampled, t.bt
	if err := bt.load(t.train, rows); err != nil {
		return 0, err
	}
	scale := float32(1)
	if t.cfg.Reduction == Mean {
		scale = 1 / float32(len(rows))
	}
	if err := s.draw(t.b, t.cfg.Seed, sampledSeedStream, uint64(t.Optimizer.Steps())); err != nil {
		return 0, err
	}
	h, w, bias, err := s.head.headForward(bt.x)
	if err != nil {
		return 0, err
	}
	if err := s.ops.SampledHead(t.cfg.Sampled.Kind, h, w.Value, bias.Value, bt.y, s.samples, s.logQ, t.cfg.Loss.Beta, scale,
		s.stats, s.head.headInputGrad(), w.Grad, bias.Grad); err != nil {
		return 0, fmt.Errorf("sampled %v: %w", t.cfg.Sampled.Kind, err)
	}
	if err := t.b.ColumnSums(s.sums, 1, s.stats, 0); err != nil {
		return 0, err
	}
	sums := make([]float32, NumSampledStats)
	if err := t.b.Download(sums, s.sums); err != nil {
		return 0, err
	}
	loss := float64(sums[SampledStatLoss])
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, fmt.Errorf("%w: the batch's sampled loss is %v (%v, learning rate %g)", ErrDiverged, loss, t.cfg.Sampled.Kind, t.cfg.Optimizer.LR)
	}
	if err := s.head.headBackward(); err != nil {
		return 0, err
	}
	return loss, t.Optimizer.Step()
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
	sst := make([]float32, bt.size*NumSampledStats)
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
			est := float64(sst[i*NumSampledStats+SampledStatLogZHat])
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
