package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/model"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "time each backend operation and a whole training step; print a table (or --json)",
		Description: "Every operation runs --warmup times, then --reps times, each call followed by a device\n" +
			"synchronization; the table shows the median and the fastest call, and a rate from the median:\n" +
			"GFLOP/s for GEMMs (2*M*N*K) and the training step (its GEMMs), GB/s (bytes read + written,\n" +
			"float32) for the memory-bound operations. Inputs are seeded random normals.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "backend", Value: autoBackend, Usage: backendFlagUsage()},
			&cli.IntFlag{Name: "m", Value: 512, Usage: "GEMM rows of C"},
			&cli.IntFlag{Name: "n", Value: 512, Usage: "GEMM columns of C"},
			&cli.IntFlag{Name: "k", Value: 512, Usage: "GEMM inner dimension"},
			&cli.IntFlag{Name: "rows", Value: 1024, Usage: "rows of the elementwise, reduction, gather and Adam operations"},
			&cli.IntFlag{Name: "cols", Value: 1024, Usage: "columns of the elementwise, reduction, gather and Adam operations"},
			&cli.IntFlag{Name: "batch", Value: 128, Usage: "rows B of the energy loss, argmin and training step"},
			&cli.IntFlag{Name: "inputs", Value: 784, Usage: "input features of the training step's model"},
			&cli.IntFlag{Name: "classes", Value: 10, Usage: "answers K of the energy loss, argmin and training step"},
			&cli.StringFlag{Name: "model", Value: "mlp:256", Usage: "energy model of the training step: " + model.SpecForms},
			lossFlag(),
			&cli.IntFlag{Name: "reps", Value: 10, Usage: "timed calls per operation, >= 1"},
			&cli.IntFlag{Name: "warmup", Value: 2, Usage: "untimed calls before them, >= 0"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the random inputs"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of the table"},
			precisionFlag("precision of the GEMMs, of the training step's products and of --op energy-head"),
		}, headBenchFlags()...),
		OnUsageError: usageError,
		Action:       benchAction,
	}
}

// benchOptions are the validated flags of bench.
type benchOptions struct {
	M, N, K       int
	Rows, Cols    int
	Batch, Inputs int
	Classes       int
	Spec          model.Spec
	Loss          model.Loss
	Reps, Warmup  int
	Seed          uint64
	Precision     model.Precision
}

// benchResult is one timed operation. Rates come from the median.
type benchResult struct {
	Op       string  `json:"op"`
	Shape    string  `json:"shape"`
	MedianS  float64 `json:"median_s"`
	MinS     float64 `json:"min_s"`
	FLOPs    int64   `json:"flops,omitempty"` // per call
	Bytes    int64   `json:"bytes,omitempty"` // read + written per call
	GFLOPs   float64 `json:"gflop_per_s,omitempty"`
	GBPerSec float64 `json:"gb_per_s,omitempty"`
	// PeakRSSBytes is the process's peak resident memory after the
	// operation (bench --op only).
	PeakRSSBytes int64 `json:"peak_rss_bytes,omitempty"`
	// DeviceUsedBytes is the device memory in use after it (bench --op on
	// a device backend).
	DeviceUsedBytes int64 `json:"device_used_bytes,omitempty"`
}

type benchReport struct {
	Backend    string        `json:"backend"`
	GOOS       string        `json:"goos"`
	GOARCH     string        `json:"goarch"`
	GOMAXPROCS int           `json:"gomaxprocs"`
	Reps       int           `json:"reps"`
	Warmup     int           `json:"warmup"`
	Precision  string        `json:"precision"`
	Results    []benchResult `json:"results"`
}

