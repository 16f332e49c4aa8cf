package model

import (
	"fmt"
	"math"
	"strings"
)

// EarlyStop stops training when a metric of the held-out data has not
// improved for Patience epochs, as Keras' EarlyStopping does; the epoch
// with the best value is marked (EpochResult.Best) so its checkpoint can be
// kept. The zero value (Patience 0) never stops.
type EarlyStop struct {
	Monitor  string  // "loss" (the training loss on the held-out data), "nll" or "accuracy"
	Patience int     // epochs without improvement before stopping, >= 1 to be on
	MinDelta float64 // smaller changes are no improvement, >= 0
}

// MonitorNames lists the metrics EarlyStop can watch.
func MonitorNames() []string { return []string{"loss", "nll", "accuracy"} }

// Validate reports a setting out of range.
func (e EarlyStop) Validate() error {
	if e.Patience == 0 {
		return nil
	}
	if e.Patience < 0 {
		return fmt.Errorf("early-stopping patience must be >= 0, got %d", e.Patience)
	}
	ok := false
	for _, m := range MonitorNames() {
		ok = ok || strings.EqualFold(m, e.Monitor)
	}
	if !ok {
		return fmt.Errorf("unknown early-stopping monitor %q (valid: %s)", e.Monitor, strings.Join(MonitorNames(), ", "))
	}
	if !(e.MinDelta >= 0) || math.IsInf(e.MinDelta, 0) {
		return fmt.Errorf("early-stopping min delta must be a finite number >= 0, got %v", e.MinDelta)
	}
	return nil
}

// Value returns the monitored metric of ev, and whether higher is better.
func (e EarlyStop) Value(ev *EvalResult) (v float64, higherBetter bool) {
	switch strings.ToLower(e.Monitor) {
	case "accuracy":
		return ev.Accuracy, true
	case "nll":
		return ev.NLL, false
	}
	return ev.Loss, false
}

// earlyStopState is what the trainer remembers between epochs (and a
// checkpoint saves): the best value so far and its epoch.
type earlyStopState struct {
	best      float64
	bestEpoch int // 0: none yet
	stopped   bool
}

// observe updates the state with epoch r's evaluation and reports whether
// it is the best so far and whether to stop after it. A non-finite value
// is never an improvement.
func (t *Trainer) observeEarlyStop(r *EpochResult) (stop bool) {
	e := t.cfg.EarlyStop
	if e.Patience == 0 || r.Eval == nil {
		return false
	}
	v, higher := e.Value(r.Eval)
	s := &t.early
	better := !math.IsNaN(v) && !math.IsInf(v, 0) && (s.bestEpoch == 0 ||
		higher && v > s.best+e.MinDelta || !higher && v < s.best-e.MinDelta)
	if better {
		s.best, s.bestEpoch = v, r.Epoch
		r.Best = true
	}
	if r.Epoch-s.bestEpoch >= e.Patience {
		s.stopped = true
	}
	r.BestEpoch, r.BestValue = s.bestEpoch, s.best
	return s.stopped
}

// EarlyStopped reports whether early stopping ended the run, and the best
// epoch and value of the monitored metric.
func (t *Trainer) EarlyStopped() (stopped bool, bestEpoch int, best float64) {
	return t.early.stopped, t.early.bestEpoch, t.early.best
}
