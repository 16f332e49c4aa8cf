package emu_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/device/emu/internal/gen"
)

// TestGeneratedUpToDate regenerates the registry and compares it with the
// committed gen_*.cpp files: a kernel added, removed or edited without
// `go generate ./device/emu` fails here.
func TestGeneratedUpToDate(t *testing.T) {
	want, err := gen.Generate("../..")
	if err != nil {
		t.Fatal(err)
	}
	have, err := filepath.Glob(gen.Prefix + "*.cpp")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range have {
		if _, ok := want[name]; !ok {
			t.Errorf("%s is generated from a source that is gone; run go generate ./device/emu", name)
		}
	}
	for name, data := range want {
		cur, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s is missing (%v); run go generate ./device/emu", name, err)
			continue
		}
		if !bytes.Equal(cur, data) {
			t.Errorf("%s is stale; run go generate ./device/emu", name)
		}
	}
}

var kernelRE = regexp.MustCompile(`extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\([^)]*\)\s*\{`)

// TestRegistryMatchesSources checks that every extern "C" kernel of the
// sources, found by an independent scan, is launchable by name.
func TestRegistryMatchesSources(t *testing.T) {
	if len(emu.Kernels()) == 0 {
		t.Skip("no emulator in this build (cgo disabled)")
	}
	var want []string
	for _, pat := range []string{"../../kernels/*.cu", "testdata/*.cu"} {
		paths, _ := filepath.Glob(pat)
		for _, path := range paths {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range kernelRE.FindAllStringSubmatch(gen.StripComments(string(data)), -1) {
				want = append(want, m[1])
			}
		}
	}
	slices.Sort(want)
	if got := emu.Kernels(); !slices.Equal(got, want) {
		t.Errorf("registry has %v, sources declare %v", got, want)
	}
}

