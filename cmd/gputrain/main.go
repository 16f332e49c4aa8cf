package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/internal/inputfile"
	"github.com/gputrain/gputrain/model"
)

func main() {
	os.Exit(runMain(context.Background(), os.Args, os.Stdout, os.Stderr))
}

// run executes the command line args (args[0] is the program name) and
// returns the exit status (exit.go), without calling os.Exit, so tests can
// drive it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if v, ok := os.LookupEnv(inputfile.TimeoutEnv); ok {
		d, err := inputfile.ParseTimeout(v)
		if err != nil {
			fmt.Fprintf(stderr, "gputrain: %s\n", err)
			return exitUsage
		}
		inputfile.IdleTimeout = d
	}
	return runApp(ctx, newApp(stdout, stderr), args, stderr)
}

// runApp runs app on args: an error is printed as one line, and a panic
// becomes one line and a report file (crashed), never a stack dump.
func runApp(ctx context.Context, app *cli.App, args []string, stderr io.Writer) (code int) {
	defer func() {
		if v := recover(); v != nil {
			code = crashed(v, stackOf(), args, stderr)
		}
	}()
	if err := app.RunContext(ctx, args); err != nil {
		fmt.Fprintf(stderr, "gputrain: %s\n", capLine(oneLine(err.Error())))
		return exitCode(err)
	}
	return exitOK
}

// oneLine keeps an error message to one line, whatever the wrapped errors say.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// usageError makes cli return flag-parsing errors, marked as usage errors,
// instead of printing the help text after them.
func usageError(_ *cli.Context, err error, _ bool) error { return usage(err) }

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "gputrain",
		Version:   model.Version,
		Usage:     "train energy-based models (LeCun et al., A Tutorial on Energy-Based Learning)",
		Writer:    stdout,
		ErrWriter: stderr,
		// run prints errors itself, as one line; cli must never os.Exit.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return unknownCommand(c.App, c.Args().First())
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
	finishApp(app)
	return app
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
		precisionFlag("precision of the dense layers' matrix products (the fused energy head's included)"),
	}, append(append(append(append(csvFlags(), splitFlags()...), loopFlags()...), seqFlags()...), textFlags()...)...)
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
	// seq is set for sequence data (seqdata.go): a chain model.
	seq *seqOptions
	// splits says how the data is split (data.go); testPath is its --test
	// file ("": held out of --data or the IDX test split); best the path
	// of the best checkpoint ("": none).
	splits         dataSplits
	testPath, best string
	// scheduleSpec is --lr-schedule, resolved once the steps per epoch
	// are known (schedule.go); defaults says what small-data defaults
	// chose ("" when none applied, defaults.go).
	scheduleSpec, defaults string
	// claims holds the locks on the run's outputs (outputs.go).
	claims *claimed
	// watch writes --metrics and --plot (watch.go); nil without them.
	watch *watcher
	// finalTest is evaluated once after training (the test set, when the
	// epochs are evaluated on a validation set); nil otherwise.
	finalTest *model.Data
	evalName  string // what the epochs are evaluated on: "test" or "val"
	// text holds the text-data and sampled-loss flags (textdata.go).
	text *textOptions
}

