package cpu

import (
	"math"

	"gonum.org/v1/gonum/floats"
)

// The chain's dynamic program, written once and run in three semirings
// (torch-struct's lesson). A message m_t(k) summarises every path of
// positions 1..t that ends in state k, its own unary energy included:
//
//	m_1(k)   = S(k) ⊗ U(1, k)
//	m_t(k)   = (⊕_j m_{t-1}(j) ⊗ P(j, k)) ⊗ U(t, k)
//	total    = ⊕_k m_T(k) ⊗ F(k)
//
// ⊗ adds energies. ⊕ is, per semiring:
//
//	logSemiring   soft-min at beta, -1/beta log sum exp(-beta E): total is
//	              -log Z / beta, the messages are the forward "alphas"
//	minSemiring   min with a backpointer: total is the Viterbi energy
//	top2Semiring  the two lowest with backpointers (k-best Viterbi, k = 2):
//	              total holds the best and second-best sequences, distinct
//
// Run on the reversed chain (positions T..1, P transposed, S and F
// swapped), the same recursion gives the backward messages r_t(k) = the
// paths of positions t..T starting in state k, U(t, k) and F included, so
// that forward-backward needs no second recursion: the paths through
// state k at t weigh m_t(k) + r_t(k) - U(t, k), and those through the
// transition j -> k at t weigh m_{t-1}(j) + P(j, k) + r_t(k).
//
// A semiring implements a whole step (a K x K vector-matrix product) rather
// than ⊕ and ⊗ of two values, so the hot loop has no indirect call and the
// semirings are free to specialise it. Every loop runs in a fixed order (j
// ascending), and the min semirings take ties to the lowest j, which makes
// the chosen paths the lowest under the order of model.ChainOps.

// chainSemiring is one semiring of the recursion over messages of type V.
type chainSemiring[V any] interface {
	// start sets out[k] = s[k] ⊗ u[k].
	start(out []V, s []float64, u []float32)
	// step sets out[k] = (⊕_j prev[j] ⊗ P'(j, k)) ⊗ u[k] for the
	// transitions P' of tr (P, or P^T on the reversed chain).
	step(out, prev []V, tr *chainTransitions, u []float32)
	// total returns ⊕_k last[k] ⊗ f[k].
	total(last []V, f []float64) V
}

// chainTransitions is the transition matrix P' of one direction of the
// recursion, in the forms the semirings read.
type chainTransitions struct {
	// pt is P' transposed, pt[k*K+j] = P'(j, k): the j loop of the min
	// semirings (and of the log semiring's exact path) reads a row.
	pt []float64
	// e and c are the log semiring's scaled exponentials: c[k] = min_j
	// P'(j, k) and e[j*K+k] = exp(-beta (P'(j, k) - c[k])), in (0, 1];
	// nil when the factors were made without a beta.
	e, c []float64
}

func newChainTransitions(k int, pPrime func(j, i int) float64, beta float64) *chainTransitions {
	tr := &chainTransitions{pt: make([]float64, k*k)}
	for j := range k {
		for i := range k {
			tr.pt[i*k+j] = pPrime(j, i)
		}
	}
	if beta == 0 {
		return tr
	}
	tr.e, tr.c = make([]float64, k*k), make([]float64, k)
	for i := range k {
		tr.c[i] = math.Inf(1)
		for _, v := range tr.pt[i*k : (i+1)*k] {
			tr.c[i] = math.Min(tr.c[i], v)
		}
	}
	for j := range k {
		for i := range k {
			tr.e[j*k+i] = math.Exp(-beta * (pPrime(j, i) - tr.c[i]))
		}
	}
	return tr
}

// chainFactors holds one batch's shared factors in float64: P (row-major),
// S and F, and the transitions of both directions.
type chainFactors struct {
	k        int
	p        []float64
	s, f     []float64
	fwd, rev *chainTransitions
}

// newChainFactors reads the factors; beta > 0 prepares the log semiring
// at that beta (0: the min semirings only).
func newChainFactors(k int, p, s, f []float32, beta float64) *chainFactors {
	fc := &chainFactors{k: k, p: to64(p), s: to64(s), f: to64(f)}
	fc.fwd = newChainTransitions(k, func(j, i int) float64 { return fc.p[j*k+i] }, beta)
	fc.rev = newChainTransitions(k, func(j, i int) float64 { return fc.p[i*k+j] }, beta)
	return fc
}

