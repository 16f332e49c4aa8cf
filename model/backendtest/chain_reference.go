package backendtest

import (
	"math"

	"github.com/gputrain/gputrain/model"
)

// The reference of the chain suite: brute-force enumeration of the product
// space, written from model/chainops.go's contract alone. Every one of the
// K^T sequences is numbered sum_t y_t K^(t-1) (y_1 fastest), its energy
// summed in float64 along the path in position order, and the flat row of
// all K^T energies goes through refEnergyLoss, the suite's independent
// EnergyLoss reference: ties to the lowest index there are the chain's
// tie-break (lowest y_T first). The gradient over sequences is then
// projected onto the factors by counting, for each sequence, which entries
// of U, P, S and F its energy uses.

// maxEnumerated bounds K^T of a case the reference enumerates.
const maxEnumerated = 1 << 15

// refSeq is the float64 view of one sequence of a case: T x K unary
// energies and the shared factors.
type refSeq struct {
	k, t    int
	u       []float64 // T x K
	p, s, f []float64
}

// states returns K^T, or -1 past maxEnumerated.
func (q *refSeq) states() int {
	n := 1
	for range q.t {
		if n > maxEnumerated/q.k {
			return -1
		}
		n *= q.k
	}
	return n
}

// decode writes the states of sequence number idx into y (len T).
func (q *refSeq) decode(idx int, y []int) {
	for t := range y {
		y[t] = idx % q.k
		idx /= q.k
	}
}

// index is the number of the sequence ys.
func (q *refSeq) index(ys []int32) int {
	idx := 0
	for t := len(ys) - 1; t >= 0; t-- {
		idx = idx*q.k + int(ys[t])
	}
	return idx
}

// energy is E(y), in position order.
func (q *refSeq) energy(y []int) float64 {
	k := q.k
	e := q.s[y[0]] + q.u[y[0]]
	for t := 1; t < len(y); t++ {
		e = (e + q.p[y[t-1]*k+y[t]]) + q.u[t*k+y[t]]
	}
	return e + q.f[y[len(y)-1]]
}

// energies enumerates E of every sequence.
func (q *refSeq) energies() []float64 {
	n := q.states()
	e := make([]float64, n)
	y := make([]int, q.t)
	for idx := range e {
		q.decode(idx, y)
		e[idx] = q.energy(y)
	}
	return e
}

// refChainSeq is the reference result of one sequence.
type refChainSeq struct {
	row    refRow    // refEnergyLoss over the K^T sequences
	e      []float64 // E of every sequence
	argmin []int     // the Viterbi path
	// dU (T x K), dS, dF (K), dP (K x K): dL/d(factor) of this sequence,
	// before gradScale, and mu (T x K), pair (K x K): the marginals and
	// the summed pairwise marginals at the loss's beta.
	dU, dS, dF, dP []float64
	mu, pair       []float64
	// gaps are the two smallest differences between consecutive sorted
	// energies among the three lowest sequences (for the near-tie test).
	gap12, gap23 float64
}

// refChain computes one sequence's reference under loss l; label is the
// sequence's labels, or nil for an ignored sequence.
func refChain(q *refSeq, labels []int32, l model.Loss) refChainSeq {
	e := q.energies()
	lab := model.IgnoreLabel
	if labels != nil {
		lab = q.index(labels)
	}
	r := refChainSeq{row: refEnergyLoss(e, lab, l), e: e}
	k, T := q.k, q.t
	r.dU, r.mu = make([]float64, T*k), make([]float64, T*k)
	r.dS, r.dF = make([]float64, k), make([]float64, k)
	r.dP, r.pair = make([]float64, k*k), make([]float64, k*k)
	y := make([]int, T)
	for idx := range e {
		q.decode(idx, y)
		g, p := r.row.grad[idx], r.row.prob[idx]
		for t := range T {
			r.dU[t*k+y[t]] += g
			r.mu[t*k+y[t]] += p
			if t > 0 {
				r.dP[y[t-1]*k+y[t]] += g
				r.pair[y[t-1]*k+y[t]] += p
			}
		}
		r.dS[y[0]] += g
		r.dF[y[T-1]] += g
	}
	r.argmin = make([]int, T)
	q.decode(r.row.argmin, r.argmin)
	lo := [3]float64{math.Inf(1), math.Inf(1), math.Inf(1)}
	for _, v := range e {
		switch {
		case v < lo[0]:
			lo[0], lo[1], lo[2] = v, lo[0], lo[1]
		case v < lo[1]:
			lo[1], lo[2] = v, lo[1]
		case v < lo[2]:
			lo[2] = v
		}
	}
	r.gap12, r.gap23 = lo[1]-lo[0], lo[2]-lo[1]
	return r
}

// refPathEnergy is E(ys) of a sequence of any size (no enumeration).
func refPathEnergy(q *refSeq, ys []int32) float64 {
	y := make([]int, len(ys))
	for t, v := range ys {
		y[t] = int(v)
	}
	return q.energy(y)
}
