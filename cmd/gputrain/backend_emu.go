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
// Software graphs give it the stream capabilities of a GPU driver, so a
// training run takes the path it takes on a GPU: the step captured once
// and replayed.
func init() {
	registerDeviceBackend("emu", func() (device.Driver, error) {
		d, err := emu.New(emu.Options{})
		if err != nil {
			return nil, err
		}
		return device.WithSoftwareGraphs(d), nil
	})
}
