package device_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/model"
)

// BenchmarkStepHostOverhead times the host side of MNIST-shaped training
// steps (batch 128, 784 inputs, 10 classes, Adam) over noopDriver: the time
// per step and per launch that the host spends before any GPU would.
func BenchmarkStepHostOverhead(b *testing.B) {
	for _, spec := range []string{"linear", "mlp:256"} {
		b.Run(spec, func(b *testing.B) {
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
			steps := tr.StepsPerEpoch()
			if _, err := tr.TrainEpoch(context.Background()); err != nil {
				b.Fatal(err)
			}
			l0 := drv.launches
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
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(drv.launches-l0), "ns/launch")
			b.ReportMetric(0, "ns/op")
		})
	}
}
