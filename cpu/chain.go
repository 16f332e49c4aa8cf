package cpu

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/floats"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// model.ChainOps on the CPU, the reference of the chain suite: the
// recursion of chain_semiring.go in float64. Work is split in two phases,
// each output element computed whole by one goroutine in a fixed order, so
// that results do not depend on the thread count: phase 1 runs the
// sequences (each whole in one goroutine) and writes everything that is per
// position or per sequence; phase 2 reduces the shared factors' gradients
// over the sequences in sequence order, the rows of dP split among the
// goroutines.

var _ model.ChainOps = (*Backend)(nil)

// chainBatch is a model.Chain resolved to host slices.
type chainBatch struct {
	u       *Matrix
	p, s, f *Matrix
	off     []int32
	b, r, k int // sequences, rows, states
	fc      *chainFactors
	maxLen  int
}

// resolveChain resolves the handles of c (nil, foreign and freed handles
// are errors); shapes are checked after (the operation's check), and the
// factors are read by load.
func (b *Backend) resolveChain(op string, c model.Chain) (*chainBatch, error) {
	cb := &chainBatch{}
	var err error
	for _, x := range []struct {
		m    model.Mat
		dst  **Matrix
		name string
	}{{c.U, &cb.u, "U"}, {c.P, &cb.p, "P"}, {c.Start, &cb.s, "Start"}, {c.Final, &cb.f, "Final"}} {
		if *x.dst, err = b.mat(x.m, op+" "+x.name); err != nil {
			return nil, err
		}
	}
	off, err := b.ints(c.Offsets, op+" Offsets")
	if err != nil {
		return nil, err
	}
	cb.off = off.data
	return cb, nil
}

// load checks the offsets (and labels, when not nil) and reads the
// factors, for the log semiring at beta when beta > 0; the shapes have
// been checked.
func (cb *chainBatch) load(op string, labels []int32, beta float64) error {
	cb.b, cb.r, cb.k = len(cb.off)-1, cb.u.rows, cb.u.cols
	if err := backendcheck.ChainOffsets(cb.off, cb.r); err != nil {
		return fmt.Errorf("cpu: %s: %w", op, err)
	}
	if labels != nil {
		if err := backendcheck.ChainLabels(labels, cb.off, cb.k); err != nil {
			return fmt.Errorf("cpu: %s: %w", op, err)
		}
	}
	cb.fc = newChainFactors(cb.k, cb.p.data, cb.s.data, cb.f.data, beta)
	for i := 0; i < cb.b; i++ {
		cb.maxLen = max(cb.maxLen, int(cb.off[i+1]-cb.off[i]))
	}
	return nil
}

// rows returns the first and one-past-last row of sequence i.
func (cb *chainBatch) rows(i int) (lo, hi int) { return int(cb.off[i]), int(cb.off[i+1]) }

// unary returns the unary energies of sequence i (T x K).
func (cb *chainBatch) unary(i int) []float32 {
	lo, hi := cb.rows(i)
	return cb.u.data[lo*cb.k : hi*cb.k]
}

// padding returns the row ranges covered by no sequence.
func (cb *chainBatch) padding() [][2]int {
	return [][2]int{{0, int(cb.off[0])}, {int(cb.off[cb.b]), cb.r}}
}

// seqChunk is the number of sequences worth a goroutine: about elemChunk
// operations of the K x K recursion.
func (cb *chainBatch) seqChunk() int {
	return max(1, elemChunk/max(1, cb.maxLen*cb.k*cb.k))
}

// pathEnergy is E(Y) of sequence i for the states ys, accumulated along
// the path in position order as the min semirings do.
func (cb *chainBatch) pathEnergy(u []float32, ys []int32) float64 {
	k, fc := cb.k, cb.fc
	e := fc.s[ys[0]] + float64(u[ys[0]])
	for t := 1; t < len(ys); t++ {
		e = (e + fc.p[int(ys[t-1])*k+int(ys[t])]) + float64(u[t*k+int(ys[t])])
	}
	return e + fc.f[ys[len(ys)-1]]
}