// runChain runs the recursion of sr over one sequence whose unary energies
// are u (T x K, T >= 1), writing the message of every position into msgs
// (T x K, in position order whatever the direction) and returning the
// total. reverse runs it on the reversed chain.
func runChain[V any](sr chainSemiring[V], fc *chainFactors, u []float32, reverse bool, msgs []V) V {
	k := fc.k
	n := len(u) / k
	tr, first, last := fc.fwd, fc.s, fc.f
	if reverse {
		tr, first, last = fc.rev, fc.f, fc.s
	}
	at := func(i int) ([]V, []float32) {
		t := i
		if reverse {
			t = n - 1 - i
		}
		return msgs[t*k : (t+1)*k], u[t*k : (t+1)*k]
	}
	m, ut := at(0)
	sr.start(m, first, ut)
	for i := 1; i < n; i++ {
		prev := m
		m, ut = at(i)
		sr.step(m, prev, tr, ut)
	}
	return sr.total(m, last)
}

// logSemiring: messages are soft-min energies at beta. Each ⊕ over j of
// prev[j] + P'(j, k) is a log-sum-exp shifted by its largest exponent, so
// that nothing overflows. The shift factors: with m = min_j prev[j] and
// c_k = min_j P'(j, k),
//
//	sum_j exp(-beta (prev[j] + P'(j, k))) = exp(-beta (m + c_k)) sum_j a_j e_jk
//
// with a_j = exp(-beta (prev[j] - m)) and e_jk (chainTransitions) both in
// (0, 1], so a step costs K exponentials and a K x K vector-matrix product
// instead of K^2 exponentials. The sum s_k is accurate to its last bits
// unless the terms that matter underflowed: when s_k < 2^-900, terms lost
// below 2^-1022 could matter, and that k is summed exactly (softmin) from
// the unscaled values instead; otherwise what underflowed is below 2^-122
// of s_k.
type logSemiring struct {
	beta float64
	x    []float64 // K scratch values prev[j] + P'(j, k)
	a, s []float64 // K scratch: the a_j and the sums s_k
}

func newLogSemiring(beta float64, k int) *logSemiring {
	return &logSemiring{beta: beta, x: make([]float64, k), a: make([]float64, k), s: make([]float64, k)}
}

// scaledFloor is the smallest sum the scaled product trusts (see above).
const scaledFloor = 0x1p-900

// softmin returns -1/beta log sum_j exp(-beta x_j), +Inf when every x_j is.
func (sr *logSemiring) softmin(x []float64) float64 {
	m := math.Inf(1)
	for _, v := range x {
		if v < m {
			m = v
		}
	}
	if math.IsInf(m, 0) {
		return m
	}
	var s float64
	for _, v := range x {
		s += math.Exp(-sr.beta * (v - m))
	}
	return m - math.Log(s)/sr.beta
}

func (sr *logSemiring) start(out []float64, s []float64, u []float32) {
	for k := range out {
		out[k] = s[k] + float64(u[k])
	}
}

func (sr *logSemiring) step(out, prev []float64, tr *chainTransitions, u []float32) {
	n := len(prev)
	m := math.Inf(1)
	for _, v := range prev {
		if v < m {
			m = v
		}
	}
	if math.IsInf(m, 1) {
		for k := range out {
			out[k] = m
		}
		return
	}
	for j, v := range prev {
		sr.a[j] = math.Exp(-sr.beta * (v - m))
	}
	s := sr.s[:n]
	clear(s)
	for j, a := range sr.a[:n] {
		if a == 0 {
			continue
		}
		floats.AddScaled(s, a, tr.e[j*n:(j+1)*n]) // s += a e_j (gonum: a vectorized axpy)
	}
	for k := range out {
		if s[k] >= scaledFloor {
			out[k] = (m + tr.c[k] - math.Log(s[k])/sr.beta) + float64(u[k])
			continue
		}
		row := tr.pt[k*n : (k+1)*n]
		for j, v := range prev {
			sr.x[j] = v + row[j]
		}
		out[k] = sr.softmin(sr.x) + float64(u[k])
	}
}

func (sr *logSemiring) total(last []float64, f []float64) float64 {
	for k, v := range last {
		sr.x[k] = v + f[k]
	}
	return sr.softmin(sr.x)
}

