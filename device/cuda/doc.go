// Package cuda is a device.Driver for NVIDIA GPUs through the CUDA driver
// API (gorgonia.org/cu v0.9.6). It is the only code that calls CUDA, and it
// is compiled only with the build tag cuda:
//
//	go build -tags cuda ./cmd/gputrain
//
// In a default build (no tag) the package holds this documentation alone,
// so that `go doc ./device/cuda` explains it anywhere; the driver itself,
// New, Devices and Available, exist only with the tag.
//
// # Why the build tag
//
// cu calls cuInit(0) in its package init (cu.go) and, when that fails,
// prints "Error in initialization ..." to stdout and calls os.Exit(1).
// Verified on a machine with the driver library but no GPU: a program that
// imports cu exits with status 1 before main, with "NoDevice". So cu may not
// be in the default build, which must run anywhere.
//
// This package goes one step further (cuinit.go): it defines cuInit in the
// executable itself, which the linker prefers to libcuda.so.1's. That cuInit
// calls the driver's, records the result and tells cu all is well, so a
// cuda-built binary starts on a machine without a GPU too; Available, New and
// Devices then report the real cuInit result as an error wrapping ErrNoGPU.
// With that, `gputrain --backend auto` falls back to the CPU and the tests of
// this package skip with the reason. The binary still needs libcuda.so.1 to
// start at all (it is a NEEDED library): a machine without the NVIDIA driver
// cannot run it.
//
// # Linking
//
// Only cu's root package is imported: its cgo flags link -lcuda alone, and
// libcuda.so.1's symbols are unversioned, so a binary built against CUDA
// 11.8 headers runs on any newer driver. gorgonia.org/cu/blas (cuBLAS) and
// the CUDA runtime (cudart) are never linked; scripts/check-cuda-link.sh
// checks the binary's NEEDED libraries.
//
// # Kernels
//
// The kernels are kernels/*.cu compiled into kernels/gputrain.fatbin and
// embedded in the binary (kernels.Fatbin). New loads that image once as a
// module; functions are looked up by name on first launch and cached.
// Kernel arguments are 8-byte values; cu's Launch copies exactly 8 bytes
// through each argument pointer, so the driver points it at uint64s.
//
// # Testing
//
// The tests here need a GPU and skip, saying so, without one. On a machine
// without the NVIDIA driver library the test binary cannot start at all (see
// above), so scripts/gpu-check.sh builds the test binaries on a build
// machine (`gpu-check.sh build`) and runs them only on a GPU machine
// (`gpu-check.sh run`).
package cuda
