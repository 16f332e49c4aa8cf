//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/kernels"
)

// defaultSharedLimit is the shared memory (static plus dynamic) a kernel may
// use without opting in with cuFuncSetAttribute.
const defaultSharedLimit = 48 << 10

// driver is a device.Driver on one GPU through the CUDA driver API.
//
// Threads: a CUDA context is current per OS thread, while a goroutine may
// move between threads at any call. The launches, asynchronous copies,
// events and graphs (stream.go) are each one cgo call that makes the
// context current first if it is not (cuCtxGetCurrent, a thread-local
// read): one cgo call stays on one thread. The other methods lock their
// goroutine to its thread for the call and make the context current there.
// A context may be current on several threads at once, so this is correct
// for any caller; the driver, like device.Driver, is still not safe for
// concurrent use.
//
// Ordering: all launches and copies go to one stream in issue order, so
// each sees the effects of the previous ones, as device.Driver requires.
//
// Per launch the host does: the shape checks, a map lookup of the cached
// function, and one cgo call that builds the argument pointers on the C
// stack and calls cuLaunchKernel; no allocation, no formatting (a
// description is built only for an error). gorgonia.org/cu's Launch, used
// before, malloc'ed and freed two C arrays per launch, and the driver
// formatted the launch's description and locked the thread each time
// (BenchmarkLaunchHostOverhead compares the two).
type driver struct {
	info   Info
	dev    cu.Device
	ctx    cu.CUContext
	mod    cu.Module
	stream cu.Stream
	start  cu.Event
	stop   cu.Event
	funcs  map[string]*kernel
	allocs map[device.Ptr]int64 // live allocations: base -> bytes
	closed bool
	last   lastOp // the last launch or copy, to name it when an asynchronous error surfaces

	// The C handles of ctx and stream, for the calls of stream.go.
	ctxH, streamH unsafe.Pointer
	// Stream capture (GraphCapturer): capFail is the first operation
	// refused during the capture under way.
	capturing bool
	capFail   error
	graphs    map[device.Graph]unsafe.Pointer // CUgraphExec
	nextGraph device.Graph
	// AsyncCopier: pinned allocations (base -> bytes) and the event pool
	// of the fences (fence f is events[f-1]).
	pinned     map[unsafe.Pointer]int
	events     []unsafe.Pointer
	freeEvents []int
}

// kernel is a function of the module, looked up once by name.
type kernel struct {
	fn        cu.Function
	fnH       unsafe.Pointer // its CUfunction
	maxShared int            // dynamic shared memory the function is currently allowed (without opting in: 48 KiB less its static)
}

// lastOp describes the last launch or copy issued, cheaply: it is recorded
// on every launch and formatted only for an error.
type lastOp struct {
	kind          string // a kernel name, "CopyDevice", "CopyOutAsync" or "graph"
	grid, block   device.Dim3
	shared, nargs int
	bytes         int64 // copies: their size; graph: its number
}

func (l lastOp) String() string {
	switch l.kind {
	case "":
		return "none"
	case "CopyDevice", "CopyOutAsync":
		return fmt.Sprintf("%s of %d bytes", l.kind, l.bytes)
	case "graph":
		return fmt.Sprintf("graph %d", l.bytes)
	}
	return launchString(l.kind, l.grid, l.block, l.shared, l.nargs)
}

var _ device.Driver = (*driver)(nil)

