package device_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
)

// counting is a Driver that counts what a Backend asks of the driver under
// it: launches per kernel, blocking copies, synchronizations, asynchronous
// copies, fence waits, graph launches. It passes the optional capabilities
// of the driver under it through (or reports ErrUnsupported).
type counting struct {
	device.Driver
	launches                           map[string]int
	copyIn, copyOut, syncs             int
	asyncCopies, fenceWaits, fenceDone int
	graphLaunches, captured            int
	capturing                          bool
}

func newCounting(inner device.Driver) *counting {
	return &counting{Driver: inner, launches: map[string]int{}}
}

// total is the number of Launch calls (captured ones excluded).
func (c *counting) total() int {
	n := 0
	for _, v := range c.launches {
		n += v
	}
	return n
}

func (c *counting) reset() {
	clear(c.launches)
	c.copyIn, c.copyOut, c.syncs, c.asyncCopies, c.fenceWaits, c.fenceDone, c.graphLaunches, c.captured = 0, 0, 0, 0, 0, 0, 0, 0
}

func (c *counting) Launch(kernel string, grid, block device.Dim3, shared int, args ...uint64) error {
	if c.capturing {
		c.captured++
	} else {
		c.launches[kernel]++
	}
	return c.Driver.Launch(kernel, grid, block, shared, args...)
}
func (c *counting) CopyIn(dst device.Ptr, src []byte) error {
	c.copyIn++
	return c.Driver.CopyIn(dst, src)
}
func (c *counting) CopyOut(dst []byte, src device.Ptr) error {
	c.copyOut++
	return c.Driver.CopyOut(dst, src)
}
func (c *counting) Synchronize() error { c.syncs++; return c.Driver.Synchronize() }

func (c *counting) MaxDynamicSharedBytes() int {
	if l, ok := c.Driver.(device.SharedMemoryLimiter); ok {
		return l.MaxDynamicSharedBytes()
	}
	return 48 << 10
}

func (c *counting) async() (device.AsyncCopier, error) {
	if a, ok := c.Driver.(device.AsyncCopier); ok {
		return a, nil
	}
	return nil, device.ErrUnsupported
}
func (c *counting) AllocHost(n int) ([]byte, error) {
	a, err := c.async()
	if err != nil {
		return nil, err
	}
	return a.AllocHost(n)
}
func (c *counting) FreeHost(b []byte) error { a, _ := c.async(); return a.FreeHost(b) }
func (c *counting) CopyOutAsync(dst []byte, src device.Ptr) error {
	c.asyncCopies++
	a, _ := c.async()
	return a.CopyOutAsync(dst, src)
}
func (c *counting) RecordFence() (device.Fence, error) { a, _ := c.async(); return a.RecordFence() }
func (c *counting) FenceDone(f device.Fence) (bool, error) {
	c.fenceDone++
	a, _ := c.async()
	return a.FenceDone(f)
}
func (c *counting) WaitFence(f device.Fence) error {
	c.fenceWaits++
	a, _ := c.async()
	return a.WaitFence(f)
}
func (c *counting) ReleaseFence(f device.Fence) error { a, _ := c.async(); return a.ReleaseFence(f) }

func (c *counting) graphs() (device.GraphCapturer, error) {
	if g, ok := c.Driver.(device.GraphCapturer); ok {
		return g, nil
	}
	return nil, fmt.Errorf("counting: %w", device.ErrUnsupported)
}
func (c *counting) BeginCapture() error {
	g, err := c.graphs()
	if err != nil {
		return err
	}
	c.capturing = true
	return g.BeginCapture()
}
func (c *counting) EndCapture() (device.Graph, error) {
	c.capturing = false
	g, _ := c.graphs()
	return g.EndCapture()
}
func (c *counting) LaunchGraph(x device.Graph) error {
	c.graphLaunches++
	g, _ := c.graphs()
	return g.LaunchGraph(x)
}
func (c *counting) FreeGraph(x device.Graph) error { g, _ := c.graphs(); return g.FreeGraph(x) }