func TestScanErrors(t *testing.T) {
	for _, src := range []string{
		"__global__ void k(float* x) {}",           // not extern "C"
		`extern "C" __global__ void k(float* x {}`, // unbalanced
		`extern "C" __global__ void k(float* x) }`, // no body
	} {
		if _, err := gen.Scan("x.cu", src, nil, nil); err == nil {
			t.Errorf("Scan(%q) = nil error", src)
		}
	}
	ks, err := gen.Scan("x.cu", "// extern \"C\" __global__ void commented(float* x) {}\n"+
		"extern \"C\" __global__ void decl(float* x);\n"+
		"extern \"C\" __global__ void __launch_bounds__(256) k2(float* x) { __shared__ float s[N], u[2]; __shared__ float v[local]; }\n",
		map[string]bool{"N": true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 1 || ks[0].Name != "k2" || len(ks[0].SharedDecls) != 1 || len(ks[0].Unsized) != 1 {
		t.Errorf("Scan = %+v, want k2 with one sized and one unsized shared declaration", ks)
	}
}

// blockSumTree is the Go replica of emutest_block_sum's order of additions.
func blockSumTree(x []float32, n, block, b int) float32 {
	s := make([]float32, block)
	for t := range s {
		if i := b*block + t; i < n {
			s[t] = x[i]
		}
	}
	for stride := block / 2; stride > 0; stride /= 2 {
		for t := block - stride; t < block; t++ {
			s[t] += s[t-stride]
		}
	}
	return s[block-1]
}

func TestBlockSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, opts := range modes {
		d := newDriver(t, opts)
		for _, n := range []int{1, 7, 31, 33, 257, 1000} {
			for _, block := range []int{1, 32, 64, 256, 1024} {
				x := randF32(rng, n)
				grid := ceilDiv(n, block)
				xp, out := upload(t, d, x), poisonedF32(t, d, grid)
				launch(t, d, "emutest_block_sum", dim(grid, 1, 1), dim(block, 1, 1), 0, p(xp), i64(n), p(out))
				got := download[float32](t, d, out, grid)
				for b := range got {
					if want := blockSumTree(x, n, block, b); got[b] != want {
						t.Fatalf("%v n=%d block=%d: out[%d] = %v, want %v", opts.Mode, n, block, b, got[b], want)
					}
				}
			}
		}
	}
}

// TestMissingBarrier: the kernel without its barrier passes in index order
// and fails for some seed of the permuted mode in the plain build: that is
// what permuted mode is for; the checked build reports the race outright.
func TestMissingBarrier(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, block = 1000, 256
	grid := ceilDiv(n, block)
	run := func(opts emu.Options) (got []float32, x []float32) {
		opts.Checks = emu.ChecksOff
		d := newDriver(t, opts)
		x = randF32(rng, n)
		xp, out := upload(t, d, x), poisonedF32(t, d, grid)
		launch(t, d, "emutest_block_sum_nobarrier", dim(grid, 1, 1), dim(block, 1, 1), 0, p(xp), i64(n), p(out))
		return download[float32](t, d, out, grid), x
	}
	wrong := func(got, x []float32) bool {
		for b := range got {
			if got[b] != blockSumTree(x, n, block, b) {
				return true
			}
		}
		return false
	}
	if got, x := run(emu.Options{Mode: emu.Deterministic}); wrong(got, x) {
		t.Fatalf("deterministic mode: wrong sums %v; index order should hide the missing barrier", got)
	}
	caught := 0
	for seed := uint64(1); seed <= 4; seed++ {
		if got, x := run(emu.Options{Mode: emu.Permuted, Seed: seed}); wrong(got, x) {
			caught++
		}
	}
	if caught == 0 {
		t.Fatal("permuted mode did not expose the missing __syncthreads with seeds 1..4")
	}
	t.Logf("missing barrier caught by %d of 4 seeds", caught)

	for _, opts := range modes {
		d := checkedDriver(t, opts)
		xp, out := upload(t, d, randF32(rng, n)), poisonedF32(t, d, grid)
		msg := launchErr(t, d, "emutest_block_sum_nobarrier", dim(grid, 1, 1), dim(block, 1, 1), 0, p(xp), i64(n), p(out))
		wantAll(t, msg, "kernel emutest_block_sum_nobarrier", "shared-memory race on static shared s + ",
			"(device/emu/testdata/reduce.cu:34)", "with no __syncthreads between them")
	}
}

func TestWarpOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, opts := range modes {
		d := newDriver(t, opts)
		for _, w := range []int{1, 2, 8, 16, 32} {
			const block, grid = 64, 3
			n := block * grid
			x := randIntF32(rng, n)
			xp := upload(t, d, x)
			outs := []device.Ptr{poisonedF32(t, d, n), poisonedF32(t, d, n), poisonedF32(t, d, n), poisonedF32(t, d, n)}
			launch(t, d, "emutest_warp_ops", dim(grid, 1, 1), dim(block, 1, 1), 0,
				p(xp), i64(w), p(outs[0]), p(outs[1]), p(outs[2]), p(outs[3]))
			down, xsum := download[float32](t, d, outs[0], n), download[float32](t, d, outs[1], n)
			scan, bcast := download[float32](t, d, outs[2], n), download[float32](t, d, outs[3], n)
			for i := 0; i < n; i++ {
				seg := i - i%w
				var total, prefix float32
				for j := seg; j < seg+w; j++ {
					total += x[j]
					if j <= i {
						prefix += x[j]
					}
				}
				if i == seg && down[i] != total || math.IsNaN(float64(down[i])) {
					t.Fatalf("%v width %d: down[%d] = %v, segment sum %v", opts.Mode, w, i, down[i], total)
				}
				if xsum[i] != total {
					t.Fatalf("%v width %d: xsum[%d] = %v, want %v", opts.Mode, w, i, xsum[i], total)
				}
				if scan[i] != prefix {
					t.Fatalf("%v width %d: scan[%d] = %v, want %v", opts.Mode, w, i, scan[i], prefix)
				}
				if want := x[seg+(i-seg+3)%w]; bcast[i] != want {
					t.Fatalf("%v width %d: bcast[%d] = %v, want %v", opts.Mode, w, i, bcast[i], want)
				}
			}
		}
	}
}

func TestWarpSumInt64(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, opts := range modes {
		d := newDriver(t, opts)
		const n = 4 * 96
		x := make([]int64, n)
		for i := range x {
			x[i] = rng.Int64N(1<<40) - 1<<39 // beyond 32 bits: the shuffle must move 8 bytes
		}
		xp, out := upload(t, d, x), poisonedI64(t, d, n/32)
		launch(t, d, "emutest_warp_sum_int", dim(4, 1, 1), dim(96, 1, 1), 0, p(xp), p(out))
		got := download[int64](t, d, out, n/32)
		for w := range got {
			var want int64
			for _, v := range x[32*w : 32*w+32] {
				want += v
			}
			if got[w] != want {
				t.Fatalf("%v: warp %d sum %d, want %d", opts.Mode, w, got[w], want)
			}
		}
	}
}

func TestAtomicSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, opts := range modes {
		d := newDriver(t, opts)
		for _, n := range []int{1, 33, 1000} {
			x := randIntF32(rng, n)
			xp := upload(t, d, x)
			sum, count := upload(t, d, []float32{0}), upload(t, d, []int32{0})
			launch(t, d, "emutest_atomic_sum", dim(3, 1, 1), dim(100, 1, 1), 0, p(xp), i64(n), p(sum), p(count))
			var want float32
			for _, v := range x {
				want += v
			}
			if got := download[float32](t, d, sum, 1)[0]; got != want {
				t.Errorf("%v n=%d: sum %v, want %v", opts.Mode, n, got, want)
			}
			if got := download[int32](t, d, count, 1)[0]; int(got) != n {
				t.Errorf("%v n=%d: count %d", opts.Mode, n, got)
			}
		}
	}
}

func TestGridStride(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, opts := range modes {
		d := newDriver(t, opts)
		for _, c := range []struct{ n, grid, block int }{{1000, 3, 96}, {1000, 1, 1}, {1000, 20, 96}, {7, 1, 1024}, {1, 5, 33}} {
			x := randF32(rng, c.n)
			xp, y := upload(t, d, x), poisonedF32(t, d, c.n)
			launch(t, d, "emutest_grid_stride", dim(c.grid, 1, 1), dim(c.block, 1, 1), 0, p(xp), p(y), i64(c.n))
			for i, v := range download[float32](t, d, y, c.n) {
				if want := 2*x[i] + 1; v != want {
					t.Fatalf("%v %+v: y[%d] = %v, want %v", opts.Mode, c, i, v, want)
				}
			}
		}
	}
}

func TestCoords(t *testing.T) {
	for _, opts := range modes {
		d := newDriver(t, opts)
		grid, block := dim(3, 2, 2), dim(5, 3, 2)
		nb, nt := grid.X*grid.Y*grid.Z, block.X*block.Y*block.Z
		out := poisonedI64(t, d, 12*nb*nt)
		launch(t, d, "emutest_coords", grid, block, 0, p(out))
		got := download[int64](t, d, out, 12*nb*nt)
		for b := 0; b < nb; b++ {
			for th := 0; th < nt; th++ {
				want := []int64{
					int64(th % block.X), int64(th / block.X % block.Y), int64(th / (block.X * block.Y)),
					int64(b % grid.X), int64(b / grid.X % grid.Y), int64(b / (grid.X * grid.Y)),
					int64(block.X), int64(block.Y), int64(block.Z), int64(grid.X), int64(grid.Y), int64(grid.Z),
				}
				if g := got[12*(b*nt+th) : 12*(b*nt+th)+12]; !slices.Equal(g, want) {
					t.Fatalf("%v: block %d thread %d wrote %v, want %v", opts.Mode, b, th, g, want)
				}
			}
		}
	}
}

func TestGrid2D(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, opts := range modes {
		d := newDriver(t, opts)
		for _, c := range []struct{ w, h, bx, by int }{{37, 23, 16, 8}, {1, 1, 32, 32}, {1000, 3, 32, 4}} {
			x := randF32(rng, c.w*c.h)
			xp, y := upload(t, d, x), poisonedF32(t, d, c.w*c.h)
			launch(t, d, "emutest_grid2d", dim(ceilDiv(c.w, c.bx), ceilDiv(c.h, c.by), 1), dim(c.bx, c.by, 1), 0,
				p(xp), p(y), i64(c.w), i64(c.h))
			for i, v := range download[float32](t, d, y, c.w*c.h) {
				r, col := i/c.w, i%c.w
				if want := x[i]*10 + float32(r-col); v != want {
					t.Fatalf("%v %+v: out[%d,%d] = %v, want %v", opts.Mode, c, r, col, v, want)
				}
			}
		}
	}
}

