//go:build cuda

package cuda

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/model"
)

// BenchmarkGPU holds the workloads scripts/gpu-check.sh compares with
// PyTorch (scripts/gpu_bench_torch.py runs the same ones). Each reports its
// rate (GB/s of compulsory traffic, or TFLOP/s) besides ns/op; the time is
// wall clock over b.N back-to-back iterations ending in a synchronize, so
// launch overhead counts, as it does for PyTorch. The sub-benchmark names
// are the workload keys the report matches on.
func BenchmarkGPU(b *testing.B) {
	requireGPU(b)
	g := newBackend(b, device.Options{})
	drv := g.Driver()
	rng := rand.New(rand.NewPCG(3, 5))

	// The copy ceiling: a device-to-device copy reads and writes every byte.
	b.Run("copy_1GiB", func(b *testing.B) {
		const n = 1 << 30
		src, err := drv.Alloc(n)
		if err != nil {
			b.Fatal(err)
		}
		defer drv.Free(src)
		dst, err := drv.Alloc(n)
		if err != nil {
			b.Fatal(err)
		}
		defer drv.Free(dst)
		run(b, drv, 2*n, 0, func() error { return drv.CopyDevice(dst, src, n) })
	})

	for _, K := range []int{32768, 131072} {
		const B = 8192
		b.Run("energyloss_B8192_K"+strconv.Itoa(K), func(b *testing.B) {
			e := mustMat(b, g, B, K, tiled(rng, B*K, -4, 4))
			labels := make([]int32, B)
			for i := range labels {
				labels[i] = int32(rng.IntN(K))
			}
			l := mustInts(b, g, labels)
			st := mustMat(b, g, B, model.NumStats, nil)
			am := mustInts(b, g, make([]int32, B))
			loss := model.DefaultLoss(model.NLL)
			// E is overwritten with the gradient, whose entries are in
			// [-1, 1]: later iterations run on those, at the same cost.
			// Compulsory traffic: read E, write dL/dE.
			run(b, drv, 2*4*int64(B)*int64(K), 0, func() error { return g.EnergyLoss(e, l, loss, 1.0/B, st, am) })
		})
	}

	// GEMM 4096^3 in every precision (fp32: the SIMT kernels; the others
	// tensor cores), each reporting besides its rate the relative error
	// ||C - ref|| / ||ref|| against float64 over 64 sampled rows of C
	// ("relerr"), the accuracy target of 3xtf32 (<= 1e-6).
	const n = 4096
	ga, gb := uniform(rng, n*n, -1, 1), uniform(rng, n*n, -1, 1)
	relErrs := map[string]float64{}
	for _, tr := range []struct {
		name   string
		ta, tb bool
	}{{"gemm_nn_4096", false, false}, {"gemm_nt_4096", false, true}} {
		for _, p := range []model.Precision{model.FP32, model.TF32x3, model.TF32, model.BF16} {
			name := tr.name
			if p != model.FP32 {
				name += "_" + p.String()
			}
			b.Run(name, func(b *testing.B) {
				a := mustMat(b, g, n, n, ga)
				bb := mustMat(b, g, n, n, gb)
				c := mustMat(b, g, n, n, nil)
				gemm := func() error { return g.GemmPrecision(p, tr.ta, tr.tb, 1, a, bb, 0, c) }
				run(b, drv, 0, 2*n*n*n, gemm)
				// The error does not change from run to run (the kernels
				// are deterministic): measured once per case.
				if _, ok := relErrs[name]; !ok {
					relErrs[name] = sampledRelErr(b, g, c, ga, gb, n, tr.tb)
				}
				b.ReportMetric(relErrs[name], "relerr")
			})
		}
	}

	// MNIST-sized training steps (batch 128, 784 inputs, 10 classes, Adam)
	// in each step mode: launch-bound, so they show what the captured
	// graph (the default) saves over kernel-by-kernel launches and over
	// the host-synchronized step.
	for _, spec := range []string{"linear", "mlp256"} {
		for _, sm := range []model.StepMode{model.StepGraph, model.StepLaunches, model.StepHostSync} {
			b.Run("mnist_"+spec+"_step_"+sm.String(), func(b *testing.B) {
				benchSteps(b, g, strings.Replace(spec, "mlp", "mlp:", 1), sm)
			})
		}
	}

	// The mlp:256 step at tf32 (the tensor-core GEMMs), in the default
	// graph mode: against mnist_mlp256_step_graph, what the precision
	// saves on these small layers.
	b.Run("mnist_mlp256_step_graph_tf32", func(b *testing.B) {
		benchStepsAt(b, g, "mlp:256", model.StepGraph, model.TF32)
	})

	// A whole training step of a linear energy model, as Trainer runs it:
	// gather the batch, E = -(X W^T + b), the fused NLL, the loss recorded
	// on the device, dW = dE^T X, db, Adam (one epoch of one step: its
	// plan upload and loss read-back are in the time).
	// FLOPs counted: the two GEMMs, 4*B*D*K.
	b.Run("linear_step_B4096_D1024_K32768", func(b *testing.B) {
		const B, D, K = 4096, 1024, 32768
		tr, err := model.NewTrainer(g, linearStepConfig(), randomData(B, D, K, 31), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer tr.Close()
		run(b, drv, 0, 4*B*D*K, func() error {
			_, err := tr.TrainEpoch(context.Background())
			return err
		})
	})
}

// run times fn b.N times after one warm-up call and reports GB/s for
// bytes per call and TFLOP/s for flops per call (when nonzero).
func run(b *testing.B, drv device.Driver, bytes, flops int64, fn func() error) {
	if err := fn(); err != nil {
		b.Fatal(err)
	}
	if err := drv.Synchronize(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := fn(); err != nil {
			b.Fatal(err)
		}
	}
	if err := drv.Synchronize(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	sec := b.Elapsed().Seconds() / float64(b.N)
	if bytes > 0 {
		b.ReportMetric(float64(bytes)/sec/1e9, "GB/s")
	}
	if flops > 0 {
		b.ReportMetric(float64(flops)/sec/1e12, "TFLOP/s")
	}
}

// tiled is n values that repeat a block of 1<<22 uniform ones: random
// enough for timing, and quick to make for the 4 GiB energy matrix.
func tiled(rng *rand.Rand, n int, lo, hi float32) []float32 {
	block := uniform(rng, min(n, 1<<22), lo, hi)
	x := make([]float32, n)
	for i := 0; i < n; i += len(block) {
		copy(x[i:], block)
	}
	return x
}

// sampledRelErr returns ||C - ref|| / ||ref|| over 64 rows of the n x n
// product C = A op(B) (row-major host copies a, b; op(B) = B^T when tb),
// with ref in float64 (one goroutine per row): an estimate of the relative
// error of the whole matrix for random inputs, at 1/64 of the reference's
// cost.
func sampledRelErr(tb testing.TB, g model.Backend, c model.Mat, a, b []float32, n int, transB bool) float64 {
	tb.Helper()
	got := make([]float32, n*n)
	if err := g.Download(got, c); err != nil {
		tb.Fatal(err)
	}
	const rows = 64
	num, den := make([]float64, rows), make([]float64, rows)
	var wg sync.WaitGroup
	for s := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := (s*n)/rows + s%7
			ai := a[i*n : (i+1)*n]
			ref := make([]float64, n)
			if transB {
				for j := range ref {
					bj := b[j*n : (j+1)*n]
					var d float64
					for l, x := range ai {
						d += float64(x) * float64(bj[l])
					}
					ref[j] = d
				}
			} else {
				for l, x := range ai {
					for j, y := range b[l*n : (l+1)*n] {
						ref[j] += float64(x) * float64(y)
					}
				}
			}
			for j, r := range ref {
				d := float64(got[i*n+j]) - r
				num[s] += d * d
				den[s] += r * r
			}
		}()
	}
	wg.Wait()
	var sn, sd float64
	for s := range rows {
		sn += num[s]
		sd += den[s]
	}
	return math.Sqrt(sn / sd)
}

// benchSteps times MNIST training steps (batch 128, Adam) in step mode sm:
// each op is one epoch of 100 steps over 12800 rows; steps/s and us/step
// are reported. The graph mode is what the trainer runs by default.
func benchSteps(b *testing.B, g *device.Backend, spec string, sm model.StepMode) {
	benchStepsAt(b, g, spec, sm, model.FP32)
}

// benchStepsAt is benchSteps at precision p.
func benchStepsAt(b *testing.B, g *device.Backend, spec string, sm model.StepMode, p model.Precision) {
	train, _ := mnistData(b)
	cfg := model.DefaultConfig()
	cfg.Model, cfg.Epochs, cfg.Precision = spec, 1<<30, p
	tr, err := model.NewTrainer(g, cfg, train.Limit(100*128), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	tr.Step = sm
	run(b, g.Driver(), 0, 0, func() error {
		_, err := tr.TrainEpoch(context.Background())
		return err
	})
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/100*1e6, "us/step")
}
