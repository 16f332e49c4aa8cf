package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/model"
)

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdout, os.Stderr))
}

// exitError is the status of every failed run: usage errors and runtime
// failures alike print one line and exit 2.
const exitError = 2

// run executes the command line args (args[0] is the program name) and
// returns the exit status, without calling os.Exit, so tests can drive it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	if err := app.RunContext(ctx, args); err != nil {
		fmt.Fprintf(stderr, "gputrain: %s\n", oneLine(err.Error()))
		if ie := (*interruptedError)(nil); errors.As(err, &ie) {
			return exitInterrupted
		}
		return exitError
	}
	return 0
}

// oneLine keeps an error message to one line, whatever the wrapped errors say.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// usageError makes cli return flag-parsing errors instead of printing the
// help text after them.
func usageError(_ *cli.Context, err error, _ bool) error { return err }

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "gputrain",
		Usage:     "train energy-based models (LeCun et al., A Tutorial on Energy-Based Learning)",
		Writer:    stdout,
		ErrWriter: stderr,
		// run prints errors itself, as one line; cli must never os.Exit.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return fmt.Errorf("unknown command %q (valid: train, eval, predict, losses, bench, demo, devices, help)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			devicesCommand(),
			benchCommand(),
			demoCommand(),
			evalCommand(),
			predictCommand(),
			{
				Name:         "train",
				Usage:        "train one model and print one line per epoch",
				Flags:        append(append(append(commonFlags(), lossFlag()), watchFlags()...), checkpointFlags()...),
				OnUsageError: usageError,
				Action:       trainAction,
			},
			{
				Name:  "losses",
				Usage: "train every loss on the same budget and print a markdown table",
				Flags: append(commonFlags(), &cli.StringFlag{
					Name: "out", Usage: "also write the table (with the command line) to this markdown file",
				}),
				OnUsageError: usageError,
				Action:       lossesAction,
			},
		},
	}
}

func lossFlag() cli.Flag {
	return &cli.StringFlag{Name: "loss", Value: "nll", Usage: "loss: " + strings.Join(model.LossNames(), ", ")}
}

