//go:build cuda

package cuda

/*
#include <cuda.h>
#include <dlfcn.h>

// gorgonia.org/cu calls cuInit(0) in its package init and, when that fails
// (no GPU, no driver loaded, CUDA_VISIBLE_DEVICES empty), prints a line and
// calls os.Exit(1): a binary that merely links cu cannot start on a machine
// without a GPU, not even to train on the CPU or to skip a test.
//
// This definition of cuInit is linked into the executable itself, so the
// static linker binds cu's call to it rather than to libcuda.so.1 (a
// definition in an object file wins over one in a shared library). It calls
// the driver's cuInit (the next definition in the search order, found with
// dlsym(RTLD_NEXT)), remembers the result and reports success to cu, whose
// init then returns normally. Available() reports the real result, and New
// and Devices refuse to touch the driver when it failed.
//
// dlsym lives in libc since glibc 2.34, so no extra library is linked.
static CUresult gputrain_init_result = CUDA_ERROR_NOT_INITIALIZED;
static int gputrain_init_called = 0;

CUresult CUDAAPI cuInit(unsigned int flags) {
	typedef CUresult (*init_fn)(unsigned int);
	init_fn real = (init_fn)dlsym(RTLD_NEXT, "cuInit");
	if (real == NULL) {
		// No later definition: libcuda.so.1 was not loaded. Cannot happen
		// while the binary links it, but report it rather than crash.
		gputrain_init_result = CUDA_ERROR_SHARED_OBJECT_INIT_FAILED;
	} else {
		gputrain_init_result = real(flags);
	}
	gputrain_init_called = 1;
	return CUDA_SUCCESS;
}

static CUresult gputrain_cu_init_result(void) { return gputrain_init_result; }
static int gputrain_cu_init_called(void) { return gputrain_init_called; }

// cu does not wrap cuFuncSetAttribute, needed to launch with more than 48 KiB
// of dynamic shared memory.
static CUresult gputrain_set_max_dynamic_shared(void *fn, int bytes) {
	return cuFuncSetAttribute((CUfunction)fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// ErrNoGPU is wrapped by every error that means "there is no usable GPU
// here" (cuInit failed), as opposed to a failure on a working GPU.
var ErrNoGPU = errors.New("no usable NVIDIA GPU")

// Available reports whether the CUDA driver initialized: nil when a GPU can
// be used, otherwise an error wrapping ErrNoGPU that says why (the driver's
// cuInit result, e.g. NoDevice).
func Available() error {
	// Importing cu (above) guarantees its init, which calls cuInit, ran
	// before this package's code; the check guards against a future cu
	// that initializes lazily.
	if C.gputrain_cu_init_called() == 0 {
		C.cuInit(0)
	}
	r := C.gputrain_cu_init_result()
	if r == C.CUDA_SUCCESS {
		return nil
	}
	if r == C.CUDA_ERROR_SHARED_OBJECT_INIT_FAILED {
		return fmt.Errorf("%w: libcuda.so.1 has no cuInit", ErrNoGPU)
	}
	// cu's error values stringify CUresult codes (NoDevice, ...); reuse
	// them through a call that returns the code unchanged.
	return fmt.Errorf("%w: cuInit failed: %v (check nvidia-smi, /dev/nvidia0, CUDA_VISIBLE_DEVICES)", ErrNoGPU, cuResultError(int(r)))
}

// Driver constants that cu v0.9.6 predates.
var (
	errUnsupportedPtx = cuResultError(int(C.CUDA_ERROR_UNSUPPORTED_PTX_VERSION))
	attrSharedOptin   = cu.DeviceAttribute(C.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
)

// setMaxDynamicShared raises fn's dynamic shared memory limit to bytes.
// cu.Function holds only the CUfunction handle; read it through unsafe
// because cu keeps the field unexported.
func setMaxDynamicShared(fn cu.Function, bytes int) error {
	h := *(*unsafe.Pointer)(unsafe.Pointer(&fn))
	return cuResultError(int(C.gputrain_set_max_dynamic_shared(h, C.int(bytes))))
}