func TestDynamicShared(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, opts := range modes {
		d := newDriver(t, opts)
		for _, c := range []struct{ n, block int }{{1000, 128}, {7, 32}, {1, 1}, {257, 1024}} {
			x := randF32(rng, c.n)
			xp, y := upload(t, d, x), poisonedF32(t, d, c.n)
			who := upload(t, d, make([]int32, c.n))
			grid := ceilDiv(c.n, c.block)
			launch(t, d, "emutest_reverse_dynamic", dim(grid, 1, 1), dim(c.block, 1, 1), 8*c.block, p(xp), p(y), p(who), i64(c.n))
			gy, gw := download[float32](t, d, y, c.n), download[int32](t, d, who, c.n)
			for i := range gy {
				b, th := i/c.block, i%c.block
				r := c.block - 1 - th
				want := float32(-1)
				if j := b*c.block + r; j < c.n {
					want = x[j]
				}
				if gy[i] != want || int(gw[i]) != r {
					t.Fatalf("%v %+v: y[%d] = %v who %d, want %v who %d", opts.Mode, c, i, gy[i], gw[i], want, r)
				}
			}
		}
	}
}

func TestEarlyExitBeforeBarrier(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for _, opts := range modes {
		d := newDriver(t, opts)
		for _, n := range []int{1, 7, 100, 128} {
			x := randF32(rng, n)
			xp, y := upload(t, d, x), poisonedF32(t, d, n)
			launch(t, d, "emutest_early_exit", dim(1, 1, 1), dim(128, 1, 1), 0, p(xp), p(y), i64(n))
			for i, v := range download[float32](t, d, y, n) {
				if v != x[n-1-i] {
					t.Fatalf("%v n=%d: y[%d] = %v, want %v", opts.Mode, n, i, v, x[n-1-i])
				}
			}
		}
	}
}

func matmulRef(a, b []float32, n int) []float32 {
	c := make([]float32, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			var acc float32
			for k := 0; k < n; k++ {
				acc += float32(a[i*n+k] * b[k*n+j]) // rounded product, as the C++ side
			}
			c[i*n+j] = acc
		}
	}
	return c
}

func TestTiledMatmul(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	for _, opts := range modes {
		d := newDriver(t, opts)
		for _, n := range []int{1, 31, 33, 70} {
			a, b := randF32(rng, n*n), randF32(rng, n*n)
			ap, bp, cp := upload(t, d, a), upload(t, d, b), poisonedF32(t, d, n*n)
			g := ceilDiv(n, 32)
			launch(t, d, "emutest_tiled_matmul", dim(g, g, 1), dim(32, 32, 1), 0, p(ap), p(bp), p(cp), i64(n))
			want := matmulRef(a, b, n)
			for i, v := range download[float32](t, d, cp, n*n) {
				if math.Abs(float64(v-want[i])) > 1e-5*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("%v n=%d: C[%d] = %v, want %v", opts.Mode, n, i, v, want[i])
				}
			}
		}
	}
}

func TestMath(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	d := newDriver(t, emu.Options{})
	const n = 257
	x := randF32(rng, n)
	xp, y := upload(t, d, x), poisonedF32(t, d, 8*n)
	launch(t, d, "emutest_math", dim(2, 1, 1), dim(64, 1, 1), 0, p(xp), p(y), i64(n))
	got := download[float32](t, d, y, 8*n)
	for i, xv := range x {
		v := float64(xv)
		want := []float64{
			math.Exp(v) + math.Expm1(v),
			math.Log(math.Abs(v)+1) + math.Log1p(math.Abs(v)),
			v/3 + math.Sqrt(math.Abs(v)),
			math.Max(v, 0.5) + math.Min(v, -0.5),
			1, 2,
			float64(min(i, 5) + max(i, 3)),
			v,
		}
		for k, w := range want {
			if g := float64(got[8*i+k]); math.Abs(g-w) > 1e-5*(1+math.Abs(w)) {
				t.Fatalf("x=%v: output %d = %v, want %v", v, k, g, w)
			}
		}
	}
}

