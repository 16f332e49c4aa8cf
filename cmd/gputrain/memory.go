package main

import (
	"fmt"

	"github.com/gputrain/gputrain/internal/sysmem"
	"github.com/gputrain/gputrain/model"
)

// Every size that comes from a flag or a file (hidden layers, batch rows,
// data rows, bench shapes) is checked against the memory this process may
// still allocate before anything is built: an allocation beyond it does
// not fail in Go, the runtime dies ("fatal error: out of memory", a
// goroutine dump per thread).

// hostBackend reports whether backend name keeps its buffers in host
// memory (cpu, and the emulator of the CUDA kernels). The cuda backend's
// allocations fail with an error of their own when the GPU is full.
func hostBackend(name string) bool { return name != "cuda" }

// checkTrainMemory refuses a run whose model, optimizer state, data and
// batch buffers would not fit.
func checkTrainMemory(o runOptions, train, test *model.Data) error {
	if !hostBackend(o.backend) {
		return nil
	}
	testRows := 0
	if test != nil {
		testRows = test.N
	}
	need := model.MemoryEstimate(o.cfg, train.D, train.Classes, train.N, testRows)
	return sysmem.Check(need, fmt.Sprintf("training %s (batch %d) on %d rows of %d features", specString(o.cfg), o.cfg.Batch, train.N, train.D),
		"use a smaller --model or --batch, or --limit the rows")
}

// checkInferenceMemory refuses to build a checkpoint's model for batches
// of batch rows when it would not fit.
func checkInferenceMemory(ck *model.Checkpoint, backend string, batch int) error {
	if !hostBackend(backend) {
		return nil
	}
	need := model.InferenceMemory(ck.Config, ck.Inputs, ck.Classes, batch)
	return sysmem.Check(need, fmt.Sprintf("the model %s (batch %d)", ck.Spec(), batch), "use a smaller --batch")
}

// checkBytes refuses to allocate the product of dims float32 values (bench
// shapes, simulated rows), saturating instead of overflowing.
func checkBytes(what string, dims ...int) error {
	n := 4.0
	for _, d := range dims {
		n *= float64(d)
	}
	if n > 1<<62 {
		n = 1 << 62
	}
	return sysmem.Check(int64(n), what, "use smaller sizes")
}

// checkBenchMemory bounds what bench allocates: the GEMM operands and
// result, the elementwise matrices, and the training step's model, data
// and activations.
func checkBenchMemory(o benchOptions) error {
	f := func(a, b int) float64 { return float64(a) * float64(b) }
	n := f(o.M, o.K) + f(o.K, o.N) + f(o.M, o.N) + 4*f(o.Rows, o.Cols) + 8*f(o.Batch, o.Inputs+o.Classes) + 4*f(o.Inputs, o.Classes)
	for _, h := range o.Spec.Hidden {
		n += 8*f(o.Batch, h) + 4*f(o.Inputs+o.Classes, h)
	}
	return checkBytes("the benchmark's matrices", int(min(n, 1<<60)))
}
