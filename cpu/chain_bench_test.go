package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// chainBench is a batch of B sequences of length T over K states with
// random unary and transition energies.
func chainBench(b *testing.B, be *Backend, batch, T, k int) (model.Chain, model.Mat, model.Mat, model.Mat) {
	rng := rand.New(rand.NewPCG(1, uint64(k)))
	mat := func(r, c int) model.Mat {
		m, err := be.Alloc(r, c)
		if err != nil {
			b.Fatal(err)
		}
		v := make([]float32, r*c)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		if err := be.Upload(m, v); err != nil {
			b.Fatal(err)
		}
		return m
	}
	off := make([]int32, batch+1)
	for i := range off {
		off[i] = int32(i * T)
	}
	ov, _ := be.AllocInts(batch + 1)
	if err := be.UploadInts(ov, off); err != nil {
		b.Fatal(err)
	}
	c := model.Chain{U: mat(batch*T, k), P: mat(k, k), Start: mat(1, k), Final: mat(1, k), Offsets: ov}
	return c, mat(batch, 1), mat(batch*T, k), mat(k, k)
}

// BenchmarkChainForwardBackward is the target workload: log Z,
// the marginals and the summed pairwise marginals (the NLL gradient's
// parts) of B = 256 sequences of T = 50 positions, K = 10, 100, 1000; it
// reports sequences per second. scripts/bench-chain.sh compares it with a
// PyTorch logsumexp recursion differentiated by autograd.
func BenchmarkChainForwardBackward(b *testing.B) {
	const batch, T = 256, 50
	for _, k := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("K=%d", k), func(b *testing.B) {
			be := New()
			defer be.Close()
			c, logZ, marg, pair := chainBench(b, be, batch, T, k)
			b.ResetTimer()
			for range b.N {
				if err := be.ChainMarginals(c, 1, logZ, marg, pair); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "seq/s")
		})
	}
}
