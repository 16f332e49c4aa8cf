package model

import (
	"errors"
	"fmt"
	"math"
)

// Training chain models. The Trainer shuffles and batches "units": rows
// for a flat model, sequences for a chain. NewSequenceTrainer builds the
// ordinary Trainer (same model construction, optimizer, data upload,
// checkpoints and resume) and attaches a seqRun, through which the
// Trainer's step and Evaluate go instead of Forward + EnergyLoss +
// Backward: a batch is Batch whole sequences, their positions gathered and
// packed, the unary energies from the trunk, ChainLoss for the loss and
// the gradients of U, P, S and F, the trunk's backward pass, the optimizer
// step. Loss and gradient are per sequence (Reduction Mean divides by the
// sequences of the batch).

// seqRun is the chain part of a Trainer.
type seqRun struct {
	train, eval *Sequences
	bufs        *seqBuffers
}

// NewSequenceTrainer is NewTrainer for a ChainModel (cfg.Chain is set if
// it is not) on sequences: cfg.Batch counts sequences, cfg.Model is the
// trunk, the data's Classes is K. eval may be nil.
func NewSequenceTrainer(b Backend, cfg Config, train, eval *Sequences) (*Trainer, error) {
	cfg.Chain = true
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := train.Validate(); err != nil {
		return nil, fmt.Errorf("training %w", err)
	}
	var evalData *Data
	if eval != nil {
		if err := eval.Validate(); err != nil {
			return nil, fmt.Errorf("held-out %w", err)
		}
		evalData = &eval.Data
	}
	t, err := newTrainer(b, cfg, nil, &train.Data, evalData)
	if err != nil {
		return nil, err
	}
	rows := longestSum(cfg.Batch, train, eval)
	bufs, err := newSeqBuffers(b, cfg.Batch, rows, train.D)
	if err != nil {
		_ = t.Close()
		return nil, err
	}
	// The row batcher NewTrainer made is replaced by the sequence batch's.
	_ = t.bt.free()
	t.bt = bufs.bt
	t.seq = &seqRun{train: train, eval: eval, bufs: bufs}
	t.perm = make([]int32, train.Len())
	return t, nil
}

// validateChain checks Config.Chain (Config.Validate calls it).
func (c Config) validateChain() error {
	if c.Chain && len(c.Vars) > 0 {
		return errors.New("a chain model has one answer per position: Chain and Vars (a joint model) exclude each other")
	}
	return nil
}

// units is what an epoch shuffles and batches: rows, or sequences.
func (t *Trainer) units() int {
	if t.seq != nil {
		return t.seq.train.Len()
	}
	return t.train.Host.N
}

// Sequences returns the training and held-out sequences of a chain
// trainer (nil, nil for a flat model).
func (t *Trainer) Sequences() (train, eval *Sequences) {
	if t.seq == nil {
		return nil, nil
	}
	return t.seq.train, t.seq.eval
}

// step trains on the sequences ids and returns the sum of their losses;
// sums receives the column sums of the statistics.
func (s *seqRun) step(t *Trainer, ids []int32, sums []float32) (float64, error) {
	cm := t.Model.(*ChainModel)
	bf := s.bufs
	if err := bf.load(t.train, s.train, ids); err != nil {
		return 0, err
	}
	u, err := cm.UnaryEnergies(bf.bt.x)
	if err != nil {
		return 0, err
	}
	scale := float32(1)
	if t.cfg.Reduction == Mean {
		scale = 1 / float32(len(ids))
	}
	if err := cm.ops.ChainLoss(cm.Chain(u, bf.offsets), bf.bt.y, t.cfg.Loss, scale, bf.stats, bf.path, cm.Grads()); err != nil {
		return 0, err
	}
	// Empty (padding) sequences have loss 0: the column sum is the batch's.
	if err := t.b.ColumnSums(bf.sums, 1, bf.stats, 0); err != nil {
		return 0, err
	}
	if err := t.b.Download(sums, bf.sums); err != nil {
		return 0, err
	}
	loss := float64(sums[StatLoss])
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, fmt.Errorf("%w: the batch loss is %v (%v, learning rate %g)", ErrDiverged, loss, t.cfg.Loss, t.cfg.Optimizer.LR)
	}
	if err := cm.BackwardUnary(u); err != nil {
		return 0, err
	}
	return loss, t.update()
}

func (s *seqRun) evaluate(t *Trainer, keepMargins bool) (EvalResult, error) {
	return evaluateSequences(t.b, t.Model.(*ChainModel), t.eval, s.eval, t.cfg.Loss, s.bufs, keepMargins)
}

func (s *seqRun) free() error {
	if s == nil {
		return nil
	}
	return s.bufs.freeOwn() // the batcher is the Trainer's bt, which Close frees
}

