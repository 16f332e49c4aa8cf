package device_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/model"
)

// BenchmarkStepHostOverhead times the host side of MNIST-shaped training
// steps (batch 128, 784 inputs, 10 classes, Adam; 64 steps per epoch) over
// noopDriver, in each step mode: the time per step that the host spends
// issuing work (argument checks, launch shapes, the trainer's bookkeeping)
// before any GPU could run it, and per launch where the step launches
// kernel by kernel. The driver's own per-launch cost comes on top
// (BenchmarkLaunchHostOverhead in device/cuda; a few microseconds inside
// cuLaunchKernel), once per launch, or once per graph launch.
func BenchmarkStepHostOverhead(b *testing.B) {
	for _, spec := range []string{"linear", "mlp:256"} {
		for _, sm := range []model.StepMode{model.StepHostSync, model.StepLaunches, model.StepGraph} {
			b.Run(spec+"/"+sm.String(), func(b *testing.B) {
				drv := &noopDriver{}
				be, err := device.New(drv)
				if err != nil {
					b.Fatal(err)
				}
				defer be.Close()
				const N, D, K = 128 * 64, 784, 10
				rng := rand.New(rand.NewPCG(1, 2))
				d := &model.Data{X: make([]float32, N*D), Y: make([]int32, N), N: N, D: D, Classes: K}
				for i := range d.Y {
					d.Y[i] = int32(rng.IntN(K))
				}
				cfg := model.DefaultConfig()
				cfg.Model, cfg.Epochs = spec, 1<<30
				tr, err := model.NewTrainer(be, cfg, d, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer tr.Close()
				tr.Step = sm
				steps := tr.StepsPerEpoch()
				if _, err := tr.TrainEpoch(context.Background()); err != nil {
					b.Fatal(err)
				}
				l0, g0, s0 := drv.launches, drv.graphLaunches, drv.syncs
				b.ResetTimer()
				for range b.N {
					if _, err := tr.TrainEpoch(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				n := float64(b.N * steps)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/step")
				b.ReportMetric(float64(drv.launches-l0)/n, "launches/step")
				b.ReportMetric(float64(drv.graphLaunches-g0)/n, "graphs/step")
				b.ReportMetric(float64(drv.syncs-s0)/n, "syncs/step")
				if l := drv.launches - l0; l > 0 && sm != model.StepGraph {
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(l), "ns/launch")
				}
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