// minVal is a message of the min semiring: the lowest energy of the paths
// ending here and the state at the previous position of that path (-1 at
// the first position); a total's bp is the last state.
type minVal struct {
	e  float64
	bp int32
}

type minSemiring struct{}

func (minSemiring) start(out []minVal, s []float64, u []float32) {
	for k := range out {
		out[k] = minVal{e: s[k] + float64(u[k]), bp: -1}
	}
}

func (minSemiring) step(out, prev []minVal, tr *chainTransitions, u []float32) {
	n := len(prev)
	for k := range out {
		row := tr.pt[k*n : (k+1)*n]
		best, bj := math.Inf(1), 0 // all +Inf (or NaN): state 0, any path will do
		for j, v := range prev {
			if x := v.e + row[j]; x < best {
				best, bj = x, j
			}
		}
		out[k] = minVal{e: best + float64(u[k]), bp: int32(bj)}
	}
}

func (minSemiring) total(last []minVal, f []float64) minVal {
	best, bk := math.Inf(1), 0
	for k, v := range last {
		if x := v.e + f[k]; x < best {
			best, bk = x, k
		}
	}
	return minVal{e: best, bp: int32(bk)}
}

// backtrack writes the path whose last state is tot.bp into path (T).
func (minSemiring) backtrack(msgs []minVal, k int, tot minVal, path []int32) {
	s := tot.bp
	for t := len(path) - 1; t >= 0; t-- {
		path[t] = s
		s = msgs[t*k+int(s)].bp
	}
}

// top2Val is a message of the 2-best semiring: the two lowest energies of
// distinct paths ending here, best first, and for each the entry it
// extends, encoded j<<1 | r (rank r of state j at the previous position);
// top2None marks an absent entry (fewer than two paths exist). In a total,
// bp encodes the last state and rank the same way.
type top2Val struct {
	e  [2]float64
	bp [2]int32
}

const top2None = -1

type top2Semiring struct{}

func (top2Semiring) start(out []top2Val, s []float64, u []float32) {
	for k := range out {
		out[k] = top2Val{e: [2]float64{s[k] + float64(u[k]), math.Inf(1)}, bp: [2]int32{0, top2None}}
	}
}

// offer inserts candidate (x, code) into the two best (e, bp): strictly
// lower wins, so among equal energies the earlier candidate (lower j, then
// lower rank) stays ahead.
func (v *top2Val) offer(x float64, code int32) {
	switch {
	case v.bp[0] == top2None || x < v.e[0]:
		v.e[1], v.bp[1] = v.e[0], v.bp[0]
		v.e[0], v.bp[0] = x, code
	case v.bp[1] == top2None || x < v.e[1]:
		v.e[1], v.bp[1] = x, code
	}
}

// emptyTop2 holds no path.
func emptyTop2() top2Val {
	return top2Val{e: [2]float64{math.Inf(1), math.Inf(1)}, bp: [2]int32{top2None, top2None}}
}

// extend offers both paths of p (state j), each extended by energy x.
func (v *top2Val) extend(p top2Val, x float64, j int) {
	for r := range 2 {
		if p.bp[r] == top2None {
			return
		}
		v.offer(p.e[r]+x, int32(j<<1|r))
	}
}

func (top2Semiring) step(out, prev []top2Val, tr *chainTransitions, u []float32) {
	n := len(prev)
	for k := range out {
		row := tr.pt[k*n : (k+1)*n]
		v := emptyTop2()
		for j, pj := range prev {
			v.extend(pj, row[j], j)
		}
		for r := range 2 {
			if v.bp[r] != top2None {
				v.e[r] += float64(u[k])
			}
		}
		out[k] = v
	}
}

func (top2Semiring) total(last []top2Val, f []float64) top2Val {
	v := emptyTop2()
	for k, pk := range last {
		v.extend(pk, f[k], k)
	}
	return v
}

// backtrack writes the rank-r path of tot into path (T); tot.bp[r] must
// not be top2None.
func (top2Semiring) backtrack(msgs []top2Val, k int, tot top2Val, r int, path []int32) {
	code := tot.bp[r]
	for t := len(path) - 1; t >= 0; t-- {
		s := code >> 1
		path[t] = s
		code = msgs[t*k+int(s)].bp[code&1]
	}
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}
