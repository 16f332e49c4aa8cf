//go:build !cgo

package emu

import (
	"errors"

	"github.com/gputrain/gputrain/device"
)

// Driver needs cgo; without it New fails and there is nothing to call.
type Driver struct{ device.Driver }

// New reports that the emulator needs cgo (CGO_ENABLED=1 and gcc/g++).
func New(opts Options) (*Driver, error) {
	return nil, errors.New("emu: the CUDA emulator needs cgo (CGO_ENABLED=1 and g++); this build has it disabled")
}

// Kernels returns nil: without cgo no kernel is compiled in.
func Kernels() []string { return nil }

func compiledInputs() map[string]string { return nil }

// Checked reports false: there is no build of the kernels at all.
func (d *Driver) Checked() bool { return false }

// ChecksAvailable reports false: there is no build of the kernels at all.
func ChecksAvailable() bool { return false }