// TestLaunchErrors checks the errors Launch reports, and that the driver
// still works after each.
func TestLaunchErrors(t *testing.T) {
	d := newDriver(t, emu.Options{})
	out := poisonedF32(t, d, 1024)
	okLaunch := func() {
		t.Helper()
		x := poisonedF32(t, d, 256)
		launch(t, d, "emutest_trivial", dim(1, 1, 1), dim(256, 1, 1), 0, p(x))
		for i, v := range download[float32](t, d, x, 256) {
			if v != float32(i) {
				t.Fatalf("after an error: x[%d] = %v", i, v)
			}
		}
	}
	cases := []struct {
		name, kernel string
		grid, block  device.Dim3
		shared       int
		args         []uint64
		want         string
	}{
		{"unknown", "no_such_kernel", dim(1, 1, 1), dim(1, 1, 1), 0, nil, `unknown kernel "no_such_kernel"`},
		{"too few args", "emutest_grid_stride", dim(1, 1, 1), dim(1, 1, 1), 0, []uint64{p(out)}, "1 arguments for 3 parameters"},
		{"too many args", "emutest_trivial", dim(1, 1, 1), dim(1, 1, 1), 0, []uint64{p(out), 0}, "2 arguments for 1 parameters"},
		{"block 1025", "emutest_trivial", dim(1, 1, 1), dim(1025, 1, 1), 0, []uint64{p(out)}, "out of range"},
		{"block 33x32", "emutest_trivial", dim(1, 1, 1), dim(33, 32, 1), 0, []uint64{p(out)}, "1056 threads"},
		{"block z 65", "emutest_trivial", dim(1, 1, 1), dim(1, 1, 65), 0, []uint64{p(out)}, "out of range"},
		{"block 0", "emutest_trivial", dim(1, 1, 1), dim(0, 1, 1), 0, []uint64{p(out)}, "out of range"},
		{"grid 0", "emutest_trivial", dim(0, 1, 1), dim(1, 1, 1), 0, []uint64{p(out)}, "grid"},
		{"grid y", "emutest_trivial", dim(1, 65536, 1), dim(1, 1, 1), 0, []uint64{p(out)}, "grid"},
		{"dynamic shared", "emutest_trivial", dim(1, 1, 1), dim(1, 1, 1), 48*1024 + 1, []uint64{p(out)}, "exceed the limit of 49152"},
		{"static+dynamic", "emutest_big_shared", dim(1, 1, 1), dim(32, 1, 1), 10000, []uint64{p(out)}, "40000 static + 10000 dynamic"},
		{"negative shared", "emutest_trivial", dim(1, 1, 1), dim(1, 1, 1), -1, []uint64{p(out)}, "negative"},
		{"exit then shuffle", "emutest_exit_then_shuffle", dim(1, 1, 1), dim(64, 1, 1), 0, []uint64{p(out), i64(37)}, "returned"},
		{"barrier vs shuffle", "emutest_barrier_vs_shuffle", dim(2, 1, 1), dim(64, 1, 1), 0, []uint64{p(out)}, "deadlock"},
		{"lane past the block", "emutest_shuffle_delta", dim(1, 1, 1), dim(48, 1, 1), 0, []uint64{p(out), i64(16), i64(32)}, "which does not exist (the block has 48 threads)"},
		{"partial mask", "emutest_partial_mask", dim(1, 1, 1), dim(32, 1, 1), 0, []uint64{p(out)}, "mask 0x0000ffff"},
		{"diverged warp", "emutest_diverged_warp", dim(1, 1, 1), dim(32, 1, 1), 0, []uint64{p(out)}, "diverged"},
	}
	for _, c := range cases {
		err := d.Launch(c.kernel, c.grid, c.block, c.shared, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Launch error %v, want one containing %q", c.name, err, c.want)
		}
		okLaunch()
	}

	// What is allowed near the errors: a shuffle inside a partial warp
	// that stays within it, static+dynamic just under the limit, and more
	// when opted in.
	launch(t, d, "emutest_shuffle_delta", dim(1, 1, 1), dim(48, 1, 1), 0, p(out), i64(8), i64(16))
	for i, v := range download[float32](t, d, out, 48) {
		want := i
		if i%16+8 < 16 {
			want = i + 8
		}
		if v != float32(want) {
			t.Fatalf("shuffle down 8 (width 16) in a 48-thread block: out[%d] = %v, want %d", i, v, want)
		}
	}
	launch(t, d, "emutest_big_shared", dim(1, 1, 1), dim(32, 1, 1), 8000, p(out))
	big := newDriver(t, emu.Options{SharedLimit: 100 * 1024})
	bigOut := poisonedF32(t, big, 1)
	launch(t, big, "emutest_big_shared", dim(1, 1, 1), dim(32, 1, 1), 10000, p(bigOut))
	if v := download[float32](t, big, bigOut, 1)[0]; v != 9999 {
		t.Errorf("emutest_big_shared wrote %v, want 9999", v)
	}
	launch(t, d, "emutest_local_shared", dim(1, 1, 1), dim(64, 1, 1), 0, p(out))
	if v := download[float32](t, d, out, 1)[0]; v != 63 {
		t.Errorf("emutest_local_shared wrote %v, want 63", v)
	}
}

