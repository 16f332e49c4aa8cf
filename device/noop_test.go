package device_test

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/gputrain/gputrain/device"
)

// noopDriver is a Driver that runs nothing: launches are counted and
// return at once, memory is fake addresses, copies out give zeros. Over it
// a training step costs exactly its host-side work (argument checks, launch
// shapes, argument marshalling, the trainer's bookkeeping), which is what
// the host-overhead benchmarks measure. It has the stream capabilities
// too (AsyncCopier, GraphCapturer), as free as possible: a graph launch
// costs the host one call, as cuGraphLaunch's enqueue is one call.
//
// It keeps what is copied into small allocations and plays the one part of
// a kernel the trainer checks: gt_step_record advances the step cursor
// (word 0 of the step state, its third argument), so the read-backs
// report the steps issued.
type noopDriver struct {
	mu                      sync.Mutex
	next                    device.Ptr
	mem                     map[device.Ptr][]byte // contents of small allocations that were copied into
	launches, graphLaunches int
	copies, syncs           int
	capturing               bool
	graphCtl                device.Ptr // the step state of the graph's gt_step_record
}

const noopKeep = 1 << 20 // allocations up to this size keep their contents

func (d *noopDriver) contents(p device.Ptr) []byte {
	if d.mem == nil {
		return nil
	}
	return d.mem[p]
}

func (d *noopDriver) record(ctl device.Ptr) {
	if m := d.contents(ctl); len(m) >= 4 {
		binary.LittleEndian.PutUint32(m, binary.LittleEndian.Uint32(m)+1)
	}
}

func (d *noopDriver) Name() string { return "noop" }
func (d *noopDriver) Alloc(n int64) (device.Ptr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.next == 0 {
		d.next = 1 << 20
	}
	p := d.next
	d.next += device.Ptr((n + 511) &^ 255)
	return p, nil
}
func (d *noopDriver) Free(device.Ptr) error { return nil }
func (d *noopDriver) CopyIn(p device.Ptr, src []byte) error {
	d.copies++
	d.syncs++
	if len(src) <= noopKeep {
		if d.mem == nil {
			d.mem = map[device.Ptr][]byte{}
		}
		d.mem[p] = append(d.mem[p][:0], src...)
	}
	return nil
}
func (d *noopDriver) CopyOut(dst []byte, p device.Ptr) error {
	d.copies++
	d.syncs++
	clear(dst)
	copy(dst, d.contents(p))
	return nil
}
func (d *noopDriver) CopyDevice(_, _ device.Ptr, _ int64) error { return nil }
func (d *noopDriver) Launch(kernel string, _, _ device.Dim3, _ int, args ...uint64) error {
	if kernel == "gt_step_record" {
		if d.capturing {
			d.graphCtl = device.Ptr(args[2])
		} else {
			d.record(device.Ptr(args[2]))
		}
	}
	if !d.capturing {
		d.launches++
	}
	return nil
}
func (d *noopDriver) Synchronize() error { d.syncs++; return nil }
func (d *noopDriver) Time(fn func() error) (time.Duration, error) {
	s := time.Now()
	err := fn()
	return time.Since(s), err
}
func (d *noopDriver) MemInfo() (int64, int64, error) { return 1 << 40, 1 << 40, nil }
func (d *noopDriver) Close() error                   { return nil }

func (d *noopDriver) AllocHost(n int) ([]byte, error) { return make([]byte, n), nil }
func (d *noopDriver) FreeHost([]byte) error           { return nil }
func (d *noopDriver) CopyOutAsync(dst []byte, p device.Ptr) error {
	clear(dst)
	copy(dst, d.contents(p))
	return nil
}
func (d *noopDriver) RecordFence() (device.Fence, error)   { return 1, nil }
func (d *noopDriver) FenceDone(device.Fence) (bool, error) { return true, nil }
func (d *noopDriver) WaitFence(device.Fence) error         { return nil }
func (d *noopDriver) ReleaseFence(device.Fence) error      { return nil }
func (d *noopDriver) BeginCapture() error                  { d.capturing = true; return nil }
func (d *noopDriver) EndCapture() (device.Graph, error)    { d.capturing = false; return 1, nil }
func (d *noopDriver) LaunchGraph(device.Graph) error {
	d.graphLaunches++
	if d.graphCtl != 0 {
		d.record(d.graphCtl)
	}
	return nil
}
func (d *noopDriver) FreeGraph(device.Graph) error { return nil }
