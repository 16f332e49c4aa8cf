package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/gputrain/gputrain/model"
)

// progress draws one bar per epoch, only on a terminal: piped or redirected
// output (logs, tests, docs generation) stays free of control codes.
type progress struct {
	w      io.Writer
	on     bool
	steps  int
	epochs int
	bar    *progressbar.ProgressBar
}

func newProgress(w io.Writer, quiet bool, steps, epochs int) *progress {
	return &progress{w: w, on: !quiet && isTerminal(w), steps: steps, epochs: epochs}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progress) step(s model.StepInfo) {
	if !p.on {
		return
	}
	if p.bar == nil {
		p.bar = progressbar.NewOptions(p.steps,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(fmt.Sprintf("epoch %d/%d", s.Epoch, p.epochs)),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	// The loss is the running mean of the steps read back so far (none
	// yet at the very start of an epoch on a GPU).
	loss := "-"
	if s.LossSteps > 0 {
		loss = fmt.Sprintf("%.4f", s.Loss)
	}
	p.bar.Describe(fmt.Sprintf("epoch %d/%d loss %s", s.Epoch, p.epochs, loss))
	_ = p.bar.Set(s.Step)
}

// done finishes and clears the current bar, so the epoch line prints clean.
func (p *progress) done() {
	if p.bar != nil {
		_ = p.bar.Finish()
		_ = p.bar.Clear()
		p.bar = nil
	}
}
