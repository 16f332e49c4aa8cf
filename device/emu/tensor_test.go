package emu_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
)

// The fragment layouts of the PTX ISA, written out here independently of
// emu_tensor.h (and of the kernels), so that the golden tests below check
// the emulator against the documentation rather than against itself.
// lane = 4 g + t, g = groupID, t = threadID_in_group.

// tf32A returns the (row, col) of register i of lane in the A fragment of
// mma.m16n8k8 .tf32 (PTX ISA, "Matrix Fragments for mma.m16n8k8", the
// .tf32 figure): row = g for a0, a2 and g + 8 for a1, a3; col = t for a0,
// a1 and t + 4 for a2, a3.
func tf32A(lane, i int) (row, col int) {
	g, t := lane/4, lane%4
	return g + 8*(i%2), t + 4*(i/2)
}

// tf32B: row (k) = t for b0, t + 4 for b1; col (n) = g.
func tf32B(lane, i int) (k, n int) { return lane%4 + 4*i, lane / 4 }

// accC is the C and D layout of both shapes: row = g for c0, c1 and g + 8
// for c2, c3; col = 2t + (i & 1).
func accC(lane, i int) (row, col int) { return lane/4 + 8*(i/2), 2*(lane%4) + i%2 }

// bf16A returns the (row, col) of element j (0: low half, 1: high half) of
// register i of lane in the A fragment of mma.m16n8k16 .bf16 (PTX ISA,
// "Matrix Fragments for mma.m16n8k16 with floating point type"): elements
// a0..a7 in registers of two; row = g for a0, a1, a4, a5 and g + 8
// otherwise; col = 2t + (k & 1) for a0..a3, + 8 for a4..a7.
func bf16A(lane, i, j int) (row, col int) {
	g, t := lane/4, lane%4
	e := 2*i + j // element index a_e
	row = g
	if e == 2 || e == 3 || e == 6 || e == 7 {
		row = g + 8
	}
	col = 2*t + e%2
	if e >= 4 {
		col += 8
	}
	return row, col
}

// bf16B: b0, b1 in register 0, b2, b3 in register 1; row (k) = 2t + (e & 1)
// (+ 8 for b2, b3); col (n) = g.
func bf16B(lane, i, j int) (k, n int) { return 2*(lane%4) + j + 8*i, lane / 4 }

// TestFragmentLayoutsMatchTheISA pins the layout functions above to cells
// read off the ISA's figures, so that a slip in them cannot make the
// emulator and the test agree on a wrong layout.
func TestFragmentLayoutsMatchTheISA(t *testing.T) {
	type cell struct{ lane, reg, half, row, col int }
	check := func(name string, f func(lane, reg, half int) (int, int), cells []cell) {
		for _, c := range cells {
			if r, k := f(c.lane, c.reg, c.half); r != c.row || k != c.col {
				t.Errorf("%s: lane %d register %d half %d is (%d, %d), the ISA figure says (%d, %d)", name, c.lane, c.reg, c.half, r, k, c.row, c.col)
			}
		}
	}
	// m16n8k8 .tf32, A: T0 holds a0 at (0,0), a1 at (8,0), a2 at (0,4),
	// a3 at (8,4); T5 (g 1, t 1) a0 at (1,1), a3 at (9,5); T31 a3 at (15,7).
	check("tf32 A", func(l, r, _ int) (int, int) { return tf32A(l, r) }, []cell{
		{0, 0, 0, 0, 0}, {0, 1, 0, 8, 0}, {0, 2, 0, 0, 4}, {0, 3, 0, 8, 4},
		{5, 0, 0, 1, 1}, {5, 3, 0, 9, 5}, {31, 0, 0, 7, 3}, {31, 3, 0, 15, 7}})
	// B (8 x 8, k x n): T0 b0 (0,0), b1 (4,0); T6 (g 1, t 2) b0 (2,1); T31 b1 (7,7).
	check("tf32 B", func(l, r, _ int) (int, int) { return tf32B(l, r) }, []cell{
		{0, 0, 0, 0, 0}, {0, 1, 0, 4, 0}, {6, 0, 0, 2, 1}, {31, 1, 0, 7, 7}})
	// C/D: T0 c0 (0,0), c1 (0,1), c2 (8,0), c3 (8,1); T7 (g 1, t 3) c0 (1,6); T31 c3 (15,7).
	check("C", func(l, r, _ int) (int, int) { return accC(l, r) }, []cell{
		{0, 0, 0, 0, 0}, {0, 1, 0, 0, 1}, {0, 2, 0, 8, 0}, {0, 3, 0, 8, 1}, {7, 0, 0, 1, 6}, {31, 3, 0, 15, 7}})
	// m16n8k16 .bf16, A: T0 a0,a1 (0,0),(0,1); a2,a3 (8,0),(8,1); a4,a5
	// (0,8),(0,9); a6,a7 (8,8),(8,9); T13 (g 3, t 1) a0 (3,2), a7 (11,11).
	check("bf16 A", bf16A, []cell{
		{0, 0, 0, 0, 0}, {0, 0, 1, 0, 1}, {0, 1, 0, 8, 0}, {0, 1, 1, 8, 1}, {0, 2, 0, 0, 8}, {0, 2, 1, 0, 9},
		{0, 3, 0, 8, 8}, {0, 3, 1, 8, 9}, {13, 0, 0, 3, 2}, {13, 3, 1, 11, 11}, {31, 3, 1, 15, 15}})
	// B (16 x 8): T0 b0,b1 (0,0),(1,0); b2,b3 (8,0),(9,0); T30 (g 7, t 2) b3 (13,7).
	check("bf16 B", bf16B, []cell{
		{0, 0, 0, 0, 0}, {0, 0, 1, 1, 0}, {0, 1, 0, 8, 0}, {0, 1, 1, 9, 0}, {30, 1, 1, 13, 7}})
}

