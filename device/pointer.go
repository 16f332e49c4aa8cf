package device

import "github.com/gputrain/gputrain/model"

// DevicePtr returns the device address of m's storage, for libraries that
// work on device memory in place (comm/nccl all-reduces the gradients
// there). It is valid until m is freed; 0 for an empty matrix.
func (b *Backend) DevicePtr(m model.Mat) (Ptr, error) {
	mm, err := b.mat(m, "matrix")
	if err != nil {
		return 0, err
	}
	return mm.ptr, nil
}
