package nccl

// gpu is what the all-reduce needs besides NCCL, all on one stream: scratch
// memory, a device-to-device copy, the fold kernel, a wait. cudaGPU (the
// CUDA driver through dlopen) is the real one; hostGPU (host memory) stands
// in for it with the fake NCCL of the tests.
type gpu interface {
	// enter pins the calling goroutine to its thread and makes the GPU's
	// context current there (NCCL and CUDA keep per-thread state); leave
	// undoes it.
	enter() (leave func(), err error)
	alloc(bytes int) (uintptr, error)
	free(p uintptr) error
	copy(dst, src uintptr, bytes int) error
	// sumSlots sets dst[i] = fold over s < nslots of slots[s*stride + i]
	// in slot order, for i < n (floats), like comm.SumRanks.
	sumSlots(dst, slots uintptr, n, nslots, stride int) error
	upload(dst uintptr, src []byte) error
	download(dst []byte, src uintptr) error
	sync() error
	stream() uintptr
	name() string
	close() error
}