func f32bits(x float32) uint32 { return math.Float32bits(x) }

// runMMA launches a one-warp mma test kernel on the registers and returns
// the 32 x 4 d registers.
func runMMA(t *testing.T, d device.Driver, kernel string, a, b []uint32, c []float32) []float32 {
	t.Helper()
	pa, pb, pc := upload(t, d, a), upload(t, d, b), upload(t, d, c)
	pd := poisonedF32(t, d, 128)
	launch(t, d, kernel, dim(1, 1, 1), dim(32, 1, 1), 0, p(pa), p(pb), p(pc), p(pd))
	return download[float32](t, d, pd, 128)
}

// TestMMATF32Golden: A[r][k] = 8r + k + 1, B[k][n] = k - 2n, C[r][n] = 100r
// + n are small integers (exact in tf32 and in every sum), so D = A B + C
// is known exactly; the registers are filled and read through the ISA
// layouts above. A second case feeds unconverted float32 operands: the
// tensor core reads only their high 19 bits (truncation), which cvt.rna
// would have rounded instead.
func TestMMATF32Golden(t *testing.T) {
	for _, opts := range modes {
		d := newDriver(t, opts)
		A := func(r, k int) float32 { return float32(8*r + k + 1) }
		B := func(k, n int) float32 { return float32(k - 2*n) }
		C := func(r, n int) float32 { return float32(100*r + n) }
		a, b, c := make([]uint32, 128), make([]uint32, 64), make([]float32, 128)
		for l := range 32 {
			for i := range 4 {
				r, k := tf32A(l, i)
				a[4*l+i] = f32bits(A(r, k))
				r, n := accC(l, i)
				c[4*l+i] = C(r, n)
			}
			for i := range 2 {
				k, n := tf32B(l, i)
				b[2*l+i] = f32bits(B(k, n))
			}
		}
		got := runMMA(t, d, "emutest_mma_tf32", a, b, c)
		for l := range 32 {
			for i := range 4 {
				r, n := accC(l, i)
				want := C(r, n)
				for k := range 8 {
					want += A(r, k) * B(k, n)
				}
				if got[4*l+i] != want {
					t.Errorf("%v: lane %d d%d = D[%d][%d] = %v, want %v", opts.Mode, l, i, r, n, got[4*l+i], want)
				}
			}
		}
		// Truncation: A = 1 + 2^-11 + 2^-12 (low bits set) everywhere, B =
		// identity, C = 0: D[r][n] = A[r][n] as read by the tensor core,
		// 1 + 2^-11 truncated to 10 mantissa bits = 1.
		x := float32(1 + 0x1p-11 + 0x1p-12)
		for l := range 32 {
			for i := range 4 {
				a[4*l+i] = f32bits(x)
				c[4*l+i] = 0
			}
			for i := range 2 {
				k, n := tf32B(l, i)
				b[2*l+i] = 0
				if k == n {
					b[2*l+i] = f32bits(1)
				}
			}
		}
		got = runMMA(t, d, "emutest_mma_tf32", a, b, c)
		for l := range 32 {
			for i := range 4 {
				if got[4*l+i] != 1 {
					t.Fatalf("%v: unconverted operand %v: lane %d d%d = %v, want 1 (the high 19 bits only)", opts.Mode, x, l, i, got[4*l+i])
				}
			}
		}
	}
}