// New opens the GPU with the given ordinal (0 is the first; the order is the
// driver's, which CUDA_VISIBLE_DEVICES restricts), loads the embedded
// kernels and returns a driver for it. Close it when done.
func New(ordinal int) (device.Driver, error) {
	if err := Available(); err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: counting GPUs: %w", err)
	}
	if ordinal < 0 || ordinal >= n {
		return nil, fmt.Errorf("cuda: GPU %d does not exist (%d GPUs visible, ordinals 0..%d)", ordinal, n, n-1)
	}
	if len(kernels.Fatbin) == 0 {
		return nil, errors.New("cuda: the embedded kernels (kernels/gputrain.fatbin) are empty: run `make kernels` and rebuild")
	}
	info, err := deviceInfo(ordinal)
	if err != nil {
		return nil, err
	}
	d := &driver{
		info:   info,
		dev:    cu.Device(ordinal),
		funcs:  make(map[string]*kernel),
		allocs: make(map[device.Ptr]int64),
		graphs: make(map[device.Graph]unsafe.Pointer),
		pinned: make(map[unsafe.Pointer]int),
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The primary context is the one the CUDA runtime and other libraries
	// (PyTorch too) share on a device; retaining it rather than creating a
	// context also avoids cuCtxCreate, whose signature CUDA 13 changed.
	if d.ctx, err = d.dev.RetainPrimaryCtx(); err != nil {
		return nil, fmt.Errorf("cuda: retaining the primary context of GPU %d (%s): %w", ordinal, info.Name, err)
	}
	fail := func(what string, err error) (device.Driver, error) {
		d.release()
		return nil, fmt.Errorf("cuda: GPU %d (%s): %s: %w", ordinal, info.Name, what, err)
	}
	if err := cu.SetCurrentContext(d.ctx); err != nil {
		return fail("making the context current", err)
	}
	// cu.LoadData copies the image with C.CString, which copies every byte
	// (NULs included); the driver reads the fatbin's own header for its size.
	if d.mod, err = cu.LoadData(string(kernels.Fatbin)); err != nil {
		if errors.Is(err, cu.NoBinaryForGpu) || errors.Is(err, errUnsupportedPtx) || errors.Is(err, cu.InvalidPtx) {
			return fail(fmt.Sprintf("loading the kernels (compute capability %d.%d; the fatbin holds PTX for compute_70 and compute_80 and SASS for sm_80 and sm_90, and the driver must be new enough to JIT that PTX)",
				info.Major, info.Minor), err)
		}
		return fail("loading the kernels from the embedded fatbin", err)
	}
	if d.stream, err = cu.MakeStream(cu.DefaultStream); err != nil {
		return fail("creating a stream", err)
	}
	d.ctxH, d.streamH = handle(d.ctx), handle(d.stream)
	if d.start, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
		return fail("creating a timing event", err)
	}
	if d.stop, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
		return fail("creating a timing event", err)
	}
	return d, nil
}

var _ device.SharedMemoryLimiter = (*driver)(nil)

// MaxDynamicSharedBytes returns the GPU's opt-in limit of shared memory per
// block (CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: 227 KiB on an
// H100, 163 KiB on an A100), static included. Launch opts a kernel in with
// cuFuncSetAttribute when it asks for more than 48 KiB of dynamic shared
// memory, so device.Backend may plan up to this.
func (d *driver) MaxDynamicSharedBytes() int {
	return max(d.info.SharedPerBlockOptin, defaultSharedLimit)
}

// Info describes the GPU the driver runs on.
func (d *driver) Info() Info { return d.info }

func (d *driver) Name() string { return "cuda" }

// enter locks the calling goroutine to its OS thread and makes the context
// current there; call the returned function when done.
func (d *driver) enter(op string) (func(), error) {
	if d.closed {
		return nil, fmt.Errorf("cuda: %s: the driver is closed", op)
	}
	runtime.LockOSThread()
	if err := cu.SetCurrentContext(d.ctx); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("cuda: %s: making the context current: %w", op, err)
	}
	return runtime.UnlockOSThread, nil
}

func (d *driver) Alloc(bytes int64) (device.Ptr, error) {
	if bytes <= 0 {
		return 0, fmt.Errorf("cuda: Alloc of %d bytes: the size must be > 0", bytes)
	}
	if d.capturing {
		return 0, d.refuse("Alloc")
	}
	leave, err := d.enter("Alloc")
	if err != nil {
		return 0, err
	}
	defer leave()
	p, err := cu.MemAlloc(bytes)
	if err != nil {
		if isOOM(err) {
			free, total, ierr := cu.MemInfo()
			if ierr == nil {
				return 0, fmt.Errorf("cuda: Alloc: %w", &OutOfMemoryError{Requested: bytes, Free: free, Total: total})
			}
		}
		return 0, fmt.Errorf("cuda: Alloc of %s: %w", FormatBytes(bytes), err)
	}
	d.allocs[device.Ptr(p)] = bytes
	return device.Ptr(p), nil
}

func (d *driver) Free(p device.Ptr) error {
	if d.capturing {
		return d.refuse("Free")
	}
	size, ok := d.allocs[p]
	if !ok {
		return fmt.Errorf("cuda: Free of %#x: not an allocation of this driver (or already freed)", uint64(p))
	}
	leave, err := d.enter("Free")
	if err != nil {
		return err
	}
	defer leave()
	delete(d.allocs, p)
	if err := cu.MemFree(cu.DevicePtr(p)); err != nil {
		return fmt.Errorf("cuda: Free of %#x (%s): %w", uint64(p), FormatBytes(size), err)
	}
	return nil
}

