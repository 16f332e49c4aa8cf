package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/internal/atomicfile"
	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/safetensors"
)

// defaultCheckpoint is where train saves its checkpoint unless --save says
// otherwise: the working directory, a name eval and predict default to.
const defaultCheckpoint = "gputrain.safetensors"

func checkpointFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "save", Value: defaultCheckpoint, Usage: "write the checkpoint (safetensors) here after every epoch and on Ctrl-C; \"\" saves nothing. With --resume the default is the resumed file"},
		&cli.StringFlag{Name: "resume", Usage: "continue the training run saved in this checkpoint; other flags may only raise --epochs or change --backend, --data (same data, moved), --save and output"},
		&cli.BoolFlag{Name: "overwrite", Usage: "replace an existing checkpoint (metrics file, plot) of another run; without it train refuses to"},
		&cli.BoolFlag{Name: "resume-other-data", Usage: "with --resume: continue even though the training data differs from the data the checkpoint was trained on (its fingerprint)"},
	}
}

// resumableFlags are the train flags a resumed run may set to anything.
// Every other setting comes from the checkpoint, and a flag that says
// otherwise is refused (Checkpoint.Compatible).
var resumableFlags = map[string]bool{"epochs": true, "backend": true, "data": true, "save": true, "resume": true, "quiet": true, "q": true, "metrics": true, "plot": true, "overwrite": true, "resume-other-data": true, "precision": true}

// prepareCheckpointing completes o for --resume and --save: with --resume
// it reads the checkpoint, takes the run's settings from it (refusing flags
// that contradict it) and the data's location; it checks that the save
// path can be written before any data is loaded. It returns the normalizer
// a resumed run must reuse (nil if none).
func prepareCheckpointing(c *cli.Context, o *runOptions) (*dataset.Normalizer, error) {
	o.save = c.String("save")
	var norm *dataset.Normalizer
	if path := c.String("resume"); path != "" {
		ck, err := model.ReadCheckpoint(path)
		if err != nil {
			return nil, err
		}
		cfg := mergeResumedConfig(c, o.cfg, ck.Config)
		if c.IsSet("lr-schedule") {
			// Epochs in the flag are the checkpoint's epochs of steps.
			s, err := resolveSchedule(o.scheduleSpec, stepsPerEpoch(ck.Config.Batch, ck.Data.TrainRows))
			if err != nil {
				return nil, usage(err)
			}
			cfg.Schedule = s
		}
		if err := ck.Compatible(cfg); err != nil {
			return nil, usage(err)
		}
		if stopped, best := ck.EarlyStopped(); stopped {
			return nil, usagef("the checkpoint %s is of a run that early stopping ended (its best epoch: %d): nothing to resume; its best checkpoint is %s", path, best, bestPath(path))
		}
		if c.IsSet("limit") && o.limit != ck.Data.Limit {
			return nil, usagef("limit %d contradicts the checkpoint %s, which was trained with limit %d", o.limit, path, ck.Data.Limit)
		}
		o.limit = ck.Data.Limit
		if !c.IsSet("data") {
			o.data = ck.Data.Source
			if err := checkDataPath(o.data); err != nil {
				return nil, fmt.Errorf("the data the checkpoint %s was trained on: %w (pass --data with its new place)", path, err)
			}
		}
		// The label columns, like the data, come from the checkpoint: a
		// joint CSV run resumes without --labels.
		if o.csv, err = resumedLabels(o.csv, ck, o.data); err != nil {
			return nil, usage(err)
		}
		if err := o.resumeSeq(c, ck); err != nil {
			return nil, err
		}
		if ck.Epoch > cfg.Epochs {
			return nil, usagef("the checkpoint %s has completed %d epochs, more than --epochs %d", path, ck.Epoch, cfg.Epochs)
		}
		if ck.Epoch == cfg.Epochs && ck.StepInEpoch == 0 {
			return nil, usagef("the checkpoint %s has completed %d of %d epochs; pass --epochs N with N > %d to train further", path, ck.Epoch, ck.Config.Epochs, ck.Epoch)
		}
		o.cfg, o.resume = cfg, ck
		ck.AcceptOtherData = c.Bool("resume-other-data")
		if !c.IsSet("save") {
			o.save = path
		}
		if ck.Data.Mean != nil {
			norm = &dataset.Normalizer{Mean: ck.Data.Mean, Std: ck.Data.Std}
		}
	}
	if o.cfg.EarlyStop.Patience > 0 && o.save != "" {
		o.best = bestPath(o.save)
	}
	if c.Bool("resume-other-data") && o.resume == nil {
		return nil, usagef("--resume-other-data goes with --resume")
	}
	if o.save != "" {
		if err := safetensors.CheckWritable(o.save); err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
	}
	if isRoot() { // data parallel: rank 0 alone writes (distributed.go)
		var err error
		if o.claims, err = claimOutputs(c, o); err != nil {
			return nil, err
		}
	}
	return norm, nil
}

