//go:build cuda

package cuda

import (
	"runtime"
	"testing"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/gputrain/gputrain/device"
)

// BenchmarkLaunchHostOverhead measures what the host does per kernel
// launch besides the driver's own work, the same way before and after
// this driver stopped using gorgonia.org/cu's Launch. It needs no GPU:
// without one libcuda returns at once from every call, so each variant
// costs its Go work plus its cgo calls into libcuda, and nothing else.
// With a GPU, cuLaunchKernel's own time (a few microseconds) comes on top
// of both.
//
//	cu-launch: the old Launch: the launch's description formatted, the
//	  thread locked and the context made current (a cgo call), the kernel
//	  looked up, the arguments copied and pointed at (two allocations),
//	  then cu's Launch: two C mallocs, the copy, cuLaunchKernel, two frees.
//	shim: the new Launch's hot path: the kernel looked up, one cgo call
//	  that checks the current context and calls cuLaunchKernel with the
//	  argument pointers built on the C stack.
//	cgo-noop: one cgo call with the same arguments that does nothing,
//	  the floor of any launch from Go.
func BenchmarkLaunchHostOverhead(b *testing.B) {
	args := []uint64{1 << 20, 2 << 20, 4 << 20, 128, 784, 0x3ff0000000000000, 0} // 7, like gt_gather_step's 10 or Adam's 9
	grid, block := device.Dim3{X: 98, Y: 1, Z: 1}, device.Dim3{X: 256, Y: 1, Z: 1}
	b.Run("cu-launch", func(b *testing.B) {
		funcs := map[string]*kernel{"gt_adam_multi": {}}
		var ctx cu.CUContext
		var stream cu.Stream
		for range b.N {
			what := launchString("gt_adam_multi", grid, block, 0, len(args))
			runtime.LockOSThread()
			_ = cu.SetCurrentContext(ctx)
			k := funcs["gt_adam_multi"]
			vals := append([]uint64(nil), args...)
			params := make([]unsafe.Pointer, len(vals))
			for i := range vals {
				params[i] = unsafe.Pointer(&vals[i])
			}
			_ = k.fn.Launch(grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, 0, stream, params)
			runtime.UnlockOSThread()
			lastRun = what
		}
	})
	b.Run("shim", func(b *testing.B) {
		d := &driver{funcs: map[string]*kernel{"gt_adam_multi": {}}}
		for range b.N {
			k := d.funcs["gt_adam_multi"]
			_ = d.launchRaw(k.fnH, grid, block, 0, args)
			d.last = lastOp{kind: "gt_adam_multi", grid: grid, block: block, nargs: len(args)}
		}
	})
	b.Run("cgo-noop", func(b *testing.B) {
		for range b.N {
			_ = noopCall(args)
		}
	})
}

// lastRun keeps the old variant's description alive, as the old driver
// kept it in a field.
var lastRun string
