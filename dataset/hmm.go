package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// HMM is a hidden Markov source of labelled sequences: the label y_t is
// the hidden state, a Markov chain with start probabilities Start and
// transitions Trans, and the features x_t ~ N(Means[y_t], Sigma^2 I).
// Because its posterior is known in closed form, the Bayes-optimal
// decisions are computable from the true parameters: P(Y | X) is exactly a
// chain energy at beta = 1 (ChainEnergies), so forward-backward gives the
// per-position Bayes decision (the argmax of each marginal) and Viterbi the
// sequence one (the argmax of P(Y | X)), and a chain model with a linear
// trunk can represent it exactly: a trained one can be compared with the
// best any model can do.
type HMM struct {
	K, D  int
	Start []float64 // pi_k = P(y_1 = k)
	Trans []float64 // A[j*K+k] = P(y_t = k | y_{t-1} = j)
	Means []float64 // K x D
	Sigma float64
}

// NewHMM returns a K-state source in D dimensions: a cycle with strong
// transitions (from state j: j+1 mod K with probability next, j itself with
// probability stay, the other states sharing the rest; K >= 3 so that
// these differ), a uniform start, and means drawn on a sphere of radius
// sep*Sigma/2 around 0 with Sigma = 1, so that sep is the typical distance
// between two means in units of the noise. The same seed gives the same
// source.
func NewHMM(k, d int, next, stay, sep float64, seed uint64) (*HMM, error) {
	switch {
	case k < 3 || k > MaxClasses || d < 1:
		return nil, fmt.Errorf("NewHMM: need K >= 3 states and D >= 1 dimensions, got %d and %d", k, d)
	case !(next >= 0 && stay >= 0 && next+stay <= 1):
		return nil, fmt.Errorf("NewHMM: next %v and stay %v must be probabilities with next + stay <= 1", next, stay)
	case !(sep > 0) || math.IsInf(sep, 0):
		return nil, fmt.Errorf("NewHMM: separation %v must be > 0", sep)
	}
	h := &HMM{K: k, D: d, Start: make([]float64, k), Trans: make([]float64, k*k), Means: make([]float64, k*d), Sigma: 1}
	rest := (1 - next - stay) / float64(k-2)
	for j := range k {
		h.Start[j] = 1 / float64(k)
		for i := range k {
			h.Trans[j*k+i] = rest
		}
		h.Trans[j*k+(j+1)%k] = next
		h.Trans[j*k+j] = stay
	}
	rng := rand.New(rand.NewPCG(seed, 0x484d4d))
	for j := range k {
		mu := h.Means[j*d : (j+1)*d]
		var n2 float64
		for i := range mu {
			mu[i] = rng.NormFloat64()
			n2 += mu[i] * mu[i]
		}
		r := sep * h.Sigma / 2 / math.Sqrt(n2)
		for i := range mu {
			mu[i] *= r
		}
	}
	return h, nil
}

// draw returns index i with probability p[i].
func draw(rng *rand.Rand, p []float64) int {
	x := rng.Float64()
	for i, v := range p {
		if x < v {
			return i
		}
		x -= v
	}
	return len(p) - 1
}

// Sample draws n sequences with lengths uniform in [minLen, maxLen]; the
// same seed gives the same sequences.
func (h *HMM) Sample(n, minLen, maxLen int, seed uint64) (*SequenceSet, error) {
	if n < 1 || minLen < 1 || maxLen < minLen {
		return nil, fmt.Errorf("HMM.Sample: need n >= 1 and 1 <= minLen <= maxLen, got %d, %d, %d", n, minLen, maxLen)
	}
	rng := rand.New(rand.NewPCG(seed, 0x73616d70))
	k, d := h.K, h.D
	s := &SequenceSet{Set: &Set{Name: fmt.Sprintf("hmm-k%d-d%d", k, d), D: d, Shape: []int{d}, Classes: k}, Offsets: []int{0}}
	for range n {
		T := minLen + rng.IntN(maxLen-minLen+1)
		y := draw(rng, h.Start)
		for t := range T {
			if t > 0 {
				y = draw(rng, h.Trans[y*k:(y+1)*k])
			}
			s.Y = append(s.Y, int32(y))
			for i := range d {
				s.X = append(s.X, float32(h.Means[y*d+i]+h.Sigma*rng.NormFloat64()))
			}
		}
		s.N += T
		s.Offsets = append(s.Offsets, s.N)
	}
	return s, nil
}

// ChainEnergies returns the chain energies (model.ChainOps layout) whose
// Gibbs distribution at beta = 1 is the posterior P(Y | X) of x's
// positions (n x D): U[t*K+k] = |x_t - mu_k|^2 / (2 Sigma^2) (the
// -log N(x_t; mu_k, Sigma^2 I) up to a term that does not depend on k and
// cancels in P(Y | X)), P[j*K+k] = -log A[j,k], S[k] = -log pi_k, F = 0.
func (h *HMM) ChainEnergies(x []float32) (u, p, s, f []float32) {
	k, d := h.K, h.D
	n := len(x) / d
	u = make([]float32, n*k)
	for t := range n {
		for j := range k {
			var q float64
			for i := range d {
				v := float64(x[t*d+i]) - h.Means[j*d+i]
				q += v * v
			}
			u[t*k+j] = float32(q / (2 * h.Sigma * h.Sigma))
		}
	}
	p, s, f = make([]float32, k*k), make([]float32, k), make([]float32, k)
	for i, a := range h.Trans {
		p[i] = float32(-math.Log(a))
	}
	for i, a := range h.Start {
		s[i] = float32(-math.Log(a))
	}
	return u, p, s, f
}
