//go:build cgo

package emu

import "github.com/gputrain/gputrain/device"

var _ device.CapabilityReporter = (*Driver)(nil)

// ComputeCapability reports 8.0: the emulator implements the sm_80
// instructions the tensor-core kernels use (emu_tensor.h: mma.sync,
// cp.async, cvt to tf32/bf16), so device.Backend runs those kernels on it.
func (d *Driver) ComputeCapability() (major, minor int) { return 8, 0 }
