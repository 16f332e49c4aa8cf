package emu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/device/emu/internal/gen"
)

// Tests of the checked build (testdata/checks.cu): what it must report,
// what it must let pass, and that the plain build would not have noticed.

// launchErr launches and returns the error, which must not be nil, and
// checks that the driver still works afterwards.
func launchErr(t *testing.T, d *emu.Driver, kernel string, grid, block device.Dim3, shared int, args ...uint64) string {
	t.Helper()
	err := d.Launch(kernel, grid, block, shared, args...)
	if err == nil {
		t.Fatalf("Launch %s: no error", kernel)
	}
	x := poisonedF32(t, d, 64)
	launch(t, d, "emutest_trivial", dim(1, 1, 1), dim(64, 1, 1), 0, p(x))
	return err.Error()
}

func wantAll(t *testing.T, msg string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q\nlacks %q", msg, s)
		}
	}
}

func checkedDriver(t *testing.T, opts emu.Options) *emu.Driver {
	t.Helper()
	if !emu.ChecksAvailable() && len(emu.Kernels()) > 0 {
		t.Skip("no checked build with -race (the race runtime defines its instrumentation callbacks)")
	}
	d := newDriver(t, opts)
	if !d.Checked() {
		t.Fatalf("Options %+v: the driver does not run the checked build under go test", opts)
	}
	return d
}

// TestRacyAccumulation is the example: gt_cs_range's tree replaced
// by eight warps doing sh[0][tx] += acc in one phase. The plain build
// computes the right sums (each thread runs alone to the next barrier), so
// only the race detector can catch it; the fixed tree passes.
func TestRacyAccumulation(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, rows := range []int{1, 8, 33, 1000} {
		src := randF32(rng, rows*32)
		want := make([]float64, 32)
		for r := 0; r < rows; r++ {
			for j := range want {
				want[j] += float64(src[r*32+j])
			}
		}
		same := func(got []float64) bool {
			for j := range want {
				if math.Abs(got[j]-want[j]) > 1e-9*(1+math.Abs(want[j])) {
					return false
				}
			}
			return true
		}
		for _, opts := range modes {
			d := checkedDriver(t, opts)
			sp := upload(t, d, src)
			out := upload(t, d, slicesOf(math.NaN(), 32))
			launch(t, d, "emutest_tree_accumulate", dim(1, 1, 1), dim(256, 1, 1), 0, p(sp), i64(rows), p(out))
			if got := download[float64](t, d, out, 32); !same(got) {
				t.Fatalf("%v rows %d: tree sums %v, want %v", opts.Mode, rows, got, want)
			}
			msg := launchErr(t, d, "emutest_racy_accumulate", dim(1, 1, 1), dim(256, 1, 1), 0, p(sp), i64(rows), p(out))
			wantAll(t, msg, "kernel emutest_racy_accumulate: block (0,0,0): thread (",
				"shared-memory race on static shared sh + ", "(device/emu/testdata/checks.cu:29)",
				"8-byte ", "with no __syncthreads between them")
			if opts.Mode == emu.Deterministic {
				t.Logf("rows %d: %s", rows, msg)
				// Thread 0 read and wrote sh[0][0]; thread 32 (warp 1) reads it.
				wantAll(t, msg, "sh + 0 (", "8-byte write by thread (0,0,0)", "then 8-byte read by thread (32,0,0)", "warps 0 and 1")
			}

			plain := newDriver(t, emu.Options{Mode: opts.Mode, Seed: opts.Seed, Checks: emu.ChecksOff})
			sp, out = upload(t, plain, src), upload(t, plain, slicesOf(math.NaN(), 32))
			launch(t, plain, "emutest_racy_accumulate", dim(1, 1, 1), dim(256, 1, 1), 0, p(sp), i64(rows), p(out))
			if got := download[float64](t, plain, out, 32); !same(got) {
				t.Fatalf("%v rows %d: the plain build's racy sums %v differ from %v: the race became visible without the detector", opts.Mode, rows, got, want)
			}
		}
	}
}

