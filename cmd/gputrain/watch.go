package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/internal/metrics"
	"github.com/gputrain/gputrain/internal/trainplot"
	"github.com/gputrain/gputrain/model"
)

// watchFlags are the train flags that record the run as it goes.
func watchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "metrics", Usage: "append one JSON line per epoch (losses, accuracy, NLL, margin statistics, seconds) to this file, synced each epoch"},
		&cli.StringFlag{Name: "plot", Usage: "redraw this PNG after each epoch: training/test loss, accuracy, the margin E_I - E_C histogram, mean energies"},
	}
}

// watcher writes the metrics file and redraws the plot after each epoch.
type watcher struct {
	metricsPath, plotPath string
	w                     *metrics.Writer
	history               []metrics.Record // for the plot, ascending by epoch
	base                  metrics.Record   // the run's settings, copied into every record
	stepsPerEpoch         int
	lossMargin            float64
	err                   error // the first failure; training stops on it
}

// newWatcher opens the metrics file (appending when resuming, which also
// brings back the earlier epochs for the plot) and checks that the plot can
// be written, so a bad path fails before any training. It returns nil when
// neither flag is set.
func newWatcher(c *cli.Context, o runOptions, trainRows int) (*watcher, error) {
	mp, pp := c.String("metrics"), c.String("plot")
	if mp == "" && pp == "" || !isRoot() { // data parallel: rank 0 records
		return nil, nil
	}
	// A flag of another engineer's resume feature: "" when absent.
	resuming := c.String("resume") != ""
	wt := &watcher{metricsPath: mp, plotPath: pp, lossMargin: o.cfg.Loss.Margin,
		stepsPerEpoch: ceilDiv(trainRows, max(min(o.cfg.Batch, trainRows), 1)),
		base: metrics.Record{Backend: o.backend, Model: specString(o.cfg), Loss: o.cfg.Loss.String(),
			Optim: o.cfg.Optimizer.Name, LR: metrics.Float(o.cfg.Optimizer.LR), Batch: o.cfg.Batch}}
	if pp != "" {
		if err := trainplot.CheckWritable(pp); err != nil {
			return nil, err
		}
	}
	if mp != "" {
		var err error
		if resuming {
			var kept []metrics.Record
			if wt.w, kept, err = metrics.Resume(mp, o.resume.Epoch); err != nil {
				return nil, err
			}
			wt.history = metrics.Latest(kept)
		} else if wt.w, err = metrics.Create(mp, false); err != nil {
			return nil, err
		}
	}
	return wt, nil
}

// epoch records r; after a failure it does nothing more (the caller stops
// training and reports wt.err).
func (wt *watcher) epoch(r model.EpochResult) error {
	if wt == nil || wt.err != nil {
		return wt.errOrNil()
	}
	rec := wt.base
	rec.Time = time.Now().UTC().Format(time.RFC3339)
	rec.Epoch = r.Epoch
	rec.Steps = r.Epoch * wt.stepsPerEpoch
	rec.TrainLoss = metrics.Float(r.TrainLoss)
	rec.TrainSeconds = metrics.Float(r.Seconds)
	rec.EvalSeconds = metrics.Float(r.EvalSeconds)
	var margins []float32
	if e := r.Eval; e != nil {
		rec.TestLoss, rec.TestNLL = metrics.Float(e.Loss), metrics.Float(e.NLL)
		rec.Accuracy, rec.Violations, rec.Stalled = metrics.Float(e.Accuracy), metrics.Float(e.Violations), metrics.Float(e.Stalled)
		rec.MarginMean = metrics.Float(e.Margin)
		rec.MeanCorrect, rec.MeanOffending = metrics.Float(e.MeanCorrect), metrics.Float(e.MeanOffending)
		rec.TestRows = e.N
		rec.SetMargins(e.Margins)
		margins = e.Margins
	}
	if wt.w != nil {
		if err := wt.w.Write(rec); err != nil {
			wt.err = err
			return err
		}
	}
	// A resumed run redoes the epochs after its checkpoint: drop those.
	for len(wt.history) > 0 && wt.history[len(wt.history)-1].Epoch >= r.Epoch {
		wt.history = wt.history[:len(wt.history)-1]
	}
	wt.history = append(wt.history, rec)
	if wt.plotPath != "" {
		fig := trainplot.Figure{
			Title:      fmt.Sprintf("%s, %s, %s lr %g, batch %d, backend %s", rec.Model, rec.Loss, rec.Optim, float64(rec.LR), rec.Batch, rec.Backend),
			Epochs:     wt.history,
			Margins:    margins,
			LossMargin: wt.lossMargin,
		}
		if err := trainplot.WriteFile(wt.plotPath, fig); err != nil {
			wt.err = err
			return err
		}
	}
	return nil
}

func (wt *watcher) errOrNil() error {
	if wt == nil {
		return nil
	}
	return wt.err
}

// keepMargins says whether the evaluation must return per-row margins.
func (wt *watcher) keepMargins() bool { return wt != nil }

func (wt *watcher) close() error {
	if wt == nil || wt.w == nil {
		return nil
	}
	w := wt.w
	wt.w = nil // closed once, whether by the deferred call or the explicit one
	return w.Close()
}

// ceilDiv is ceil(a / b) for a >= 0, b >= 1, without overflow.
func ceilDiv(a, b int) int { return a/b + min(a%b, 1) }