// marginals writes P(y_t = k | X) of one sequence into out (T x K) from its
// forward messages alpha, backward messages rev and log Z, scaled by c.
func marginals(out []float64, alpha, rev []float64, u []float32, beta, logZ, c float64) {
	for i := range out {
		out[i] = c * math.Exp(-beta*(alpha[i]+rev[i]-float64(u[i]))-logZ)
	}
}

// chainPairSums adds to acc (K x K) the rows j in [jlo, jhi) of
//
//	sum over the sequences i in order of coef[i] * sum_{t>1} P(y_{t-1} = j, y_t = k | X)
//
// from every sequence's forward and backward messages (alpha and rev, laid
// out like U) and log Z. P(y_{t-1} = j, y_t = k | X) = exp(-beta
// (alpha_{t-1}(j) + P(j, k) + rev_t(k)) - log Z) factors, with the minima
// ma of alpha_{t-1}, mr of rev_t and pmin of P, into w_t a_j c_k g_jk: a_j
// = exp(-beta (alpha_{t-1}(j) - ma)) and c_k = exp(-beta (rev_t(k) - mr))
// in (0, 1], w_t = exp(-beta (ma + mr + pmin) - log Z), g_jk = exp(-beta
// (P(j, k) - pmin)) in (0, 1]. So each transition adds the outer product w_t
// a c^T (K^2 multiply-adds, 2K exponentials), and g multiplies the sum once.
// A probability is at most 1, so w_t <= exp(beta (max P - pmin)): when that
// could overflow (beta times the range of P above 600), the terms are
// summed one exponential each instead. What underflows is below 1e-300 in
// a probability: nothing is lost that the result could show.
func (cb *chainBatch) chainPairSums(acc []float64, jlo, jhi int, alpha, rev []float64, logZ, coef []float64, beta float64) {
	k, p := cb.k, cb.fc.p
	pmin, pmax := math.Inf(1), math.Inf(-1)
	for _, v := range p {
		pmin, pmax = math.Min(pmin, v), math.Max(pmax, v)
	}
	scaled := beta*(pmax-pmin) <= 600
	c := make([]float64, k)
	for i := 0; i < cb.b; i++ {
		lo, hi := cb.rows(i)
		if coef[i] == 0 || hi-lo < 2 {
			continue
		}
		for t := lo + 1; t < hi; t++ {
			a := alpha[(t-1)*k : t*k]
			r := rev[t*k : (t+1)*k]
			if !scaled {
				for j := jlo; j < jhi; j++ {
					aj, pj, row := a[j], p[j*k:(j+1)*k], acc[j*k:(j+1)*k]
					for c, rc := range r {
						row[c] += coef[i] * math.Exp(-beta*(aj+pj[c]+rc)-logZ[i])
					}
				}
				continue
			}
			ma, mr := math.Inf(1), math.Inf(1)
			for j := range k {
				ma, mr = math.Min(ma, a[j]), math.Min(mr, r[j])
			}
			w := coef[i] * math.Exp(-beta*(ma+mr+pmin)-logZ[i])
			if w == 0 || math.IsInf(ma, 1) || math.IsInf(mr, 1) {
				continue
			}
			for j, v := range r {
				c[j] = math.Exp(-beta * (v - mr))
			}
			for j := jlo; j < jhi; j++ {
				aj := w * math.Exp(-beta*(a[j]-ma))
				if aj == 0 {
					continue
				}
				floats.AddScaled(acc[j*k:(j+1)*k], aj, c)
			}
		}
	}
	if scaled {
		for j := jlo; j < jhi; j++ {
			for x := range k {
				acc[j*k+x] *= math.Exp(-beta * (p[j*k+x] - pmin))
			}
		}
	}
}

// chainSeqResult is phase 1's result for one sequence of ChainLoss.
type chainSeqResult struct {
	terms  model.LossTerms
	logZ   float64
	labels []int32 // nil: the sequence is ignored (or empty)
	other  []int32 // the path the coefficient I applies to (nil: none)
	// first and last are dL/dU of the first and last positions (not yet
	// scaled): dS and dF are their sums, since S(y_1) and U(1, y_1) (F(y_T)
	// and U(T, y_T)) enter every energy together.
	first, last []float64
}