func benchAction(c *cli.Context) error {
	if err := noArgs(c.Args().Slice()); err != nil {
		return err
	}
	o := benchOptions{M: c.Int("m"), N: c.Int("n"), K: c.Int("k"), Rows: c.Int("rows"), Cols: c.Int("cols"),
		Batch: c.Int("batch"), Inputs: c.Int("inputs"), Classes: c.Int("classes"),
		Reps: c.Int("reps"), Warmup: c.Int("warmup"), Seed: c.Uint64("seed")}
	for _, f := range []struct {
		name string
		v    int
	}{{"m", o.M}, {"n", o.N}, {"k", o.K}, {"rows", o.Rows}, {"cols", o.Cols}, {"batch", o.Batch},
		{"inputs", o.Inputs}, {"classes", o.Classes}, {"reps", o.Reps}} {
		if f.v < 1 {
			return usagef("%s must be >= 1, got %d", f.name, f.v)
		}
	}
	if o.Warmup < 0 {
		return usagef("warmup must be >= 0, got %d", o.Warmup)
	}
	var err error
	if o.Spec, err = model.ParseSpec(c.String("model")); err != nil {
		return usage(err)
	}
	if err := checkChoice("loss", c.String("loss"), model.LossNames()); err != nil {
		return err
	}
	kind, err := model.ParseLossKind(c.String("loss"))
	if err != nil {
		return usage(err)
	}
	o.Loss = model.DefaultLoss(kind)
	if err := checkChoice("precision", c.String("precision"), model.PrecisionNames()); err != nil {
		return err
	}
	if o.Precision, err = model.ParsePrecision(c.String("precision")); err != nil {
		return usage(err)
	}
	if err := checkBenchMemory(o); err != nil {
		return err
	}
	name := c.String("backend")
	if err := checkBackend(name); err != nil {
		return usage(err)
	}
	be, err := openBackend(name)
	if err != nil {
		return err
	}
	defer be.Close()
	if err := model.CheckPrecision(be, o.Precision); err != nil {
		return err
	}
	var results []benchResult
	if c.String("op") != benchOpAll {
		results, err = benchOpAction(c, be, o)
	} else {
		results, err = runBench(be, o)
	}
	if err != nil {
		return fmt.Errorf("bench on %s: %w", be.Name(), err)
	}
	rep := benchReport{Backend: be.Name(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GOMAXPROCS: runtime.GOMAXPROCS(0),
		Reps: o.Reps, Warmup: o.Warmup, Precision: o.Precision.String(), Results: results}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return printBench(c.App.Writer, rep)
}

// printBench writes the report as a table: names left-aligned, numbers
// right-aligned, columns two spaces apart (no field holds two spaces, so a
// script can split on them).
func printBench(w io.Writer, rep benchReport) error {
	fmt.Fprintf(w, "# backend %s (%s/%s, GOMAXPROCS %d), precision %s: %d calls per operation after %d warmup; rate from the median\n",
		rep.Backend, rep.GOOS, rep.GOARCH, rep.GOMAXPROCS, rep.Precision, rep.Reps, rep.Warmup)
	rows := [][]string{{"op", "shape", "median", "min", "rate"}}
	for _, r := range rep.Results {
		rate := "-"
		switch {
		case r.GFLOPs > 0:
			rate = fmt.Sprintf("%.2f GFLOP/s", r.GFLOPs)
		case r.GBPerSec > 0:
			rate = fmt.Sprintf("%.2f GB/s", r.GBPerSec)
		}
		rows = append(rows, []string{r.Op, r.Shape, fmtDuration(r.MedianS), fmtDuration(r.MinS), rate})
	}
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, f := range row {
			width[i] = max(width[i], len(f))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, f := range row {
			if i > 0 {
				b.WriteString("  ")
			}
			if i < 2 {
				fmt.Fprintf(&b, "%-*s", width[i], f)
			} else {
				fmt.Fprintf(&b, "%*s", width[i], f)
			}
		}
		if _, err := fmt.Fprintln(w, b.String()); err != nil {
			return err
		}
	}
	for _, r := range rep.Results {
		if r.PeakRSSBytes > 0 {
			fmt.Fprintf(w, "# %s: peak resident memory of the process %.0f MiB\n", r.Op, float64(r.PeakRSSBytes)/(1<<20))
		}
	}
	return nil
}

// fmtDuration prints seconds with a unit that keeps 3-4 significant digits.
func fmtDuration(s float64) string {
	switch {
	case s >= 1:
		return fmt.Sprintf("%.3f s", s)
	case s >= 1e-3:
		return fmt.Sprintf("%.3f ms", s*1e3)
	default:
		return fmt.Sprintf("%.2f us", s*1e6)
	}
}

// syncFunc returns a function that waits for the backend's queued work: a
// GPU backend returns from a launch before the kernel ran, so a time taken
// without it would measure only the launch. The cpu backend is synchronous.
func syncFunc(b model.Backend) func() error {
	if d, ok := b.(interface{ Driver() device.Driver }); ok {
		return d.Driver().Synchronize
	}
	return func() error { return nil }
}

// timer runs and times operations on one backend.
type timer struct {
	sync         func() error
	reps, warmup int
	out          []benchResult
}

// time calls f warmup times, then reps times, synchronizing after each, and
// appends the result with the rates computed from the median.
func (t *timer) time(op, shape string, flops, bytes int64, f func() error) error {
	for i := 0; i < t.warmup; i++ {
		if err := f(); err != nil {
			return fmt.Errorf("%s %s: %w", op, shape, err)
		}
	}
	if err := t.sync(); err != nil {
		return fmt.Errorf("%s %s: %w", op, shape, err)
	}
	ds := make([]float64, t.reps)
	for i := range ds {
		start := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s %s: %w", op, shape, err)
		}
		if err := t.sync(); err != nil {
			return fmt.Errorf("%s %s: %w", op, shape, err)
		}
		ds[i] = time.Since(start).Seconds()
	}
	t.add(op, shape, flops, bytes, ds)
	return nil
}

