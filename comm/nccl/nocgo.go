//go:build !cgo

package nccl

import (
	"errors"

	"github.com/gputrain/gputrain/comm"
)

// Without cgo there is no dlopen: NCCL cannot be loaded.
var errNoCgo = errors.New("nccl: this binary was built without cgo (CGO_ENABLED=0), so it cannot load NCCL")

// Library is an opened libnccl.so.2 (never, in a build without cgo).
type Library struct {
	path    string
	version int
}

// OpenPath fails: loading NCCL needs cgo.
func OpenPath(string) (*Library, error) { return nil, errNoCgo }

// Comm is an NCCL communicator (never, in a build without cgo).
type Comm struct{ comm.Comm }

// Bootstrap fails: loading NCCL needs cgo.
func Bootstrap(comm.Comm, func() (*Library, error), int) (*Comm, error) { return nil, errNoCgo }
