package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gputrain/gputrain/model"
)

// progress draws one status line on stderr while an epoch trains, and only
// on a terminal (piped or redirected output stays free of control codes):
//
//	epoch 3/10  45% [=====>      ] 212/469  9.1k rows/s  loss 0.3124  ETA 0:12
//	epoch 3/10  evaluating 10000 test rows
//
// the rate in rows per second, the running mean loss of the epoch so far
// (per row, the number the epoch line reports at its end, over the steps
// whose losses have come back), and the time
// the epoch has left. After the epoch's last step the line says the
// held-out data is being evaluated, until the epoch line replaces it. It
// never exceeds width columns.
type progress struct {
	w              io.Writer
	on             bool
	steps, epochs  int
	evalRows       int
	evalName       string
	width          int
	now            func() time.Time
	start          time.Time // when the epoch's first step began
	drawn          time.Time
	batch          int // rows per step and in the training set, for the rate
	trainRows      int
	firstStep      int // the epoch's first step seen (a resumed epoch starts late)
	last           int // columns of the line on screen, to clear it
	throttle       time.Duration
	epoch, shownAt int
}

const progressWidth = 79 // one less than 80: a full last column makes some terminals wrap

func newProgress(w io.Writer, quiet bool, steps, epochs int, eval *model.Data) *progress {
	p := &progress{w: w, on: !quiet && isTerminal(w), steps: steps, epochs: epochs, width: progressWidth,
		now: time.Now, throttle: 100 * time.Millisecond, evalName: "held-out", start: time.Now(), batch: 1, trainRows: 1 << 62}
	if eval != nil {
		p.evalRows = eval.N
	}
	return p
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
	now := p.now()
	if s.Epoch != p.epoch {
		p.epoch, p.firstStep = s.Epoch, s.Step
		p.drawn = time.Time{}
	}
	if s.Step == s.Steps {
		p.draw(fmt.Sprintf("epoch %d/%d  evaluating %d %s rows", s.Epoch, p.epochs, p.evalRows, p.evalName))
		return
	}
	if now.Sub(p.drawn) < p.throttle {
		return
	}
	p.drawn = now
	p.draw(p.line(s, now))
}

// line renders the status of step s at time now.
func (p *progress) line(s model.StepInfo, now time.Time) string {
	el := now.Sub(p.start).Seconds()
	done := s.Step - p.firstStep + 1 // steps timed since start
	rate, eta := "", "ETA -"
	if el > 0 {
		rows := min(done*p.batch, p.trainRows)
		rate = rowsPerSecond(float64(rows) / el)
		left := el / float64(done) * float64(s.Steps-s.Step)
		eta = "ETA " + clock(left)
	}
	// The running mean of the steps whose losses are back (on a GPU they
	// come back every few steps, without stopping the device).
	loss := "-"
	if s.LossSteps > 0 {
		loss = g4(s.Loss)
	}
	head := fmt.Sprintf("epoch %d/%d %3d%% ", s.Epoch, p.epochs, 100*s.Step/max(s.Steps, 1))
	tail := fmt.Sprintf(" %d/%d  %s  loss %s  %s", s.Step, s.Steps, rate, loss, eta)
	barW := p.width - len(head) - len(tail) - 2
	if barW < 5 {
		return strings.TrimSpace(head + tail)[:min(p.width, len(head+tail))]
	}
	fill := barW * s.Step / max(s.Steps, 1)
	bar := strings.Repeat("=", fill)
	if fill < barW {
		bar += ">" + strings.Repeat(" ", barW-fill-1)
	}
	return head + "[" + bar + "]" + tail
}

// draw replaces the line on screen with s (cut to the width).
func (p *progress) draw(s string) {
	if len(s) > p.width {
		s = s[:p.width]
	}
	pad := ""
	if p.last > len(s) {
		pad = strings.Repeat(" ", p.last-len(s))
	}
	fmt.Fprint(p.w, "\r"+s+pad)
	p.last = len(s)
}

// done clears the line, so the epoch line prints clean; the next epoch's
// time counts from here.
func (p *progress) done() {
	p.start = p.now()
	if !p.on || p.last == 0 {
		return
	}
	fmt.Fprint(p.w, "\r"+strings.Repeat(" ", p.last)+"\r")
	p.last = 0
}

// rowsPerSecond writes a rate: "812 rows/s", "9.1k rows/s", "1.2M rows/s".
func rowsPerSecond(r float64) string {
	switch {
	case r < 1000:
		return fmt.Sprintf("%.0f rows/s", r)
	case r < 1e6:
		return fmt.Sprintf("%.1fk rows/s", r/1e3)
	}
	return fmt.Sprintf("%.1fM rows/s", r/1e6)
}

// clock writes seconds as m:ss or h:mm:ss.
func clock(s float64) string {
	t := int(s + 0.5)
	if t >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", t/3600, t%3600/60, t%60)
	}
	return fmt.Sprintf("%d:%02d", t/60, t%60)
}