// stepData is MNIST-shaped for the launch counts (batch 128, 10 classes;
// 6 steps, the last one of 37 rows), with few inputs to keep the emulator
// quick: a GEMM is one launch at any size, so the counts do not depend on
// the number of inputs.
func stepData(n, d int, seed uint64) *model.Data {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]int32, n)
	for i := range y {
		y[i] = int32(rng.IntN(10))
	}
	return &model.Data{X: x, Y: y, N: n, D: d, Classes: 10}
}

// TestStepCounts counts what a training step asks of the driver, for the
// linear and the mlp:256 model (Adam, batch 128), in each StepMode, after
// an epoch of warm-up (buffers allocated, the step captured).
//
// Per full step with StepLaunches, the launches are
//
//	1 gt_gather_step + F (Forward) + 1 energy loss + 1 gt_step_record
//	  + B (Backward) + 1 gt_adam_multi = F + B + 4,
//
// where F and B are counted on the model itself, alone: the test derives
// the expected numbers rather than assuming them, so a model that fuses
// its layers (fewer launches) keeps it passing. Before the pipelined step
// an mlp:256 step made 22 launches (2 gathers, F = 5, 1 loss, 2 for the
// loss column sums, B = 8, 4 Adam launches) and 2 synchronizations (the
// index upload, the loss read); linear 12 and 2. Now: mlp:256 17, linear
// 9 (with today's unfused dense layers), and no blocking copy, no
// synchronization: the plan is uploaded once per epoch (1 CopyIn), the
// losses come back in asynchronous copies at steps 1, 2 and 4 of the
// epoch, then every LossEvery (4 here) and at its end. With StepGraph a
// full step is one graph launch and no Launch at all; the short last step
// of the epoch (its loss scale differs) runs as launches.
func TestStepCounts(t *testing.T) {
	const N, D, B, every = 5*128 + 37, 20, 128, 4
	const steps, full = 6, 5
	reads := 4 // after steps 1, 2, 4 (d < every: powers of two; d % every == 0) and 6 (the last)
	for _, spec := range []string{"linear", "mlp:256"} {
		for _, mode := range []model.StepMode{model.StepLaunches, model.StepGraph, model.StepHostSync} {
			t.Run(spec+"/"+mode.String(), func(t *testing.T) {
				inner, err := emu.New(emu.Options{Mode: emu.Deterministic})
				if err != nil {
					t.Fatal(err)
				}
				drv := newCounting(device.WithSoftwareGraphs(inner))
				b, err := device.New(drv)
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				cfg := model.DefaultConfig()
				cfg.Model, cfg.Batch, cfg.Epochs = spec, B, 2
				tr, err := model.NewTrainer(b, cfg, stepData(N, D, 3), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				tr.Step, tr.LossEvery = mode, every
				// The counts below are the materializing path's (Forward,
				// EnergyLoss, Backward), not the fused energy head's.
				tr.NoEnergyHead = true
				if got := tr.StepsPerEpoch(); got != steps {
					t.Fatalf("%d steps per epoch, want %d", got, steps)
				}

				// F and B: the model's own launches for one batch.
				x, err := b.Alloc(B, D)
				must(t, err)
				must(t, b.Upload(x, make([]float32, B*D)))
				drv.reset()
				e, err := tr.Model.Forward(x)
				must(t, err)
				fwd := drv.total()
				drv.reset()
				must(t, tr.Model.Backward(e))
				bwd := drv.total()
				params := len(tr.Model.Params())
				unfusedF, unfusedB := 2, 3 // linear: GEMM + bias; GEMM + two-stage bias gradient
				if spec == "mlp:256" {
					unfusedF, unfusedB = 5, 8
				}
				if fwd < 1 || fwd > unfusedF || bwd < 1 || bwd > unfusedB {
					t.Fatalf("Forward made %d launches, Backward %d; want 1..%d and 1..%d", fwd, bwd, unfusedF, unfusedB)
				}
				perStep := fwd + bwd + 4

				if _, err := tr.TrainEpoch(context.Background()); err != nil {
					t.Fatal(err)
				}
				captured := drv.captured
				drv.reset()
				if _, err := tr.TrainEpoch(context.Background()); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s %v: F=%d B=%d; epoch 2 of %d steps: launches %v (%d), graph launches %d, CopyIn %d, CopyOut %d, Synchronize %d, async copies %d, fence waits %d; path %s",
					spec, mode, fwd, bwd, steps, drv.launches, drv.total(), drv.graphLaunches, drv.copyIn, drv.copyOut, drv.syncs, drv.asyncCopies, drv.fenceWaits, tr.StepPath())
				type counts struct{ launches, graphs, copyIn, copyOut, syncs, async int }
				got := counts{drv.total(), drv.graphLaunches, drv.copyIn, drv.copyOut, drv.syncs, drv.asyncCopies}
				var want counts
				switch mode {
				case model.StepLaunches:
					want = counts{launches: steps * perStep, copyIn: 1, async: reads}
					if n := drv.launches["gt_adam_multi"]; n != steps || drv.launches["gt_adam_step"] != 0 {
						t.Errorf("%d gt_adam_multi and %d gt_adam_step launches in %d steps, want one multi-tensor launch per step", n, drv.launches["gt_adam_step"], steps)
					}
				case model.StepGraph:
					want = counts{launches: (steps - full) * perStep, graphs: full, copyIn: 1, async: reads}
					if captured != perStep {
						t.Errorf("the captured step holds %d launches, want %d", captured, perStep)
					}
					if tr.StepPath() != "graph" {
						t.Errorf("StepPath = %q, want graph", tr.StepPath())
					}
				case model.StepHostSync:
					// Per step: the index upload; 2 gathers, F, the loss, 2
					// for its column sums, B, one Adam launch per parameter;
					// the loss sums read back, then every parameter for the
					// weight check.
					want = counts{launches: steps * (2 + fwd + 1 + 2 + bwd + params), copyIn: steps, copyOut: steps * (1 + params)}
				}
				if got != want {
					t.Errorf("epoch 2 (%d steps, %d full): got %+v, want %+v", steps, full, got, want)
				}
				if mode != model.StepHostSync && (drv.syncs != 0 || drv.copyOut != 0) {
					t.Errorf("%d synchronizations and %d blocking copies out in an epoch, want none", drv.syncs, drv.copyOut)
				}
				if mode != model.StepHostSync && perStep >= 2+fwd+1+2+bwd+params {
					t.Errorf("%d launches per step, not fewer than the host-synchronized step's", perStep)
				}
			})
		}
	}
}

