package device

import (
	"errors"
	"fmt"

	"github.com/gputrain/gputrain/model"
)

var _ model.StepCapturer = (*Backend)(nil)

// capturedGraph is the device's model.Captured: a graph of the driver's.
type capturedGraph struct {
	b     *Backend
	g     Graph
	gen   uint64 // b.scratchGen at capture
	freed bool
}

// Capture records the work fn issues as one graph of the driver (see
// model.StepCapturer), through its GraphCapturer capability. Nothing runs
// during the capture. It fails, with nothing run and nothing kept, when the
// driver cannot capture (an error wrapping ErrUnsupported), when fn fails
// (for instance because an operation would have waited for the device or
// allocated, which capture refuses), or when fn reallocated a scratch
// buffer.
func (b *Backend) Capture(fn func() error) (model.Captured, error) {
	if err := b.CanCapture(); err != nil {
		return nil, fmt.Errorf("device: Capture: %w", err)
	}
	gc := b.drv.(GraphCapturer)
	if err := gc.BeginCapture(); err != nil {
		return nil, fmt.Errorf("device: Capture: %w", err)
	}
	gen := b.scratchGen
	ferr := fn()
	g, eerr := gc.EndCapture()
	if ferr == nil && eerr == nil && b.scratchGen != gen {
		ferr = errors.New("a scratch buffer was reallocated during the capture")
	}
	if ferr != nil || eerr != nil {
		if eerr == nil {
			_ = gc.FreeGraph(g)
		}
		return nil, fmt.Errorf("device: Capture: %w", errors.Join(ferr, eerr))
	}
	c := &capturedGraph{b: b, g: g, gen: gen}
	b.live[c] = struct{}{}
	return c, nil
}

// CanCapture reports whether the driver has the GraphCapturer capability.
// (A driver that has it may still turn out to lack graphs at BeginCapture.)
func (b *Backend) CanCapture() error {
	if err := b.open(); err != nil {
		return err
	}
	if _, ok := b.drv.(GraphCapturer); !ok {
		return fmt.Errorf("the %s driver has no graphs: %w", b.drv.Name(), ErrUnsupported)
	}
	return nil
}

// Launch replays the graph. A graph captured before a scratch buffer it
// names was reallocated (by a larger operation since) is stale: Launch
// refuses it with an error wrapping model.ErrStaleCapture, and the caller
// captures again.
func (c *capturedGraph) Launch() error {
	if c.freed {
		return errors.New("device: Launch of a freed graph")
	}
	if err := c.b.open(); err != nil {
		return err
	}
	if c.b.scratchGen != c.gen {
		return fmt.Errorf("device: graph launch: %w", model.ErrStaleCapture)
	}
	if err := c.b.drv.(GraphCapturer).LaunchGraph(c.g); err != nil {
		return fmt.Errorf("device: graph launch: %w", err)
	}
	return nil
}

// Free releases the graph.
func (c *capturedGraph) Free() error {
	if c.freed {
		return nil
	}
	if err := c.b.open(); err != nil {
		return err
	}
	delete(c.b.live, c)
	return c.release()
}

func (c *capturedGraph) release() error {
	c.freed = true
	if err := c.b.drv.(GraphCapturer).FreeGraph(c.g); err != nil {
		return fmt.Errorf("device: freeing a graph: %w", err)
	}
	return nil
}

// WithSoftwareGraphs gives drv, a driver whose operations are done when
// they return (device/emu), the stream capabilities of a GPU driver, in
// software: GraphCapturer by recording Launch and CopyDevice calls and
// replaying them on LaunchGraph, with the refusals of CUDA stream capture
// (a copy to or from host memory, a synchronization, an allocation during
// capture fails it); and AsyncCopier with host memory from make and fences
// that have always passed. Replays run the recorded calls with the
// arguments they had, as a CUDA graph does, so a value that a captured step
// passed by argument but that should change from step to step shows as a
// wrong result in the emulator, as it would on a GPU. The capabilities of
// drv itself (SharedMemoryLimiter) are kept.
func WithSoftwareGraphs(drv Driver) Driver {
	return &softGraphs{Driver: drv, graphs: map[Graph][]recorded{}}
}

type softGraphs struct {
	Driver
	capturing bool
	failed    error // the first refused operation of the capture
	rec       []recorded
	graphs    map[Graph][]recorded
	next      Graph
	fences    Fence
}

// recorded is one captured Launch (kernel != "") or CopyDevice.
type recorded struct {
	kernel      string
	grid, block Dim3
	shared      int
	args        []uint64
	dst, src    Ptr
	bytes       int64
}