// ChainLoss is model.ChainOps.ChainLoss (see there). Per sequence: the
// log-semiring forward pass (log Z), the 2-best forward pass and its
// backtracking (the Viterbi path and the most offending incorrect
// sequence), the loss terms and, for NLL and MEE, the backward pass
// (marginals); then the reductions onto P, Start and Final.
func (b *Backend) ChainLoss(c model.Chain, labelv model.Ints, loss model.Loss, gradScale float32, statm model.Mat, pathv model.Ints, g model.ChainGrads) error {
	const op = "ChainLoss"
	if err := b.open(); err != nil {
		return err
	}
	cb, err := b.resolveChain(op, c)
	if err != nil {
		return err
	}
	labels, err := b.ints(labelv, op+" labels")
	if err != nil {
		return err
	}
	stats, err := b.mat(statm, op+" stats")
	if err != nil {
		return err
	}
	path, err := b.ints(pathv, op+" path")
	if err != nil {
		return err
	}
	var gp, gs, gf *Matrix
	for _, x := range []struct {
		m    model.Mat
		dst  **Matrix
		name string
	}{{g.P, &gp, "dP"}, {g.Start, &gs, "dStart"}, {g.Final, &gf, "dFinal"}} {
		if x.m == nil {
			continue // all or none: ChainLossShapes says
		}
		if *x.dst, err = b.mat(x.m, op+" "+x.name); err != nil {
			return err
		}
	}
	if err := loss.Validate(); err != nil {
		return fmt.Errorf("cpu: %s: %w", op, err)
	}
	if err := backendcheck.ChainLossShapes(c, labelv, statm, pathv, g); err != nil {
		return fmt.Errorf("cpu: %s: %w", op, err)
	}
	if err := cb.load(op, labels.data, loss.Beta); err != nil {
		return err
	}
	k, beta, scale := cb.k, loss.Beta, float64(gradScale)
	touchAll := loss.Kind.TouchesAll()
	var alphaAll, revAll []float64 // kept for the pairwise marginals of NLL and MEE
	if touchAll && gp != nil {
		alphaAll, revAll = make([]float64, cb.r*k), make([]float64, cb.r*k)
	}
	res := make([]chainSeqResult, cb.b)
	b.parallelRows(cb.b, cb.seqChunk(), func(lo, hi int) {
		n := cb.maxLen * k
		alpha, rev, mu := make([]float64, n), make([]float64, n), make([]float64, n)
		t2 := make([]top2Val, n)
		logSR := newLogSemiring(beta, k)
		second := make([]int32, cb.maxLen)
		for i := lo; i < hi; i++ {
			res[i] = cb.lossSequence(i, loss, logSR, alpha, rev, mu, t2, second, alphaAll, revAll,
				labels.data, stats.data[i*model.NumStats:(i+1)*model.NumStats], path.data, scale)
		}
	})
	cb.clearPadding(path.data)
	if gp == nil {
		return nil
	}
	ds, df := make([]float64, k), make([]float64, k)
	for _, r := range res {
		for c := range r.first {
			ds[c] += r.first[c]
			df[c] += r.last[c]
		}
	}
	for c := range k {
		gs.data[c] = float32(scale * ds[c])
		gf.data[c] = float32(scale * df[c])
	}
	// dP: for each sequence in order its marginal part (NLL, MEE), then the
	// indicator counts of Y_i and of the other path; rows of dP split.
	coef, logZ := make([]float64, cb.b), make([]float64, cb.b)
	for i, r := range res {
		coef[i], logZ[i] = r.terms.All, r.logZ
	}
	acc := make([]float64, k*k)
	b.parallelRows(k, max(1, elemChunk/max(1, cb.r*k)), func(jlo, jhi int) {
		if touchAll {
			cb.chainPairSums(acc, jlo, jhi, alphaAll, revAll, logZ, coef, beta)
		}
		for _, r := range res {
			for t := 1; t < len(r.labels); t++ {
				if j := int(r.labels[t-1]); j >= jlo && j < jhi && r.terms.C != 0 {
					acc[j*k+int(r.labels[t])] += r.terms.C
				}
				if r.other == nil {
					continue
				}
				if j := int(r.other[t-1]); j >= jlo && j < jhi {
					acc[j*k+int(r.other[t])] += r.terms.I
				}
			}
		}
	})
	for i, v := range acc {
		gp.data[i] = float32(scale * v)
	}
	return nil
}

