package device_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
)

// The launch plans that Options force: every GEMM tile shape, 128-bit and
// scalar loads, every energy-loss row plan, the two-stage column sums, each
// at awkward sizes against the cpu reference, and the kernels and shapes
// each plan launches.

// launchRecord is one launch seen by a shapeRecorder.
type launchRecord struct {
	kernel        string
	grid, block   device.Dim3
	dynamicShared int
}

// shapeRecorder is a Driver that logs every launch with its shape and
// passes the shared-memory limit of the driver it wraps through.
type shapeRecorder struct {
	device.Driver
	launches []launchRecord
}

func (r *shapeRecorder) Launch(kernel string, grid, block device.Dim3, shared int, args ...uint64) error {
	r.launches = append(r.launches, launchRecord{kernel, grid, block, shared})
	return r.Driver.Launch(kernel, grid, block, shared, args...)
}

func (r *shapeRecorder) MaxDynamicSharedBytes() int {
	return r.Driver.(device.SharedMemoryLimiter).MaxDynamicSharedBytes()
}

// last returns the last launch of kernel, failing the test if there is none.
func (r *shapeRecorder) last(t *testing.T, kernel string) launchRecord {
	t.Helper()
	for i := len(r.launches) - 1; i >= 0; i-- {
		if r.launches[i].kernel == kernel {
			return r.launches[i]
		}
	}
	var names []string
	for _, l := range r.launches {
		names = append(names, l.kernel)
	}
	t.Fatalf("kernel %s was not launched (launched: %v)", kernel, names)
	return launchRecord{}
}

func newShapeRecorded(t *testing.T, eo emu.Options, do device.Options) (*device.Backend, *shapeRecorder) {
	t.Helper()
	drv, err := emu.New(eo)
	if err != nil {
		t.Fatal(err)
	}
	rec := &shapeRecorder{Driver: drv}
	b, err := device.NewWithOptions(rec, do)
	if err != nil {
		drv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b, rec
}

// TestGemmTiles forces each tile shape, with 128-bit loads where the
// operands allow them and with scalar loads only, at sizes that leave
// partial tiles in every dimension (and K = 0, and K not a multiple of the
// slab depth), for all four transposes.
func TestGemmTiles(t *testing.T) {
	sizes := [][3]int{{1, 1, 1}, {7, 130, 33}, {129, 65, 17}, {257, 31, 9}, {128, 128, 8}, {131, 260, 24}, {64, 192, 1}, {33, 64, 0}}
	for _, tile := range []device.GemmTile{device.GemmTile64x64, device.GemmTile128x64, device.GemmTile128x128} {
		for _, scalar := range []bool{false, true} {
			do := device.Options{GemmTile: tile, ScalarLoads: scalar}
			t.Run(fmt.Sprintf("%v/scalar=%v", tile, scalar), func(t *testing.T) {
				for _, mode := range emuModes {
					p := newPair(t, mode.opts, do)
					for _, s := range sizes {
						for _, ta := range []bool{false, true} {
							for _, tb := range []bool{false, true} {
								for _, beta := range []float32{0, 0.75} {
									checkGemm(t, p, s[0], s[1], s[2], ta, tb, beta)
								}
							}
						}
					}
					checkGemmAlphaZero(t, p)
				}
			})
		}
	}
}

// TestGemmTileKernels checks that GemmTile selects the kernel and grid it
// names, and that the automatic choice keeps small products on small tiles.
func TestGemmTileKernels(t *testing.T) {
	cases := []struct {
		tile   device.GemmTile
		m, n   int
		kernel string
		grid   device.Dim3
	}{
		{device.GemmTileAuto, 130, 70, "gt_gemm_nt", device.Dim3{X: 2, Y: 3, Z: 1}},
		{device.GemmTile64x64, 130, 70, "gt_gemm_nt", device.Dim3{X: 2, Y: 3, Z: 1}},
		{device.GemmTile128x64, 130, 70, "gt_gemm_nt_128x64", device.Dim3{X: 2, Y: 2, Z: 1}},
		{device.GemmTile128x128, 130, 70, "gt_gemm_nt_128x128", device.Dim3{X: 1, Y: 2, Z: 1}},
	}
	for _, c := range cases {
		b, rec := newShapeRecorded(t, emu.Options{}, device.Options{GemmTile: c.tile})
		a := alloc(t, b, c.m, 8, make([]float32, c.m*8))
		w := alloc(t, b, c.n, 8, make([]float32, c.n*8))
		out := alloc(t, b, c.m, c.n, nil)
		must(t, b.Gemm(false, true, 1, a, w, 0, out))
		l := rec.last(t, c.kernel)
		if l.grid != c.grid || l.block.X != 256 {
			t.Errorf("GemmTile %v: %s launched with grid %v block %v, want grid %v block 256", c.tile, c.kernel, l.grid, l.block, c.grid)
		}
	}
	if _, err := device.NewWithOptions(must2(emu.New(emu.Options{})), device.Options{GemmTile: 9}); err == nil {
		t.Error("NewWithOptions with GemmTile 9: no error")
	}
}

func must2[T any](x T, err error) T {
	if err != nil {
		panic(err)
	}
	return x
}

// TestEnergyLossPlans forces each row plan, with 128-bit and scalar loads,
// at awkward shapes (rows not a multiple of the warp plan's 8 rows per
// block, K not a multiple of 4, K above the warp plan's 1024), on a full
// grid and on a 2-block grid that loops, against the cpu reference.
func TestEnergyLossPlans(t *testing.T) {
	shapes := [][2]int{{1, 1}, {3, 2}, {9, 7}, {17, 31}, {5, 33}, {2, 257}, {3, 1000}, {2, 1028}}
	kinds := []model.LossKind{model.NLL, model.MEE, model.Hinge, model.Perceptron, model.LVQ2}
	for _, plan := range []device.RowPlan{device.RowPlanWarp, device.RowPlanBlock, device.RowPlanUncached} {
		for _, scalar := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/scalar=%v", plan, scalar), func(t *testing.T) {
				for _, mode := range emuModes {
					do := device.Options{RowPlan: plan, ScalarLoads: scalar}
					full := newPair(t, mode.opts, do)
					do.MaxBlocks = 2
					capped := newDevice(t, mode.opts, do)
					t.Cleanup(func() { capped.Close() })
					rng := rand.New(rand.NewPCG(17, uint64(plan)))
					for _, s := range shapes {
						c := newEnergyCase(rng, s[0], s[1], true)
						for _, kind := range kinds {
							l := model.Loss{Kind: kind, Beta: 1.5, Margin: 0.5, Gamma: 0.7, Delta: 2}
							name := fmt.Sprintf("%s %v %dx%d", mode.name, l, c.B, c.K)
							wantG, wantS, wantA := energyLoss(t, full.ref, c, l, 0.25)
							gotG, gotS, gotA := energyLoss(t, full.dev, c, l, 0.25)
							checkEnergyLoss(t, name, c, gotG, gotS, gotA, wantG, wantS, wantA)
							capG, capS, capA := energyLoss(t, capped, c, l, 0.25)
							checkEnergyLoss(t, name+" 2 blocks", c, capG, capS, capA, wantG, wantS, wantA)
						}
					}
				}
			})
		}
	}
}