// TestStepModesBitwise trains the same runs in every StepMode, in both
// emulator orders, and requires bitwise the same weights and optimizer
// state after two epochs of 6 steps (the last one short), and the same
// per-epoch losses (bitwise between graph and launches, which record the
// loss with the same kernel; the host-synchronized step sums it with
// ColumnSums, a different order). A value that changes per step but were
// baked into the captured graph (Adam's t, the learning rate, the batch
// offset) would make the graph run differ.
func TestStepModesBitwise(t *testing.T) {
	data := stepData(5*33+7, 9, 4)
	for _, c := range []struct{ spec, opt string }{{"linear", "adam"}, {"mlp:17", "momentum"}, {"mlp:13:tanh", "sgd"}} {
		for _, mode := range emuModes {
			t.Run(c.spec+"/"+c.opt+"/"+mode.name, func(t *testing.T) {
				cfg := model.DefaultConfig()
				cfg.Model, cfg.Optimizer.Name, cfg.Batch, cfg.Epochs, cfg.Optimizer.LR = c.spec, c.opt, 33, 2, 0.01
				cfg.Optimizer.WeightDecay = 0.01
				type result struct {
					tensors [][]float32
					losses  []float64
					path    string
				}
				run := func(sm model.StepMode) result {
					inner, err := emu.New(mode.opts)
					if err != nil {
						t.Fatal(err)
					}
					b, err := device.New(device.WithSoftwareGraphs(inner))
					if err != nil {
						t.Fatal(err)
					}
					defer b.Close()
					tr, err := model.NewTrainer(b, cfg, data, nil)
					if err != nil {
						t.Fatal(err)
					}
					defer tr.Close()
					tr.Step, tr.LossEvery = sm, 2
					res, err := tr.Run(context.Background())
					if err != nil {
						t.Fatalf("%v: %v", sm, err)
					}
					var r result
					for _, p := range tr.Model.Params() {
						r.tensors = append(r.tensors, download(t, b, p.Value))
					}
					for _, s := range tr.Optimizer.State() {
						r.tensors = append(r.tensors, download(t, b, s.Mat))
					}
					for _, e := range res {
						r.losses = append(r.losses, e.TrainLoss)
					}
					r.path = tr.StepPath()
					return r
				}
				ref := run(model.StepGraph)
				if ref.path != "graph" {
					t.Fatalf("StepGraph ran %q", ref.path)
				}
				for _, sm := range []model.StepMode{model.StepLaunches, model.StepHostSync} {
					got := run(sm)
					for i := range ref.tensors {
						for j := range ref.tensors[i] {
							if math.Float32bits(got.tensors[i][j]) != math.Float32bits(ref.tensors[i][j]) {
								t.Fatalf("%v: tensor %d element %d = %v, graph run %v (not bitwise equal)", sm, i, j, got.tensors[i][j], ref.tensors[i][j])
							}
						}
					}
					for i := range ref.losses {
						d := math.Abs(got.losses[i] - ref.losses[i])
						if (sm == model.StepLaunches && d != 0) || d > 1e-6*math.Abs(ref.losses[i]) {
							t.Errorf("%v: epoch %d loss %v, graph run %v", sm, i+1, got.losses[i], ref.losses[i])
						}
					}
				}
			})
		}
	}
}