func slicesOf[T any](v T, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// TestWarpRace: lanes of one warp exchange values through shared memory;
// without __syncwarp between the write and the read it is a race (the
// lanes are not in lockstep since Volta), with it the result is exact.
func TestWarpRace(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	for _, opts := range modes {
		d := checkedDriver(t, opts)
		for _, block := range []int{32, 64, 96} {
			x := randF32(rng, block)
			xp, out := upload(t, d, x), poisonedF32(t, d, block)
			launch(t, d, "emutest_warp_exchange", dim(2, 1, 1), dim(block, 1, 1), 0, p(xp), p(out), i64(1))
			for i, v := range download[float32](t, d, out, block) {
				if v != x[i^1] {
					t.Fatalf("%v block %d: out[%d] = %v, want %v", opts.Mode, block, i, v, x[i^1])
				}
			}
			msg := launchErr(t, d, "emutest_warp_exchange", dim(2, 1, 1), dim(block, 1, 1), 0, p(xp), p(out), i64(0))
			wantAll(t, msg, "kernel emutest_warp_exchange", "shared-memory race on static shared s + ",
				"4-byte ", " of warp ", "with no __syncwarp, shuffle or __syncthreads between them")
			if opts.Mode == emu.Deterministic {
				wantAll(t, msg, "block (0,0,0): thread (1,0,0)", "4-byte read by thread (0,0,0)", "then 4-byte write by thread (1,0,0)", "(lanes 0 and 1 of warp 0")
			}
		}
	}
}

// TestNoFalseRaces: what the detector must let pass: accesses separated by
// a barrier, one thread's own read-after-write and write-after-read,
// atomics on shared memory, neighbouring bytes of one word written by
// different threads, and vector accesses after a barrier.
func TestNoFalseRaces(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	for _, opts := range modes {
		d := checkedDriver(t, opts)
		for _, block := range []int{33, 64, 256, 1024} {
			x := randF32(rng, block)
			xp, out := upload(t, d, x), poisonedF32(t, d, block)
			launch(t, d, "emutest_barrier_exchange", dim(3, 1, 1), dim(block, 1, 1), 0, p(xp), p(out))
			for i, v := range download[float32](t, d, out, block) {
				if want := x[(i+32)%block]; v != want {
					t.Fatalf("%v block %d: barrier exchange out[%d] = %v, want %v", opts.Mode, block, i, v, want)
				}
			}
			launch(t, d, "emutest_own_slot", dim(2, 1, 1), dim(block, 1, 1), 0, p(xp), p(out))
			for i, v := range download[float32](t, d, out, block) {
				if want := x[i]*2 + x[i]; v != want {
					t.Fatalf("%v block %d: own slot out[%d] = %v, want %v", opts.Mode, block, i, v, want)
				}
			}
			counts := upload(t, d, slicesOf[int32](-7, 4))
			launch(t, d, "emutest_shared_atomics", dim(4, 1, 1), dim(block, 1, 1), 0, p(counts), i64(0))
			for b, v := range download[int32](t, d, counts, 4) {
				if v != int32(block) {
					t.Fatalf("%v block %d: shared atomic count of block %d = %d", opts.Mode, block, b, v)
				}
			}
			ints := upload(t, d, slicesOf[int32](-7, block))
			launch(t, d, "emutest_bytes", dim(1, 1, 1), dim(block, 1, 1), 0, p(ints), i64(0))
			for i, v := range download[int32](t, d, ints, block) {
				if v != int32(i&0xff) {
					t.Fatalf("%v block %d: byte %d read back %d", opts.Mode, block, i, v)
				}
			}
			launch(t, d, "emutest_vector_exchange", dim(2, 1, 1), dim(block, 1, 1), 16*block, p(out), i64(1), i64(1))
			for i, v := range download[float32](t, d, out, block) {
				if want := float32(4 * ((i + 1) % block)); v != want {
					t.Fatalf("%v block %d: vector exchange out[%d] = %v, want %v", opts.Mode, block, i, v, want)
				}
			}
		}
	}
}

// TestRaceKinds: races of every width and kind the checked build
// instruments: 16-byte vector stores and loads in dynamic shared memory,
// 1-byte stores, a plain store among atomics.
func TestRaceKinds(t *testing.T) {
	for _, opts := range modes {
		d := checkedDriver(t, opts)
		out := poisonedF32(t, d, 256)
		msg := launchErr(t, d, "emutest_vector_exchange", dim(1, 1, 1), dim(64, 1, 1), 16*64, p(out), i64(2), i64(1))
		wantAll(t, msg, "shared-memory race on dynamic shared memory byte ", "16-byte write by thread", "then 16-byte write by thread")
		msg = launchErr(t, d, "emutest_vector_exchange", dim(1, 1, 1), dim(64, 1, 1), 16*64, p(out), i64(1), i64(0))
		wantAll(t, msg, "shared-memory race on dynamic shared memory byte ", "16-byte ", "read by thread")
		msg = launchErr(t, d, "emutest_bytes", dim(1, 1, 1), dim(64, 1, 1), 0, p(out), i64(1))
		wantAll(t, msg, "shared-memory race on static shared b + ", "1-byte write by thread", "then 1-byte write by thread")
		msg = launchErr(t, d, "emutest_shared_atomics", dim(1, 1, 1), dim(64, 1, 1), 0, p(out), i64(1))
		wantAll(t, msg, "shared-memory race on static shared count + 0", "4-byte atomic by thread", "4-byte write by thread (63,0,0)")
		if opts.Mode == emu.Deterministic {
			// Thread 63's own atomic is ordered before its write; the
			// newest atomic of another warp is thread 31's.
			wantAll(t, msg, "4-byte atomic by thread (31,0,0)", "then 4-byte write by thread (63,0,0)", "(warps 0 and 1")
		}
	}
}

// TestNotedAccesses: accesses the compiler cannot see (memcpy of a
// run-time size) are checked once an emulation helper announces them.
func TestNotedAccesses(t *testing.T) {
	for _, opts := range modes {
		d := checkedDriver(t, opts)
		src, out := upload(t, d, []float32{3, 4, 5, 6}), poisonedF32(t, d, 64)
		launch(t, d, "emutest_copy_note", dim(1, 1, 1), dim(64, 1, 1), 0, p(src), p(out), i64(16), i64(16))
		for i, v := range download[float32](t, d, out, 64) {
			if v != 3 {
				t.Fatalf("%v: out[%d] = %v, want 3", opts.Mode, i, v)
			}
		}
		msg := launchErr(t, d, "emutest_copy_note", dim(1, 1, 1), dim(64, 1, 1), 0, p(src), p(out), i64(16), i64(8))
		wantAll(t, msg, "shared-memory race on static shared s + ", "16-byte write by thread", "then 16-byte write by thread")
		msg = launchErr(t, d, "emutest_copy_note", dim(1, 1, 1), dim(64, 1, 1), 0, p(src), p(out), i64(20), i64(20))
		wantAll(t, msg, "20-byte global read of ", "runs 4 bytes past the end of allocation")
	}
}

// TestGlobalBounds: global accesses outside every live allocation, or
// straddling one's end, or into freed memory, fail the launch naming the
// thread, the address, the nearest allocation and the offset.
func TestGlobalBounds(t *testing.T) {
	for _, opts := range modes {
		d := checkedDriver(t, opts)
		const n = 100
		x := upload(t, d, slicesOf[float32](1, n))
		out := poisonedF32(t, d, n)
		launch(t, d, "emutest_read_at", dim(1, 1, 1), dim(n, 1, 1), 0, p(x), p(out), i64(n), i64(0))

		msg := launchErr(t, d, "emutest_read_at", dim(1, 1, 1), dim(128, 1, 1), 0, p(x), p(out), i64(n), i64(1))
		wantAll(t, msg, "kernel emutest_read_at: block (0,0,0): thread (99,0,0): 4-byte global read of ",
			fmt.Sprintf("outside every allocation; nearest: 0 bytes past the end of allocation %#x (400 bytes), offset 400", uint64(x)))
		msg = launchErr(t, d, "emutest_read_at", dim(1, 1, 1), dim(128, 1, 1), 0, p(x), p(out), i64(n), i64(-1))
		wantAll(t, msg, "thread (0,0,0): 4-byte global read of ", fmt.Sprintf("4 bytes before allocation %#x (400 bytes), offset -4", uint64(x)))
		msg = launchErr(t, d, "emutest_write_at", dim(1, 1, 1), dim(n, 1, 1), 0, p(out), i64(n), i64(1))
		wantAll(t, msg, "kernel emutest_write_at", "thread (99,0,0): 4-byte global write of ", fmt.Sprintf("past the end of allocation %#x", uint64(out)))
		msg = launchErr(t, d, "emutest_load4_at", dim(1, 1, 1), dim(32, 1, 1), 0, p(x), p(out), i64(n-2))
		wantAll(t, msg, "thread (0,0,0): 16-byte global read of ", fmt.Sprintf("runs 8 bytes past the end of allocation %#x (400 bytes); offset 392", uint64(x)))
		launch(t, d, "emutest_load4_at", dim(1, 1, 1), dim(32, 1, 1), 0, p(x), p(out), i64(n-4))

		if err := d.Free(x); err != nil {
			t.Fatal(err)
		}
		msg = launchErr(t, d, "emutest_read_at", dim(1, 1, 1), dim(n, 1, 1), 0, p(x), p(out), i64(n), i64(0))
		wantAll(t, msg, "4-byte global read of ", fmt.Sprintf("inside allocation %#x (400 bytes), which was freed before the launch; offset ", uint64(x)))
		if opts.Mode == emu.Deterministic {
			wantAll(t, msg, "thread (0,0,0): 4-byte global read of ", "freed before the launch; offset 0")
		}
		msg = launchErr(t, d, "emutest_atomic_sum", dim(1, 1, 1), dim(32, 1, 1), 0, p(out), i64(n), p(x), p(out))
		wantAll(t, msg, "4-byte global atomic of ", "which was freed before the launch")
	}
}

// TestDynamicSharedBounds: an access past the launch's dynamic shared
// bytes fails, also when the launch has none.
func TestDynamicSharedBounds(t *testing.T) {
	for _, opts := range modes {
		d := checkedDriver(t, opts)
		out := poisonedF32(t, d, 64)
		launch(t, d, "emutest_dynamic_at", dim(2, 1, 1), dim(64, 1, 1), 4*64, p(out), i64(0))
		msg := launchErr(t, d, "emutest_dynamic_at", dim(2, 1, 1), dim(64, 1, 1), 4*64, p(out), i64(1))
		wantAll(t, msg, "thread (63,0,0): 4-byte write of dynamic shared memory (byte 256)", ": the launch has 256 bytes of dynamic shared memory")
		msg = launchErr(t, d, "emutest_dynamic_at", dim(1, 1, 1), dim(64, 1, 1), 0, p(out), i64(0))
		wantAll(t, msg, "4-byte write of dynamic shared memory (byte ", "the launch has 0 bytes of dynamic shared memory")
	}
}

// TestSharedPoisoned: every block starts with its static and dynamic
// shared memory filled with 0xff bytes, in both builds, so what it reads
// without writing shows (it is not what an earlier block or launch left).
func TestSharedPoisoned(t *testing.T) {
	for _, checks := range []emu.Checks{emu.ChecksOn, emu.ChecksOff} {
		if checks == emu.ChecksOn && !emu.ChecksAvailable() {
			continue // -race
		}
		for _, opts := range modes {
			opts.Checks = checks
			d := newDriver(t, opts)
			const block, grid = 256, 3
			out := upload(t, d, make([]uint32, 2*block*grid))
			for _, write := range []int{1, 0} {
				launch(t, d, "emutest_shared_leftover", dim(grid, 1, 1), dim(block, 1, 1), 4*block, p(out), i64(write))
				got := download[uint32](t, d, out, 2*block*grid)
				for b := 0; b < grid; b++ {
					want := uint32(0xffffffff)
					if b < write {
						want = uint32(b + 1)
					}
					for i := 2 * block * b; i < 2*block*(b+1); i++ {
						if got[i] != want {
							t.Fatalf("checks %v %v write %d: block %d read %#x (%s shared), want %#x", checks, opts.Mode, write, b, got[i],
								[]string{"static", "dynamic"}[i%2], want)
						}
					}
				}
			}
		}
	}
}

// TestDivergentBarrier: threads that wait at different __syncthreads are
// reported by the checked build (the plain one releases them together).
func TestDivergentBarrier(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 38))
	for _, opts := range modes {
		d := checkedDriver(t, opts)
		const block = 64
		x := randF32(rng, block)
		xp, out := upload(t, d, x), poisonedF32(t, d, block)
		for _, split := range []int{0, block} {
			launch(t, d, "emutest_split_barrier", dim(2, 1, 1), dim(block, 1, 1), 0, p(xp), p(out), i64(split))
			for i, v := range download[float32](t, d, out, block) {
				if want := x[(i+1)%block]; v != want {
					t.Fatalf("%v split %d: out[%d] = %v, want %v", opts.Mode, split, i, v, want)
				}
			}
		}
		msg := launchErr(t, d, "emutest_split_barrier", dim(2, 1, 1), dim(block, 1, 1), 0, p(xp), p(out), i64(40))
		wantAll(t, msg, "kernel emutest_split_barrier", "divergent __syncthreads: thread (", " waits at testdata/checks.cu:1")
		if opts.Mode == emu.Deterministic {
			wantAll(t, msg, "thread (0,0,0) waits at testdata/checks.cu:198, thread (40,0,0) at testdata/checks.cu:200")
		}
	}
	plain := newDriver(t, emu.Options{Checks: emu.ChecksOff})
	xp, out := upload(t, plain, randF32(rng, 64)), poisonedF32(t, plain, 64)
	launch(t, plain, "emutest_split_barrier", dim(1, 1, 1), dim(64, 1, 1), 0, p(xp), p(out), i64(40))
}