// lossSequence is ChainLoss's phase 1 for sequence i: it writes the
// sequence's statistics (st), Viterbi path and scaled dL/dU, and returns
// what phase 2 needs. alpha, rev, mu, t2 and second are per-goroutine
// scratch of maxLen positions; alphaAll and revAll, when not nil, receive
// the messages for the pairwise marginals instead.
func (cb *chainBatch) lossSequence(i int, loss model.Loss, logSR *logSemiring, alpha, rev, mu []float64, t2 []top2Val, second []int32,
	alphaAll, revAll []float64, labels []int32, st []float32, path []int32, scale float64) chainSeqResult {
	k, beta := cb.k, loss.Beta
	rlo, rhi := cb.rows(i)
	clear(st)
	if rlo == rhi {
		return chainSeqResult{}
	}
	u := cb.unary(i)
	T := rhi - rlo
	a, rv, m := alpha[:T*k], rev[:T*k], mu[:T*k]
	if alphaAll != nil {
		a, rv = alphaAll[rlo*k:rhi*k], revAll[rlo*k:rhi*k]
	}
	logZ := -beta * runChain[float64](logSR, cb.fc, u, false, a)
	tot := runChain[top2Val](top2Semiring{}, cb.fc, u, false, t2[:T*k])
	best := path[rlo:rhi]
	top2Semiring{}.backtrack(t2, k, tot, 0, best)
	st[model.StatLogZ] = float32(logZ)
	ys := labels[rlo:rhi]
	if ys[0] == model.IgnoreLabel {
		clear(u)
		return chainSeqResult{logZ: logZ}
	}
	eC := cb.pathEnergy(u, ys)
	bestIsLabel := equalInts(best, ys)
	// The most offending incorrect sequence: the argmin when that is not
	// Y_i, else the second best (none when K^T = 1).
	other, eI := best, tot.e[0]
	if bestIsLabel {
		other, eI = nil, math.Inf(1)
		if tot.bp[1] != top2None {
			other = second[:T]
			top2Semiring{}.backtrack(t2, k, tot, 1, other)
			eI = tot.e[1]
		}
	}
	terms := loss.Terms(eC, eI, tot.e[0], logZ, bestIsLabel)
	if terms.UsesArgmin {
		other = best
	}
	st[model.StatLoss] = float32(terms.Loss)
	st[model.StatCorrect] = float32(eC)
	st[model.StatOffending] = float32(eI)
	clear(m)
	if terms.All != 0 {
		runChain[float64](logSR, cb.fc, u, true, rv)
		marginals(m, a, rv, u, beta, logZ, terms.All)
	}
	if terms.I == 0 {
		other = nil
	}
	for t := range T {
		m[t*k+int(ys[t])] += terms.C
		if other != nil {
			m[t*k+int(other[t])] += terms.I
		}
	}
	r := chainSeqResult{terms: terms, logZ: logZ, labels: ys, first: append([]float64(nil), m[:k]...), last: append([]float64(nil), m[(T-1)*k:]...)}
	if other != nil {
		r.other = append([]int32(nil), other...)
	}
	for j, v := range m {
		u[j] = float32(scale * v)
	}
	return r
}

// clearPadding zeroes the rows of U outside every sequence and sets their
// path entries (when path is not nil) to IgnoreLabel.
func (cb *chainBatch) clearPadding(path []int32) {
	for _, pr := range cb.padding() {
		clear(cb.u.data[pr[0]*cb.k : pr[1]*cb.k])
		for i := pr[0]; path != nil && i < pr[1]; i++ {
			path[i] = model.IgnoreLabel
		}
	}
}

