// Package model holds gputrain's energy-based models, the ten losses of
// LeCun et al.'s "A Tutorial on Energy-Based Learning", optimizers and the
// training loop. It knows nothing about gonum or CUDA: it computes through a
// Backend, an interface it defines itself, which cpu.Backend (the reference)
// and device.Backend (GPU kernels) implement.
//
// The training loop (Trainer) issues a step without waiting for the
// backend: on a backend with the optional StepOps, the epoch's order and
// per-step scalars live on the backend, one launch updates every parameter
// and checks the new weights, the losses come back asynchronously every few
// steps, and where the backend can (StepCapturer: a CUDA graph) the whole
// step is captured once and replayed with one launch. StepMode selects the
// path; every path trains bitwise the same weights (pipeline.go, steps.go).
package model
