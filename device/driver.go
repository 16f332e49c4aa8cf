package device

import (
	"errors"
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

// ErrUnsupported is wrapped by the error of an optional Driver capability
// that a driver (or a wrapper around one) turns out not to have.
var ErrUnsupported = errors.New("not supported by this driver")

// Fence marks a point in a driver's stream of work (a CUDA event):
// everything issued before it is done once it has passed.
type Fence uint64

// AsyncCopier is an optional Driver capability: copies to the host that do
// not wait for the device, into host memory the driver allocates (pinned,
// so the device writes it directly), and fences that tell when they have
// landed. Backend uses it to read a training step's losses back without a
// synchronization; without it (or when AllocHost fails with ErrUnsupported)
// it falls back to CopyOut.
type AsyncCopier interface {
	// AllocHost returns bytes of host memory that CopyOutAsync may write.
	AllocHost(bytes int) ([]byte, error)
	// FreeHost releases memory AllocHost returned.
	FreeHost(buf []byte) error
	// CopyOutAsync issues a copy of len(dst) bytes at src into dst, which
	// must lie in memory from AllocHost, after all work issued so far; dst
	// holds them once a fence recorded after the call has passed.
	CopyOutAsync(dst []byte, src Ptr) error
	// RecordFence marks the current end of the issued work.
	RecordFence() (Fence, error)
	// FenceDone reports, without waiting, whether f has passed.
	FenceDone(f Fence) (bool, error)
	// WaitFence waits until f has passed (an asynchronous error of the
	// work before it is returned here).
	WaitFence(f Fence) error
	// ReleaseFence lets the driver reuse f.
	ReleaseFence(f Fence) error
}

// Graph is a recorded sequence of launches and device copies that a
// GraphCapturer replays with one launch (a CUDA graph).
type Graph uint64

// GraphCapturer is an optional Driver capability: stream capture. Between
// BeginCapture and EndCapture, Launch and CopyDevice are recorded, not run,
// with their arguments as given; everything that would wait for the device
// or touch host memory (CopyIn, CopyOut, Synchronize, Alloc, Free, Time) is
// refused and makes EndCapture fail. LaunchGraph then runs the recording,
// in order, as often as wanted: a graph stays valid as long as the memory
// it names, and it sees what that memory holds when it runs, so values that
// change from one replay to the next must live in device memory.
// BeginCapture returns an error wrapping ErrUnsupported where the driver
// has no graphs; Backend then launches kernel by kernel.
type GraphCapturer interface {
	BeginCapture() error
	EndCapture() (Graph, error)
	LaunchGraph(g Graph) error
	FreeGraph(g Graph) error
}