// bf16 returns the high 16 bits of x (x must be exact in bfloat16).
func bf16(x float32) uint32 { return math.Float32bits(x) >> 16 }

// TestMMABF16Golden is TestMMATF32Golden for m16n8k16 .bf16: A[r][k] =
// r - k/2 (halves, exact in bf16), B[k][n] = k + n - 7, C[r][n] = 10r - n.
func TestMMABF16Golden(t *testing.T) {
	for _, opts := range modes {
		d := newDriver(t, opts)
		A := func(r, k int) float32 { return float32(r) - float32(k)/2 }
		B := func(k, n int) float32 { return float32(k + n - 7) }
		C := func(r, n int) float32 { return float32(10*r - n) }
		a, b, c := make([]uint32, 128), make([]uint32, 64), make([]float32, 128)
		for l := range 32 {
			for i := range 4 {
				for j := range 2 {
					r, k := bf16A(l, i, j)
					a[4*l+i] |= bf16(A(r, k)) << (16 * j)
				}
				r, n := accC(l, i)
				c[4*l+i] = C(r, n)
			}
			for i := range 2 {
				for j := range 2 {
					k, n := bf16B(l, i, j)
					b[2*l+i] |= bf16(B(k, n)) << (16 * j)
				}
			}
		}
		got := runMMA(t, d, "emutest_mma_bf16", a, b, c)
		for l := range 32 {
			for i := range 4 {
				r, n := accC(l, i)
				want := C(r, n)
				for k := range 16 {
					want += A(r, k) * B(k, n)
				}
				if got[4*l+i] != want {
					t.Errorf("%v: lane %d d%d = D[%d][%d] = %v, want %v", opts.Mode, l, i, r, n, got[4*l+i], want)
				}
			}
		}
	}
}

// TestMMAErrors: a warp with a lane that returned, and a block whose last
// warp is partial, are refused rather than computed from missing lanes.
func TestMMAErrors(t *testing.T) {
	d := newDriver(t, emu.Options{})
	out := poisonedF32(t, d, 64)
	if err := d.Launch("emutest_mma_early_exit", dim(1, 1, 1), dim(32, 1, 1), 0, p(out)); err == nil || !strings.Contains(err.Error(), "returned") {
		t.Errorf("mma with lane 5 gone: got %v, want an error saying a lane returned", err)
	}
	a := upload(t, d, make([]uint32, 4*64))
	b := upload(t, d, make([]uint32, 2*64))
	c := upload(t, d, make([]float32, 4*64))
	dd := poisonedF32(t, d, 4*64)
	if err := d.Launch("emutest_mma_tf32", dim(1, 1, 1), dim(48, 1, 1), 0, p(a), p(b), p(c), p(dd)); err == nil || !strings.Contains(err.Error(), "multiple of 32") {
		t.Errorf("mma in a block of 48 threads: got %v, want an error about the partial warp", err)
	}
}

