package device_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
)

// headCall runs EnergyHeadGrad on one backend of the pair's two and
// returns its outputs.
type headOut struct {
	stats, dh, dw, db []float32
	argmin            []int32
}

func runHead(t *testing.T, b model.Backend, B, D, K int, h, w, bias []float32, labels []int32, l model.Loss, gs float32) headOut {
	t.Helper()
	ops := b.(model.EnergyHeadOps)
	hm, wm, bm := alloc(t, b, B, D, h), alloc(t, b, K, D, w), alloc(t, b, 1, K, bias)
	lv, err := b.AllocInts(B)
	must(t, err)
	must(t, b.UploadInts(lv, labels))
	st, dh, dw, db := alloc(t, b, B, model.NumStats, nil), alloc(t, b, B, D, nil), alloc(t, b, K, D, nil), alloc(t, b, 1, K, nil)
	am, err := b.AllocInts(B)
	must(t, err)
	must(t, ops.EnergyHeadGrad(hm, wm, bm, lv, l, gs, st, am, dh, dw, db))
	out := headOut{stats: download(t, b, st), dh: download(t, b, dh), dw: download(t, b, dw), db: download(t, b, db), argmin: downloadInts(t, b, am)}
	for _, x := range []any{hm, wm, bm, lv, st, dh, dw, db, am} {
		must(t, b.Free(x))
	}
	return out
}

// headProblem draws h, w (scaled by sharp: larger is a more peaked
// distribution), bias and labels (every 9th ignored).
func headProblem(p *pair, B, D, K int, sharp float64) (h, w, bias []float32, labels []int32) {
	h = p.random(B*D, -1, 1)
	s := sharp / math.Sqrt(float64(D))
	w = p.random(K*D, -s, s)
	bias = p.random(K, -0.5, 0.5)
	labels = make([]int32, B)
	for i := range labels {
		labels[i] = int32(p.rng.IntN(K))
		if i%9 == 8 {
			labels[i] = model.IgnoreLabel
		}
	}
	return h, w, bias, labels
}

// TestEnergyHeadGridStride runs the head with every grid-stride kernel
// capped to one block (the merge kernels then loop over all rows) on more
// rows than a block has threads, against the cpu head.
func TestEnergyHeadGridStride(t *testing.T) {
	const B, D, K = 300, 7, 130
	p := newPair(t, emuModes[1].opts, device.Options{MaxBlocks: 1})
	h, w, bias, labels := headProblem(p, B, D, K, 2)
	for _, kind := range []model.LossKind{model.NLL, model.Hinge} {
		l := model.DefaultLoss(kind)
		got := runHead(t, p.dev, B, D, K, h, w, bias, labels, l, 0.5)
		want := runHead(t, p.ref, B, D, K, h, w, bias, labels, l, 0.5)
		compare(t, kind.String()+" stats", got.stats, want.stats, relTol(want.stats, 1e-5))
		compare(t, kind.String()+" dh", got.dh, want.dh, relTol(want.dh, 1e-5))
		compare(t, kind.String()+" dw", got.dw, want.dw, relTol(want.dw, 1e-5))
		compare(t, kind.String()+" db", got.db, want.db, relTol(want.db, 1e-5))
		for i := range want.argmin {
			if got.argmin[i] != want.argmin[i] {
				t.Errorf("%v argmin[%d] = %d, cpu %d", kind, i, got.argmin[i], want.argmin[i])
			}
		}
	}
}