var (
	_ GraphCapturer       = (*softGraphs)(nil)
	_ AsyncCopier         = (*softGraphs)(nil)
	_ SharedMemoryLimiter = (*softGraphs)(nil)
)

// errCapturing is the refusal of an operation that stream capture forbids.
func (d *softGraphs) refuse(op string) error {
	err := fmt.Errorf("%s: %s is not allowed while a graph is being captured", d.Name(), op)
	if d.failed == nil {
		d.failed = err
	}
	return err
}

func (d *softGraphs) MaxDynamicSharedBytes() int {
	if l, ok := d.Driver.(SharedMemoryLimiter); ok {
		return l.MaxDynamicSharedBytes()
	}
	return defaultSharedLimit
}

func (d *softGraphs) Launch(kernel string, grid, block Dim3, shared int, args ...uint64) error {
	if d.capturing {
		d.rec = append(d.rec, recorded{kernel: kernel, grid: grid, block: block, shared: shared, args: append([]uint64(nil), args...)})
		return nil
	}
	return d.Driver.Launch(kernel, grid, block, shared, args...)
}

func (d *softGraphs) CopyDevice(dst, src Ptr, bytes int64) error {
	if d.capturing {
		d.rec = append(d.rec, recorded{dst: dst, src: src, bytes: bytes})
		return nil
	}
	return d.Driver.CopyDevice(dst, src, bytes)
}

func (d *softGraphs) CopyIn(dst Ptr, src []byte) error {
	if d.capturing {
		return d.refuse("CopyIn")
	}
	return d.Driver.CopyIn(dst, src)
}

func (d *softGraphs) CopyOut(dst []byte, src Ptr) error {
	if d.capturing {
		return d.refuse("CopyOut")
	}
	return d.Driver.CopyOut(dst, src)
}

func (d *softGraphs) Synchronize() error {
	if d.capturing {
		return d.refuse("Synchronize")
	}
	return d.Driver.Synchronize()
}

func (d *softGraphs) Alloc(bytes int64) (Ptr, error) {
	if d.capturing {
		return 0, d.refuse("Alloc")
	}
	return d.Driver.Alloc(bytes)
}

func (d *softGraphs) Free(p Ptr) error {
	if d.capturing {
		return d.refuse("Free")
	}
	return d.Driver.Free(p)
}

func (d *softGraphs) BeginCapture() error {
	if d.capturing {
		return fmt.Errorf("%s: BeginCapture: a capture is already under way", d.Name())
	}
	d.capturing, d.failed, d.rec = true, nil, nil
	return nil
}

func (d *softGraphs) EndCapture() (Graph, error) {
	if !d.capturing {
		return 0, fmt.Errorf("%s: EndCapture without BeginCapture", d.Name())
	}
	d.capturing = false
	rec, failed := d.rec, d.failed
	d.rec, d.failed = nil, nil
	if failed != nil {
		return 0, fmt.Errorf("the capture failed: %w", failed)
	}
	d.next++
	d.graphs[d.next] = rec
	return d.next, nil
}

func (d *softGraphs) LaunchGraph(g Graph) error {
	rec, ok := d.graphs[g]
	if !ok {
		return fmt.Errorf("%s: LaunchGraph: no graph %d", d.Name(), g)
	}
	if d.capturing {
		return d.refuse("LaunchGraph")
	}
	for _, r := range rec {
		var err error
		if r.kernel != "" {
			err = d.Driver.Launch(r.kernel, r.grid, r.block, r.shared, r.args...)
		} else {
			err = d.Driver.CopyDevice(r.dst, r.src, r.bytes)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *softGraphs) FreeGraph(g Graph) error {
	if _, ok := d.graphs[g]; !ok {
		return fmt.Errorf("%s: FreeGraph: no graph %d", d.Name(), g)
	}
	delete(d.graphs, g)
	return nil
}

func (d *softGraphs) AllocHost(bytes int) ([]byte, error) { return make([]byte, bytes), nil }
func (d *softGraphs) FreeHost([]byte) error               { return nil }

func (d *softGraphs) CopyOutAsync(dst []byte, src Ptr) error {
	if d.capturing {
		return d.refuse("CopyOutAsync")
	}
	return d.Driver.CopyOut(dst, src)
}

func (d *softGraphs) RecordFence() (Fence, error) {
	if d.capturing {
		return 0, d.refuse("RecordFence")
	}
	d.fences++
	return d.fences, nil
}

func (d *softGraphs) FenceDone(Fence) (bool, error) { return true, nil }
func (d *softGraphs) WaitFence(Fence) error         { return nil }
func (d *softGraphs) ReleaseFence(Fence) error      { return nil }