// mergeResumedConfig returns the checkpoint's configuration with the
// settings whose flags were given on this command line taken from flags,
// so that Compatible reports exactly the flags that contradict it.
func mergeResumedConfig(c *cli.Context, flags, saved model.Config) model.Config {
	cfg := saved
	set := func(name string, apply func()) {
		if c.IsSet(name) {
			apply()
		}
	}
	set("model", func() { cfg.Model = flags.Model })
	set("activation", func() {
		cfg.Activation = flags.Activation
		if !c.IsSet("model") {
			// The saved model string names its activation; keep only
			// the sizes so that the flag's activation is compared.
			if sp, err := saved.Spec(); err == nil {
				cfg.Model = sp.String()
				if len(sp.Hidden) > 0 {
					cfg.Model = cfg.Model[:strings.LastIndex(cfg.Model, ":")]
				}
			}
		}
	})
	set("loss", func() { cfg.Loss.Kind = flags.Loss.Kind })
	set("beta", func() { cfg.Loss.Beta = flags.Loss.Beta })
	set("margin", func() { cfg.Loss.Margin = flags.Loss.Margin })
	set("gamma", func() { cfg.Loss.Gamma = flags.Loss.Gamma })
	set("delta", func() { cfg.Loss.Delta = flags.Loss.Delta })
	set("epochs", func() { cfg.Epochs = flags.Epochs })
	set("batch", func() { cfg.Batch = flags.Batch })
	set("lr", func() { cfg.Optimizer.LR = flags.Optimizer.LR })
	set("optimizer", func() { cfg.Optimizer.Name = flags.Optimizer.Name })
	set("momentum", func() { cfg.Optimizer.Momentum = flags.Optimizer.Momentum })
	set("weight-decay", func() { cfg.Optimizer.WeightDecay = flags.Optimizer.WeightDecay })
	set("reduction", func() { cfg.Reduction = flags.Reduction })
	set("seed", func() { cfg.Seed = flags.Seed })
	set("early-stop", func() { cfg.EarlyStop = flags.EarlyStop })
	set("monitor", func() { cfg.EarlyStop.Monitor = flags.EarlyStop.Monitor })
	set("precision", func() { cfg.Precision = flags.Precision })
	return cfg
}

// interruptedError reports a run stopped by a signal after its checkpoint
// was saved; run prints it and exits with 128 + the signal (exitCode).
type interruptedError struct {
	sig         os.Signal
	path        string
	epoch, step int // completed epochs, steps of the next one
	steps       int
}

func (e *interruptedError) Error() string {
	where := fmt.Sprintf("after epoch %d", e.epoch)
	if e.step > 0 {
		where = fmt.Sprintf("in epoch %d after step %d of %d", e.epoch+1, e.step, e.steps)
	}
	name := "signal"
	switch e.sig {
	case os.Interrupt:
		name = "SIGINT"
	case syscall.SIGTERM:
		name = "SIGTERM"
	}
	return fmt.Sprintf("interrupted by %s %s; checkpoint saved to %s; continue with: gputrain train --resume %s", name, where, e.path, e.path)
}

// signalCause is the context cause of a run cancelled by a signal.
type signalCause struct{ sig os.Signal }

func (s signalCause) Error() string { return "interrupted by " + s.sig.String() }

// checkpointer saves a trainer's checkpoint after every epoch and, when a
// SIGINT or SIGTERM cancels the run, once more where it stopped. A nil
// checkpointer does nothing (no --save).
type checkpointer struct {
	path   string
	best   string // where the best epoch's checkpoint goes ("": not kept)
	info   model.DataInfo
	tr     *model.Trainer
	cancel context.CancelCauseFunc
	sigs   chan os.Signal
	quit   chan struct{}
	err    error // the first failed save; training stops on it
}

