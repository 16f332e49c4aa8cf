//go:build cgo

package emu

/*
#cgo CXXFLAGS: -O2 -std=c++17
#include <stdlib.h>
#include <string.h>
#include "bridge.h"

#include <unistd.h>

// The Go side passes its own buffers as pointers (never as integers, which
// would not keep them in place) and device memory as addresses.
static void gt_emu_copy(uintptr_t dst, uintptr_t src, size_t n) { memmove((void*)dst, (const void*)src, n); }
static void gt_emu_copy_in(uintptr_t dst, const void* src, size_t n) { memcpy((void*)dst, src, n); }
static void gt_emu_copy_out(void* dst, uintptr_t src, size_t n) { memcpy(dst, (const void*)src, n); }
static long long gt_emu_phys(void) { return (long long)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE); }
static uintptr_t gt_emu_alloc(size_t n) {
	void* p = NULL;
	if (posix_memalign(&p, 256, n) != 0) return 0;
	memset(p, 0xff, n);
	return (uintptr_t)p;
}
static void gt_emu_free(uintptr_t p) { free((void*)p); }
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gputrain/gputrain/device"
)

// Limits of a CUDA launch (compute capability 7.0 and later).
const (
	maxThreadsPerBlock = 1024
	maxGridX           = 1<<31 - 1
	maxGridYZ          = 65535
)

// launchMu serializes launches of every Driver of the process: the static
// stand-ins for __shared__ variables and the fiber pool are process-wide.
var launchMu sync.Mutex

type kernelInfo struct {
	index        int
	nparams      int
	staticShared int64  // -1: unknown
	unit         string // <unit> of its source's static shared sections
	body         [2]int // first and last line of its body in the source
}

var kernels = sync.OnceValue(func() map[string]kernelInfo {
	n := int(C.gt_emu_kernel_count())
	m := make(map[string]kernelInfo, n)
	for i := 0; i < n; i++ {
		m[C.GoString(C.gt_emu_kernel_name(C.int(i)))] = kernelInfo{
			index:        i,
			nparams:      int(C.gt_emu_kernel_nparams(C.int(i))),
			staticShared: int64(C.gt_emu_kernel_static_shared(C.int(i))),
			unit:         C.GoString(C.gt_emu_kernel_unit(C.int(i))),
			body:         [2]int{int(C.gt_emu_kernel_body(C.int(i), 0)), int(C.gt_emu_kernel_body(C.int(i), 1))},
		}
	}
	return m
})

// Kernels returns the names of the kernels compiled into the emulator,
// sorted: those of kernels/*.cu and the emulator's own test kernels.
func Kernels() []string {
	var names []string
	for name := range kernels() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Driver is the emulated device. Its methods are safe for concurrent use.
type Driver struct {
	opts    Options
	checked bool // launches run the checked build

	mu     sync.Mutex
	closed bool
	rng    uint64
	allocs map[device.Ptr]int64 // start -> size
	starts []device.Ptr         // sorted keys of allocs
	used   int64
	// freed holds, in a checked driver, the most recent frees, oldest
	// first, whose host memory is not released yet: the allocator cannot
	// hand it out again, so an access through a stale pointer lands in a
	// freed range and is reported as such.
	freed      []span
	freedBytes int64
}

type span struct {
	p    device.Ptr
	size int64
}

// The quarantine of a checked driver: at most this many frees, this many
// bytes.
const (
	quarantineCount = 1024
	quarantineBytes = 64 << 20
)

var _ device.Driver = (*Driver)(nil)

// New returns an emulated device.
func New(opts Options) (*Driver, error) {
	if opts.Mode != Deterministic && opts.Mode != Permuted {
		return nil, fmt.Errorf("emu: unknown mode %d", int(opts.Mode))
	}
	if opts.SharedLimit < 0 || opts.MemoryLimit < 0 {
		return nil, fmt.Errorf("emu: negative limit (SharedLimit %d, MemoryLimit %d)", opts.SharedLimit, opts.MemoryLimit)
	}
	if opts.SharedLimit == 0 {
		opts.SharedLimit = DefaultSharedLimit
	}
	checked, err := resolveChecks(opts.Checks)
	if err != nil {
		return nil, err
	}
	if testing.Testing() {
		// A test binary must run the kernels on disk (see checkSources).
		if err := sourcesErr(); err != nil {
			return nil, err
		}
	}
	return &Driver{opts: opts, checked: checked, rng: opts.Seed, allocs: map[device.Ptr]int64{}}, nil
}

// ChecksAvailable reports whether this build has the checked kernels: not
// in a -race build, whose race runtime defines the instrumentation
// callbacks the checked build implements itself (flags_race.go).
func ChecksAvailable() bool { return checksAvailable }

// resolveChecks turns Options.Checks into whether launches are checked.
func resolveChecks(c Checks) (bool, error) {
	if !checksAvailable {
		switch c {
		case ChecksOn:
			return false, errors.New("emu: Checks: ChecksOn, but a -race build has no checked kernels (the race runtime defines the instrumentation callbacks they need); test without -race for the race detector of shared memory")
		case ChecksAuto:
			if os.Getenv("GPUTRAIN_EMU_CHECKS") == "1" {
				return false, errors.New("emu: GPUTRAIN_EMU_CHECKS=1, but a -race build has no checked kernels; test without -race")
			}
			return false, nil
		}
	}
	switch c {
	case ChecksOn:
		return true, nil
	case ChecksOff:
		return false, nil
	case ChecksAuto:
		switch v := os.Getenv("GPUTRAIN_EMU_CHECKS"); v {
		case "":
			return testing.Testing(), nil
		case "1":
			return true, nil
		case "0":
			return false, nil
		default:
			return false, fmt.Errorf("emu: GPUTRAIN_EMU_CHECKS=%q: want 1 (checked kernels) or 0 (plain)", v)
		}
	}
	return false, fmt.Errorf("emu: unknown Checks value %d", int(c))
}

// Checked reports whether the driver's launches run the checked build of
// the kernels.
func (d *Driver) Checked() bool { return d.checked }

var _ device.SharedMemoryLimiter = (*Driver)(nil)

// MaxDynamicSharedBytes returns Options.SharedLimit: the static plus dynamic
// shared memory a block may use, which Launch enforces. device.Backend sizes
// its shared-memory plans by it, as it does by an opted-in GPU's limit.
func (d *Driver) MaxDynamicSharedBytes() int { return d.opts.SharedLimit }

var errClosed = errors.New("emu: driver is closed")

// Name returns "emu".
func (d *Driver) Name() string { return "emu" }

// Alloc returns host memory aligned to 256 bytes, as cuMemAlloc does, filled
// with 0xff bytes (NaN as float32, -1 as int32) so that reads of memory
// never written show.
func (d *Driver) Alloc(bytes int64) (device.Ptr, error) {
	if bytes <= 0 {
		return 0, fmt.Errorf("emu: Alloc of %d bytes: the size must be positive", bytes)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, errClosed
	}
	if total := d.total(); bytes > total-d.used {
		return 0, fmt.Errorf("emu: Alloc of %d bytes: out of device memory (%d of %d bytes in use)", bytes, d.used, total)
	}
	p := device.Ptr(C.gt_emu_alloc(C.size_t(bytes)))
	if p == 0 {
		return 0, fmt.Errorf("emu: Alloc of %d bytes: host allocation failed", bytes)
	}
	d.allocs[p] = bytes
	i := sort.Search(len(d.starts), func(i int) bool { return d.starts[i] > p })
	d.starts = append(d.starts, 0)
	copy(d.starts[i+1:], d.starts[i:])
	d.starts[i] = p
	d.used += bytes
	return p, nil
}

func (d *Driver) total() int64 {
	if d.opts.MemoryLimit > 0 {
		return d.opts.MemoryLimit
	}
	return physicalMemory()
}

// Free releases an allocation; p must be a pointer Alloc returned.
func (d *Driver) Free(p device.Ptr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	size, ok := d.allocs[p]
	if !ok {
		return fmt.Errorf("emu: Free of %#x: not an allocation of this device (freed twice, or an interior pointer?)", uint64(p))
	}
	delete(d.allocs, p)
	i := sort.Search(len(d.starts), func(i int) bool { return d.starts[i] >= p })
	d.starts = append(d.starts[:i], d.starts[i+1:]...)
	d.used -= size
	if !d.checked {
		C.gt_emu_free(C.uintptr_t(p))
		return nil
	}
	d.freed = append(d.freed, span{p, size})
	d.freedBytes += size
	for len(d.freed) > quarantineCount || d.freedBytes > quarantineBytes {
		C.gt_emu_free(C.uintptr_t(d.freed[0].p))
		d.freedBytes -= d.freed[0].size
		d.freed = d.freed[1:]
	}
	return nil
}

// spans returns the live and quarantined allocations, sorted, for a checked
// launch. The caller holds d.mu.
func (d *Driver) spans() []C.gt_emu_span {
	out := make([]C.gt_emu_span, 0, len(d.starts)+len(d.freed)+1) // +1: never empty
	for _, p := range d.starts {
		out = append(out, C.gt_emu_span{start: C.uint64_t(p), size: C.uint64_t(d.allocs[p])})
	}
	for _, f := range d.freed {
		out = append(out, C.gt_emu_span{start: C.uint64_t(f.p), size: C.uint64_t(f.size), freed: 1})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	return out
}

// check returns an error unless [p, p+n) lies inside one allocation.
// The caller holds d.mu.
func (d *Driver) check(op string, p device.Ptr, n int64) error {
	if d.closed {
		return errClosed
	}
	if n < 0 {
		return fmt.Errorf("emu: %s of %d bytes: negative size", op, n)
	}
	i := sort.Search(len(d.starts), func(i int) bool { return d.starts[i] > p }) - 1
	if i < 0 || uint64(p) >= uint64(d.starts[i])+uint64(d.allocs[d.starts[i]]) {
		return fmt.Errorf("emu: %s of %d bytes at %#x: not inside any allocation", op, n, uint64(p))
	}
	start, size := d.starts[i], d.allocs[d.starts[i]]
	if off := int64(p - start); n > size-off {
		return fmt.Errorf("emu: %s of %d bytes at offset %d of a %d-byte allocation: out of bounds", op, n, off, size)
	}
	return nil
}

// CopyIn copies src to device memory at dst.
func (d *Driver) CopyIn(dst device.Ptr, src []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check("CopyIn", dst, int64(len(src))); err != nil {
		return err
	}
	if len(src) > 0 {
		C.gt_emu_copy_in(C.uintptr_t(dst), unsafe.Pointer(&src[0]), C.size_t(len(src)))
	}
	return nil
}

// CopyOut copies device memory at src to dst.
func (d *Driver) CopyOut(dst []byte, src device.Ptr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check("CopyOut", src, int64(len(dst))); err != nil {
		return err
	}
	if len(dst) > 0 {
		C.gt_emu_copy_out(unsafe.Pointer(&dst[0]), C.uintptr_t(src), C.size_t(len(dst)))
	}
	return nil
}

// CopyDevice copies bytes from src to dst; the ranges may overlap.
func (d *Driver) CopyDevice(dst, src device.Ptr, bytes int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check("CopyDevice source", src, bytes); err != nil {
		return err
	}
	if err := d.check("CopyDevice destination", dst, bytes); err != nil {
		return err
	}
	C.gt_emu_copy(C.uintptr_t(dst), C.uintptr_t(src), C.size_t(bytes))
	return nil
}

// Launch runs the kernel synchronously, block after block.
func (d *Driver) Launch(kernel string, grid, block device.Dim3, sharedBytes int, args ...uint64) error {
	k, ok := kernels()[kernel]
	if !ok {
		return fmt.Errorf("emu: Launch: unknown kernel %q (not an extern \"C\" __global__ function of kernels/*.cu, or the emulator's registry is stale: go generate ./device/emu)", kernel)
	}
	if len(args) != k.nparams {
		return fmt.Errorf("emu: Launch %s: %d arguments for %d parameters", kernel, len(args), k.nparams)
	}
	if err := checkShape(kernel, grid, block); err != nil {
		return err
	}
	if sharedBytes < 0 {
		return fmt.Errorf("emu: Launch %s: negative dynamic shared memory %d", kernel, sharedBytes)
	}
	if total := k.staticShared + int64(sharedBytes); total > int64(d.opts.SharedLimit) {
		return fmt.Errorf("emu: Launch %s: %d bytes of shared memory (%d static + %d dynamic) exceed the limit of %d",
			kernel, total, k.staticShared, sharedBytes, d.opts.SharedLimit)
	}

	shm, err := launchRanges(k, d.checked)
	if err != nil && d.checked {
		return fmt.Errorf("emu: Launch %s: the checked build needs its static shared sections: %v", kernel, err)
	}

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errClosed
	}
	rng := d.rng
	var spans []C.gt_emu_span
	if d.checked {
		spans = d.spans()
	}
	d.mu.Unlock()

	cgrid := [3]C.longlong{C.longlong(grid.X), C.longlong(grid.Y), C.longlong(grid.Z)}
	cblock := [3]C.longlong{C.longlong(block.X), C.longlong(block.Y), C.longlong(block.Z)}
	cargs := make([]C.uint64_t, len(args)+1) // +1: never a nil pointer
	for i, a := range args {
		cargs[i] = C.uint64_t(a)
	}
	rep := new(C.gt_emu_report)
	permuted, checked := C.int(0), C.int(0)
	if d.opts.Mode == Permuted {
		permuted = 1
	}
	var cspans *C.gt_emu_span
	if d.checked {
		checked = 1
		if hasDWARF() {
			checked = 2
		}
		spans = append(spans, C.gt_emu_span{}) // never empty; not counted
		cspans = &spans[0]
	}
	crng := C.uint64_t(rng)

	launchMu.Lock()
	rc := C.gt_emu_launch(C.int(k.index), &cgrid[0], &cblock[0], C.longlong(sharedBytes), &cargs[0],
		&shm.poison[0], C.int(len(shm.poison)-1), shm.unit, permuted, checked, cspans, C.int(max(len(spans)-1, 0)), &crng, rep)
	launchMu.Unlock()

	d.mu.Lock()
	d.rng = uint64(crng)
	d.mu.Unlock()
	if rc != 0 {
		return fmt.Errorf("emu: %s", describe(C.GoString(&rep.msg[0]), [2]uint64{uint64(rep.pc[0]), uint64(rep.pc[1])}, uint64(rep.addr), k, d.checked))
	}
	return nil
}

// compiledInputs returns the inputs of the generated units compiled into
// this binary: path -> SHA-256 (hex).
func compiledInputs() map[string]string {
	m := map[string]string{}
	for i := 0; ; i += 2 {
		p := C.gt_emu_input(C.int(i))
		if p == nil {
			return m
		}
		m[C.GoString(p)] = C.GoString(C.gt_emu_input(C.int(i + 1)))
	}
}

var physicalMemory = sync.OnceValue(func() int64 { return int64(C.gt_emu_phys()) })

func checkShape(kernel string, grid, block device.Dim3) error {
	if block.X < 1 || block.Y < 1 || block.Z < 1 || block.X > 1024 || block.Y > 1024 || block.Z > 64 {
		return fmt.Errorf("emu: Launch %s: block %v out of range (each >= 1, x,y <= 1024, z <= 64)", kernel, block)
	}
	if n := block.X * block.Y * block.Z; n > maxThreadsPerBlock {
		return fmt.Errorf("emu: Launch %s: block %v has %d threads, more than %d", kernel, block, n, maxThreadsPerBlock)
	}
	if grid.X < 1 || grid.Y < 1 || grid.Z < 1 || grid.X > maxGridX || grid.Y > maxGridYZ || grid.Z > maxGridYZ {
		return fmt.Errorf("emu: Launch %s: grid %v out of range (each >= 1, x <= %d, y,z <= %d)", kernel, grid, maxGridX, maxGridYZ)
	}
	return nil
}

// Synchronize returns nil: launches and copies are synchronous.
func (d *Driver) Synchronize() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	return nil
}

// Time returns the wall time fn took.
func (d *Driver) Time(fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	return time.Since(start), err
}

// MemInfo reports the memory left and the total: Options.MemoryLimit or
// the host's physical memory, minus what this driver has allocated.
func (d *Driver) MemInfo() (free, total int64, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, 0, errClosed
	}
	total = d.total()
	return max(total-d.used, 0), total, nil
}

// Close frees every allocation; later calls fail.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	for p := range d.allocs {
		C.gt_emu_free(C.uintptr_t(p))
	}
	for _, f := range d.freed {
		C.gt_emu_free(C.uintptr_t(f.p))
	}
	d.allocs, d.starts, d.used, d.closed = nil, nil, 0, true
	d.freed, d.freedBytes = nil, 0
	return nil
}
