// Package cpu is gputrain's reference compute backend: model.Backend in pure
// Go on gonum. Every other backend is tested against it, so it favours
// exactness over speed where the two conflict: matrices are float32 (the
// storage every backend shares) but reductions (log-sum-exp, column sums,
// per-row losses) accumulate in float64. It is also the CPU fallback users
// train on, so the hot paths are still fast. GEMM is a packed, blocked
// GotoBLAS-style loop around a 6x16 AVX2+FMA micro-kernel in Go assembly
// (kernel_amd64.s), 3-10x faster than gonum's Sgemm on the MNIST shapes; on
// other CPUs, other architectures or with -tags purego it is gonum's Sgemm.
// The row-wise operations (EnergyLoss, elementwise ops, optimizer steps) and
// the GEMM split their work over a fixed number of goroutines.
//
// Results are bitwise reproducible run to run: every output element is
// computed by exactly one goroutine, in an order that depends only on the
// shapes, never on scheduling.
//
// Matrices are *Matrix (row-major []float32) and integer vectors *IntVector
// ([]int32). Handles are checked on every call: a handle of another backend,
// a freed handle or a closed backend gives an error, never a panic.
package cpu
