// Package device is the Backend for GPUs, in pure Go. It decides launch
// shapes and buffer sizes and which kernel of kernels/*.cu runs when, and it
// talks to the hardware only through a Driver: device/cuda on a real GPU
// (build tag cuda), device/emu on the CPU, which runs the very same kernel
// sources so that CI, without a GPU, tests this package end to end.
//
// Optional Driver capabilities, found by type assertion: SharedMemoryLimiter
// (more shared memory per block), AsyncCopier (pinned host memory, copies
// that do not wait, fences) and GraphCapturer (stream capture into a
// replayable graph). With the last two, Backend's model.StepOps and
// model.StepCapturer give a training step with no host synchronization,
// launched as one graph (steps.go, graph.go). WithSoftwareGraphs provides
// both for a synchronous driver such as the emulator.
package device
