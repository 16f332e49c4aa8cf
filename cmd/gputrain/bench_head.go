package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/model"
)

// bench --op: one operation alone, at the sizes of its own flags, instead
// of the whole table. The energy head's sizes (B, D, K) are the hidden
// rows, their width and the answers: B = --batch, D = --dim, K = --answers.

const (
	benchOpAll          = "all"
	benchOpHead         = "energy-head"
	benchOpHeadMaterial = "energy-head-materializing"
)

var benchOpNames = []string{benchOpAll, benchOpHead, benchOpHeadMaterial}

func headBenchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "op", Value: benchOpAll, Usage: "what to time: " + strings.Join(benchOpNames, ", ") +
			" (energy-head: a forward+backward of the fused energy head, E = -(H W^T + b) never stored, at --batch x --dim hidden rows and --answers answers, with --loss; " +
			"energy-head-materializing: the same through a stored --batch x --answers energy matrix, for comparison)"},
		&cli.IntFlag{Name: "dim", Value: 256, Usage: "energy head: width D of the hidden rows"},
		&cli.IntFlag{Name: "answers", Value: 131072, Usage: "energy head: answers K"},
	}
}

// benchOpAction runs bench --op for one operation and returns its results.
func benchOpAction(c *cli.Context, b model.Backend, o benchOptions) ([]benchResult, error) {
	op := c.String("op")
	d, k := c.Int("dim"), c.Int("answers")
	if d < 1 || k < 1 {
		return nil, fmt.Errorf("dim and answers must be >= 1, got %d and %d", d, k)
	}
	switch op {
	case benchOpHead:
		if _, ok := b.(model.EnergyHeadOps); !ok {
			return nil, fmt.Errorf("backend %s has no fused energy head (model.EnergyHeadOps); --op %s times only the materializing path", b.Name(), benchOpHeadMaterial)
		}
		return benchHead(b, o, d, k, false)
	case benchOpHeadMaterial:
		return benchHead(b, o, d, k, true)
	}
	return nil, fmt.Errorf("unknown --op %q (valid: %s)", op, strings.Join(benchOpNames, ", "))
}

// benchHead times the energy head's forward+backward: EnergyHeadGrad, or
// with materialize the path a dense model's last layer takes without it
// (Gemm, AddRowVector, EnergyLoss over a B x K matrix, then the three
// gradients). The rate counts 6 B D K flops, the products of the
// materializing path (the fused head computes E twice: 8 B D K), so that
// rates compare across implementations. The result also holds the peak
// resident memory of the whole process (host memory: a GPU backend's
// device memory is not in it).
func benchHead(b model.Backend, o benchOptions, D, K int, materialize bool) (res []benchResult, err error) {
	t := &timer{sync: syncFunc(b), reps: o.Reps, warmup: o.Warmup}
	a := &benchAlloc{b: b, rng: rand.New(rand.NewPCG(o.Seed, 0x68656164))}
	defer func() {
		if ferr := a.free(); err == nil {
			err = ferr
		}
	}()
	B := o.Batch
	// The host copies of the random inputs are garbage once uploaded: give
	// them back before the next allocation, so that the peak is the
	// operation's, not the set-up's.
	settle := func() { runtime.GC(); debug.FreeOSMemory() }
	h := a.mat(B, D)
	settle()
	w := a.scaled(K, D, 1/math.Sqrt(float64(D)))
	settle()
	bias := a.scaled(1, K, 0.1)
	labels := a.ints(B, K)
	stats, argmin := a.mat(B, model.NumStats), a.ints(B, K)
	// The outputs are overwritten: no host copy to upload (at K = 10^6, dw
	// alone is 1 GiB).
	dh, dw, db := a.output(B, D), a.output(K, D), a.output(1, K)
	settle()
	if a.err != nil {
		return nil, a.err
	}
	scale := 1 / float32(B)
	shape := fmt.Sprintf("B=%d D=%d K=%d", B, D, K)
	flops := 6 * int64(B) * int64(D) * int64(K)
	op := benchOpHead + " " + o.Loss.String()
	if o.Precision != model.FP32 {
		// --precision: the head's energies at that precision (tensor-core
		// tiles on sm_80+), as a model of that precision runs them.
		op += " " + o.Precision.String()
		if err := model.CheckEnergyHeadAt(b, o.Precision); err != nil {
			return nil, err
		}
	}
	f := func() error {
		return model.EnergyHeadGradAt(b, o.Precision, h, w, bias, labels, o.Loss, scale, stats, argmin, dh, dw, db)
	}
	if materialize {
		op = benchOpHeadMaterial + " " + o.Loss.String()
		if o.Precision != model.FP32 {
			op += " " + o.Precision.String()
		}
		e := a.output(B, K)
		if a.err != nil {
			return nil, a.err
		}
		f = func() error {
			for _, step := range []func() error{
				func() error { return model.GemmAt(b, o.Precision, false, true, -1, h, w, 0, e) },
				func() error { return b.AddRowVector(e, -1, bias) },
				func() error { return b.EnergyLoss(e, labels, o.Loss, scale, stats, argmin) },
				func() error { return b.Gemm(true, false, -1, e, h, 0, dw) },
				func() error { return b.ColumnSums(db, -1, e, 0) },
				func() error { return b.Gemm(false, false, -1, e, w, 0, dh) },
			} {
				if err := step(); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if err := t.time(op, shape, flops, 0, f); err != nil {
		return nil, err
	}
	r := &t.out[len(t.out)-1]
	r.PeakRSSBytes = peakRSS()
	if d, ok := b.(interface{ Driver() device.Driver }); ok {
		// Device memory in use after the calls: the operands, the
		// backend's scratch and the context (what nvidia-smi shows).
		if free, total, err := d.Driver().MemInfo(); err == nil {
			r.DeviceUsedBytes = total - free
		}
	}
	return t.out, nil
}

// output allocates a matrix an operation overwrites, without filling it.
func (a *benchAlloc) output(rows, cols int) model.Mat {
	if a.err != nil {
		return nil
	}
	m, err := a.b.Alloc(rows, cols)
	if err != nil {
		a.err = fmt.Errorf("allocating %dx%d: %w", rows, cols, err)
		return nil
	}
	a.held = append(a.held, m)
	return m
}
