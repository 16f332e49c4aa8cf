package main

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
)

// trainResult is what a training run leaves besides its checkpoints.
type trainResult struct {
	epochs []model.EpochResult
	// test is the evaluation of the test set at the end, when the epochs
	// were evaluated on a validation set; testOf says which weights.
	test   *model.EvalResult
	testOf string
	// Early stopping: whether it ended the run, and the best epoch.
	stopped   bool
	bestEpoch int
	best      float64
}

// finalTest evaluates the test set once, when the epochs were evaluated on
// a validation set: with the best epoch's weights when early stopping kept
// them, else with the last.
func (r *trainResult) finalTest(o runOptions, be model.Backend, tr *model.Trainer) error {
	if o.finalTest == nil {
		return nil
	}
	m, of := tr.Model, "the last epoch's weights"
	if o.best != "" && r.bestEpoch > 0 {
		ck, err := model.ReadCheckpoint(o.best)
		if err != nil {
			return err
		}
		bm, err := ck.NewModel(be)
		if err != nil {
			return err
		}
		defer bm.Free()
		m, of = bm, fmt.Sprintf("epoch %d's weights, %s", r.bestEpoch, o.best)
	}
	if o.seq != nil { // a chain model: the test sequences (seqdata.go)
		ev, err := finalTestSequences(be, m, o)
		r.test, r.testOf = &ev, of
		return err
	}
	dd, err := model.Upload(be, o.finalTest)
	if err != nil {
		return err
	}
	defer dd.Free()
	ev, err := model.Evaluate(be, m, dd, o.cfg.Loss, min(1000, o.finalTest.N))
	if err != nil {
		return fmt.Errorf("evaluating the test set: %w", err)
	}
	r.test, r.testOf = &ev, of
	return nil
}

// summary is what train prints after its epochs: why it stopped early, and
// the test set's numbers when it was held back to the end.
func (r *trainResult) summary(o runOptions, ld *loadedData) []string {
	var out []string
	if r.stopped {
		s := fmt.Sprintf("# early stopping: %s %s did not improve for %d epochs after epoch %d (%.4g)",
			ld.evalName, o.cfg.EarlyStop.Monitor, o.cfg.EarlyStop.Patience, r.bestEpoch, r.best)
		if o.best != "" {
			s += "; best checkpoint " + o.best
		}
		out = append(out, s)
	} else if o.best != "" && r.bestEpoch > 0 {
		out = append(out, fmt.Sprintf("# best epoch %d (%s %s %.4g), checkpoint %s", r.bestEpoch, ld.evalName, o.cfg.EarlyStop.Monitor, r.best, o.best))
	}
	if e := r.test; e != nil {
		units, pos := "rows", ""
		if e.Positions > 0 { // a chain: acc per sequence (docs/SEQUENCE.md)
			units, pos = "sequences", fmt.Sprintf(" pos %.4f", e.PositionAccuracy)
		}
		out = append(out, fmt.Sprintf("# test (%d %s, %s): acc %.4f%s  NLL %.4f  loss %.4f  margin %.3f  violations %.4f",
			e.N, units, r.testOf, e.Accuracy, pos, e.NLL, e.Loss, e.Margin, e.Violations))
	}
	return out
}