// TestCvt checks cvt.rna.tf32.f32 and cvt.rn.bf16x2.f32 on hand-worked
// values: ties (away from zero for tf32, to even for bf16), carries into
// the exponent, infinities, NaN, subnormals and signed zero.
func TestCvt(t *testing.T) {
	d := newDriver(t, emu.Options{})
	type tc struct {
		x          float32
		tf32, bf16 uint32 // expected bits (bf16: the 16-bit value)
	}
	inf := float32(math.Inf(1))
	cases := []tc{
		{1, 0x3f800000, 0x3f80},
		{1 + 0x1p-11, 0x3f802000, 0x3f80},           // tf32 tie: away (up to 1 + 2^-10); bf16: below half
		{-(1 + 0x1p-11), 0xbf802000, 0xbf80},        // away from zero, negative
		{1 + 0x1p-11 - 0x1p-23, 0x3f800000, 0x3f80}, // just below the tie: down
		{1 + 3*0x1p-11, 0x3f804000, 0x3f80},         // tie between 1+2^-10 and 1+2^-9: away (up)
		{1 + 0x1p-8, 0x3f808000, 0x3f80},            // bf16 tie, even below: stays 1
		{1 + 3*0x1p-8, 0x3f818000, 0x3f82},          // bf16 tie between 0x3f81 (odd) and 0x3f82 (even)
		{2 - 0x1p-23, 0x40000000, 0x4000},           // rounds up into the next binade
		{math.MaxFloat32, 0x7f800000, 0x7f80},       // rounds to infinity (no .satfinite)
		{inf, 0x7f800000, 0x7f80},
		{-inf, 0xff800000, 0xff80},
		{0x1p-136, 0x00002000, 0x0000}, // subnormal, exact in tf32; bf16: below half of 2^-133
		{0x1p-140, 0, 0},               // subnormal below half of tf32's 2^-136: rounds to 0
		{float32(math.Copysign(0, -1)), 0x80000000, 0x8000},
	}
	x := make([]float32, len(cases))
	for i, c := range cases {
		x[i] = c.x
	}
	x = append(x, float32(math.NaN()))
	px := upload(t, d, x)
	pt := upload(t, d, make([]uint32, len(x)))
	pb := upload(t, d, make([]uint32, len(x)))
	launch(t, d, "emutest_cvt", dim(1, 1, 1), dim(32, 1, 1), 0, p(px), p(pt), p(pb), i64(len(x)))
	gt, gb := download[uint32](t, d, pt, len(x)), download[uint32](t, d, pb, len(x))
	for i, c := range cases {
		if gt[i] != c.tf32 {
			t.Errorf("cvt.rna.tf32.f32(%v = %#08x) = %#08x, want %#08x", c.x, math.Float32bits(c.x), gt[i], c.tf32)
		}
		// emutest_cvt packs (-x) low, x high.
		if hi, lo := gb[i]>>16, gb[i]&0xffff; hi != c.bf16 || lo != c.bf16^0x8000 {
			t.Errorf("cvt.rn.bf16x2.f32(%v, -%v) = %#08x, want high %#04x, low %#04x", c.x, c.x, gb[i], c.bf16, c.bf16^0x8000)
		}
	}
	n := len(cases)
	if gt[n] != 0x7fffffff || gb[n] != 0x7fff7fff {
		t.Errorf("NaN converts to tf32 %#08x and bf16x2 %#08x, want the canonical 0x7fffffff and 0x7fff7fff", gt[n], gb[n])
	}
}

// TestCpAsyncGroups follows one thread through commit_group and
// wait_group (see emutest_cp_async_groups): what each wait completes,
// that uncommitted copies are in no group, that src-size zero-fills, and
// that a destination reads as poison (0xffffffff) until its wait.
func TestCpAsyncGroups(t *testing.T) {
	for _, opts := range modes {
		d := newDriver(t, opts)
		src := make([]float32, 16)
		for i := range src {
			src[i] = float32(i + 1)
		}
		ps := upload(t, d, src)
		out := upload(t, d, make([]float32, 80))
		launch(t, d, "emutest_cp_async_groups", dim(1, 1, 1), dim(32, 1, 1), 80, p(ps), p(out))
		got := download[uint32](t, d, out, 80)
		const poison = 0xffffffff
		// landed[step] is how many of s[0..16) hold src by then (the rest
		// is poison), except in step 3, where s[14..16) is zero-filled.
		landed := []int{0, 4, 8, 14}
		for step, n := range landed {
			for i := range 20 {
				want := uint32(poison)
				switch {
				case i < n:
					want = math.Float32bits(src[i])
				case step == 3 && (i == 14 || i == 15):
					want = 0
				}
				if g := got[20*step+i]; g != want {
					t.Errorf("%v: step %d: s[%d] = %#08x, want %#08x", opts.Mode, step, i, g, want)
				}
			}
		}
	}
}