// TestEnergyHeadFilter checks the optional gradient filtering: with
// HeadFilter = eps, the statistics are bitwise the unfiltered ones (the
// forward is not filtered), the sparse losses' gradients too (they
// recompute no tile: their backward is the sparse path, filtered or not),
// and NLL's gradients differ from the unfiltered ones by at most the bound
// of the dropped terms: each is gradScale * P with P < eps, so |error of
// dw[y,d]| <= |gradScale| eps sum_i |h_id|, |error of db[y]| <= |gradScale|
// eps B and |error of dh[i,d]| <= |gradScale| eps sum_y |w_yd|. The
// distribution is peaked the way a trained model's is: a "popular" tile of
// 64 answers gets scores higher by lift (so the other answers' P is about
// exp(-lift)), and 90% of the labels are popular answers. The test logs the
// skipped fraction and the errors (docs/ENERGYHEAD.md quotes them).
func TestEnergyHeadFilter(t *testing.T) {
	const B, D, K = 130, 16, 4000 // 3 row blocks x 63 answer tiles
	const gs = 1.0 / B
	for _, lift := range []float64{6, 16} {
		for _, eps := range []float64{1e-6, 1e-4} {
			t.Run(fmt.Sprintf("lift=%v/eps=%g", lift, eps), func(t *testing.T) {
				exact := newPair(t, emu.Options{Mode: emu.Deterministic}, device.Options{})
				filtered := newDevice(t, emu.Options{Mode: emu.Deterministic}, device.Options{HeadFilter: eps})
				defer filtered.Close()
				h, w, bias, labels := headProblem(exact, B, D, K, 1)
				for y := 0; y < 64; y++ {
					bias[y] += float32(lift)
				}
				for i := range labels {
					if labels[i] >= 0 && exact.rng.IntN(10) != 0 {
						labels[i] = int32(exact.rng.IntN(64))
					}
				}
				for _, kind := range []model.LossKind{model.NLL, model.Hinge} {
					l := model.DefaultLoss(kind)
					want := runHead(t, exact.dev, B, D, K, h, w, bias, labels, l, gs)
					got := runHead(t, filtered, B, D, K, h, w, bias, labels, l, gs)
					skipped, total := filtered.HeadFilterStats()
					for i := range want.stats {
						if math.Float32bits(got.stats[i]) != math.Float32bits(want.stats[i]) {
							t.Fatalf("%v: stats[%d] = %v filtered, %v exact: the forward must not be filtered", kind, i, got.stats[i], want.stats[i])
						}
					}
					if kind != model.NLL {
						for _, g := range [][2][]float32{{got.dh, want.dh}, {got.dw, want.dw}, {got.db, want.db}} {
							for i := range g[1] {
								if g[0][i] != g[1][i] {
									t.Fatalf("%v: a sparse loss's filtered gradient differs at %d: %v vs %v", kind, i, g[0][i], g[1][i])
								}
							}
						}
						if total != 0 {
							t.Errorf("%v: %d tiles examined for filtering: a sparse loss recomputes none", kind, total)
						}
						continue
					}
					colH := make([]float64, D) // sum_i |h_id|
					for i := 0; i < B; i++ {
						for d := 0; d < D; d++ {
							colH[d] += math.Abs(float64(h[i*D+d]))
						}
					}
					colW := make([]float64, D)
					for y := 0; y < K; y++ {
						for d := 0; d < D; d++ {
							colW[d] += math.Abs(float64(w[y*D+d]))
						}
					}
					check := func(name string, got, want []float32, bound func(i int) float64) (maxErr, maxRel float64) {
						for i := range want {
							e := math.Abs(float64(got[i] - want[i]))
							maxErr = math.Max(maxErr, e)
							maxRel = math.Max(maxRel, e/(1e-30+math.Abs(float64(want[i]))))
							if b := bound(i) + 1e-6*math.Abs(float64(want[i])); e > b {
								t.Fatalf("%s[%d] = %v filtered, %v exact: error %.3g above the bound %.3g", name, i, got[i], want[i], e, b)
							}
						}
						return maxErr, maxRel
					}
					eDW, rDW := check("dw", got.dw, want.dw, func(i int) float64 { return gs * eps * colH[i%D] })
					eDB, _ := check("db", got.db, want.db, func(int) float64 { return gs * eps * B })
					eDH, rDH := check("dh", got.dh, want.dh, func(i int) float64 { return gs * eps * colW[i%D] })
					if lift == 16 && skipped == 0 {
						t.Errorf("no tile skipped on a peaked distribution (eps %g, %d tiles)", eps, total)
					}
					t.Logf("nll, B=%d D=%d K=%d, lift %v, eps %g: %d of %d backward tiles filtered (%.1f%%); max |error| dw %.3g (relative %.2g), db %.3g, dh %.3g (relative %.2g); loss and log Z exact",
						B, D, K, lift, eps, skipped, total, 100*float64(skipped)/float64(max(total, 1)), eDW, rDW, eDB, eDH, rDH)
				}
			})
		}
	}
}