// TestChecksOption: the checked build is the default under go test, and
// Options.Checks and GPUTRAIN_EMU_CHECKS choose otherwise.
func TestChecksOption(t *testing.T) {
	if !emu.ChecksAvailable() && len(emu.Kernels()) > 0 {
		if _, err := emu.New(emu.Options{Checks: emu.ChecksOn}); err == nil || !strings.Contains(err.Error(), "-race") {
			t.Errorf("ChecksOn in a -race build: New error %v", err)
		}
		if d := newDriver(t, emu.Options{}); d.Checked() {
			t.Error("a -race build runs the checked build")
		}
		t.Skip("no checked build with -race")
	}
	for _, c := range []struct {
		checks emu.Checks
		env    string
		want   bool
	}{
		{emu.ChecksAuto, "", true},
		{emu.ChecksAuto, "0", false},
		{emu.ChecksAuto, "1", true},
		{emu.ChecksOff, "1", false},
		{emu.ChecksOn, "0", true},
	} {
		t.Setenv("GPUTRAIN_EMU_CHECKS", c.env)
		d := newDriver(t, emu.Options{Checks: c.checks})
		if d.Checked() != c.want {
			t.Errorf("Checks %v, GPUTRAIN_EMU_CHECKS=%q: Checked() = %v", c.checks, c.env, d.Checked())
		}
	}
	t.Setenv("GPUTRAIN_EMU_CHECKS", "yes")
	if _, err := emu.New(emu.Options{}); err == nil || !strings.Contains(err.Error(), "GPUTRAIN_EMU_CHECKS") {
		t.Errorf("GPUTRAIN_EMU_CHECKS=yes: New error %v", err)
	}
	if _, err := emu.New(emu.Options{Checks: 9}); err == nil {
		t.Error("Checks 9: no error")
	}
}

