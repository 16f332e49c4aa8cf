//go:build cgo

package nccl

import (
	"fmt"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/model"
)

// Handles reports whether the trainer's gradients on b can be all-reduced
// in place: b is a device.Backend on the CUDA driver (the GPU this rank's
// communicator was made on: one process, one GPU).
func (c *Comm) Handles(b model.Backend) bool {
	db, ok := b.(*device.Backend)
	return ok && db.Driver().Name() == "cuda"
}

// AllReduceMats sums every matrix over the ranks in place on the GPU
// (model.DeviceAllReducer). It first waits for the backend's queued work
// (the backward pass that wrote the gradients).
func (c *Comm) AllReduceMats(b model.Backend, ms []model.Mat) error {
	db, ok := b.(*device.Backend)
	if !ok {
		return fmt.Errorf("nccl: backend %s is not a device backend", b.Name())
	}
	if err := db.Driver().Synchronize(); err != nil {
		return err
	}
	for _, m := range ms {
		p, err := db.DevicePtr(m)
		if err != nil {
			return err
		}
		if err := c.AllReduceSumDevice(uintptr(p), m.Rows()*m.Cols()); err != nil {
			return err
		}
	}
	return nil
}

var _ model.DeviceAllReducer = (*Comm)(nil)
