package device_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
)

// chainCase is a batch of sequences: lengths (0 = empty), a padding row
// before and after.
type chainCase struct {
	k    int
	lens []int
}

// chainOut is everything the three chain operations return for a case.
type chainOut struct {
	du, stats, dp, ds, df  []float32 // ChainLoss
	path                   []int32
	logZ, marg, pair       []float32 // ChainMarginals
	vpath                  []int32   // ChainViterbi
	venergy                []float32 //
	loss                   model.Loss
	offsets                []int32
	labels                 []int32
	rows, sequences, state int
}

func runChain(t *testing.T, be model.Backend, c chainCase, l model.Loss, seed uint64) chainOut {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, uint64(c.k)))
	k := c.k
	off := []int32{1} // one padding row first
	for _, n := range c.lens {
		off = append(off, off[len(off)-1]+int32(n))
	}
	rows := int(off[len(off)-1]) + 1
	r := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(s * rng.NormFloat64())
		}
		return v
	}
	labels := make([]int32, rows)
	for i := range labels {
		labels[i] = int32(rng.IntN(k))
	}
	u, p, s, f := r(rows*k, 1.5), r(k*k, 1), r(k, 1), r(k, 1)
	nan := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(math.NaN())
		}
		return v
	}
	ints := func(x []int32) model.Ints {
		v, err := be.AllocInts(len(x))
		must(t, err)
		must(t, be.UploadInts(v, x))
		return v
	}
	chain := func() model.Chain {
		return model.Chain{U: alloc(t, be, rows, k, u), P: alloc(t, be, k, k, p), Start: alloc(t, be, 1, k, s), Final: alloc(t, be, 1, k, f), Offsets: ints(off)}
	}
	B := len(c.lens)
	o := chainOut{loss: l, offsets: off, labels: labels, rows: rows, sequences: B, state: k}
	ch := chain()
	st, path := alloc(t, be, B, model.NumStats, nan(B*model.NumStats)), ints(make([]int32, rows))
	g := model.ChainGrads{P: alloc(t, be, k, k, nan(k*k)), Start: alloc(t, be, 1, k, nan(k)), Final: alloc(t, be, 1, k, nan(k))}
	ops := be.(model.ChainOps)
	must(t, ops.ChainLoss(ch, ints(labels), l, 0.5, st, path, g))
	o.du, o.stats, o.path = download(t, be, ch.U), download(t, be, st), downloadInts(t, be, path)
	o.dp, o.ds, o.df = download(t, be, g.P), download(t, be, g.Start), download(t, be, g.Final)
	ch = chain()
	z, m, pr := alloc(t, be, B, 1, nan(B)), alloc(t, be, rows, k, nan(rows*k)), alloc(t, be, k, k, nan(k*k))
	must(t, ops.ChainMarginals(ch, l.Beta, z, m, pr))
	o.logZ, o.marg, o.pair = download(t, be, z), download(t, be, m), download(t, be, pr)
	vp, ve := ints(make([]int32, rows)), alloc(t, be, B, 1, nan(B))
	must(t, ops.ChainViterbi(ch, vp, ve))
	o.vpath, o.venergy = downloadInts(t, be, vp), download(t, be, ve)
	return o
}

// chainCases are the awkward sizes: K = 1, 2, 3, 31, 33, 100 (and 130,
// whose P does not fit 48 KiB of shared memory), T = 1, 2, 7 with an empty
// sequence.
var chainCases = []chainCase{
	{1, []int{1, 7}}, {2, []int{2, 1, 7}}, {3, []int{7, 0, 2, 1}}, {31, []int{7, 2}}, {33, []int{1, 7}},
	{100, []int{7, 2}}, {130, []int{2, 3}},
}

// TestChainOpsMatchCPU: the chain kernels on the emulator, in both launch
// plans (a block per sequence with P in shared memory or, for K = 130, in
// global memory; the tiled step per position) and both thread orders,
// agree with cpu within float32 rounding (statistics, Viterbi paths
// exactly, every gradient, log Z, marginals, pairwise marginals) for NLL,
// MEE and the hinge loss; and every device run is bitwise the same: run
// twice, in either thread order, in either plan.
func TestChainOpsMatchCPU(t *testing.T) {
	losses := []model.Loss{
		{Kind: model.NLL, Beta: 0.8, Margin: 1, Gamma: 1, Delta: 1},
		{Kind: model.MEE, Beta: 1.2, Margin: 1, Gamma: 1, Delta: 1},
		{Kind: model.Hinge, Beta: 1, Margin: 2, Gamma: 1, Delta: 1},
	}
	ref := cpu.New()
	defer ref.Close()
	for ci, c := range chainCases {
		for li, l := range losses {
			t.Run(fmt.Sprintf("K=%d/T=%v/%v", c.k, c.lens, l.Kind), func(t *testing.T) {
				if testing.Short() && c.k > 33 && li > 0 {
					t.Skip("-short: the large K run with NLL only")
				}
				seed := uint64(10*ci + li)
				want := runChain(t, ref, c, l, seed)
				var first *chainOut
				for _, cfg := range []struct {
					eo emu.Options
					do device.Options
				}{
					{emu.Options{}, device.Options{ChainPlan: device.ChainPlanBlock}},
					{emu.Options{Mode: emu.Permuted, Seed: 5}, device.Options{ChainPlan: device.ChainPlanBlock, MaxBlocks: 2}},
					{emu.Options{}, device.Options{ChainPlan: device.ChainPlanTiled}},
					{emu.Options{Mode: emu.Permuted, Seed: 7}, device.Options{ChainPlan: device.ChainPlanTiled}},
				} {
					be := newDevice(t, cfg.eo, cfg.do)
					got := runChain(t, be, c, l, seed)
					again := runChain(t, be, c, l, seed)
					must(t, be.Close())
					where := fmt.Sprintf("%v plan %v", cfg.eo.Mode, cfg.do.ChainPlan)
					compareChain(t, where, got, want)
					sameChainBits(t, where+", run again", again, got)
					if first == nil {
						first = &got
					} else {
						sameChainBits(t, where+" against the first configuration", got, *first)
					}
				}
			})
		}
	}
}

