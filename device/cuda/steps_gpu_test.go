//go:build cuda

package cuda

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/model"
)

// TestStepModesGPU trains MNIST models on the GPU in every StepMode and
// requires bitwise the same weights and optimizer state: the step captured
// once as a CUDA graph and replayed (StepGraph), the same operations
// launched one by one (StepLaunches), and the host-synchronized step with
// per-parameter optimizer launches (StepHostSync). It also checks that the
// graph path really ran, and logs each mode's time per epoch.
func TestStepModesGPU(t *testing.T) {
	requireGPU(t)
	train, _ := mnistData(t)
	train = train.Limit(5000) // 40 steps of 128, the last one short
	for _, c := range []struct{ spec, opt string }{{"linear", "adam"}, {"mlp:256", "adam"}, {"mlp:64:tanh", "momentum"}} {
		t.Run(c.spec+"/"+c.opt, func(t *testing.T) {
			cfg := model.DefaultConfig()
			cfg.Model, cfg.Optimizer.Name, cfg.Epochs, cfg.Optimizer.WeightDecay = c.spec, c.opt, 2, 1e-4
			var ref []float32
			for _, sm := range []model.StepMode{model.StepGraph, model.StepLaunches, model.StepHostSync} {
				g := newBackend(t, device.Options{})
				tr, err := model.NewTrainer(g, cfg, train, nil)
				if err != nil {
					t.Fatal(err)
				}
				tr.Step = sm
				start := time.Now()
				res, err := tr.Run(context.Background())
				if err != nil {
					t.Fatalf("%v: %v", sm, err)
				}
				if err := g.Driver().Synchronize(); err != nil {
					t.Fatal(err)
				}
				el := time.Since(start)
				var w []float32
				for _, p := range tr.Model.Params() {
					w = append(w, download(t, g, p.Value)...)
				}
				for _, s := range tr.Optimizer.State() {
					w = append(w, download(t, g, s.Mat)...)
				}
				t.Logf("%v (%s): %v for %d epochs of %d steps (%.1f us/step); losses %.6f %.6f", sm, tr.StepPath(), el, cfg.Epochs,
					tr.StepsPerEpoch(), float64(el.Microseconds())/float64(cfg.Epochs*tr.StepsPerEpoch()), res[0].TrainLoss, res[1].TrainLoss)
				if sm == model.StepGraph && tr.StepPath() != "graph" {
					t.Errorf("StepGraph ran %q", tr.StepPath())
				}
				tr.Close()
				if ref == nil {
					ref = w
				} else if i := firstDiff(ref, w); i >= 0 {
					t.Errorf("%v: tensor element %d = %v, the graph run's %v: not bitwise equal", sm, i, w[i], ref[i])
				}
			}
		})
	}
}

// TestDriverStreams exercises the stream capabilities directly: an
// asynchronous copy into pinned memory read after its fence; a capture
// that meets a blocking copy fails and leaves the driver usable; a good
// capture runs nothing until launched, and each launch sees the memory as
// it is then.
func TestDriverStreams(t *testing.T) {
	requireGPU(t)
	drv, err := New(0)
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	ac, gc := drv.(device.AsyncCopier), drv.(device.GraphCapturer)
	const n = 1000
	x, err := drv.Alloc(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(i) - n/2
	}
	bytes := unsafe.Slice((*byte)(unsafe.Pointer(&vals[0])), 4*n)
	if err := drv.CopyIn(x, bytes); err != nil {
		t.Fatal(err)
	}
	host, err := ac.AllocHost(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	if err := ac.CopyOutAsync(host, x); err != nil {
		t.Fatal(err)
	}
	f, err := ac.RecordFence()
	if err != nil {
		t.Fatal(err)
	}
	if err := ac.WaitFence(f); err != nil {
		t.Fatal(err)
	}
	if done, err := ac.FenceDone(f); !done || err != nil {
		t.Errorf("FenceDone after WaitFence = %v, %v", done, err)
	}
	if string(host) != string(bytes) {
		t.Error("the asynchronous copy did not bring the data")
	}
	if err := ac.CopyOutAsync(make([]byte, 4), x); err == nil {
		t.Error("CopyOutAsync into Go memory: no error")
	}
	ac.ReleaseFence(f)

	relu := func() error {
		return drv.Launch("gt_relu", device.Dim3{X: 4}, device.Dim3{X: 256}, 0, device.PtrArg(x), device.IntArg(n))
	}
	// A capture that meets a blocking copy fails, naming it.
	if err := gc.BeginCapture(); err != nil {
		t.Fatal(err)
	}
	if err := relu(); err != nil {
		t.Fatal(err)
	}
	if err := drv.CopyIn(x, bytes); err == nil {
		t.Error("CopyIn during a capture: no error")
	}
	if _, err := gc.EndCapture(); err == nil || !strings.Contains(err.Error(), "CopyIn") {
		t.Errorf("EndCapture after a refused CopyIn: %v, want an error naming it", err)
	}
	read := func() []float32 {
		out := make([]float32, n)
		if err := drv.CopyOut(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), 4*n), x); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := read(); got[0] != vals[0] {
		t.Fatalf("x[0] = %v after the failed capture, want %v: the captured launch ran", got[0], vals[0])
	}
	// A good capture: nothing runs until LaunchGraph; every launch reads x anew.
	if err := gc.BeginCapture(); err != nil {
		t.Fatal(err)
	}
	if err := relu(); err != nil {
		t.Fatal(err)
	}
	g, err := gc.EndCapture()
	if err != nil {
		t.Fatal(err)
	}
	defer gc.FreeGraph(g)
	if got := read(); got[0] != vals[0] {
		t.Fatalf("x[0] = %v before the graph was launched", got[0])
	}
	for range 2 {
		if err := gc.LaunchGraph(g); err != nil {
			t.Fatal(err)
		}
		got := read()
		for i, v := range got {
			if want := float32(math.Max(0, float64(vals[i]))); v != want {
				t.Fatalf("after the graph: x[%d] = %v, want %v", i, v, want)
			}
		}
		if err := drv.CopyIn(x, bytes); err != nil {
			t.Fatal(err)
		}
	}
}