func commonFlags() []cli.Flag {
	d := model.DefaultConfig()
	return append([]cli.Flag{
		&cli.StringFlag{Name: "model", Value: d.Model, Usage: "energy model: " + model.SpecForms},
		&cli.StringFlag{Name: "activation", Usage: "hidden-layer activation: " + strings.Join(model.ActivationNames(), ", ") + " (default relu)"},
		&cli.Float64Flag{Name: "beta", Value: d.Loss.Beta, Usage: "inverse temperature of NLL/MEE and of the reported NLL, > 0"},
		&cli.Float64Flag{Name: "margin", Value: d.Loss.Margin, Usage: "margin m of hinge and square-square, and of the reported violations, >= 0"},
		&cli.Float64Flag{Name: "gamma", Value: d.Loss.Gamma, Usage: "gamma of square-exp, > 0"},
		&cli.Float64Flag{Name: "delta", Value: d.Loss.Delta, Usage: "delta of lvq2, > 0"},
		&cli.IntFlag{Name: "epochs", Value: d.Epochs, Usage: "epochs, >= 1"},
		&cli.IntFlag{Name: "batch", Value: d.Batch, Usage: "rows per step, >= 1"},
		&cli.Float64Flag{Name: "lr", Value: d.Optimizer.LR, Usage: "learning rate, > 0"},
		&cli.StringFlag{Name: "optimizer", Value: d.Optimizer.Name, Usage: "optimizer: " + strings.Join(model.OptimizerNames(), ", ")},
		&cli.Float64Flag{Name: "momentum", Value: d.Optimizer.Momentum, Usage: "momentum of the momentum optimizer, in [0, 1)"},
		&cli.Float64Flag{Name: "weight-decay", Value: d.Optimizer.WeightDecay, Usage: "decoupled weight decay, >= 0"},
		&cli.StringFlag{Name: "reduction", Value: d.Reduction.String(), Usage: "batch loss: mean or sum"},
		&cli.Uint64Flag{Name: "seed", Value: d.Seed, Usage: "seed of the initial weights and the shuffles"},
		&cli.StringFlag{Name: "data", Usage: "directory of MNIST-style IDX files, or a CSV file (see --label, --labels) (empty: the embedded MNIST)"},
		&cli.StringFlag{Name: "backend", Value: autoBackend, Usage: backendFlagUsage()},
		&cli.IntFlag{Name: "limit", Usage: "use only the first N training rows (0: all)"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
	}, append(csvFlags(), textFlags()...)...)
}

// runOptions is a parsed, validated command line.
type runOptions struct {
	cfg     model.Config
	backend string
	data    string
	limit   int
	quiet   bool
	// keepMargins makes each evaluation return the per-row margins
	// (for --metrics and --plot).
	keepMargins bool
	// save is the checkpoint path ("" for none), resume the checkpoint a
	// resumed run continues, info what checkpoints record about the data
	// (checkpoint.go).
	save   string
	resume *model.Checkpoint
	info   model.DataInfo
	// csv holds the label columns of a CSV --data (csvdata.go); nil: column 0.
	csv *csvLabels
	// text holds the text-data and sampled-loss flags (textdata.go).
	text *textOptions
}

// parseOptions turns the flags into runOptions and validates everything
// that can be checked before loading data. lossName "" means "not a flag of
// this command" (NLL, only for the config to validate).
func parseOptions(c *cli.Context, lossName string) (runOptions, error) {
	if c.Args().Len() > 0 {
		return runOptions{}, fmt.Errorf("unexpected argument %q (all settings are flags; see --help)", c.Args().First())
	}
	cfg := model.DefaultConfig()
	cfg.Model = c.String("model")
	cfg.Activation = c.String("activation")
	kind, err := model.ParseLossKind(lossName)
	if err != nil {
		return runOptions{}, err
	}
	cfg.Loss = model.Loss{Kind: kind, Beta: c.Float64("beta"), Margin: c.Float64("margin"), Gamma: c.Float64("gamma"), Delta: c.Float64("delta")}
	cfg.Epochs = c.Int("epochs")
	cfg.Batch = c.Int("batch")
	cfg.Optimizer.Name = c.String("optimizer")
	cfg.Optimizer.LR = c.Float64("lr")
	cfg.Optimizer.Momentum = c.Float64("momentum")
	cfg.Optimizer.WeightDecay = c.Float64("weight-decay")
	if cfg.Reduction, err = model.ParseReduction(c.String("reduction")); err != nil {
		return runOptions{}, err
	}
	cfg.Seed = c.Uint64("seed")
	text, err := parseTextOptions(c, &cfg)
	if err != nil {
		return runOptions{}, err
	}
	if err := cfg.Validate(); err != nil {
		return runOptions{}, err
	}
	o := runOptions{cfg: cfg, backend: c.String("backend"), data: c.String("data"), limit: c.Int("limit"), quiet: c.Bool("quiet"), text: text}
	if o.limit < 0 {
		return runOptions{}, fmt.Errorf("limit must be >= 0 (0: all rows), got %d", o.limit)
	}
	if o.backend == autoBackend {
		o.backend, _ = resolveAuto() // so the output names the backend used
	}
	if err := checkBackend(o.backend); err != nil {
		return runOptions{}, err
	}
	if err := checkDataPath(o.data); err != nil {
		return runOptions{}, err
	}
	if o.csv, err = parseCSVLabels(c, o.data); err != nil {
		return runOptions{}, err
	}
	return o, nil
}

// loadData returns the training set (limited) and the test set: an IDX
// directory, the embedded MNIST, or a CSV file split and standardized (see
// loadDataInfo in data.go).
func loadData(o runOptions) (train, test *model.Data, err error) {
	train, test, _, err = loadDataInfo(o, nil)
	return train, test, err
}

func trainAction(c *cli.Context) error {
	o, err := parseOptions(c, c.String("loss"))
	if err != nil {
		return err
	}
	norm, err := prepareCheckpointing(c, &o)
	if err != nil {
		return err
	}
	// Opened before anything is printed: a backend that cannot start (no
	// GPU) is then the run's only output, one line on stderr.
	be, err := openBackend(o.backend)
	if err != nil {
		return err
	}
	defer be.Close()
	train, test, info, err := loadDataInfo(o, norm)
	if err != nil {
		return err
	}
	o.info = info
	if err := o.applyJoint(); err != nil {
		return err
	}
	if err := checkResumedData(o, train); err != nil {
		return err
	}
	wt, err := newWatcher(c, o, train.N)
	if err != nil {
		return err
	}
	defer wt.close()
	o.keepMargins = wt.keepMargins()
	// A failed metrics or plot write stops training: the run would
	// otherwise go on unrecorded.
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	w := c.App.Writer
	if o.text != nil && o.text.summary != "" {
		fmt.Fprintln(w, o.text.summary)
	}
	fmt.Fprintf(w, "# %s%s on %d training rows, %d test rows; loss %v%s, %s lr %g, batch %d, backend %s\n",
		specString(o.cfg), describeJoint(o.cfg), train.N, test.N, o.cfg.Loss, describeSampled(o.cfg), o.cfg.Optimizer.Name, o.cfg.Optimizer.LR, o.cfg.Batch, o.backend)
	if o.resume != nil {
		fmt.Fprintln(w, resumeLine(o))
	}
	_, err = trainRun(ctx, o, be, train, test, func(r model.EpochResult) {
		fmt.Fprintln(w, epochLine(r))
		if x := epochExtra(o.cfg, r); x != "" {
			fmt.Fprintln(w, x)
		}
		if wt.epoch(r) != nil {
			cancel()
		}
	}, c.App.ErrWriter)
	if werr := wt.errOrNil(); werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	if o.save != "" {
		fmt.Fprintf(w, "# checkpoint saved to %s\n", o.save)
	}
	return wt.close()
}

func specString(cfg model.Config) string {
	s, err := cfg.Spec()
	if err != nil {
		return cfg.Model
	}
	return s.String()
}

func epochLine(r model.EpochResult) string {
	e := r.Eval
	return fmt.Sprintf("epoch %3d  train loss %9.4f  test acc %.4f  test NLL %8.4f  mean margin %8.3f  margin violations %.4f  %6.1fs",
		r.Epoch, r.TrainLoss, e.Accuracy, e.NLL, e.Margin, e.Violations, r.Seconds+r.EvalSeconds)
}

// trainRun trains o.cfg on train with the open backend be (o.backend),
// evaluating on test after each epoch, and shows a progress bar on progress
// unless o.quiet or progress is not a terminal. It returns the epochs
// completed, also on error. Everything it allocates on be is freed before
// it returns; be stays open.
func trainRun(ctx context.Context, o runOptions, be model.Backend, train, test *model.Data, onEpoch func(model.EpochResult), progress io.Writer) ([]model.EpochResult, error) {
	ctx, stopBudget := budgetContext(ctx, o)
	defer stopBudget()
	tr, err := model.NewTrainer(be, o.cfg, train, test)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	if s, why := tr.Streamed(); s {
		// Not an error: the run goes on, one host-to-device copy per batch.
		fmt.Fprintf(progress, "gputrain: training data streamed batch by batch (%s)\n", why)
	}
	tr.KeepMargins = o.keepMargins
	ctx, ck, err := startCheckpointing(ctx, o, tr)
	if err != nil {
		return nil, err
	}
	bar := newProgress(progress, o.quiet, tr.StepsPerEpoch(), o.cfg.Epochs)
	tr.OnStep = bar.step
	tr.OnEpoch = func(r model.EpochResult) {
		bar.done()
		ck.epoch(r) // before the epoch is reported: its line means it is saved
		if onEpoch != nil {
			onEpoch(r)
		}
	}
	res, err := tr.Run(ctx)
	bar.done()
	res, err = budgetDone(ctx, o, tr, res, err, onEpoch, progress)
	return res, ck.finish(ctx, err)
}