// TestEnergyHeadStepPipeline: training steps through the fused head keep
// the pipelined step's promise (no host synchronization, no copy out per
// step) and are captured as graphs: per step of a linear model the head's
// three kernels (gt_eh_forward, gt_eh_merge, gt_eh_grad_w) replace the
// materializing path's GEMM, bias, EnergyLoss and backward GEMMs, and of an
// MLP's the head's gradient of h (gt_eh_grad_h) is added.
func TestEnergyHeadStepPipeline(t *testing.T) {
	const N, D, B = 5*128 + 37, 20, 128
	for _, tc := range []struct {
		spec string
		head []string // kernels per step
	}{{"linear", []string{"gt_eh_forward", "gt_eh_merge", "gt_eh_grad_w"}},
		{"mlp:33", []string{"gt_eh_forward", "gt_eh_merge", "gt_eh_grad_w", "gt_eh_grad_h"}}} {
		for _, mode := range []model.StepMode{model.StepLaunches, model.StepGraph} {
			t.Run(tc.spec+"/"+mode.String(), func(t *testing.T) {
				inner, err := emu.New(emu.Options{Mode: emu.Deterministic})
				must(t, err)
				drv := newCounting(device.WithSoftwareGraphs(inner))
				b, err := device.New(drv)
				must(t, err)
				defer b.Close()
				cfg := model.DefaultConfig()
				cfg.Model, cfg.Batch, cfg.Epochs = tc.spec, B, 2
				tr, err := model.NewTrainer(b, cfg, stepData(N, D, 3), nil)
				must(t, err)
				defer tr.Close()
				tr.Step, tr.LossEvery = mode, 4
				if _, err := tr.TrainEpoch(context.Background()); err != nil {
					t.Fatal(err)
				}
				drv.reset()
				if _, err := tr.TrainEpoch(context.Background()); err != nil {
					t.Fatal(err)
				}
				steps := tr.StepsPerEpoch()
				t.Logf("%s %v: launches %v, graph launches %d, CopyOut %d, Synchronize %d; path %s", tc.spec, mode, drv.launches, drv.graphLaunches, drv.copyOut, drv.syncs, tr.StepPath())
				if drv.copyOut != 0 || drv.syncs != 0 {
					t.Errorf("epoch 2: %d copies out and %d synchronizations: the fused head must not wait for the host", drv.copyOut, drv.syncs)
				}
				if n := drv.launches["gt_energy_loss_cached"] + drv.launches["gt_energy_loss"] + drv.launches["gt_energy_loss_merge"]; n != 0 {
					t.Errorf("%d EnergyLoss launches: the materializing path ran", n)
				}
				for _, k := range tc.head {
					want := steps
					if mode == model.StepGraph {
						want = 1 // the first step, before the capture; the others replay it
					}
					if got := drv.launches[k]; got != want {
						t.Errorf("%s launched %d times in %d steps, want %d", k, got, steps, want)
					}
				}
				if mode == model.StepGraph && drv.graphLaunches != steps-1 {
					t.Errorf("%d graph launches for %d steps (one short one), want %d", drv.graphLaunches, steps, steps-1)
				}
			})
		}
	}
}
