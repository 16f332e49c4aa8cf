package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
)

// The robot demo: why one energy over the joint answer beats separately
// trained decisions when the decisions must fit together. See docs/JOINT.md.

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "demonstrations (robot: joint answers vs separate models; sequence: chain energies vs per-position classifiers)",
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return choiceError("demo", c.Args().First(), []string{"robot", "sequence"})
			}
			return usagef("demo needs a name (valid: robot, sequence)")
		},
		OnUsageError: usageError,
		Subcommands: []*cli.Command{{
			Name:         "robot",
			Usage:        "two-motor robot: separate per-motor models vs one joint energy, on held-out data",
			Flags:        robotFlags(),
			OnUsageError: usageError,
			Action:       robotAction,
		}, sequenceDemoCommand()},
	}
}

func robotFlags() []cli.Flag {
	d := defaultRobotOptions()
	return []cli.Flag{
		&cli.Uint64Flag{Name: "seed", Value: d.seed, Usage: "seed of the simulator (training set; the test set uses seed+1) and of the models"},
		&cli.IntFlag{Name: "train", Value: d.train, Usage: "training rows, >= 1"},
		&cli.IntFlag{Name: "test", Value: d.test, Usage: "held-out rows, >= 1"},
		&cli.IntFlag{Name: "epochs", Value: d.epochs, Usage: "epochs per model, >= 1"},
		&cli.Float64Flag{Name: "noise", Value: d.noise, Usage: "standard deviation of the IR sensors' noise, >= 0"},
		&cli.StringFlag{Name: "model", Value: d.trunk, Usage: "trunk of every model: " + model.SpecForms},
		&cli.StringFlag{Name: "loss", Value: d.loss, Usage: "loss of every model: " + strings.Join(model.LossNames(), ", ")},
		&cli.Float64Flag{Name: "lr", Value: d.lr, Usage: "Adam learning rate, > 0"},
		&cli.IntFlag{Name: "batch", Value: d.batch, Usage: "rows per step, >= 1"},
		&cli.StringFlag{Name: "backend", Value: autoBackend, Usage: backendFlagUsage()},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no per-model progress lines on stderr"},
	}
}

// robotOptions is a parsed robot demo command line.
type robotOptions struct {
	seed                       uint64
	train, test, epochs, batch int
	noise, lr                  float64
	trunk, loss, backend       string
}

func defaultRobotOptions() robotOptions {
	return robotOptions{seed: 1, train: 10000, test: 2000, epochs: 50, batch: 64, noise: 0.03, lr: 0.01, trunk: "mlp:32:tanh", loss: "nll", backend: autoBackend}
}

// config returns the training configuration every model of the demo uses.
func (o robotOptions) config() (model.Config, error) {
	cfg := model.DefaultConfig()
	cfg.Model = o.trunk
	kind, err := model.ParseLossKind(o.loss)
	if err != nil {
		return cfg, err
	}
	cfg.Loss = model.DefaultLoss(kind)
	cfg.Epochs, cfg.Batch, cfg.Seed = o.epochs, o.batch, o.seed
	cfg.Optimizer.LR = o.lr
	return cfg, cfg.Validate()
}

func (o robotOptions) validate() error {
	switch {
	case o.train < 1:
		return fmt.Errorf("train must be >= 1 row, got %d", o.train)
	case o.test < 1:
		return fmt.Errorf("test must be >= 1 row, got %d", o.test)
	case !(o.noise >= 0):
		return fmt.Errorf("noise must be >= 0, got %v", o.noise)
	}
	if err := checkBytes("simulating the robot's rows", o.train+o.test, 64); err != nil {
		return err
	}
	if _, err := o.config(); err != nil {
		return err
	}
	return checkBackend(o.backend)
}

// robotRow is one approach's outcome on the held-out rows.
type robotRow struct {
	name               string
	exact, left, right float64 // exact-match and per-motor accuracy
	incoherent         float64 // rate of commands RobotCoherent rejects, all rows
	blockedIncoherent  float64 // the same on the blocked rows
	blockedExact       float64 // exact-match on the blocked rows
	blockedN, oneSideN int
	oneSideIncoherent  float64
	meanProbBlocked    float64 // joint models: mean P(answer | X) on blocked rows (0 otherwise)
	hasProb            bool
}

