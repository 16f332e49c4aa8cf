package device

import (
	"math"
	"time"
)

// Ptr is an address in a Driver's device memory. 0 is never a valid allocation.
type Ptr uint64

// Dim3 is a CUDA grid or block shape.
type Dim3 struct{ X, Y, Z int }

// Driver is what device.Backend needs from a GPU runtime: memory, copies,
// launching a kernel of kernels/*.cu by its extern "C" name, and timing.
// device/cuda implements it with gorgonia.org/cu; device/emu runs the same
// kernel sources on the CPU.
//
// Kernel arguments are 8-byte values (see ARCHITECTURE.md: cu copies exactly
// 8 bytes per argument): every kernel parameter in kernels/*.cu is a pointer,
// a `long long` or a `double`. Build them with PtrArg, IntArg and FloatArg.
type Driver interface {
	// Name identifies the driver ("emu", "cuda").
	Name() string
	// Alloc returns bytes of device memory (contents unspecified).
	Alloc(bytes int64) (Ptr, error)
	Free(p Ptr) error
	// CopyIn copies host bytes to device memory at dst.
	CopyIn(dst Ptr, src []byte) error
	// CopyOut copies device memory at src into the host bytes dst.
	CopyOut(dst []byte, src Ptr) error
	// CopyDevice copies bytes within device memory.
	CopyDevice(dst, src Ptr, bytes int64) error
	// Launch runs the kernel named kernel with the given grid, block, dynamic
	// shared memory in bytes, and arguments (one 8-byte value per parameter).
	// Launches are ordered: each sees the effects of the previous ones.
	Launch(kernel string, grid, block Dim3, sharedBytes int, args ...uint64) error
	// Synchronize waits for every launch and copy issued so far and returns
	// the first asynchronous error.
	Synchronize() error
	// Time runs fn (which launches work) and returns the device time it took,
	// measured with events where the driver has them.
	Time(fn func() error) (time.Duration, error)
	// MemInfo returns free and total device memory in bytes.
	MemInfo() (free, total int64, err error)
	// Close releases the context and all memory.
	Close() error
}

// PtrArg passes a device pointer as a kernel argument.
func PtrArg(p Ptr) uint64 { return uint64(p) }

// IntArg passes a `long long` kernel argument.
func IntArg(v int64) uint64 { return uint64(v) }

// FloatArg passes a `double` kernel argument.
func FloatArg(v float64) uint64 { return math.Float64bits(v) }