// compareChain compares a device run with cpu's: Viterbi paths exactly,
// values within a relative 2e-4 of the largest magnitude of their kind
// (float32 sums over up to 7 positions and K terms, exponentials of
// energies of a few units).
func compareChain(t *testing.T, where string, got, want chainOut) {
	t.Helper()
	near := func(name string, g, w []float32) {
		scale := 1.0
		for _, v := range w {
			if !math.IsInf(float64(v), 0) {
				scale = math.Max(scale, math.Abs(float64(v)))
			}
		}
		for i := range w {
			if g[i] != w[i] && !(math.Abs(float64(g[i]-w[i])) <= 2e-4*scale) {
				t.Fatalf("%s: %s[%d] = %v, cpu %v", where, name, i, g[i], w[i])
			}
		}
	}
	same := func(name string, g, w []int32) {
		for i := range w {
			if g[i] != w[i] {
				t.Fatalf("%s: %s[%d] = %d, cpu %d", where, name, i, g[i], w[i])
			}
		}
	}
	same("ChainLoss path", got.path, want.path)
	same("ChainViterbi path", got.vpath, want.vpath)
	near("stats", got.stats, want.stats)
	near("dU", got.du, want.du)
	near("dP", got.dp, want.dp)
	near("dStart", got.ds, want.ds)
	near("dFinal", got.df, want.df)
	near("logZ", got.logZ, want.logZ)
	near("marg", got.marg, want.marg)
	near("pair", got.pair, want.pair)
	near("Viterbi energy", got.venergy, want.venergy)
}

func sameChainBits(t *testing.T, where string, got, want chainOut) {
	t.Helper()
	for _, c := range []struct {
		name string
		g, w []float32
	}{{"dU", got.du, want.du}, {"stats", got.stats, want.stats}, {"dP", got.dp, want.dp}, {"dStart", got.ds, want.ds},
		{"dFinal", got.df, want.df}, {"logZ", got.logZ, want.logZ}, {"marg", got.marg, want.marg}, {"pair", got.pair, want.pair},
		{"Viterbi energy", got.venergy, want.venergy}} {
		for i := range c.w {
			if math.Float32bits(c.g[i]) != math.Float32bits(c.w[i]) {
				t.Fatalf("%s: %s[%d] = %v, not bitwise %v", where, c.name, i, c.g[i], c.w[i])
			}
		}
	}
}

// TestChainTrainingOnDevice trains a chain model for two epochs on
// device+emu and on cpu from the same seed: the losses agree to float32
// precision, and a second device run is bitwise the first.
func TestChainTrainingOnDevice(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const k, d, n = 4, 3, 60
	mk := func(n int) *model.Sequences {
		s := &model.Sequences{Data: model.Data{D: d, Classes: k}, Offsets: []int{0}}
		for range n {
			T := 1 + rng.IntN(6)
			for t := range T {
				y := (t + rng.IntN(2)) % k
				s.Y = append(s.Y, int32(y))
				for j := range d {
					s.X = append(s.X, float32(rng.NormFloat64()+float64(y*j%3)))
				}
			}
			s.N += T
			s.Offsets = append(s.Offsets, s.N)
		}
		return s
	}
	train, test := mk(n), mk(20)
	cfg := model.DefaultConfig()
	cfg.Model, cfg.Epochs, cfg.Batch, cfg.Optimizer.LR = "mlp:5:tanh", 2, 7, 0.05
	run := func(be model.Backend) []model.EpochResult {
		tr, err := model.NewSequenceTrainer(be, cfg, train, test)
		must(t, err)
		defer tr.Close()
		res, err := tr.Run(context.Background())
		must(t, err)
		return res
	}
	ref := cpu.New()
	defer ref.Close()
	want := run(ref)
	var first []model.EpochResult
	for range 2 {
		be := newDevice(t, emu.Options{}, device.Options{})
		got := run(be)
		must(t, be.Close())
		for i := range want {
			if math.Abs(got[i].TrainLoss-want[i].TrainLoss) > 1e-4*(1+math.Abs(want[i].TrainLoss)) ||
				math.Abs(got[i].Eval.NLL-want[i].Eval.NLL) > 1e-4*(1+math.Abs(want[i].Eval.NLL)) {
				t.Fatalf("epoch %d: device loss %v NLL %v, cpu %v %v", i+1, got[i].TrainLoss, got[i].Eval.NLL, want[i].TrainLoss, want[i].Eval.NLL)
			}
		}
		if first != nil {
			for i := range got {
				if got[i].TrainLoss != first[i].TrainLoss || got[i].Eval.NLL != first[i].Eval.NLL {
					t.Fatalf("epoch %d: device runs differ: %v then %v", i+1, first[i].TrainLoss, got[i].TrainLoss)
				}
			}
		}
		first = got
	}
}
