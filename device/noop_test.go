package device_test

import (
	"sync"
	"time"

	"github.com/gputrain/gputrain/device"
)

// noopDriver is a Driver that runs nothing: launches are counted and
// return at once, memory is fake addresses, copies out give zeros. Over it
// a training step costs exactly its host-side work (argument checks, launch
// shapes, argument marshalling, the trainer's bookkeeping), which is what
// the host-overhead benchmarks measure.
type noopDriver struct {
	mu       sync.Mutex
	next     device.Ptr
	launches int
	copies   int
	syncs    int
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
func (d *noopDriver) Free(device.Ptr) error           { return nil }
func (d *noopDriver) CopyIn(device.Ptr, []byte) error { d.copies++; d.syncs++; return nil }
func (d *noopDriver) CopyOut(dst []byte, _ device.Ptr) error {
	d.copies++
	d.syncs++
	clear(dst)
	return nil
}
func (d *noopDriver) CopyDevice(_, _ device.Ptr, _ int64) error { return nil }
func (d *noopDriver) Launch(string, device.Dim3, device.Dim3, int, ...uint64) error {
	d.launches++
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
