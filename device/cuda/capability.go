//go:build cuda

package cuda

import "github.com/gputrain/gputrain/device"

var _ device.CapabilityReporter = (*driver)(nil)

// ComputeCapability returns the GPU's compute capability (device.Backend
// runs its tensor-core kernels only from 8.0 on).
func (d *driver) ComputeCapability() (major, minor int) { return d.info.Major, d.info.Minor }