// add records the durations ds of one operation.
func (t *timer) add(op, shape string, flops, bytes int64, ds []float64) {
	slices.Sort(ds)
	med := ds[len(ds)/2]
	if len(ds)%2 == 0 {
		med = (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
	}
	// A call faster than the clock resolution would divide by zero.
	med = max(med, 1e-9)
	r := benchResult{Op: op, Shape: shape, MedianS: med, MinS: max(ds[0], 1e-9), FLOPs: flops, Bytes: bytes}
	if flops > 0 {
		r.GFLOPs = float64(flops) / med / 1e9
	} else if bytes > 0 {
		r.GBPerSec = float64(bytes) / med / 1e9
	}
	t.out = append(t.out, r)
}

// benchAlloc allocates the matrices of a benchmark, filling them with
// seeded random normals (never zeros: zeros can take fast paths), and frees
// them at the end. The first failure is kept in err and later calls do
// nothing, so a list of allocations is checked once.
type benchAlloc struct {
	b    model.Backend
	rng  *rand.Rand
	held []any
	err  error
}

func (a *benchAlloc) mat(rows, cols int) model.Mat { return a.scaled(rows, cols, 1) }

// scaled is mat with normals of standard deviation sd.
func (a *benchAlloc) scaled(rows, cols int, sd float64) model.Mat {
	if a.err != nil {
		return nil
	}
	m, err := a.b.Alloc(rows, cols)
	if err != nil {
		a.err = fmt.Errorf("allocating %dx%d: %w", rows, cols, err)
		return nil
	}
	a.held = append(a.held, m)
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(sd * a.rng.NormFloat64())
	}
	a.err = a.b.Upload(m, v)
	return m
}

// ints returns n random values in [0, hi).
func (a *benchAlloc) ints(n, hi int) model.Ints {
	if a.err != nil {
		return nil
	}
	x, err := a.b.AllocInts(n)
	if err != nil {
		a.err = fmt.Errorf("allocating %d ints: %w", n, err)
		return nil
	}
	a.held = append(a.held, x)
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(a.rng.IntN(hi))
	}
	a.err = a.b.UploadInts(x, v)
	return x
}

func (a *benchAlloc) free() error {
	var errs []error
	for _, x := range a.held {
		errs = append(errs, a.b.Free(x))
	}
	a.held = nil
	return errors.Join(errs...)
}

// runBench times every operation at the sizes of o, then a training step.
func runBench(b model.Backend, o benchOptions) ([]benchResult, error) {
	return runBenchSync(b, o, syncFunc(b))
}