// checkRange reports a copy that would run past the end of an allocation
// when p is the start of one. Pointers into the middle of an allocation
// (row offsets) are not checked: finding their allocation would cost a
// search on every copy.
func (d *driver) checkRange(op string, p device.Ptr, bytes int64) error {
	if p == 0 {
		return fmt.Errorf("cuda: %s of %d bytes: null device pointer", op, bytes)
	}
	if size, ok := d.allocs[p]; ok && bytes > size {
		return fmt.Errorf("cuda: %s of %d bytes at %#x: the allocation holds only %d bytes", op, bytes, uint64(p), size)
	}
	return nil
}

func (d *driver) CopyIn(dst device.Ptr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	if d.capturing {
		return d.refuse("CopyIn")
	}
	if err := d.checkRange("CopyIn", dst, int64(len(src))); err != nil {
		return err
	}
	leave, err := d.enter("CopyIn")
	if err != nil {
		return err
	}
	defer leave()
	// Issued on the stream to keep it ordered after earlier launches. The
	// stream is synchronized before returning: cgo forbids the device to
	// read Go memory after the call returns, and for small pageable copies
	// CUDA does not promise the bytes were staged by then.
	if err := cu.MemcpyHtoDAsync(cu.DevicePtr(dst), unsafe.Pointer(&src[0]), int64(len(src)), d.stream); err != nil {
		return fmt.Errorf("cuda: CopyIn of %d bytes to %#x: %w", len(src), uint64(dst), err)
	}
	if err := d.stream.Synchronize(); err != nil {
		return d.asyncError(fmt.Sprintf("CopyIn of %d bytes to %#x", len(src), uint64(dst)), err)
	}
	return nil
}

func (d *driver) CopyOut(dst []byte, src device.Ptr) error {
	if len(dst) == 0 {
		return nil
	}
	if d.capturing {
		return d.refuse("CopyOut")
	}
	if err := d.checkRange("CopyOut", src, int64(len(dst))); err != nil {
		return err
	}
	leave, err := d.enter("CopyOut")
	if err != nil {
		return err
	}
	defer leave()
	if err := cu.MemcpyDtoHAsync(unsafe.Pointer(&dst[0]), cu.DevicePtr(src), int64(len(dst)), d.stream); err != nil {
		return fmt.Errorf("cuda: CopyOut of %d bytes from %#x: %w", len(dst), uint64(src), err)
	}
	if err := d.stream.Synchronize(); err != nil {
		return d.asyncError(fmt.Sprintf("CopyOut of %d bytes from %#x", len(dst), uint64(src)), err)
	}
	return nil
}

func (d *driver) CopyDevice(dst, src device.Ptr, bytes int64) error {
	if bytes == 0 {
		return nil
	}
	if bytes < 0 {
		return fmt.Errorf("cuda: CopyDevice of %d bytes: the size must be >= 0", bytes)
	}
	if err := d.checkRange("CopyDevice (source)", src, bytes); err != nil {
		return err
	}
	if err := d.checkRange("CopyDevice (destination)", dst, bytes); err != nil {
		return err
	}
	leave, err := d.enter("CopyDevice")
	if err != nil {
		return err
	}
	defer leave()
	if err := cu.MemcpyDtoDAsync(cu.DevicePtr(dst), cu.DevicePtr(src), bytes, d.stream); err != nil {
		return fmt.Errorf("cuda: CopyDevice of %d bytes from %#x to %#x: %w", bytes, uint64(src), uint64(dst), err)
	}
	d.last = lastOp{kind: "CopyDevice", bytes: bytes}
	return nil
}

// function returns the kernel named name, looking it up in the module the
// first time.
func (d *driver) function(name string) (*kernel, error) {
	if k, ok := d.funcs[name]; ok {
		return k, nil
	}
	fn, err := d.mod.Function(name)
	if err != nil {
		if errors.Is(err, cu.NotFound) {
			return nil, fmt.Errorf("cuda: kernel %q is not in the embedded fatbin (kernels/gputrain.fatbin; rebuild it with `make kernels`): %w", name, err)
		}
		return nil, fmt.Errorf("cuda: looking up kernel %q: %w", name, err)
	}
	// Without opting in, static plus dynamic shared memory must stay within
	// 48 KiB, so a kernel with static shared memory needs the opt-in for
	// less dynamic memory than that.
	static, err := fn.Attribute(cu.SharedSizeBytes)
	if err != nil {
		return nil, fmt.Errorf("cuda: reading the static shared memory of kernel %q: %w", name, err)
	}
	k := &kernel{fn: fn, fnH: handle(fn), maxShared: max(0, defaultSharedLimit-static)}
	d.funcs[name] = k
	return k, nil
}

