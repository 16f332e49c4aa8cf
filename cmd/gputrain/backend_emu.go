//go:build cgo

package main

import (
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
)

// The emu backend: device.Backend over the CPU emulator, which runs the very
// kernels of kernels/*.cu that the cuda backend runs on a GPU. It is slow
// (every CUDA thread is a fiber on one OS thread) and meant for checking the
// kernels and the device backend end to end without a GPU. The emulator is
// cgo (C++), so a CGO_ENABLED=0 build leaves this file, and the backend, out.
// It has no hardware probe: --backend auto never picks it (autoOrder).
func init() {
	registerDeviceBackend("emu", func() (device.Driver, error) { return emu.New(emu.Options{}) })
}