// robotApproach is one way of deciding both motors.
type robotApproach struct {
	name string
	// sep: two models (left, right) on the given input columns; joint: one
	// model over (left, right).
	joint    bool
	pairwise bool
	leftCols []int // input columns of the left model (and of the joint one)
	rightCol []int
}

func robotApproaches() []robotApproach {
	both := []int{0, 1}
	return []robotApproach{
		{name: "(a) separate, own sensor", leftCols: []int{0}, rightCol: []int{1}},
		{name: "(b) separate, both sensors", leftCols: both, rightCol: both},
		{name: "(c) joint, unary + pairwise", joint: true, pairwise: true, leftCols: both},
		{name: "(d) joint, unary only", joint: true, leftCols: both},
	}
}

// columns returns the data set of s restricted to the input columns cols,
// with labels label(i).
func columns(s *dataset.RobotSet, cols []int, classes int, label func(i int) int32) *model.Data {
	d := &model.Data{N: s.N, D: len(cols), Classes: classes, X: make([]float32, s.N*len(cols)), Y: make([]int32, s.N)}
	for i := 0; i < s.N; i++ {
		for j, c := range cols {
			d.X[i*len(cols)+j] = s.X[i*s.D+c]
		}
		d.Y[i] = label(i)
	}
	return d
}