// EvaluateSequences measures a chain model on seqs with the beta and
// margin of loss, in batches of batch sequences: sequence accuracy (the
// Viterbi path is the labels at every position), per-position accuracy,
// NLL per sequence, the loss, and the margins E_I - E_C of whole
// sequences. It uploads seqs and allocates its own buffers.
func EvaluateSequences(b Backend, m *ChainModel, seqs *Sequences, loss Loss, batch int) (EvalResult, error) {
	if batch < 1 {
		return EvalResult{}, fmt.Errorf("evaluate: batch must be >= 1, got %d", batch)
	}
	if err := loss.Validate(); err != nil {
		return EvalResult{}, err
	}
	if err := seqs.Validate(); err != nil {
		return EvalResult{}, err
	}
	dd, err := Upload(b, &seqs.Data)
	if err != nil {
		return EvalResult{}, err
	}
	defer dd.Free()
	bf, err := newSeqBuffers(b, batch, longestSum(batch, seqs), seqs.D)
	if err != nil {
		return EvalResult{}, err
	}
	defer bf.free()
	return evaluateSequences(b, m, dd, seqs, loss, bf, false)
}

// evaluateSequences is EvaluateSequences on uploaded positions dd with
// buffers bf.
func evaluateSequences(b Backend, m *ChainModel, dd *DeviceData, seqs *Sequences, loss Loss, bf *seqBuffers, keepMargins bool) (EvalResult, error) {
	if m.Inputs() != seqs.D || m.States() != seqs.Classes {
		return EvalResult{}, fmt.Errorf("evaluate: model takes %d inputs and %d states, data has %d and %d", m.Inputs(), m.States(), seqs.D, seqs.Classes)
	}
	n := seqs.Len()
	stats := make([]float32, bf.size*NumStats)
	path := make([]int32, bf.bt.size)
	ids := make([]int32, 0, bf.size)
	var r EvalResult
	var correct, posCorrect, violations, stalled int
	var sumNLL, sumLoss, sumMargin, sumEC, sumEI float64
	var margins []float32
	if keepMargins {
		margins = make([]float32, 0, n)
	}
	for start := 0; start < n; start += bf.size {
		end := min(start+bf.size, n)
		ids = ids[:0]
		for i := start; i < end; i++ {
			ids = append(ids, int32(i))
		}
		if err := bf.load(dd, seqs, ids); err != nil {
			return r, fmt.Errorf("evaluate sequences %d..%d: %w", start, end-1, err)
		}
		u, err := m.UnaryEnergies(bf.bt.x)
		if err != nil {
			return r, fmt.Errorf("evaluate sequences %d..%d: %w", start, end-1, err)
		}
		// The gradient written over u is not used.
		if err := m.ops.ChainLoss(m.Chain(u, bf.offsets), bf.bt.y, loss, 1, bf.stats, bf.path, ChainGrads{}); err != nil {
			return r, fmt.Errorf("evaluate sequences %d..%d: %w", start, end-1, err)
		}
		if err := b.Download(stats, bf.stats); err != nil {
			return r, err
		}
		if err := b.DownloadInts(path, bf.path); err != nil {
			return r, err
		}
		row := 0
		for i := start; i < end; i++ {
			s := stats[(i-start)*NumStats : (i-start+1)*NumStats]
			lo, hi := seqs.Offsets[i], seqs.Offsets[i+1]
			right := true
			for p := lo; p < hi; p++ {
				if path[row] == seqs.Y[p] {
					posCorrect++
				} else {
					right = false
				}
				row++
			}
			if right {
				correct++
			}
			ec, ei := float64(s[StatCorrect]), float64(s[StatOffending])
			sumNLL += ec + float64(s[StatLogZ])/loss.Beta
			sumLoss += float64(s[StatLoss])
			sumMargin += ei - ec
			if keepMargins {
				margins = append(margins, s[StatOffending]-s[StatCorrect])
			}
			sumEC += ec
			sumEI += ei
			if !right && rowGradient(loss, ec, ei, float64(s[StatLogZ]), true) < StallThreshold {
				stalled++
			}
			if ec+loss.Margin >= ei {
				violations++
			}
		}
	}
	fn := float64(n)
	r = EvalResult{
		N:                n,
		Accuracy:         float64(correct) / fn,
		NLL:              sumNLL / fn,
		Loss:             sumLoss / fn,
		Margin:           sumMargin / fn,
		Violations:       float64(violations) / fn,
		MeanCorrect:      sumEC / fn,
		MeanOffending:    sumEI / fn,
		Stalled:          float64(stalled) / fn,
		Margins:          margins,
		Positions:        seqs.N,
		PositionAccuracy: float64(posCorrect) / float64(seqs.N),
	}
	return r, nil
}