// runBenchSync is runBench with the synchronization given (tests count it).
func runBenchSync(b model.Backend, o benchOptions, sync func() error) (res []benchResult, err error) {
	t := &timer{sync: sync, reps: o.Reps, warmup: o.Warmup}
	a := &benchAlloc{b: b, rng: rand.New(rand.NewPCG(o.Seed, 0x62656e6368))}
	defer func() {
		if ferr := a.free(); err == nil {
			err = ferr
		}
	}()
	const f32 = 4

	m, n, k := o.M, o.N, o.K
	gemmA := []model.Mat{a.mat(m, k), a.mat(m, k), a.mat(k, m)}
	gemmB := []model.Mat{a.mat(k, n), a.mat(n, k), a.mat(k, n)}
	c := a.mat(m, n)
	bb, kk := o.Batch, o.Classes
	e, labels, stats, argmin := a.mat(bb, kk), a.ints(bb, kk), a.mat(bb, model.NumStats), a.ints(bb, kk)
	r, cc := o.Rows, o.Cols
	rc := int64(r) * int64(cc)
	x, out, v, idx := a.mat(r, cc), a.mat(r, cc), a.mat(1, cc), a.ints(r, r)
	g, mom, vel := a.mat(r, cc), a.mat(r, cc), a.mat(r, cc)
	if a.err == nil {
		// Second moments are >= 0, as Adam keeps them.
		a.err = b.Upload(vel, make([]float32, rc))
	}
	if a.err != nil {
		return nil, a.err
	}

	// GEMMs: C = op(A) op(B) with beta 0 (C only written).
	gemmShape := fmt.Sprintf("M=%d N=%d K=%d", m, n, k)
	flops := int64(2) * int64(m) * int64(n) * int64(k)
	for i, op := range []struct {
		name   string
		ta, tb bool
	}{{"gemm NN", false, false}, {"gemm NT", false, true}, {"gemm TN", true, false}} {
		name := op.name
		if o.Precision != model.FP32 {
			name += " " + o.Precision.String()
		}
		if err := t.time(name, gemmShape, flops, 0, func() error {
			return model.GemmAt(b, o.Precision, op.ta, op.tb, 1, gemmA[i], gemmB[i], 0, c)
		}); err != nil {
			return nil, err
		}
	}

	// The fused energy loss and the argmin over B x K energies. E is read
	// and overwritten with the gradient, labels read, stats and argmin
	// written.
	lossShape := fmt.Sprintf("B=%d K=%d", bb, kk)
	lossBytes := int64(f32) * (2*int64(bb)*int64(kk) + int64(bb) + int64(bb)*model.NumStats + int64(bb))
	if err := t.time("energy-loss "+o.Loss.String(), lossShape, 0, lossBytes, func() error {
		return b.EnergyLoss(e, labels, o.Loss, 1/float32(bb), stats, argmin)
	}); err != nil {
		return nil, err
	}
	if err := t.time("argmin-rows", lossShape, 0, f32*(int64(bb)*int64(kk)+int64(bb)), func() error { return b.ArgminRows(e, argmin) }); err != nil {
		return nil, err
	}

	// Memory-bound operations on rows x cols.
	shape := fmt.Sprintf("%dx%d", r, cc)
	step := 0
	for _, op := range []struct {
		name  string
		bytes int64
		f     func() error
	}{
		{"add-row-vector", f32 * (2*rc + int64(cc)), func() error { return b.AddRowVector(x, 0.5, v) }},
		{"column-sums", f32 * (rc + int64(cc)), func() error { return b.ColumnSums(v, 1, x, 0) }},
		{"activate relu", f32 * 2 * rc, func() error { return b.Activate(model.ReLU, out) }},
		{"activate tanh", f32 * 2 * rc, func() error { return b.Activate(model.Tanh, out) }},
		{"activation-grad relu", f32 * 3 * rc, func() error { return b.ActivationGrad(model.ReLU, x, out) }},
		{"activation-grad tanh", f32 * 3 * rc, func() error { return b.ActivationGrad(model.Tanh, x, out) }},
		{"gather-rows", f32 * (2*rc + int64(r)), func() error { return b.GatherRows(out, x, idx) }},
		// Reads w, g, m, v; writes w, m, v.
		{"adam-step", f32 * 7 * rc, func() error {
			step++
			return b.AdamStep(x, g, mom, vel, 1e-3, 0.9, 0.999, 1e-8, 0, step)
		}},
	} {
		if err := t.time(op.name, shape, 0, op.bytes, op.f); err != nil {
			return nil, err
		}
	}

	if err := benchStep(b, o, a, t); err != nil {
		return nil, err
	}
	return t.out, nil
}