// TestCpAsyncStage: a block stages a tile with cp.async and each thread
// reads its neighbour's part. With wait_group and __syncthreads the tile is
// right; without the wait a thread's read of its own copy is poison (NaN),
// whatever the thread order; with the wait but no barrier the read of the
// neighbour's part races with its copy: the checked build's race detector
// reports it, and in the plain build, in thread order (deterministic mode),
// thread t runs to its end before thread t+1 issues its copy, so it reads
// poison where t+1's data will land.
func TestCpAsyncStage(t *testing.T) {
	const n = 64
	src := make([]float32, 4*n)
	for i := range src {
		src[i] = float32(i)
	}
	var all []emu.Options
	for _, m := range modes {
		for _, c := range []emu.Checks{emu.ChecksOn, emu.ChecksOff} {
			if c == emu.ChecksOn && !emu.ChecksAvailable() {
				continue // -race
			}
			m.Checks = c
			all = append(all, m)
		}
	}
	for _, scalar := range []int{0, 1} {
		for _, opts := range all {
			d := newDriver(t, opts)
			ps := upload(t, d, src)
			run := func(wait, barrier, shift int) ([]float32, error) {
				out := poisonedF32(t, d, 4*n)
				err := d.Launch("emutest_cp_async_stage", dim(1, 1, 1), dim(n, 1, 1), 4*4*n, p(ps), p(out), i64(wait), i64(barrier), i64(scalar), i64(shift))
				return download[float32](t, d, out, 4*n), err
			}
			what := fmt.Sprintf("%v checked=%v scalar=%d", opts.Mode, d.Checked(), scalar)
			got, err := run(1, 1, 1)
			if err != nil {
				t.Fatalf("%s: waited and synchronized: %v", what, err)
			}
			for th := range n {
				for j := range 4 {
					if want := src[4*((th+1)%n)+j]; got[4*th+j] != want {
						t.Fatalf("%s: waited and synchronized: thread %d read %v, want %v", what, th, got[4*th+j], want)
					}
				}
			}
			got, err = run(0, 1, 0)
			if err != nil {
				t.Fatalf("%s: no wait (own copy): %v", what, err)
			}
			for i, v := range got {
				if !math.IsNaN(float64(v)) {
					t.Fatalf("%s: no wait: out[%d] = %v, want the poison (NaN) of a copy not waited for", what, i, v)
				}
			}
			got, err = run(1, 0, 1)
			switch {
			case d.Checked():
				if err == nil || !strings.Contains(err.Error(), "race") {
					t.Fatalf("%s: no barrier: %v, want the race between the copy and the neighbour's read reported", what, err)
				}
			case err != nil:
				t.Fatalf("%s: no barrier, plain build: %v", what, err)
			case opts.Mode == emu.Deterministic:
				for th := range n - 1 {
					if !math.IsNaN(float64(got[4*th])) {
						t.Fatalf("%s: no barrier: thread %d read %v of thread %d, want poison (NaN)", what, th, got[4*th], th+1)
					}
				}
			}
		}
	}
}

// TestCpAsyncErrors: rule-breaking copies fail the launch with the reason;
// a 4-byte copy with src-size 0 may have any source address (it reads
// nothing); a thread that returns with a copy pending is reported when the
// next block's thread reuses its slot.
func TestCpAsyncErrors(t *testing.T) {
	d := newDriver(t, emu.Options{})
	src := upload(t, d, make([]float32, 16))
	for kind, want := range []string{"aligned", "src-size", "aligned", ""} {
		err := d.Launch("emutest_cp_async_bad", dim(1, 1, 1), dim(1, 1, 1), 64, p(src), i64(kind))
		switch {
		case want == "" && err != nil:
			t.Errorf("kind %d (src-size 0, unaligned source): %v, want no error", kind, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("kind %d: got %v, want an error about %q", kind, err, want)
		}
	}
	err := d.Launch("emutest_cp_async_leak", dim(2, 1, 1), dim(32, 1, 1), 64, p(src))
	if err == nil || !strings.Contains(err.Error(), "never waited") {
		t.Errorf("a thread returning with a copy pending: got %v, want an error saying it was never waited for", err)
	}
}