// TestCaptureRefusals checks the capture path's fallbacks: a driver
// without graphs gives StepLaunches under StepAuto and an error under
// StepGraph; a capture that meets an operation capture refuses (as a step
// that synchronizes would) fails, StepAuto then runs the steps as launches
// and says why, and StepGraph reports the refusal.
func TestCaptureRefusals(t *testing.T) {
	data := stepData(3*16+5, 6, 5)
	cfg := model.DefaultConfig()
	cfg.Batch, cfg.Epochs = 16, 1
	train := func(drv device.Driver, sm model.StepMode) (string, error) {
		b, err := device.New(drv)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		tr, err := model.NewTrainer(b, cfg, data, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		tr.Step = sm
		_, err = tr.Run(context.Background())
		return tr.StepPath(), err
	}
	newEmu := func() device.Driver {
		d, err := emu.New(emu.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if path, err := train(newEmu(), model.StepAuto); err != nil || !strings.HasPrefix(path, "launches (no graph: ") {
		t.Errorf("StepAuto without graphs: path %q, err %v; want launches, saying why", path, err)
	}
	if _, err := train(newEmu(), model.StepGraph); err == nil || !strings.Contains(err.Error(), "cannot capture") {
		t.Errorf("StepGraph without graphs: %v, want an error saying the backend cannot capture", err)
	}
	// A driver whose every capture fails as a synchronizing step's would.
	refuse := &refusingCapture{Driver: device.WithSoftwareGraphs(newEmu())}
	if path, err := train(refuse, model.StepAuto); err != nil || !strings.HasPrefix(path, "launches (no graph: ") {
		t.Errorf("StepAuto with a failing capture: path %q, err %v; want launches with the reason", path, err)
	} else {
		t.Log(path)
	}
	if _, err := train(&refusingCapture{Driver: device.WithSoftwareGraphs(newEmu())}, model.StepGraph); err == nil || !strings.Contains(err.Error(), "not allowed while a graph is being captured") {
		t.Errorf("StepGraph with a failing capture: %v, want the refusal", err)
	}
}

// refusingCapture makes every capture meet a CopyOut, which capture
// refuses, as it would a step that reads something back.
type refusingCapture struct{ device.Driver }

func (r *refusingCapture) BeginCapture() error {
	if err := r.Driver.(device.GraphCapturer).BeginCapture(); err != nil {
		return err
	}
	var flag [4]byte
	_ = r.Driver.CopyOut(flag[:], 0) // refused: the capture fails
	return nil
}
func (r *refusingCapture) EndCapture() (device.Graph, error) {
	return r.Driver.(device.GraphCapturer).EndCapture()
}
func (r *refusingCapture) LaunchGraph(g device.Graph) error {
	return r.Driver.(device.GraphCapturer).LaunchGraph(g)
}
func (r *refusingCapture) FreeGraph(g device.Graph) error {
	return r.Driver.(device.GraphCapturer).FreeGraph(g)
}
func (r *refusingCapture) MaxDynamicSharedBytes() int {
	return r.Driver.(device.SharedMemoryLimiter).MaxDynamicSharedBytes()
}