// benchStep times a whole training step of o.Spec, B x inputs -> K, and
// each of its phases (synchronizing between them, so a GPU's phases do not
// overlap: the phases add up to slightly more than the step).
func benchStep(b model.Backend, o benchOptions, a *benchAlloc, t *timer) error {
	em, err := model.NewEnergyModel(b, o.Spec, o.Inputs, o.Classes, rand.New(rand.NewPCG(o.Seed, 1)))
	if err != nil {
		return err
	}
	defer em.Free()
	if err := model.SetPrecision(em, b, o.Precision); err != nil {
		return err
	}
	opt, err := model.NewOptimizer(b, model.DefaultConfig().Optimizer, em.Params())
	if err != nil {
		return err
	}
	defer opt.Free()
	x, y, stats, argmin := a.mat(o.Batch, o.Inputs), a.ints(o.Batch, o.Classes), a.mat(o.Batch, model.NumStats), a.ints(o.Batch, o.Classes)
	if a.err != nil {
		return a.err
	}
	// GEMM work: forward 2*B*in*out per layer; backward the same for dW and,
	// except at the first layer (whose input needs no gradient), for dX.
	var fwd, bwd, params int64
	in := o.Inputs
	for i, h := range append(slices.Clone(o.Spec.Hidden), o.Classes) {
		f := 2 * int64(o.Batch) * int64(in) * int64(h)
		fwd += f
		bwd += f
		if i > 0 {
			bwd += f
		}
		params += int64(in)*int64(h) + int64(h)
		in = h
	}
	phases := []string{"forward", "energy-loss", "backward", "adam"}
	steps := make([][]float64, len(phases)+1)
	run := func(timed bool) error {
		var marks [5]time.Time
		marks[0] = time.Now()
		var e model.Mat
		for i, f := range []func() error{
			func() (err error) { e, err = em.Forward(x); return err },
			func() error { return b.EnergyLoss(e, y, o.Loss, 1/float32(o.Batch), stats, argmin) },
			func() error { return em.Backward(e) },
			opt.Step,
		} {
			if err := f(); err != nil {
				return fmt.Errorf("training step, %s: %w", phases[i], err)
			}
			if err := t.sync(); err != nil {
				return err
			}
			marks[i+1] = time.Now()
		}
		if timed {
			for i := range phases {
				steps[i] = append(steps[i], marks[i+1].Sub(marks[i]).Seconds())
			}
			steps[len(phases)] = append(steps[len(phases)], marks[4].Sub(marks[0]).Seconds())
		}
		return nil
	}
	for i := 0; i < t.warmup; i++ {
		if err := run(false); err != nil {
			return err
		}
	}
	for i := 0; i < t.reps; i++ {
		if err := run(true); err != nil {
			return err
		}
	}
	shape := fmt.Sprintf("%s B=%d %d->%d", o.Spec, o.Batch, o.Inputs, o.Classes)
	t.add("step: forward", shape, fwd, 0, steps[0])
	t.add("step: energy-loss", shape, 0, f32Bytes(2*int64(o.Batch)*int64(o.Classes)+int64(o.Batch)*(model.NumStats+2)), steps[1])
	t.add("step: backward", shape, bwd, 0, steps[2])
	t.add("step: adam", shape, 0, f32Bytes(7*params), steps[3])
	t.add("step: total", shape, fwd+bwd, 0, steps[4])
	return nil
}

func f32Bytes(n int64) int64 { return 4 * n }
