//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/model"
)

// chainBatch uploads B sequences of T positions over K states (random
// energies) to be, with labels.
func chainBatch(tb testing.TB, be model.Backend, rng *rand.Rand, batch, T, k int) (model.Chain, model.Ints) {
	off := make([]int32, batch+1)
	for i := range off {
		off[i] = int32(i * T)
	}
	labels := make([]int32, batch*T)
	for i := range labels {
		labels[i] = int32(rng.IntN(k))
	}
	return model.Chain{
		U: mustMat(tb, be, batch*T, k, uniform(rng, batch*T*k, -2, 2)), P: mustMat(tb, be, k, k, uniform(rng, k*k, -1, 1)),
		Start: mustMat(tb, be, 1, k, uniform(rng, k, -1, 1)), Final: mustMat(tb, be, 1, k, uniform(rng, k, -1, 1)),
		Offsets: mustInts(tb, be, off),
	}, mustInts(tb, be, labels)
}

// TestGPUChainMatchesCPU runs ChainLoss (NLL) and ChainMarginals at K = 10,
// 100 (P in shared memory) and 1000 (the tiled step) on the GPU and on cpu
// with the same inputs: statistics, dL/dU, dP and the marginals within a
// relative 1e-3 of cpu's, Viterbi paths equal, and a second GPU run bitwise
// the first. (The conformance suite, TestConformance, covers small K
// against brute-force enumeration.)
func TestGPUChainMatchesCPU(t *testing.T) {
	g := newBackend(t, device.Options{})
	ref := cpu.New()
	defer ref.Close()
	for _, k := range []int{10, 100, 1000} {
		t.Run(fmt.Sprintf("K=%d", k), func(t *testing.T) {
			const batch, T = 8, 20
			run := func(be model.Backend) [][]float32 {
				rng := rand.New(rand.NewPCG(9, uint64(k)))
				c, labels := chainBatch(t, be, rng, batch, T, k)
				st, path := mustMat(t, be, batch, model.NumStats, nil), mustInts(t, be, make([]int32, batch*T))
				gr := model.ChainGrads{P: mustMat(t, be, k, k, nil), Start: mustMat(t, be, 1, k, nil), Final: mustMat(t, be, 1, k, nil)}
				ops := be.(model.ChainOps)
				if err := ops.ChainLoss(c, labels, model.DefaultLoss(model.NLL), 0.5, st, path, gr); err != nil {
					t.Fatal(err)
				}
				out := [][]float32{download(t, be, c.U), download(t, be, st), download(t, be, gr.P), download(t, be, gr.Start)}
				p := downloadInts(t, be, path)
				pf := make([]float32, len(p))
				for i, v := range p {
					pf[i] = float32(v)
				}
				c2, _ := chainBatch(t, be, rand.New(rand.NewPCG(9, uint64(k))), batch, T, k)
				z, m, pr := mustMat(t, be, batch, 1, nil), mustMat(t, be, batch*T, k, nil), mustMat(t, be, k, k, nil)
				if err := ops.ChainMarginals(c2, 1, z, m, pr); err != nil {
					t.Fatal(err)
				}
				return append(out, pf, download(t, be, z), download(t, be, m), download(t, be, pr))
			}
			want, got, again := run(ref), run(g), run(g)
			names := []string{"dU", "stats", "dP", "dStart", "path", "logZ", "marg", "pair"}
			for i := range want {
				scale := 1.0
				for _, v := range want[i] {
					scale = math.Max(scale, math.Abs(float64(v)))
				}
				for j := range want[i] {
					tol := 1e-3 * scale
					if names[i] == "path" {
						tol = 0
					}
					if math.Abs(float64(got[i][j]-want[i][j])) > tol {
						t.Fatalf("%s[%d] = %v on the GPU, cpu %v", names[i], j, got[i][j], want[i][j])
					}
					if math.Float32bits(got[i][j]) != math.Float32bits(again[i][j]) {
						t.Fatalf("%s[%d] = %v, then %v on the same inputs", names[i], j, got[i][j], again[i][j])
					}
				}
			}
		})
	}
}

// BenchmarkGPUChain is the chain's workload of docs/PERFORMANCE.md on the
// GPU: forward-backward (ChainMarginals with the pairwise sums, what a
// PyTorch logsumexp recursion plus autograd computes; compare with
// `python3 scripts/bench_chain_torch.py --device cuda --k K`) and the whole
// NLL ChainLoss (which adds the 2-best pass, the loss and every gradient),
// B = 256 sequences of T = 50 positions, K = 10, 100, 1000. It reports
// sequences per second; the time is wall clock over b.N back-to-back calls
// ending in a synchronize. scripts/gpu-check.sh runs it with BenchmarkGPU
// (its -test.bench pattern matches both).
func BenchmarkGPUChain(b *testing.B) {
	requireGPU(b)
	g := newBackend(b, device.Options{})
	drv := g.Driver()
	const batch, T = 256, 50
	for _, k := range []int{10, 100, 1000} {
		rng := rand.New(rand.NewPCG(5, uint64(k)))
		c, labels := chainBatch(b, g, rng, batch, T, k)
		z, m, pr := mustMat(b, g, batch, 1, nil), mustMat(b, g, batch*T, k, nil), mustMat(b, g, k, k, nil)
		st, path := mustMat(b, g, batch, model.NumStats, nil), mustInts(b, g, make([]int32, batch*T))
		gr := model.ChainGrads{P: mustMat(b, g, k, k, nil), Start: mustMat(b, g, 1, k, nil), Final: mustMat(b, g, 1, k, nil)}
		for _, w := range []struct {
			name string
			fn   func() error
		}{
			{fmt.Sprintf("chain_fb_K%d_T%d_B%d", k, T, batch), func() error { return g.ChainMarginals(c, 1, z, m, pr) }},
			// U is overwritten with the gradient, whose entries are in
			// [-1, 1]: later iterations run on those, at the same cost.
			{fmt.Sprintf("chain_nll_K%d_T%d_B%d", k, T, batch), func() error {
				return g.ChainLoss(c, labels, model.DefaultLoss(model.NLL), 1.0/batch, st, path, gr)
			}},
		} {
			b.Run(w.name, func(b *testing.B) {
				if err := w.fn(); err != nil {
					b.Fatal(err)
				}
				if err := drv.Synchronize(); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				b.ResetTimer()
				for range b.N {
					if err := w.fn(); err != nil {
						b.Fatal(err)
					}
				}
				if err := drv.Synchronize(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(batch*b.N)/time.Since(start).Seconds(), "seq/s")
			})
		}
	}
}