// startCheckpointing restores o.resume into tr and, when o.save is set,
// returns a context that SIGINT and SIGTERM cancel and the checkpointer
// that saves. The first signal stops training at the next step; a second
// one kills the process as usual (the checkpoint file is replaced
// atomically, so even that leaves a valid one).
func startCheckpointing(ctx context.Context, o runOptions, tr *model.Trainer) (context.Context, *checkpointer, error) {
	if o.resume != nil {
		if err := o.resume.Restore(tr); err != nil {
			return ctx, nil, err
		}
	}
	if o.save == "" {
		return ctx, nil, nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	ck := &checkpointer{path: o.save, best: o.best, info: o.info, tr: tr, cancel: cancel, sigs: make(chan os.Signal, 1), quit: make(chan struct{})}
	signal.Notify(ck.sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ck.sigs:
			signal.Stop(ck.sigs)
			cancel(signalCause{s})
		case <-ck.quit:
		}
	}()
	return ctx, ck, nil
}

// checkSpace refuses to train when the file system of the checkpoint
// cannot hold it: its real size (the trainer's checkpoint encoded now),
// once more for each extra copy (the best checkpoint), is needed free, as
// the new file is written beside the old one before replacing it.
func (ck *checkpointer) checkSpace(copies int) error {
	if ck == nil {
		return nil
	}
	f, err := ck.tr.Checkpoint(ck.info)
	if err != nil {
		return err
	}
	size, err := safetensors.EncodedSize(f)
	if err != nil {
		return err
	}
	return atomicfile.CheckSpace(ck.path, size*int64(copies))
}

// epoch saves the checkpoint of a completed epoch; a failure cancels the
// run (the error is reported by finish).
func (ck *checkpointer) epoch(r model.EpochResult) {
	if ck == nil || ck.err != nil {
		return
	}
	if err := ck.tr.SaveCheckpoint(ck.path, ck.info); err != nil {
		ck.err = fmt.Errorf("saving the checkpoint after epoch %d: %w", r.Epoch, err)
		ck.cancel(ck.err)
		return
	}
	if r.Best && ck.best != "" {
		if err := ck.tr.SaveCheckpoint(ck.best, ck.info); err != nil {
			ck.err = fmt.Errorf("saving the best checkpoint after epoch %d: %w", r.Epoch, err)
			ck.cancel(ck.err)
		}
	}
}

// finish turns the result of Run into the command's: a failed save, or an
// interruption (saving the checkpoint first), or err itself.
func (ck *checkpointer) finish(ctx context.Context, err error) error {
	if ck == nil {
		return err
	}
	signal.Stop(ck.sigs)
	close(ck.quit)
	if ck.err != nil {
		return ck.err
	}
	var sc signalCause
	if err == nil || !errors.As(context.Cause(ctx), &sc) {
		return err
	}
	if serr := ck.tr.SaveCheckpoint(ck.path, ck.info); serr != nil {
		return fmt.Errorf("interrupted by %v; saving the checkpoint failed: %w", sc.sig, serr)
	}
	epoch, step := ck.tr.Progress()
	return &interruptedError{sig: sc.sig, path: ck.path, epoch: epoch, step: step, steps: ck.tr.StepsPerEpoch()}
}

// resumeLine says where a resumed run continues.
func resumeLine(o runOptions) string {
	ck := o.resume
	at := fmt.Sprintf("after epoch %d", ck.Epoch)
	if ck.StepInEpoch > 0 {
		at = fmt.Sprintf("in epoch %d after step %d", ck.Epoch+1, ck.StepInEpoch)
	}
	return fmt.Sprintf("# resuming %s %s, up to epoch %d", ck.Path, at, o.cfg.Epochs)
}

// checkResumedData refuses data that cannot continue the checkpoint's run
// (other input size, classes or row count) before anything is trained.
func checkResumedData(o runOptions, train *model.Data) error {
	ck := o.resume
	if ck == nil {
		return nil
	}
	if train.D != ck.Inputs || train.Classes != ck.Classes {
		return fmt.Errorf("the data has %d inputs and %d classes; the checkpoint %s was trained on %d inputs and %d classes", train.D, train.Classes, ck.Path, ck.Inputs, ck.Classes)
	}
	if n, what := trainUnits(o, train); n != ck.Data.TrainRows {
		return fmt.Errorf("the training data has %d %s; the checkpoint %s was trained on %d (the same data and --limit are needed to resume)", n, what, ck.Path, ck.Data.TrainRows)
	}
	return nil
}
