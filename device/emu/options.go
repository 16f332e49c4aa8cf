package emu

import "fmt"

//go:generate go run ./internal/emugen

// Mode says in which order the threads of a block run between switch points.
type Mode int

const (
	// Deterministic runs the threads of a block in index order between
	// switch points, and blocks in order (x fastest).
	Deterministic Mode = iota
	// Permuted draws, from Options.Seed, the order of the threads between
	// switch points, the block order, and preemptions at atomics, so that a
	// missing __syncthreads shows as a wrong result.
	Permuted
)

func (m Mode) String() string {
	switch m {
	case Deterministic:
		return "deterministic"
	case Permuted:
		return "permuted"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Checks says whether launches run the checked build of the kernels (see
// the package documentation, "Checked mode"): shared-memory races, accesses
// outside every allocation, and shared memory past a launch's bytes fail the
// launch. The checked build runs several times slower than the plain one.
type Checks int

const (
	// ChecksAuto, the default, checks in test binaries (testing.Testing)
	// and not otherwise; the environment variable GPUTRAIN_EMU_CHECKS=1 or
	// =0 overrides it either way (for `gputrain --backend emu`, say).
	ChecksAuto Checks = iota
	// ChecksOn always runs the checked build.
	ChecksOn
	// ChecksOff always runs the plain build.
	ChecksOff
)

func (c Checks) String() string {
	switch c {
	case ChecksAuto:
		return "auto"
	case ChecksOn:
		return "on"
	case ChecksOff:
		return "off"
	}
	return fmt.Sprintf("Checks(%d)", int(c))
}

// DefaultSharedLimit is the shared memory a CUDA block may use (static plus
// dynamic) without opting in with cudaFuncSetAttribute, which the Driver
// interface does not offer; so kernels must fit it.
const DefaultSharedLimit = 48 * 1024

// Options configure New.
type Options struct {
	Mode Mode
	// Seed drives Permuted mode; launches draw successive orders from it.
	Seed uint64
	// SharedLimit is the largest static plus dynamic shared memory of a
	// block in bytes; 0 means DefaultSharedLimit. Raising it stands for a
	// kernel opted in to more (up to 227 KiB on an H100).
	SharedLimit int
	// MemoryLimit, if positive, is the device memory in bytes: Alloc fails
	// beyond it and MemInfo reports it, to test out-of-memory paths.
	// 0 means the host's physical memory.
	MemoryLimit int64
	// Checks selects the checked or the plain build of the kernels.
	Checks Checks
}
