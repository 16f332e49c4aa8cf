package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gputrain/gputrain/model"
)

// TestEpochLineWithin80Columns (issue 12: epoch lines were 124 columns):
// with three-digit epochs, large statistics and long times the line still
// fits 80 columns.
func TestEpochLineWithin80Columns(t *testing.T) {
	for _, r := range []model.EpochResult{
		{Epoch: 1, TrainLoss: 0.6799, Seconds: 0.2, Eval: &model.EvalResult{Accuracy: 0.9025, NLL: 0.3821, Margin: 2.607}},
		{Epoch: 999, TrainLoss: 12345.678, Seconds: 3599, EvalSeconds: 12, Best: true, Eval: &model.EvalResult{Accuracy: 1, NLL: 98765.4, Margin: -12345.6}},
		{Epoch: 7, TrainLoss: math.NaN(), Seconds: 7200, Eval: &model.EvalResult{Accuracy: 0, NLL: math.Inf(1), Margin: math.NaN()}},
	} {
		line := epochLine(r, 999, "test")
		if len(line) > 80 {
			t.Errorf("%d columns: %s", len(line), line)
		}
		if !strings.HasPrefix(line, "epoch ") || !strings.Contains(line, " | test acc ") {
			t.Errorf("line %q", line)
		}
	}
	if l := epochLine(model.EpochResult{Epoch: 3, TrainLoss: 0.5, Seconds: 1.25, Best: true}, 5, "val"); l != "epoch 3/5  loss 0.5000  1.2s *" {
		t.Errorf("no held-out data: %q", l)
	}
}

// TestProgressLine (issue 12: the bar showed the last batch's loss, no
// rate, and disappeared during evaluation): the line has the rate, the
// running mean loss of the epoch, an ETA, an evaluating phase after the
// last step, never more than 79 columns, and is cleared at the end.
func TestProgressLine(t *testing.T) {
	var out strings.Builder
	p := newProgress(&out, false, 469, 10, &model.Data{N: 10000})
	p.on, p.evalName, p.batch, p.trainRows = true, "test", 128, 60000
	clock := time.Unix(1000, 0)
	p.now = func() time.Time { return clock }
	p.start = clock // the epoch starts now
	// The running mean of the steps read back: none after the first.
	for i, l := range []float64{math.NaN(), 1.5, 1.1667} {
		clock = clock.Add(time.Second)
		p.step(model.StepInfo{Epoch: 3, Step: i + 1, Steps: 469, Loss: l, LossSteps: i})
	}
	lines := strings.Split(out.String(), "\r")
	last := strings.TrimRight(lines[len(lines)-1], " ")
	// Three steps of 128 rows in 3 s; 466 steps to go at 1 s each.
	for _, want := range []string{"epoch 3/10", "3/469", "128 rows/s", "loss 1.1667", "ETA 7:46", "["} {
		if !strings.Contains(last, want) {
			t.Errorf("progress line %q lacks %q", last, want)
		}
	}
	clock = clock.Add(time.Second)
	p.step(model.StepInfo{Epoch: 3, Step: 469, Steps: 469, Loss: 1, LossSteps: 400})
	lines = strings.Split(out.String(), "\r")
	if got := strings.TrimRight(lines[len(lines)-1], " "); got != "epoch 3/10  evaluating 10000 test rows" {
		t.Errorf("after the last step: %q", got)
	}
	for _, l := range lines {
		if len(l) > progressWidth {
			t.Errorf("%d columns: %q", len(l), l)
		}
	}
	p.done()
	if !strings.HasSuffix(out.String(), "\r") || strings.TrimSpace(out.String()[strings.LastIndex(strings.TrimSuffix(out.String(), "\r"), "\r"):]) != "" {
		t.Errorf("the line is not cleared: %q", out.String()[max(0, out.Len()-100):])
	}
	// Off when not a terminal, and with --quiet.
	var none strings.Builder
	q := newProgress(&none, false, 10, 1, nil)
	q.step(model.StepInfo{Epoch: 1, Step: 1, Steps: 10, Loss: 1, LossSteps: 1})
	q.done()
	if none.Len() != 0 {
		t.Errorf("progress written to a non-terminal: %q", none.String())
	}
}
