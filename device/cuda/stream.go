//go:build cuda

package cuda

/*
#include <cuda.h>

// The stream-side calls of the driver, each one cgo call that first makes
// the context current on the calling thread if it is not (cuCtxGetCurrent
// is a thread-local read): a goroutine may be on any OS thread at any call,
// and one cgo call runs on one thread from start to end, so no
// runtime.LockOSThread is needed around them.
static CUresult gt_ctx(CUcontext ctx) {
	CUcontext cur = NULL;
	if (cuCtxGetCurrent(&cur) == CUDA_SUCCESS && cur == ctx) return CUDA_SUCCESS;
	return cuCtxSetCurrent(ctx);
}

// gt_launch is cuLaunchKernel with the argument values in one array of
// 8-byte words (every kernel parameter is 8 bytes: see ARCHITECTURE.md):
// the pointer array the driver wants is built here, on the C stack, so a
// launch allocates nothing. The driver copies the values at the call.
#define GT_MAX_ARGS 64
static CUresult gt_launch(CUcontext ctx, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                          unsigned by, unsigned bz, unsigned shared, CUstream s, unsigned long long *args, int n) {
	CUresult r = gt_ctx(ctx);
	if (r != CUDA_SUCCESS) return r;
	if (n < 0 || n > GT_MAX_ARGS) return CUDA_ERROR_INVALID_VALUE;
	void *params[GT_MAX_ARGS];
	for (int i = 0; i < n; i++) params[i] = &args[i];
	return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shared, s, n > 0 ? params : NULL, NULL);
}

static CUresult gt_copy_out_async(CUcontext ctx, void *dst, CUdeviceptr src, size_t n, CUstream s) {
	CUresult r = gt_ctx(ctx);
	return r != CUDA_SUCCESS ? r : cuMemcpyDtoHAsync(dst, src, n, s);
}

static CUresult gt_host_alloc(CUcontext ctx, void **p, size_t n) {
	CUresult r = gt_ctx(ctx);
	return r != CUDA_SUCCESS ? r : cuMemHostAlloc(p, n, 0);
}

static CUresult gt_host_free(CUcontext ctx, void *p) {
	CUresult r = gt_ctx(ctx);
	return r != CUDA_SUCCESS ? r : cuMemFreeHost(p);
}

static CUresult gt_event_create(CUcontext ctx, CUevent *ev) {
	CUresult r = gt_ctx(ctx);
	return r != CUDA_SUCCESS ? r : cuEventCreate(ev, CU_EVENT_DISABLE_TIMING);
}

static CUresult gt_event_destroy(CUcontext ctx, CUevent ev) {
	CUresult r = gt_ctx(ctx);
	return r != CUDA_SUCCESS ? r : cuEventDestroy(ev);
}

static CUresult gt_event_record(CUcontext ctx, CUevent ev, CUstream s) {
	CUresult r = gt_ctx(ctx);
	return r != CUDA_SUCCESS ? r : cuEventRecord(ev, s);
}

static CUresult gt_event_query(CUcontext ctx, CUevent ev) {
	CUresult r = gt_ctx(ctx);
	return r != CUDA_SUCCESS ? r : cuEventQuery(ev);
}

static CUresult gt_event_sync(CUcontext ctx, CUevent ev) {
	CUresult r = gt_ctx(ctx);
	return r != CUDA_SUCCESS ? r : cuEventSynchronize(ev);
}

// Stream capture in relaxed mode: the capture may end on another OS thread
// than it began on, as a goroutine may move.
static CUresult gt_begin_capture(CUcontext ctx, CUstream s) {
	CUresult r = gt_ctx(ctx);
	return r != CUDA_SUCCESS ? r : cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_RELAXED);
}

// gt_end_capture ends the capture and instantiates the graph (the graph
// itself is not needed afterwards). *exec is NULL on failure.
static CUresult gt_end_capture(CUcontext ctx, CUstream s, CUgraphExec *exec) {
	*exec = NULL;
	CUresult r = gt_ctx(ctx);
	if (r != CUDA_SUCCESS) return r;
	CUgraph g = NULL;
	r = cuStreamEndCapture(s, &g);
	if (r != CUDA_SUCCESS) {
		if (g != NULL) cuGraphDestroy(g);
		return r;
	}
	r = cuGraphInstantiateWithFlags(exec, g, 0);
	cuGraphDestroy(g);
	if (r != CUDA_SUCCESS) *exec = NULL;
	return r;
}

static CUresult gt_graph_launch(CUcontext ctx, CUgraphExec exec, CUstream s) {
	CUresult r = gt_ctx(ctx);
	return r != CUDA_SUCCESS ? r : cuGraphLaunch(exec, s);
}

static CUresult gt_graph_destroy(CUcontext ctx, CUgraphExec exec) {
	CUresult r = gt_ctx(ctx);
	return r != CUDA_SUCCESS ? r : cuGraphExecDestroy(exec);
}

// gt_noop does nothing: BenchmarkLaunchHostOverhead measures a bare cgo call with it.
static CUresult gt_noop(unsigned long long *args, int n) { return n > GT_MAX_ARGS ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS; }
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/gputrain/gputrain/device"
)

// maxLaunchArgs is GT_MAX_ARGS: the most arguments a launch may pass.
const maxLaunchArgs = 64

// handle returns the C handle inside one of cu's handle types (cu.Function,
// cu.Stream, cu.CUContext, ...), each a struct of one C pointer that cu
// keeps unexported.
func handle[T any](v T) unsafe.Pointer {
	if unsafe.Sizeof(v) != unsafe.Sizeof(uintptr(0)) {
		panic(fmt.Sprintf("cuda: %T is not a one-pointer handle", v))
	}
	return *(*unsafe.Pointer)(unsafe.Pointer(&v))
}

// launchRaw issues one kernel launch through gt_launch.
func (d *driver) launchRaw(fn unsafe.Pointer, grid, block device.Dim3, shared int, args []uint64) error {
	var p *C.ulonglong
	if len(args) > 0 {
		p = (*C.ulonglong)(unsafe.Pointer(&args[0]))
	}
	return cuResultError(int(C.gt_launch(C.CUcontext(d.ctxH), C.CUfunction(fn), C.uint(grid.X), C.uint(grid.Y), C.uint(grid.Z),
		C.uint(block.X), C.uint(block.Y), C.uint(block.Z), C.uint(shared), C.CUstream(d.streamH), p, C.int(len(args)))))
}

// noopCall is a cgo call with the arguments of a launch that does nothing.
func noopCall(args []uint64) error {
	var p *C.ulonglong
	if len(args) > 0 {
		p = (*C.ulonglong)(unsafe.Pointer(&args[0]))
	}
	return cuResultError(int(C.gt_noop(p, C.int(len(args)))))
}

var (
	errNotReady    = cuResultError(int(C.CUDA_ERROR_NOT_READY))
	errNotSupport  = cuResultError(int(C.CUDA_ERROR_NOT_SUPPORTED))
	errCaptureUnsp = cuResultError(int(C.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED))
)

var (
	_ device.AsyncCopier   = (*driver)(nil)
	_ device.GraphCapturer = (*driver)(nil)
)

// refuse fails an operation that stream capture forbids (it would wait for
// the device or touch host memory) and makes the capture fail at its end,
// with this error rather than CUDA's invalidated-capture code.
func (d *driver) refuse(op string) error {
	err := fmt.Errorf("cuda: %s is not allowed while a graph is being captured", op)
	if d.capFail == nil {
		d.capFail = err
	}
	return err
}

// AllocHost returns pinned host memory (cuMemHostAlloc), which the device
// writes directly, so CopyOutAsync into it does not wait.
func (d *driver) AllocHost(bytes int) ([]byte, error) {
	if d.closed {
		return nil, errors.New("cuda: AllocHost: the driver is closed")
	}
	if bytes <= 0 {
		return nil, fmt.Errorf("cuda: AllocHost of %d bytes: the size must be > 0", bytes)
	}
	if d.capturing {
		return nil, d.refuse("AllocHost")
	}
	var p unsafe.Pointer
	if err := cuResultError(int(C.gt_host_alloc(C.CUcontext(d.ctxH), &p, C.size_t(bytes)))); err != nil {
		return nil, fmt.Errorf("cuda: AllocHost of %s of pinned memory: %w", FormatBytes(int64(bytes)), err)
	}
	d.pinned[p] = bytes
	return unsafe.Slice((*byte)(p), bytes), nil
}

// pinnedRange reports whether buf lies inside one AllocHost allocation.
func (d *driver) pinnedRange(buf []byte) bool {
	if len(buf) == 0 {
		return false
	}
	a := uintptr(unsafe.Pointer(&buf[0]))
	for base, n := range d.pinned {
		if b := uintptr(base); a >= b && a+uintptr(len(buf)) <= b+uintptr(n) {
			return true
		}
	}
	return false
}

// FreeHost releases memory AllocHost returned.
func (d *driver) FreeHost(buf []byte) error {
	if len(buf) == 0 {
		return errors.New("cuda: FreeHost of an empty buffer")
	}
	base := unsafe.Pointer(&buf[0])
	if _, ok := d.pinned[base]; !ok {
		return fmt.Errorf("cuda: FreeHost of %p: not pinned memory of this driver (or freed)", base)
	}
	delete(d.pinned, base)
	if err := cuResultError(int(C.gt_host_free(C.CUcontext(d.ctxH), base))); err != nil {
		return fmt.Errorf("cuda: FreeHost: %w", err)
	}
	return nil
}

// CopyOutAsync issues a device-to-host copy into pinned memory on the
// stream and returns at once.
func (d *driver) CopyOutAsync(dst []byte, src device.Ptr) error {
	if d.closed {
		return errors.New("cuda: CopyOutAsync: the driver is closed")
	}
	if d.capturing {
		return d.refuse("CopyOutAsync")
	}
	if !d.pinnedRange(dst) {
		return fmt.Errorf("cuda: CopyOutAsync of %d bytes: the destination is not memory from AllocHost", len(dst))
	}
	if err := d.checkRange("CopyOutAsync", src, int64(len(dst))); err != nil {
		return err
	}
	if err := cuResultError(int(C.gt_copy_out_async(C.CUcontext(d.ctxH), unsafe.Pointer(&dst[0]), C.CUdeviceptr(src),
		C.size_t(len(dst)), C.CUstream(d.streamH)))); err != nil {
		return fmt.Errorf("cuda: CopyOutAsync of %d bytes from %#x: %w", len(dst), uint64(src), err)
	}
	d.last = lastOp{kind: "CopyOutAsync", bytes: int64(len(dst))}
	return nil
}

// RecordFence records an event (from a pool; timing disabled) on the stream.
func (d *driver) RecordFence() (device.Fence, error) {
	if d.closed {
		return 0, errors.New("cuda: RecordFence: the driver is closed")
	}
	if d.capturing {
		return 0, d.refuse("RecordFence")
	}
	var i int
	if n := len(d.freeEvents); n > 0 {
		i, d.freeEvents = d.freeEvents[n-1], d.freeEvents[:n-1]
	} else {
		var ev C.CUevent
		if err := cuResultError(int(C.gt_event_create(C.CUcontext(d.ctxH), &ev))); err != nil {
			return 0, fmt.Errorf("cuda: RecordFence: creating an event: %w", err)
		}
		i = len(d.events)
		d.events = append(d.events, unsafe.Pointer(ev))
	}
	if err := cuResultError(int(C.gt_event_record(C.CUcontext(d.ctxH), C.CUevent(d.events[i]), C.CUstream(d.streamH)))); err != nil {
		d.freeEvents = append(d.freeEvents, i)
		return 0, fmt.Errorf("cuda: RecordFence: %w", err)
	}
	return device.Fence(i + 1), nil
}

func (d *driver) event(f device.Fence, op string) (C.CUevent, error) {
	if d.closed {
		return nil, fmt.Errorf("cuda: %s: the driver is closed", op)
	}
	if f < 1 || int(f) > len(d.events) {
		return nil, fmt.Errorf("cuda: %s: no fence %d", op, f)
	}
	return C.CUevent(d.events[f-1]), nil
}

// FenceDone queries the fence's event without waiting.
func (d *driver) FenceDone(f device.Fence) (bool, error) {
	ev, err := d.event(f, "FenceDone")
	if err != nil {
		return false, err
	}
	switch err := cuResultError(int(C.gt_event_query(C.CUcontext(d.ctxH), ev))); {
	case err == nil:
		return true, nil
	case errors.Is(err, errNotReady):
		return false, nil
	default:
		return false, d.asyncError("FenceDone", err)
	}
}

// WaitFence waits for the fence's event (cuEventSynchronize): only the work
// before it, not the whole stream.
func (d *driver) WaitFence(f device.Fence) error {
	ev, err := d.event(f, "WaitFence")
	if err != nil {
		return err
	}
	if err := cuResultError(int(C.gt_event_sync(C.CUcontext(d.ctxH), ev))); err != nil {
		return d.asyncError("WaitFence", err)
	}
	return nil
}

// ReleaseFence returns the fence's event to the pool.
func (d *driver) ReleaseFence(f device.Fence) error {
	if _, err := d.event(f, "ReleaseFence"); err != nil {
		return err
	}
	d.freeEvents = append(d.freeEvents, int(f)-1)
	return nil
}

// BeginCapture starts capturing the stream (cuStreamBeginCapture, relaxed
// mode): launches and device copies are recorded, not run.
func (d *driver) BeginCapture() error {
	if d.closed {
		return errors.New("cuda: BeginCapture: the driver is closed")
	}
	if d.capturing {
		return errors.New("cuda: BeginCapture: a capture is already under way")
	}
	if err := cuResultError(int(C.gt_begin_capture(C.CUcontext(d.ctxH), C.CUstream(d.streamH)))); err != nil {
		if errors.Is(err, errNotSupport) || errors.Is(err, errCaptureUnsp) {
			return fmt.Errorf("cuda: BeginCapture: %w (%w)", device.ErrUnsupported, err)
		}
		return fmt.Errorf("cuda: BeginCapture: %w", err)
	}
	d.capturing, d.capFail = true, nil
	return nil
}

// EndCapture ends the capture and instantiates it as an executable graph.
func (d *driver) EndCapture() (device.Graph, error) {
	if !d.capturing {
		return 0, errors.New("cuda: EndCapture without BeginCapture")
	}
	d.capturing = false
	var exec C.CUgraphExec
	err := cuResultError(int(C.gt_end_capture(C.CUcontext(d.ctxH), C.CUstream(d.streamH), &exec)))
	if d.capFail != nil || err != nil {
		if exec != nil {
			C.gt_graph_destroy(C.CUcontext(d.ctxH), exec)
		}
		if d.capFail != nil {
			return 0, fmt.Errorf("cuda: the capture failed: %w", d.capFail)
		}
		return 0, fmt.Errorf("cuda: EndCapture: %w", err)
	}
	d.nextGraph++
	d.graphs[d.nextGraph] = unsafe.Pointer(exec)
	return d.nextGraph, nil
}

// LaunchGraph launches the graph on the stream (cuGraphLaunch).
func (d *driver) LaunchGraph(g device.Graph) error {
	if d.closed {
		return errors.New("cuda: LaunchGraph: the driver is closed")
	}
	if d.capturing {
		return d.refuse("LaunchGraph")
	}
	exec, ok := d.graphs[g]
	if !ok {
		return fmt.Errorf("cuda: LaunchGraph: no graph %d", g)
	}
	if err := cuResultError(int(C.gt_graph_launch(C.CUcontext(d.ctxH), C.CUgraphExec(exec), C.CUstream(d.streamH)))); err != nil {
		return fmt.Errorf("cuda: LaunchGraph: %w", err)
	}
	d.last = lastOp{kind: "graph", bytes: int64(g)}
	return nil
}

// FreeGraph destroys the executable graph.
func (d *driver) FreeGraph(g device.Graph) error {
	exec, ok := d.graphs[g]
	if !ok {
		return fmt.Errorf("cuda: FreeGraph: no graph %d", g)
	}
	delete(d.graphs, g)
	if err := cuResultError(int(C.gt_graph_destroy(C.CUcontext(d.ctxH), C.CUgraphExec(exec)))); err != nil {
		return fmt.Errorf("cuda: FreeGraph: %w", err)
	}
	return nil
}

// releaseStreamObjects destroys the graphs, events and pinned memory (Close).
func (d *driver) releaseStreamObjects() error {
	var errs []error
	for g, exec := range d.graphs {
		errs = append(errs, cuResultError(int(C.gt_graph_destroy(C.CUcontext(d.ctxH), C.CUgraphExec(exec)))))
		delete(d.graphs, g)
	}
	for _, ev := range d.events {
		errs = append(errs, cuResultError(int(C.gt_event_destroy(C.CUcontext(d.ctxH), C.CUevent(ev)))))
	}
	d.events, d.freeEvents = nil, nil
	for p := range d.pinned {
		errs = append(errs, cuResultError(int(C.gt_host_free(C.CUcontext(d.ctxH), p))))
		delete(d.pinned, p)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cuda: Close: %w", err)
	}
	return nil
}
