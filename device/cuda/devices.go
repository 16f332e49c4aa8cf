//go:build cuda

package cuda

import (
	"fmt"

	"gorgonia.org/cu"
)

// Info describes one GPU.
type Info struct {
	Ordinal             int    // the index New takes
	Name                string // e.g. "NVIDIA H100 80GB HBM3"
	Memory              int64  // total device memory in bytes
	Major, Minor        int    // compute capability
	Multiprocessors     int    // streaming multiprocessors
	SharedPerBlockOptin int    // the most shared memory one block may use, in bytes
}

func (i Info) String() string {
	return fmt.Sprintf("GPU %d: %s, %s, compute capability %d.%d, %d SMs",
		i.Ordinal, i.Name, FormatBytes(i.Memory), i.Major, i.Minor, i.Multiprocessors)
}

// Devices lists the GPUs the CUDA driver sees (CUDA_VISIBLE_DEVICES
// restricts them). Without a usable GPU it returns an error wrapping ErrNoGPU.
func Devices() ([]Info, error) {
	if err := Available(); err != nil {
		return nil, fmt.Errorf("cuda: %w", err)
	}
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: counting GPUs: %w", err)
	}
	infos := make([]Info, 0, n)
	for i := range n {
		info, err := deviceInfo(i)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// deviceInfo queries one GPU; no context is needed for these queries.
func deviceInfo(ordinal int) (Info, error) {
	dev, err := cu.GetDevice(ordinal)
	if err != nil {
		return Info{}, fmt.Errorf("cuda: GPU %d: %w", ordinal, err)
	}
	info := Info{Ordinal: ordinal}
	if info.Name, err = dev.Name(); err != nil {
		return Info{}, fmt.Errorf("cuda: GPU %d: reading its name: %w", ordinal, err)
	}
	if info.Memory, err = dev.TotalMem(); err != nil {
		return Info{}, fmt.Errorf("cuda: GPU %d (%s): reading its memory size: %w", ordinal, info.Name, err)
	}
	attrs, err := dev.Attributes(cu.ComputeCapabilityMajor, cu.ComputeCapabilityMinor, cu.MultiprocessorCount, attrSharedOptin)
	if err != nil {
		return Info{}, fmt.Errorf("cuda: GPU %d (%s): reading its attributes: %w", ordinal, info.Name, err)
	}
	info.Major, info.Minor, info.Multiprocessors, info.SharedPerBlockOptin = attrs[0], attrs[1], attrs[2], attrs[3]
	return info, nil
}