// parseOptions turns the flags into runOptions and validates everything
// that can be checked before loading data. lossName "" means "not a flag of
// this command" (NLL, only for the config to validate).
func parseOptions(c *cli.Context, lossName string) (runOptions, error) {
	if err := noArgs(c.Args().Slice()); err != nil {
		return runOptions{}, err
	}
	if err := checkChoices(c, lossName); err != nil {
		return runOptions{}, err
	}
	cfg := model.DefaultConfig()
	cfg.Model = c.String("model")
	cfg.Activation = c.String("activation")
	kind, err := model.ParseLossKind(lossName)
	if err != nil {
		return runOptions{}, usage(err)
	}
	cfg.Loss = model.Loss{Kind: kind, Beta: c.Float64("beta"), Margin: c.Float64("margin"), Gamma: c.Float64("gamma"), Delta: c.Float64("delta")}
	cfg.Epochs = c.Int("epochs")
	cfg.Batch = c.Int("batch")
	cfg.Optimizer.Name = c.String("optimizer")
	cfg.Optimizer.LR = c.Float64("lr")
	cfg.Optimizer.Momentum = c.Float64("momentum")
	cfg.Optimizer.WeightDecay = c.Float64("weight-decay")
	if cfg.Reduction, err = model.ParseReduction(c.String("reduction")); err != nil {
		return runOptions{}, usage(err)
	}
	cfg.Seed = c.Uint64("seed")
	if cfg.Precision, err = model.ParsePrecision(c.String("precision")); err != nil {
		return runOptions{}, usage(err)
	}
	text, err := parseTextOptions(c, &cfg)
	if err != nil {
		return runOptions{}, usage(err)
	}
	if err := cfg.Validate(); err != nil {
		return runOptions{}, usage(err)
	}
	o := runOptions{cfg: cfg, backend: c.String("backend"), data: c.String("data"), limit: c.Int("limit"), quiet: c.Bool("quiet"), text: text}
	if o.limit < 0 {
		return runOptions{}, usagef("limit must be >= 0 (0: all rows), got %d", o.limit)
	}
	if o.backend == autoBackend {
		o.backend, _ = resolveAuto() // so the output names the backend used
	}
	if err := checkBackend(o.backend); err != nil {
		return runOptions{}, usage(err)
	}
	if err := checkDataPath(o.data); err != nil {
		return runOptions{}, err
	}
	if o.csv, err = parseCSVLabels(c, o.data); err != nil {
		return runOptions{}, usage(err)
	}
	if o.splits, err = parseSplits(c); err != nil {
		return runOptions{}, err
	}
	o.testPath = o.splits.test
	if err := parseLoop(c, &o); err != nil {
		return runOptions{}, err
	}
	if err := o.parseSeq(c); err != nil {
		return runOptions{}, err
	}
	return o, nil
}