func launchString(name string, grid, block device.Dim3, shared, nargs int) string {
	return fmt.Sprintf("kernel %s grid (%d,%d,%d) block (%d,%d,%d) shared %d B, %d args",
		name, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, shared, nargs)
}

// one turns the unset (zero) Y and Z of a Dim3 into 1.
func one(v int) int {
	if v == 0 {
		return 1
	}
	return v
}

func (d *driver) Launch(name string, grid, block device.Dim3, sharedBytes int, args ...uint64) error {
	grid.Y, grid.Z = one(grid.Y), one(grid.Z)
	block.Y, block.Z = one(block.Y), one(block.Z)
	what := func() string { return launchString(name, grid, block, sharedBytes, len(args)) }
	switch {
	case d.closed:
		return fmt.Errorf("cuda: launch of %s: the driver is closed", name)
	case grid.X <= 0 || grid.Y < 0 || grid.Z < 0 || block.X <= 0 || block.Y < 0 || block.Z < 0:
		return fmt.Errorf("cuda: launch of %s: grid and block sizes must be positive", what())
	case block.X*block.Y*block.Z > 1024:
		return fmt.Errorf("cuda: launch of %s: %d threads per block, CUDA allows at most 1024", what(), block.X*block.Y*block.Z)
	case grid.Y > 65535 || grid.Z > 65535 || grid.X > 1<<31-1:
		return fmt.Errorf("cuda: launch of %s: grid too large (at most 2^31-1 x 65535 x 65535 blocks)", what())
	case sharedBytes < 0:
		return fmt.Errorf("cuda: launch of %s: negative shared memory size", what())
	case len(args) > maxLaunchArgs:
		return fmt.Errorf("cuda: launch of %s: more than %d arguments", what(), maxLaunchArgs)
	}
	k, ok := d.funcs[name]
	if !ok || sharedBytes > k.maxShared {
		// The first launch of a kernel, or one that needs more shared
		// memory than it was allowed: calls that need the context.
		if err := d.prepare(name, &k, sharedBytes, what); err != nil {
			return err
		}
	}
	if err := d.launchRaw(k.fnH, grid, block, sharedBytes, args); err != nil {
		return fmt.Errorf("cuda: launch of %s: %w%s", what(), err, d.limits(k))
	}
	d.last = lastOp{kind: name, grid: grid, block: block, shared: sharedBytes, nargs: len(args)}
	return nil
}

// prepare looks the kernel up (first launch) and raises its dynamic shared
// memory limit when a launch needs more.
func (d *driver) prepare(name string, k **kernel, sharedBytes int, what func() string) error {
	leave, err := d.enter("Launch")
	if err != nil {
		return err
	}
	defer leave()
	if *k, err = d.function(name); err != nil {
		return err
	}
	if sharedBytes > (*k).maxShared {
		if err := setMaxDynamicShared((*k).fn, sharedBytes); err != nil {
			return fmt.Errorf("cuda: launch of %s: allowing %d bytes of dynamic shared memory (the GPU allows at most %d per block): %w",
				what(), sharedBytes, d.info.SharedPerBlockOptin, err)
		}
		(*k).maxShared = sharedBytes
	}
	return nil
}

// limits describes a kernel's resource use, to explain a failed launch.
func (d *driver) limits(k *kernel) string {
	maxThreads, err1 := k.fn.Attribute(cu.FnMaxThreadsPerBlock)
	regs, err2 := k.fn.Attribute(cu.NumRegs)
	static, err3 := k.fn.Attribute(cu.SharedSizeBytes)
	if err1 != nil || err2 != nil || err3 != nil {
		return ""
	}
	return fmt.Sprintf(" (this kernel: at most %d threads per block, %d registers per thread, %d B static shared memory; the GPU: %d B shared per block with opt-in)",
		maxThreads, regs, static, d.info.SharedPerBlockOptin)
}

