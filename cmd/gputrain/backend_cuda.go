//go:build cuda

package main

import (
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/cuda"
)

// The cuda backend: device.Backend on the first GPU CUDA lists
// (CUDA_VISIBLE_DEVICES chooses another). A binary built with -tags cuda
// still starts without a GPU (see device/cuda), so --backend auto can fall
// back to the CPU.
func init() {
	registerDeviceBackend("cuda", func() (device.Driver, error) { return cuda.New(0) })
	backendProbes["cuda"] = cuda.Available
	gpuLister = func() ([]string, error) {
		infos, err := cuda.Devices()
		if err != nil {
			return nil, err
		}
		lines := make([]string, len(infos))
		for i, info := range infos {
			lines[i] = info.String()
		}
		return lines, nil
	}
}
