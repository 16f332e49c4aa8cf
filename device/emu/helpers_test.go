package emu_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
)

// modes are the driver configurations every kernel test runs under.
var modes = []emu.Options{
	{Mode: emu.Deterministic},
	{Mode: emu.Permuted, Seed: 1},
	{Mode: emu.Permuted, Seed: 0xdecafbad},
}

func newDriver(t testing.TB, opts emu.Options) *emu.Driver {
	t.Helper()
	d, err := emu.New(opts)
	if err != nil && len(emu.Kernels()) == 0 {
		t.Skipf("no emulator in this build: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func bytesOf[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}

// upload allocates device memory holding s.
func upload[T any](t testing.TB, d device.Driver, s []T) device.Ptr {
	t.Helper()
	b := bytesOf(s)
	p, err := d.Alloc(int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CopyIn(p, b); err != nil {
		t.Fatal(err)
	}
	return p
}

// download returns n elements at p.
func download[T any](t testing.TB, d device.Driver, p device.Ptr, n int) []T {
	t.Helper()
	s := make([]T, n)
	if err := d.CopyOut(bytesOf(s), p); err != nil {
		t.Fatal(err)
	}
	return s
}

// poisonedF32 allocates n float32 set to NaN, so unwritten outputs show.
func poisonedF32(t testing.TB, d device.Driver, n int) device.Ptr {
	t.Helper()
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(math.NaN())
	}
	return upload(t, d, s)
}

// poisonedI64 allocates n int64 set to a value no kernel writes.
func poisonedI64(t testing.TB, d device.Driver, n int) device.Ptr {
	t.Helper()
	s := make([]int64, n)
	for i := range s {
		s[i] = -0x5a5a5a5a5a5a5a5a
	}
	return upload(t, d, s)
}

func randF32(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// randIntF32 returns small integers as float32: their sums are exact in
// any order, so results that depend on a reduction order compare exactly.
func randIntF32(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.IntN(201) - 100)
	}
	return s
}

func launch(t testing.TB, d device.Driver, kernel string, grid, block device.Dim3, shared int, args ...uint64) {
	t.Helper()
	if err := d.Launch(kernel, grid, block, shared, args...); err != nil {
		t.Fatalf("Launch %s grid %v block %v: %v", kernel, grid, block, err)
	}
}

func dim(x, y, z int) device.Dim3 { return device.Dim3{X: x, Y: y, Z: z} }

func p(x device.Ptr) uint64 { return device.PtrArg(x) }
func i64(v int) uint64      { return device.IntArg(int64(v)) }

func ceilDiv(a, b int) int { return (a + b - 1) / b }