// checkChoices refuses a mistyped choice among the flags c has (loss,
// optimizer, reduction, activation), suggesting the one meant,
// before the model package's own checks give the plain list.
func checkChoices(c *cli.Context, lossName string) error {
	if lossName != "" {
		if err := checkChoice("loss", lossName, model.LossNames()); err != nil {
			return err
		}
	}
	for _, ch := range []struct {
		flag, what string
		choices    []string
	}{
		{"optimizer", "optimizer", model.OptimizerNames()},
		{"reduction", "reduction", []string{"mean", "sum"}},
		{"activation", "activation", model.ActivationNames()},
		{"precision", "precision", model.PrecisionNames()},
	} {
		if v := c.String(ch.flag); v != "" {
			if err := checkChoice(ch.what, v, ch.choices); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadData returns the training set (limited) and the set evaluated after
// every epoch: an IDX directory, the embedded MNIST, or a CSV file split
// and standardized (see loadDataInfo in data.go).
func loadData(o runOptions) (train, eval *model.Data, err error) {
	ld, err := loadDataInfo(o, nil)
	if err != nil {
		return nil, nil, err
	}
	return ld.train, ld.eval, nil
}

func trainAction(c *cli.Context) error {
	o, err := parseOptions(c, c.String("loss"))
	if err != nil {
		return err
	}
	norm, err := prepareCheckpointing(c, &o)
	defer o.claims.release()
	if err != nil {
		return err
	}
	rootOnly(&o) // data parallel: rank 0 saves (distributed.go)
	// Opened before anything is printed: a backend that cannot start (no
	// GPU) is then the run's only output, one line on stderr.
	be, err := openBackend(o.backend)
	if err != nil {
		return err
	}
	defer be.Close()
	ld, err := loadDataInfo(o, norm)
	if err != nil {
		return err
	}
	train, test := ld.train, ld.eval
	o.info = ld.info
	if err := o.applyJoint(); err != nil {
		return err
	}
	if err := o.finishConfig(c, trainUnitsOf(o, train)); err != nil {
		return err
	}
	o.finalTest, o.evalName = ld.test, ld.evalName
	if err := checkResumedData(o, train); err != nil {
		return err
	}
	wt, err := newWatcher(c, o, train.N)
	if err != nil {
		return err
	}
	defer wt.close()
	o.keepMargins = wt.keepMargins()
	o.watch = wt
	ctx := c.Context
	w := c.App.Writer
	fmt.Fprintln(w, headerLine(o, train.N, test.N, ld.evalName))
	if l := distributedLine(o); l != "" {
		fmt.Fprintln(w, l)
	}
	for _, l := range ld.about {
		fmt.Fprintln(w, l)
	}
	if o.resume != nil {
		fmt.Fprintln(w, resumeLine(o))
		if n := ranksNotice(o); n != "" {
			fmt.Fprintln(w, n)
		}
	}
	var last model.EpochResult
	res, err := trainRun(ctx, o, be, train, test, func(r model.EpochResult) {
		fmt.Fprintln(w, epochLine(r, o.cfg.Epochs, ld.evalName))
		if x := epochExtra(o.cfg, r); x != "" {
			fmt.Fprintln(w, x)
		}
		last = r
	}, c.App.ErrWriter)
	if err != nil {
		return err
	}
	if o.save != "" {
		fmt.Fprintf(w, "# checkpoint saved to %s\n", o.save)
	}
	for _, l := range res.summary(o, ld) {
		fmt.Fprintln(w, l)
	}
	if o.quiet {
		return wt.close()
	}
	if warn := shortRunWarning(o.cfg, train.N); warn != "" {
		fmt.Fprintln(c.App.ErrWriter, warn)
	}
	if e := last.Eval; e != nil && ld.majorityRate > 0 && e.Accuracy <= ld.majorityRate && train.Classes > 1 {
		fmt.Fprintf(c.App.ErrWriter, "gputrain: warning: %s accuracy %.4f is no better than always answering the most frequent class, %s (%.4f of the rows): the model learned nothing useful; more epochs, another --lr or --model may help\n",
			ld.evalName, e.Accuracy, ld.majority, ld.majorityRate)
	}
	return wt.close()
}

// headerLine is train's first line: the model, the data sizes and every
// setting that decides the run, with what the small-data defaults chose.
func headerLine(o runOptions, trainRows, evalRows int, evalName string) string {
	epochs := fmt.Sprintf("%d epochs", o.cfg.Epochs)
	if o.defaults != "" {
		epochs += " (" + o.defaults + ")"
	}
	sched := ""
	if !o.cfg.Schedule.IsConstant() {
		sched = " " + o.cfg.Schedule.String()
	}
	return fmt.Sprintf("# %s%s%s on %d training rows, %d %s rows; loss %v%s, %s lr %g%s, batch %d, %s, backend %s%s",
		specString(o.cfg), describeJoint(o.cfg), describeSeq(o), trainRows, evalRows, evalName, o.cfg.Loss, describeSampled(o.cfg), o.cfg.Optimizer.Name, o.cfg.Optimizer.LR, sched, o.cfg.Batch, epochs, o.backend, describePrecision(o.cfg))
}

func specString(cfg model.Config) string {
	s, err := cfg.Spec()
	if err != nil {
		return cfg.Model
	}
	return s.String()
}

// epochLine is one epoch's line on stdout, within 80 columns: the mean
// training loss, then the held-out accuracy, NLL at beta and mean margin
// E_I - E_C, the time, and a * on the best epoch so far (--early-stop).
// --metrics has every other statistic.
func epochLine(r model.EpochResult, epochs int, evalName string) string {
	s := fmt.Sprintf("epoch %*d/%d  loss %s", len(strconv.Itoa(epochs)), r.Epoch, epochs, g4(r.TrainLoss))
	if e := r.Eval; e != nil {
		pos := "" // a chain: acc is per sequence, pos per position
		if e.Positions > 0 {
			pos = fmt.Sprintf(" pos %.4f", e.PositionAccuracy)
		}
		s += fmt.Sprintf(" | %s acc %.4f%s  NLL %s  margin %s", evalName, e.Accuracy, pos, g4(e.NLL), g4(e.Margin))
	}
	s += "  " + seconds(r.Seconds+r.EvalSeconds)
	if r.Best {
		s += " *"
	}
	return s
}

// g4 writes a statistic in about 6 columns: 4 decimals below 10, fewer as
// the integer part grows, an exponent beyond 10^5.
func g4(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'f', -1, 64)
	case a < 10:
		return strconv.FormatFloat(v, 'f', 4, 64)
	case a < 100:
		return strconv.FormatFloat(v, 'f', 3, 64)
	case a < 1000:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a < 1e5:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'e', 1, 64)
}

// seconds writes a duration: "0.2s", "12.3s", "2m05s", "1h02m".
func seconds(s float64) string {
	switch {
	case s < 60:
		return fmt.Sprintf("%.1fs", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", int(s)/60, int(s)%60)
	}
	return fmt.Sprintf("%dh%02dm", int(s)/3600, int(s)%3600/60)
}

// trainRun trains o.cfg on train with the open backend be (o.backend),
// evaluating on test after each epoch, and shows a progress bar on progress
// unless o.quiet or progress is not a terminal. It returns the epochs
// completed, also on error. Everything it allocates on be is freed before
// it returns; be stays open.
func trainRun(ctx context.Context, o runOptions, be model.Backend, train, test *model.Data, onEpoch func(model.EpochResult), progress io.Writer) (*trainResult, error) {
	if err := checkTrainMemory(o, train, test); err != nil {
		return nil, err
	}
	ctx, stopBudget := budgetContext(ctx, o) // --time-budget: textdata.go
	defer stopBudget()
	c, err := worldFor(be, progress) // data parallel: distributed.go
	if err != nil {
		return nil, err
	}
	tr, err := newRunTrainer(be, o, c, train, test)
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
	copies := 1
	if o.best != "" {
		copies = 2
	}
	if err := ck.checkSpace(copies); err != nil {
		return nil, err
	}
	// A failed metrics or plot write stops training: the run would
	// otherwise go on unrecorded.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	bar := newProgress(progress, o.quiet, tr.StepsPerEpoch(), o.cfg.Epochs, test)
	if o.evalName != "" {
		bar.evalName = o.evalName
	}
	bar.batch, bar.trainRows = tr.Config().Batch, train.N
	tr.OnStep = bar.step
	tr.OnEpoch = func(r model.EpochResult) {
		bar.done()
		// The metrics line first, then the checkpoint: a kill between
		// them leaves a line for an epoch the checkpoint lacks, which the
		// resumed run drops and writes again (metrics.Resume); the other
		// order would lose the line for good.
		if err := o.watch.epoch(r); err != nil {
			cancel(err)
			return
		}
		ck.epoch(r) // before the epoch is reported: its line means it is saved
		if onEpoch != nil {
			onEpoch(r)
		}
	}
	epochs, err := tr.Run(ctx)
	bar.done()
	epochs, err = budgetDone(ctx, o, tr, epochs, err, progress)
	res := &trainResult{epochs: epochs}
	if werr := o.watch.errOrNil(); werr != nil {
		return res, werr
	}
	if err == nil {
		err = onTrained(tr, progress)
	}
	if err := ck.finish(ctx, err); err != nil {
		return res, err
	}
	res.stopped, res.bestEpoch, res.best = tr.EarlyStopped()
	return res, res.finalTest(o, be, tr)
}