func TestMemory(t *testing.T) {
	d := newDriver(t, emu.Options{MemoryLimit: 1 << 20})
	if _, err := d.Alloc(0); err == nil {
		t.Error("Alloc(0) succeeded")
	}
	if _, err := d.Alloc(1<<20 + 1); err == nil || !strings.Contains(err.Error(), "out of device memory") {
		t.Errorf("Alloc beyond MemoryLimit: %v", err)
	}
	a, err := d.Alloc(1000)
	if err != nil {
		t.Fatal(err)
	}
	if a%256 != 0 {
		t.Errorf("Alloc returned %#x, not 256-byte aligned", uint64(a))
	}
	if got := download[byte](t, d, a, 1000); !bytes.Equal(got, bytes.Repeat([]byte{0xff}, 1000)) {
		t.Error("fresh allocation is not filled with 0xff")
	}
	free, total, err := d.MemInfo()
	if err != nil || total != 1<<20 || free != total-1000 {
		t.Errorf("MemInfo = %d, %d, %v; want %d, %d", free, total, err, total-1000, total)
	}

	src := make([]byte, 1000)
	for i := range src {
		src[i] = byte(i * 7)
	}
	if err := d.CopyIn(a, src); err != nil {
		t.Fatal(err)
	}
	// Interior pointers are fine within bounds.
	if err := d.CopyIn(a+990, src[:10]); err != nil {
		t.Errorf("CopyIn of the last 10 bytes: %v", err)
	}
	if err := d.CopyDevice(a+1, a, 500); err != nil { // overlapping
		t.Fatal(err)
	}
	got := download[byte](t, d, a, 1000)
	want := slices.Concat(src[:1], src[:500], src[501:990], src[:10])
	if !bytes.Equal(got, want) {
		t.Error("CopyIn/CopyDevice/CopyOut round trip differs")
	}

	for _, c := range []struct {
		name string
		err  error
	}{
		{"CopyIn past the end", d.CopyIn(a+991, src[:10])},
		{"CopyOut past the end", d.CopyOut(make([]byte, 1001), a)},
		{"CopyIn before the start", d.CopyIn(a-1, src[:1])},
		{"CopyOut of address 0", d.CopyOut(make([]byte, 1), 0)},
		{"CopyDevice too long", d.CopyDevice(a, a+1, 1000)},
		{"CopyDevice negative", d.CopyDevice(a, a, -1)},
		{"Free interior", d.Free(a + 1)},
		{"Free unknown", d.Free(12345)},
	} {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if err := d.Free(a); err != nil {
		t.Fatal(err)
	}
	if err := d.Free(a); err == nil {
		t.Error("double Free: no error")
	}
	if err := d.CopyIn(a, src[:1]); err == nil {
		t.Error("CopyIn after Free: no error")
	}
	if free, _, _ := d.MemInfo(); free != 1<<20 {
		t.Errorf("MemInfo free = %d after Free, want %d", free, 1<<20)
	}
	if _, err := d.Alloc(100); err != nil {
		t.Fatal(err)
	}
	if err := d.Synchronize(); err != nil {
		t.Errorf("Synchronize: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Alloc(1); err == nil {
		t.Error("Alloc after Close: no error")
	}
	if err := d.Launch("emutest_trivial", dim(1, 1, 1), dim(1, 1, 1), 0, 0); err == nil {
		t.Error("Launch after Close: no error")
	}
}

func TestNewErrors(t *testing.T) {
	for _, o := range []emu.Options{{Mode: 7}, {SharedLimit: -1}, {MemoryLimit: -1}} {
		if _, err := emu.New(o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
}

// TestConcurrentDrivers launches from several goroutines on several
// drivers: the process-wide launch lock keeps the static shared memory of
// one launch from being used by another.
func TestConcurrentDrivers(t *testing.T) {
	if len(emu.Kernels()) == 0 {
		t.Skip("no emulator in this build (cgo disabled)")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			d, err := emu.New(emu.Options{Mode: emu.Mode(g % 2), Seed: uint64(g)})
			if err != nil {
				errs <- err
				return
			}
			defer d.Close()
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			const n, block = 1000, 128
			x := randF32(rng, n)
			xp := upload(t, d, x)
			out := poisonedF32(t, d, 8)
			for it := 0; it < 20; it++ {
				if err := d.Launch("emutest_block_sum", dim(8, 1, 1), dim(block, 1, 1), 0, p(xp), i64(n), p(out)); err != nil {
					errs <- err
					return
				}
				got := make([]float32, 8)
				if err := d.CopyOut(bytesOf(got), out); err != nil {
					errs <- err
					return
				}
				for b := range got {
					if want := blockSumTree(x, n, block, b); got[b] != want {
						errs <- fmt.Errorf("goroutine %d: out[%d] = %v, want %v", g, b, got[b], want)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRealGemm runs the project's gt_gemm_nn through the emulator in both
// modes: a smoke test that real kernels build and run here (their
// numerical tests live in the backend conformance suite).
func TestRealGemm(t *testing.T) {
	if !slices.Contains(emu.Kernels(), "gt_gemm_nn") {
		t.Skip("kernels/gemm.cu has no gt_gemm_nn")
	}
	rng := rand.New(rand.NewPCG(23, 24))
	for _, opts := range modes {
		d := newDriver(t, opts)
		const m, n, k = 33, 70, 17
		a, b := randF32(rng, m*k), randF32(rng, k*n)
		ap, bp, cp := upload(t, d, a), upload(t, d, b), poisonedF32(t, d, m*n)
		launch(t, d, "gt_gemm_nn", dim(ceilDiv(n, 64), ceilDiv(m, 64), 1), dim(256, 1, 1), 0,
			i64(m), i64(n), i64(k), device.FloatArg(1), p(ap), p(bp), device.FloatArg(0), p(cp), i64(0), // flags 0: scalar loads
			0, 0, 0) // no epilogue: bias, aux, colsum
		got := download[float32](t, d, cp, m*n)
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				var want float64
				for l := 0; l < k; l++ {
					want += float64(a[i*k+l]) * float64(b[l*n+j])
				}
				if g := float64(got[i*n+j]); math.Abs(g-want) > 1e-4*(1+math.Abs(want)) {
					t.Fatalf("%v: C[%d,%d] = %v, want %v", opts.Mode, i, j, g, want)
				}
			}
		}
	}
}

// The benchmarks measure the plain build (what gputrain --backend emu runs)
// unless they say checked.

func BenchmarkLaunchTrivial256(b *testing.B) {
	d := newDriver(b, emu.Options{Checks: emu.ChecksOff})
	x := poisonedF32(b, d, 256)
	b.ResetTimer()
	for b.Loop() {
		if err := d.Launch("emutest_trivial", dim(1, 1, 1), dim(256, 1, 1), 0, p(x)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "launches/s")
}

// BenchmarkTiledMatmul32 is one 32 x 32 block (1024 fibers, one tile, two
// barriers) per launch; ...128 is 16 such blocks with four tiles each.
func BenchmarkTiledMatmul32(b *testing.B)  { benchTiled(b, 32) }
func BenchmarkTiledMatmul128(b *testing.B) { benchTiled(b, 128) }

func benchTiled(b *testing.B, n int) {
	for _, opts := range []emu.Options{
		{Mode: emu.Deterministic, Checks: emu.ChecksOff},
		{Mode: emu.Permuted, Seed: 1, Checks: emu.ChecksOff},
		{Mode: emu.Deterministic, Checks: emu.ChecksOn},
	} {
		name := opts.Mode.String()
		if opts.Checks == emu.ChecksOn {
			name += "/checked"
		}
		b.Run(name, func(b *testing.B) {
			d := newDriver(b, opts)
			rng := rand.New(rand.NewPCG(1, 1))
			ap, bp, cp := upload(b, d, randF32(rng, n*n)), upload(b, d, randF32(rng, n*n)), poisonedF32(b, d, n*n)
			g := ceilDiv(n, 32)
			b.ResetTimer()
			for b.Loop() {
				if err := d.Launch("emutest_tiled_matmul", dim(g, g, 1), dim(32, 32, 1), 0, p(ap), p(bp), p(cp), i64(n)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "launches/s")
		})
	}
}
