package model_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// TestEnergiesMatchesForward runs Energies at awkward sizes and batch
// sizes and compares every row with one Forward over all rows; the
// callback's rows must cover 0..n-1 exactly once, in order.
func TestEnergiesMatchesForward(t *testing.T) {
	b := cpu.New()
	defer b.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	const d, k = 13, 7
	spec, err := model.ParseSpec("mlp:9:tanh")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.NewEnergyModel(b, spec, d, k, rng)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	for _, n := range []int{1, 7, 33, 257} {
		x := make([]float32, n*d)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		xm, err := b.Alloc(n, d)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Upload(xm, x); err != nil {
			t.Fatal(err)
		}
		e, err := m.Forward(xm)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, n*k)
		if err := b.Download(want, e); err != nil {
			t.Fatal(err)
		}
		b.Free(xm)
		for _, batch := range []int{1, 7, 31, 1000} {
			t.Run(fmt.Sprintf("n=%d/batch=%d", n, batch), func(t *testing.T) {
				got := make([]float32, n*k)
				for i := range got {
					got[i] = float32(math.NaN())
				}
				next := 0
				err := model.Energies(b, m, x, n, batch, func(start int, e []float32) error {
					if start != next || len(e)%k != 0 || len(e) == 0 || len(e)/k > batch {
						return fmt.Errorf("callback at row %d with %d energies, expected row %d", start, len(e), next)
					}
					copy(got[start*k:], e)
					next = start + len(e)/k
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if next != n {
					t.Fatalf("callbacks covered %d rows of %d", next, n)
				}
				for i := range want {
					if math.Abs(float64(got[i]-want[i])) > 1e-5*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("energy %d (row %d): %v in batches of %d, %v in one pass", i, i/k, got[i], batch, want[i])
					}
				}
			})
		}
	}
	stop := errors.New("stop")
	if err := model.Energies(b, m, make([]float32, 5*d), 5, 2, func(int, []float32) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("callback error not returned: %v", err)
	}
	if err := model.Energies(b, m, make([]float32, 5*d-1), 5, 2, func(int, []float32) error { return nil }); err == nil {
		t.Error("wrong input length accepted")
	}
}

// TestRank checks the order (ties to the lower index), the probabilities
// and log Z against a direct float64 computation.
func TestRank(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, k := range []int{1, 2, 7, 31, 257} {
		for _, beta := range []float64{0.1, 1, 7} {
			e := make([]float32, k)
			for i := range e {
				// Few distinct values, so ties occur; a large offset
				// would overflow a naive exp.
				e[i] = float32(rng.IntN(5)) - 300
			}
			ranked, logZ := model.Rank(e, beta, 0)
			if len(ranked) != k {
				t.Fatalf("k=%d: %d ranked answers", k, len(ranked))
			}
			var z float64
			for _, v := range e {
				z += math.Exp(-beta * (float64(v) + 300))
			}
			wantLogZ := math.Log(z) + beta*300
			if math.Abs(logZ-wantLogZ) > 1e-9*math.Abs(wantLogZ) {
				t.Errorf("k=%d beta=%v: log Z %v, want %v", k, beta, logZ, wantLogZ)
			}
			sum := 0.0
			seen := map[int]bool{}
			for i, r := range ranked {
				if seen[r.Answer] || float64(e[r.Answer]) != r.Energy {
					t.Fatalf("k=%d: ranked %+v does not match energies", k, r)
				}
				seen[r.Answer] = true
				if i > 0 {
					p := ranked[i-1]
					if p.Energy > r.Energy || p.Energy == r.Energy && p.Answer > r.Answer {
						t.Fatalf("k=%d: %+v ranked before %+v", k, p, r)
					}
				}
				want := math.Exp(-beta*r.Energy - logZ)
				if math.Abs(r.Probability-want) > 1e-12 {
					t.Errorf("k=%d: P(%d) = %v, want %v", k, r.Answer, r.Probability, want)
				}
				sum += r.Probability
			}
			if math.Abs(sum-1) > 1e-12 {
				t.Errorf("k=%d beta=%v: probabilities sum to %v", k, beta, sum)
			}
			if top, _ := model.Rank(e, beta, 3); len(top) != min(3, k) || top[0] != ranked[0] {
				t.Errorf("k=%d: top 3 = %+v, full ranking starts %+v", k, top, ranked[0])
			}
		}
	}
}