// runRobotDemo trains every approach on one simulated training set and
// measures it on a held-out one.
func runRobotDemo(ctx context.Context, o robotOptions, progress io.Writer) ([]robotRow, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	cfg, _ := o.config()
	train, err := dataset.Robot(o.train, o.noise, o.seed)
	if err != nil {
		return nil, err
	}
	test, err := dataset.Robot(o.test, o.noise, o.seed+1)
	if err != nil {
		return nil, err
	}
	be, err := openBackend(o.backend)
	if err != nil {
		return nil, err
	}
	defer be.Close()

	// trainAndAnswer trains cfg on the training columns and returns the
	// model's answers on the test columns (and, for a joint model, the
	// probability of each answer).
	trainAndAnswer := func(cfg model.Config, tr, te *model.Data, what string) ([]int32, []float64, error) {
		t, err := model.NewTrainer(be, cfg, tr, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		defer t.Close()
		res, err := t.Run(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		if progress != nil {
			fmt.Fprintf(progress, "%-40s final train loss %.4f\n", what, res[len(res)-1].TrainLoss)
		}
		if jm, ok := t.Model.(*model.JointModel); ok {
			p, err := model.PredictJoint(be, jm, te.X, te.N, cfg.Loss.Beta, 256)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", what, err)
			}
			return p.Answer, p.Prob, nil
		}
		ans, err := model.Answers(be, t.Model, te.X, te.N, 256)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		return ans, nil, nil
	}

	const k = dataset.MotorValues
	var rows []robotRow
	for _, a := range robotApproaches() {
		left, right := make([]int32, test.N), make([]int32, test.N)
		var prob []float64
		if a.joint {
			c := cfg
			c.Vars = []int{k, k}
			c.NoPairwise = !a.pairwise
			joint := func(s *dataset.RobotSet) *model.Data {
				return columns(s, a.leftCols, k*k, func(i int) int32 { return s.Labels[i][0]*k + s.Labels[i][1] })
			}
			ans, p, err := trainAndAnswer(c, joint(train), joint(test), a.name)
			if err != nil {
				return nil, err
			}
			for i, y := range ans {
				left[i], right[i] = y/k, y%k
			}
			prob = p
		} else {
			for m, cols := range [][]int{a.leftCols, a.rightCol} {
				data := func(s *dataset.RobotSet) *model.Data {
					return columns(s, cols, k, func(i int) int32 { return s.Labels[i][m] })
				}
				ans, _, err := trainAndAnswer(cfg, data(train), data(test), fmt.Sprintf("%s, %s motor", a.name, []string{"left", "right"}[m]))
				if err != nil {
					return nil, err
				}
				copy([][]int32{left, right}[m], ans)
			}
		}
		rows = append(rows, scoreRobot(a.name, test, left, right, prob))
	}
	return rows, nil
}

// scoreRobot measures predicted commands against the held-out set.
func scoreRobot(name string, s *dataset.RobotSet, left, right []int32, prob []float64) robotRow {
	r := robotRow{name: name, hasProb: prob != nil}
	var exact, l, rr, inco, bN, bInco, bExact, oN, oInco int
	var bProb float64
	for i := 0; i < s.N; i++ {
		wl, wr := s.Labels[i][0], s.Labels[i][1]
		ok := left[i] == wl && right[i] == wr
		coherent := dataset.RobotCoherent(float64(s.Distances[2*i]), float64(s.Distances[2*i+1]), int(left[i]), int(right[i]))
		if ok {
			exact++
		}
		if left[i] == wl {
			l++
		}
		if right[i] == wr {
			rr++
		}
		if !coherent {
			inco++
		}
		switch s.Situation[i] {
		case dataset.SituationBlocked:
			bN++
			if !coherent {
				bInco++
			}
			if ok {
				bExact++
			}
			if prob != nil {
				bProb += prob[i]
			}
		case dataset.SituationOneSide:
			oN++
			if !coherent {
				oInco++
			}
		}
	}
	frac := func(a, b int) float64 {
		if b == 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
	r.exact, r.left, r.right = frac(exact, s.N), frac(l, s.N), frac(rr, s.N)
	r.incoherent = frac(inco, s.N)
	r.blockedN, r.blockedIncoherent, r.blockedExact = bN, frac(bInco, bN), frac(bExact, bN)
	r.oneSideN, r.oneSideIncoherent = oN, frac(oInco, oN)
	if bN > 0 {
		r.meanProbBlocked = bProb / float64(bN)
	}
	return r
}

// robotTable renders the rows as a markdown table.
func robotTable(rows []robotRow) string {
	var b strings.Builder
	b.WriteString("| approach | exact match | left motor | right motor | incoherent (all) | incoherent (one-side) | incoherent (blocked) | exact match (blocked) | mean P(answer) (blocked) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		p := "-"
		if r.hasProb {
			p = fmt.Sprintf("%.3f", r.meanProbBlocked)
		}
		fmt.Fprintf(&b, "| %s | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %s |\n",
			r.name, r.exact, r.left, r.right, r.incoherent, r.oneSideIncoherent, r.blockedIncoherent, r.blockedExact, p)
	}
	return b.String()
}

func parseRobotOptions(c *cli.Context) (robotOptions, error) {
	if err := noArgs(c.Args().Slice()); err != nil {
		return robotOptions{}, err
	}
	o := robotOptions{
		seed: c.Uint64("seed"), train: c.Int("train"), test: c.Int("test"), epochs: c.Int("epochs"),
		batch: c.Int("batch"), noise: c.Float64("noise"), lr: c.Float64("lr"),
		trunk: c.String("model"), loss: c.String("loss"), backend: c.String("backend"),
	}
	if o.backend == autoBackend {
		o.backend, _ = resolveAuto() // so the output names the backend used
	}
	return o, usage(o.validate())
}

func robotAction(c *cli.Context) error {
	o, err := parseRobotOptions(c)
	if err != nil {
		return err
	}
	var progress io.Writer
	if !c.Bool("quiet") {
		progress = c.App.ErrWriter
	}
	rows, err := runRobotDemo(c.Context, o, progress)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "Robot: %d training rows, %d held-out rows (seeds %d and %d), sensor noise %g; every model %s, %s, Adam lr %g, batch %d, %d epochs, backend %s.\n",
		o.train, o.test, o.seed, o.seed+1, o.noise, o.trunk, o.loss, o.lr, o.batch, o.epochs, o.backend)
	fmt.Fprintf(c.App.Writer, "Held-out situations: %d blocked, %d one-side, %d clear. Incoherent: a command the policy could not give (in blocked situations, anything but one motor forward and the other backward).\n",
		rows[0].blockedN, rows[0].oneSideN, o.test-rows[0].blockedN-rows[0].oneSideN)
	// Blocked rows are coin flips between two turns: no model can match
	// more than half of them, whatever it knows.
	fmt.Fprintf(c.App.Writer, "Best possible exact match: %.4f (half the blocked rows are the other turn).\n\n", 1-float64(rows[0].blockedN)/2/float64(o.test))
	fmt.Fprint(c.App.Writer, robotTable(rows))
	return nil
}
