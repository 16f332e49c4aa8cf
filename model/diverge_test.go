package model_test

import (
	"context"
	"errors"
	"regexp"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
)

// stepModeBackends are the backends and step modes the divergence tests
// run on: the pipelined step (the backend's check, read back
// asynchronously) on cpu and on the emulated device with and without
// graphs, and the host-synchronized step (a loss read and a weight
// download per step) as the independent reference.
var stepModeBackends = []struct {
	name string
	mode model.StepMode
	open func(t *testing.T) model.Backend
}{
	{"cpu/host-sync", model.StepHostSync, func(*testing.T) model.Backend { return cpu.New() }},
	{"cpu/pipelined", model.StepAuto, func(*testing.T) model.Backend { return cpu.New() }},
	{"device+emu/launches", model.StepLaunches, func(t *testing.T) model.Backend { return emuBackend(t, false) }},
	{"device+emu/graph", model.StepGraph, func(t *testing.T) model.Backend { return emuBackend(t, true) }},
}

func emuBackend(t *testing.T, graphs bool) model.Backend {
	drv, err := emu.New(emu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var d device.Driver = drv
	if graphs {
		d = device.WithSoftwareGraphs(drv)
	}
	b, err := device.New(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var epochStep = regexp.MustCompile(`^epoch (\d+) step (\d+): `)

// divergedRun trains cfg on train with b in mode and returns Run's error,
// the epochs OnEpoch saw and the epoch/step the error names.
func divergedRun(t *testing.T, b model.Backend, mode model.StepMode, cfg model.Config, train *model.Data) (error, int, string) {
	t.Helper()
	tr, err := model.NewTrainer(b, cfg, train, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.Step, tr.LossEvery = mode, 3
	epochs := 0
	tr.OnEpoch = func(model.EpochResult) { epochs++ }
	_, err = tr.Run(context.Background())
	if !errors.Is(err, model.ErrDiverged) {
		t.Fatalf("Run: %v, want an error wrapping ErrDiverged", err)
	}
	m := epochStep.FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("the error does not start with the epoch and step: %v", err)
	}
	// A diverged trainer never trains again.
	if _, again := tr.TrainEpoch(context.Background()); again == nil || again.Error() != err.Error() {
		t.Errorf("TrainEpoch after the divergence: %v, want the same error again", again)
	}
	return err, epochs, m[0]
}

// TestDivergenceNamesEpochAndStep: a learning rate of 1e6 with the
// square-exponential loss blows up within a few steps. Every step mode
// must stop at the same epoch and step (the host-synchronized run finds it
// by downloading the loss and the weights after every step, the others
// from the backend's own record), with an error wrapping ErrDiverged, and
// not report the epoch.
func TestDivergenceNamesEpochAndStep(t *testing.T) {
	train, _ := blobs(t, 5)
	cfg := model.DefaultConfig()
	cfg.Loss = model.DefaultLoss(model.SquareExp)
	cfg.Optimizer.Name, cfg.Optimizer.LR = "sgd", 1e6
	cfg.Batch, cfg.Epochs = 64, 3
	want := ""
	for _, bm := range stepModeBackends {
		t.Run(bm.name, func(t *testing.T) {
			b := bm.open(t)
			defer b.Close()
			err, epochs, at := divergedRun(t, b, bm.mode, cfg, train)
			t.Log(err)
			if want == "" {
				want = at
			} else if at != want {
				t.Errorf("stopped at %q, the host-synchronized run at %q", at, want)
			}
			if at == "epoch 1 step 1: " && epochs != 0 {
				t.Errorf("OnEpoch called %d times", epochs)
			}
		})
	}
}

// TestNonFiniteWeightsStop is issue 13's reproduction (`train --optimizer
// sgd --lr 1e38 --limit 128 --reduction sum` saved 1,013 non-finite
// weights and exited 0), on blobs: the first update overflows the weights
// to infinity while its batch loss was finite. Every mode must stop at
// epoch 1 step 1 naming the weight that went bad, before any epoch is
// reported (which is when the CLI saves), and the trainer must refuse to
// continue.
func TestNonFiniteWeightsStop(t *testing.T) {
	train, _ := blobs(t, 8)
	cfg := model.DefaultConfig()
	cfg.Optimizer.Name, cfg.Optimizer.LR, cfg.Reduction = "sgd", 1e38, model.Sum
	cfg.Batch, cfg.Epochs = 128, 5
	train = train.Limit(128)
	for _, bm := range stepModeBackends {
		t.Run(bm.name, func(t *testing.T) {
			b := bm.open(t)
			defer b.Close()
			err, epochs, at := divergedRun(t, b, bm.mode, cfg, train)
			t.Log(err)
			if at != "epoch 1 step 1: " || epochs != 0 {
				t.Errorf("stopped at %q after %d reported epochs, want epoch 1 step 1 and none", at, epochs)
			}
			if !regexp.MustCompile(`made layer0/W(, layer0/b)? non-finite`).MatchString(err.Error()) {
				t.Errorf("the error does not name the parameter: %v", err)
			}
		})
	}
}