// TestEmuHeaderLinkage: every inline function of the emulation headers
// (emu.h and those it includes, such as the mma/cp.async emulation) has
// internal linkage and the unit's instrumentation setting (GT_EMU_FN): an
// inline function with external linkage is compiled into the plain and the
// checked units alike, and the linker keeps one copy for both, so checked
// kernels could run its uninstrumented code (or plain ones the slow one).
func TestEmuHeaderLinkage(t *testing.T) {
	headers, err := filepath.Glob("*.h")
	if err != nil {
		t.Fatal(err)
	}
	inlineRE := regexp.MustCompile(`\binline\b`)
	for _, h := range headers {
		if h == "bridge.h" || h == "check.h" { // not included by kernel code
			continue
		}
		data, err := os.ReadFile(h)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(gen.StripComments(string(data)), "\n") {
			code := strings.TrimSpace(line)
			if strings.HasPrefix(code, "#") || !inlineRE.MatchString(code) {
				continue
			}
			raw := strings.Split(string(data), "\n")[i]
			if strings.Contains(code, "static inline") || strings.Contains(code, "GT_EMU_FN") ||
				strings.Contains(raw, "external linkage: allowed") {
				continue
			}
			t.Errorf("%s:%d: an inline function without GT_EMU_FN (or static and GT_EMU_PLAIN): %s", h, i+1, code)
		}
	}
}