// ChainMarginals is model.ChainOps.ChainMarginals: forward and backward
// passes of the log semiring per sequence, then the pairwise sums.
func (b *Backend) ChainMarginals(c model.Chain, beta float64, logZm, margm, pairm model.Mat) error {
	const op = "ChainMarginals"
	if err := b.open(); err != nil {
		return err
	}
	cb, err := b.resolveChain(op, c)
	if err != nil {
		return err
	}
	logZv, err := b.mat(logZm, op+" logZ")
	if err != nil {
		return err
	}
	marg, err := b.mat(margm, op+" marg")
	if err != nil {
		return err
	}
	var pair *Matrix
	if pairm != nil {
		if pair, err = b.mat(pairm, op+" pair"); err != nil {
			return err
		}
		err = backendcheck.ChainMarginalsShapes(c, beta, logZm, margm, pairm)
	} else {
		err = backendcheck.ChainMarginalsShapes(c, beta, logZm, margm, nil)
	}
	if err != nil {
		return fmt.Errorf("cpu: %s: %w", op, err)
	}
	if err := cb.load(op, nil, beta); err != nil {
		return err
	}
	k := cb.k
	// The messages of every position stay for the pairwise sums.
	alpha, rev := make([]float64, cb.r*k), make([]float64, cb.r*k)
	logZ := make([]float64, cb.b)
	mu := make([]float64, cb.r*k)
	b.parallelRows(cb.b, cb.seqChunk(), func(lo, hi int) {
		sr := newLogSemiring(beta, k)
		for i := lo; i < hi; i++ {
			rlo, rhi := cb.rows(i)
			if rlo == rhi {
				continue
			}
			u := cb.unary(i)
			a, rv := alpha[rlo*k:rhi*k], rev[rlo*k:rhi*k]
			logZ[i] = -beta * runChain[float64](sr, cb.fc, u, false, a)
			runChain[float64](sr, cb.fc, u, true, rv)
			marginals(mu[rlo*k:rhi*k], a, rv, u, beta, logZ[i], 1)
		}
	})
	for i, v := range logZ {
		logZv.data[i] = float32(v)
	}
	for i, v := range mu {
		marg.data[i] = float32(v) // padding rows stay 0
	}
	if pair == nil {
		return nil
	}
	ones := make([]float64, cb.b)
	for i := range ones {
		ones[i] = 1
	}
	acc := make([]float64, k*k)
	b.parallelRows(k, max(1, elemChunk/max(1, cb.r*k)), func(jlo, jhi int) {
		cb.chainPairSums(acc, jlo, jhi, alpha, rev, logZ, ones, beta)
	})
	for i, v := range acc {
		pair.data[i] = float32(v)
	}
	return nil
}

// ChainViterbi is model.ChainOps.ChainViterbi: the min semiring and its
// backtracking per sequence.
func (b *Backend) ChainViterbi(c model.Chain, pathv model.Ints, energym model.Mat) error {
	const op = "ChainViterbi"
	if err := b.open(); err != nil {
		return err
	}
	cb, err := b.resolveChain(op, c)
	if err != nil {
		return err
	}
	path, err := b.ints(pathv, op+" path")
	if err != nil {
		return err
	}
	energy, err := b.mat(energym, op+" energy")
	if err != nil {
		return err
	}
	if err := backendcheck.ChainViterbiShapes(c, pathv, energym); err != nil {
		return fmt.Errorf("cpu: %s: %w", op, err)
	}
	if err := cb.load(op, nil, 0); err != nil {
		return err
	}
	k := cb.k
	b.parallelRows(cb.b, cb.seqChunk(), func(lo, hi int) {
		msgs := make([]minVal, cb.maxLen*k)
		for i := lo; i < hi; i++ {
			rlo, rhi := cb.rows(i)
			energy.data[i] = 0
			if rlo == rhi {
				continue
			}
			u := cb.unary(i)
			m := msgs[:len(u)]
			tot := runChain[minVal](minSemiring{}, cb.fc, u, false, m)
			minSemiring{}.backtrack(m, k, tot, path.data[rlo:rhi])
			energy.data[i] = float32(tot.e)
		}
	})
	for _, pr := range cb.padding() {
		for i := pr[0]; i < pr[1]; i++ {
			path.data[i] = model.IgnoreLabel
		}
	}
	return nil
}

func equalInts(a, b []int32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