// TestEnergyLossLongRows runs the block plan at its largest block (1024
// threads, K > 8192) with and without 128-bit loads.
func TestEnergyLossLongRows(t *testing.T) {
	for _, K := range []int{8196, 8199} {
		p := newPair(t, emu.Options{Mode: emu.Permuted, Seed: 9}, device.Options{})
		rng := rand.New(rand.NewPCG(5, uint64(K)))
		c := newEnergyCase(rng, 3, K, false)
		for _, kind := range []model.LossKind{model.NLL, model.SquareSquare} {
			l := model.Loss{Kind: kind, Beta: 1, Margin: 0.5, Gamma: 1, Delta: 1}
			wantG, wantS, wantA := energyLoss(t, p.ref, c, l, 1)
			gotG, gotS, gotA := energyLoss(t, p.dev, c, l, 1)
			checkEnergyLoss(t, fmt.Sprintf("%v 3x%d", l, K), c, gotG, gotS, gotA, wantG, wantS, wantA)
		}
	}
}

// TestEnergyLossPlanChoice checks which kernel, block and shared memory the
// automatic choice and the forced plans use under a small shared-memory
// limit (6 KiB: 4 KiB for rows after the static reserve), and that a forced
// cached plan whose row does not fit is an error rather than a failed
// launch.
func TestEnergyLossPlanChoice(t *testing.T) {
	eo := emu.Options{Mode: emu.Permuted, Seed: 4, SharedLimit: 6 << 10}
	cases := []struct {
		plan         device.RowPlan
		B, K         int
		kernel       string
		block        device.Dim3
		shared       int
		wantErrorHas string
	}{
		// 8 rows of 12 floats (K rounded up to whole float4) in a warp each.
		{device.RowPlanAuto, 20, 10, "gt_energy_loss_cached", device.Dim3{X: 32, Y: 8, Z: 1}, 8 * 48, ""},
		// Rows of 1040 bytes: 3 fit the 4 KiB.
		{device.RowPlanAuto, 7, 257, "gt_energy_loss_cached", device.Dim3{X: 32, Y: 3, Z: 1}, 3 * 1040, ""},
		// Fewer rows than a block holds: a block of as many warps as rows.
		{device.RowPlanWarp, 2, 7, "gt_energy_loss_cached", device.Dim3{X: 32, Y: 2, Z: 1}, 2 * 32, ""},
		{device.RowPlanBlock, 5, 1000, "gt_energy_loss_cached", device.Dim3{X: 128, Y: 1, Z: 1}, 4000, ""},
		{device.RowPlanBlock, 5, 3, "gt_energy_loss_cached", device.Dim3{X: 64, Y: 1, Z: 1}, 16, ""},
		// 8000 bytes do not fit: one block per row without a cache.
		{device.RowPlanAuto, 3, 2000, "gt_energy_loss", device.Dim3{X: 256, Y: 1, Z: 1}, 0, ""},
		// Longer than DefaultRowChunk and not cached: split.
		{device.RowPlanAuto, 2, 9000, "gt_energy_loss_merge", device.Dim3{X: 256, Y: 1, Z: 1}, 0, ""},
		{device.RowPlanBlock, 3, 2000, "", device.Dim3{}, 0, "do not fit"},
		{device.RowPlanWarp, 3, 2000, "", device.Dim3{}, 0, "do not fit"},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%v/%dx%d", c.plan, c.B, c.K)
		t.Run(name, func(t *testing.T) {
			b, rec := newShapeRecorded(t, eo, device.Options{RowPlan: c.plan})
			rng := rand.New(rand.NewPCG(1, uint64(c.K)))
			ec := newEnergyCase(rng, c.B, c.K, false)
			e := alloc(t, b, c.B, c.K, ec.e)
			st := alloc(t, b, c.B, model.NumStats, nil)
			lab := allocInts(t, b, ec.labels)
			am := allocInts(t, b, poisonedInts(c.B))
			err := b.EnergyLoss(e, lab, model.DefaultLoss(model.NLL), 1, st, am)
			if c.wantErrorHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErrorHas) {
					t.Fatalf("EnergyLoss error = %v, want one containing %q", err, c.wantErrorHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l := rec.last(t, c.kernel)
			if l.block != c.block || l.dynamicShared != c.shared {
				t.Errorf("%s: block %v, %d bytes of shared memory; want block %v, %d bytes", c.kernel, l.block, l.dynamicShared, c.block, c.shared)
			}
		})
	}
	if _, err := device.NewWithOptions(must2(emu.New(emu.Options{})), device.Options{RowPlan: -1}); err == nil {
		t.Error("NewWithOptions with RowPlan -1: no error")
	}
}

// TestColumnSumsSplits forces the two-stage column sums with several
// numbers of row ranges (more ranges than rows too) and checks the
// automatic choice of one or two stages.
func TestColumnSumsSplits(t *testing.T) {
	shapes := [][2]int{{1, 1}, {257, 7}, {1000, 3}, {300, 65}, {64, 33}}
	for _, splits := range []int{1, 2, 7, 1000} {
		forModes(t, device.Options{ColumnSplits: splits}, func(t *testing.T, p *pair) {
			for _, s := range shapes {
				rows, cols := s[0], s[1]
				x := p.random(rows*cols, -3, 3)
				for _, beta := range []float32{0, 2} {
					var dData []float32
					if beta != 0 {
						dData = p.random(cols, -1, 1)
					}
					dd, dr := p.mats(1, cols, dData)
					sd, sr := p.mats(rows, cols, x)
					must(t, p.dev.ColumnSums(dd, 1.5, sd, beta))
					must(t, p.ref.ColumnSums(dr, 1.5, sr, beta))
					got, want := p.both(dd, dr)
					compare(t, fmt.Sprintf("ColumnSums %dx%d splits=%d beta=%v", rows, cols, splits, beta), got, want, relTol(want, 4*u32))
				}
			}
		})
	}
	for _, c := range []struct {
		rows, cols int
		kernel     string
		splits     int
	}{{1000, 3, "gt_column_sums_partial", 15}, {63, 3, "gt_column_sums", 1}, {128, 32 * 1024, "gt_column_sums", 1}} {
		b, rec := newShapeRecorded(t, emu.Options{}, device.Options{})
		dst := alloc(t, b, 1, c.cols, nil)
		src := alloc(t, b, c.rows, c.cols, make([]float32, c.rows*c.cols))
		must(t, b.ColumnSums(dst, 1, src, 0))
		if l := rec.last(t, c.kernel); l.grid.Y != c.splits {
			t.Errorf("ColumnSums %dx%d: %s grid %v, want %d row ranges", c.rows, c.cols, c.kernel, l.grid, c.splits)
		}
	}
}

// TestArgminScalar runs ArgminRows with scalar loads on rows whose length
// allows 128-bit ones (TestArgminAndGather runs those), with ties.
func TestArgminScalar(t *testing.T) {
	forModes(t, device.Options{ScalarLoads: true}, func(t *testing.T, p *pair) {
		for _, s := range [][2]int{{3, 1000}, {5, 4}, {2, 1028}} {
			rows, cols := s[0], s[1]
			e := p.random(rows*cols, 0, 3)
			for i := range e {
				e[i] = float32(int(e[i]))
			}
			ed, er := p.mats(rows, cols, e)
			od, or := p.ints(poisonedInts(rows))
			must(t, p.dev.ArgminRows(ed, od))
			must(t, p.ref.ArgminRows(er, or))
			got, want := downloadInts(t, p.dev, od), downloadInts(t, p.ref, or)
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("ArgminRows %dx%d: row %d: %d, want %d", rows, cols, i, got[i], want[i])
				}
			}
		}
	})
}