// asyncError explains an error that surfaced at a synchronization: it
// belongs to some earlier launch, most likely the last one.
func (d *driver) asyncError(op string, err error) error {
	msg := fmt.Sprintf("cuda: %s: an earlier operation failed (last launch: %s)", op, d.last)
	if errors.Is(err, cu.IllegalAddress) || errors.Is(err, cu.LaunchFailed) || errors.Is(err, cu.MisalignedAddress) ||
		errors.Is(err, cu.IllegalInstruction) || errors.Is(err, cu.HardwareStackError) || errors.Is(err, cu.Assert) {
		msg += "; the CUDA context is now unusable, restart the process"
	}
	return fmt.Errorf("%s: %w", msg, err)
}

func (d *driver) Synchronize() error {
	if d.capturing {
		return d.refuse("Synchronize")
	}
	leave, err := d.enter("Synchronize")
	if err != nil {
		return err
	}
	defer leave()
	if err := d.stream.Synchronize(); err != nil {
		return d.asyncError("Synchronize", err)
	}
	return nil
}

// Time records an event on the stream before and after fn's work and
// returns the device time between them. fn runs on the calling goroutine,
// so it may call the driver's methods.
func (d *driver) Time(fn func() error) (time.Duration, error) {
	if d.capturing {
		return 0, d.refuse("Time")
	}
	if err := d.record(d.start); err != nil {
		return 0, err
	}
	if err := fn(); err != nil {
		return 0, err
	}
	if err := d.record(d.stop); err != nil {
		return 0, err
	}
	leave, err := d.enter("Time")
	if err != nil {
		return 0, err
	}
	defer leave()
	if err := d.stop.Synchronize(); err != nil {
		return 0, d.asyncError("Time", err)
	}
	ms, err := d.start.Elapsed(d.stop)
	if err != nil {
		return 0, fmt.Errorf("cuda: Time: reading the events: %w", err)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

func (d *driver) record(ev cu.Event) error {
	leave, err := d.enter("Time")
	if err != nil {
		return err
	}
	defer leave()
	if err := ev.Record(d.stream); err != nil {
		return fmt.Errorf("cuda: Time: recording an event: %w", err)
	}
	return nil
}

func (d *driver) MemInfo() (free, total int64, err error) {
	leave, err := d.enter("MemInfo")
	if err != nil {
		return 0, 0, err
	}
	defer leave()
	free, total, err = cu.MemInfo()
	if err != nil {
		return 0, 0, fmt.Errorf("cuda: MemInfo: %w", err)
	}
	return free, total, nil
}

// Close waits for outstanding work, frees every allocation, the module, the
// stream and the events, and releases the primary context. Closing twice
// is not an error.
func (d *driver) Close() error {
	if d.closed {
		return nil
	}
	leave, err := d.enter("Close")
	if err != nil {
		return err
	}
	var errs []error
	if err := d.stream.Synchronize(); err != nil {
		errs = append(errs, d.asyncError("Close", err))
	}
	for p, n := range d.allocs {
		if err := cu.MemFree(cu.DevicePtr(p)); err != nil {
			errs = append(errs, fmt.Errorf("cuda: Close: freeing %s at %#x: %w", FormatBytes(n), uint64(p), err))
		}
	}
	clear(d.allocs)
	if err := d.releaseStreamObjects(); err != nil {
		errs = append(errs, err)
	}
	leave()
	if err := d.release(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// release destroys what New created, in reverse order, and releases the
// primary context; the handles that are still zero were never created.
func (d *driver) release() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d.closed = true
	var errs []error
	note := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("cuda: Close: %s: %w", what, err))
		}
	}
	if d.ctx == (cu.CUContext{}) {
		return nil
	}
	note("making the context current", cu.SetCurrentContext(d.ctx))
	if d.stop != (cu.Event{}) {
		note("destroying an event", cu.DestroyEvent(&d.stop))
	}
	if d.start != (cu.Event{}) {
		note("destroying an event", cu.DestroyEvent(&d.start))
	}
	if d.stream != (cu.Stream{}) {
		note("destroying the stream", d.stream.Destroy())
	}
	if d.mod != (cu.Module{}) {
		note("unloading the kernels", d.mod.Unload())
		d.mod = cu.Module{}
	}
	clear(d.funcs)
	note("unsetting the context", cu.SetCurrentContext(cu.CUContext{}))
	note("releasing the primary context", d.dev.ReleasePrimaryCtx())
	d.ctx = cu.CUContext{}
	return errors.Join(errs...)
}
