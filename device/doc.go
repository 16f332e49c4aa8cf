// Package device is the Backend for GPUs, in pure Go. It decides launch
// shapes and buffer sizes and which kernel of kernels/*.cu runs when, and it
// talks to the hardware only through a Driver: device/cuda on a real GPU
// (build tag cuda), device/emu on the CPU, which runs the very same kernel
// sources so that CI, without a GPU, tests this package end to end.
package device
