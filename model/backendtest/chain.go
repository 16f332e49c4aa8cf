package backendtest

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// The optional model.ChainOps capability, checked against brute-force
// enumeration (chain_reference.go) on small K and T, and by identities
// between its operations and properties of its answers where K^T is too
// large to enumerate.

// chainCase is one batch: sequences of the given lengths (0: an empty,
// padding sequence) packed after lead padding rows and followed by trail
// ones; ignored[i] makes sequence i unlabelled. ties draws every factor
// from the integers -2..2, so that many sequences have exactly equal
// energies (integer sums are exact in float32 and float64 alike).
type chainCase struct {
	k           int
	lens        []int
	lead, trail int
	ignored     []bool
	ties        bool
	// spread multiplies every factor (0: 1): hundreds put energies of the
	// same position thousands apart, where sums of exponentials underflow
	// unless they are shifted well.
	spread float64
}

func (c chainCase) String() string {
	s := fmt.Sprintf("K=%d/T=%v", c.k, c.lens)
	if c.lead > 0 || c.trail > 0 {
		s += fmt.Sprintf("/pad=%d+%d", c.lead, c.trail)
	}
	if c.ties {
		s += "/ties"
	}
	if c.spread != 0 {
		s += fmt.Sprintf("/spread=%g", c.spread)
	}
	return s
}

// chainCases are the enumerated cases: K = 1 (one answer), 2, 3, 5; T =
// 1, 2, 7 and mixtures of lengths with an empty sequence, an ignored one
// and padding rows on both sides.
var chainCases = []chainCase{
	{k: 1, lens: []int{1, 7}},
	{k: 2, lens: []int{1}},
	{k: 2, lens: []int{2, 7, 1}, ignored: []bool{false, false, true}},
	{k: 3, lens: []int{7}},
	{k: 3, lens: []int{2, 0, 1, 7, 3}, lead: 2, trail: 3, ignored: []bool{false, false, false, false, true}},
	{k: 3, lens: []int{7, 7, 2}, ties: true},
	{k: 5, lens: []int{4, 1, 2}, trail: 1},
	{k: 5, lens: []int{3, 3}, ties: true},
	{k: 4, lens: []int{5, 2, 1}, spread: 300},
}

// chainData is a case's inputs on the host.
type chainData struct {
	c       chainCase
	r       int
	off     []int32
	u       []float32 // R x K
	p, s, f []float32
	labels  []int32 // R; padding rows hold an out-of-range label
}

// paddingLabel is what the suite puts in the label of a padding row: out
// of range, so a backend that looked at it would refuse the call.
const paddingLabel = 1 << 20

func newChainData(h *helper, c chainCase) *chainData {
	d := &chainData{c: c}
	d.off = []int32{int32(c.lead)}
	for _, n := range c.lens {
		d.off = append(d.off, d.off[len(d.off)-1]+int32(n))
	}
	d.r = int(d.off[len(d.off)-1]) + c.trail
	k := c.k
	draw := func(n int, lo, hi float64) []float32 {
		if c.spread != 0 {
			return h.uniform(n, lo*c.spread, hi*c.spread)
		}
		if !c.ties {
			return h.uniform(n, lo, hi)
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(h.rng.IntN(5) - 2)
		}
		return x
	}
	d.u, d.p = draw(d.r*k, -2, 2), draw(k*k, -2, 2)
	d.s, d.f = draw(k, -1, 1), draw(k, -1, 1)
	d.labels = make([]int32, d.r)
	for i := range d.labels {
		d.labels[i] = paddingLabel
	}
	for i := range c.lens {
		for row := d.off[i]; row < d.off[i+1]; row++ {
			if i < len(c.ignored) && c.ignored[i] {
				d.labels[row] = model.IgnoreLabel
			} else {
				d.labels[row] = int32(h.rng.IntN(k))
			}
		}
	}
	return d
}

// seq returns the float64 view of sequence i and its labels (nil when it
// is ignored or empty).
func (d *chainData) seq(i int) (*refSeq, []int32) {
	k := d.c.k
	lo, hi := int(d.off[i]), int(d.off[i+1])
	q := &refSeq{k: k, t: hi - lo, u: to64(d.u[lo*k : hi*k]), p: to64(d.p), s: to64(d.s), f: to64(d.f)}
	if lo == hi || d.labels[lo] == model.IgnoreLabel {
		return q, nil
	}
	return q, d.labels[lo:hi]
}

// upload puts the case on the backend: the Chain and the labels.
func (d *chainData) upload(h *helper) (model.Chain, model.Ints) {
	k := d.c.k
	return model.Chain{
		U: h.mat(d.r, k, d.u), P: h.mat(k, k, d.p), Start: h.mat(1, k, d.s), Final: h.mat(1, k, d.f),
		Offsets: h.ints(d.off),
	}, h.ints(d.labels)
}

// chainTol holds the allowed errors of one sequence's outputs. A float32
// backend sums the 2T+1 terms of an energy (each at most M in size) with
// an error of gamma(2T+1)*M, and every step of the log-semiring recursion
// adds a rounding of the same order plus the relative error of a K-term sum
// of exponentials, which becomes absolute in the logarithm.
type chainTol struct {
	e, logZ, p float64 // an energy, log Z, a probability
	coef       float64 // the loss coefficients C, I, All
	all        float64 // |All|, the weight of the marginals in the gradient
	loss       float64
	nearKink   bool // the gradient may switch between answers: compare only the values
}

func newChainTol(q *refSeq, r refChainSeq, l model.Loss, labelled bool) chainTol {
	k, T := q.k, q.t
	maxAbs := func(x []float64) float64 {
		m := 0.0
		for _, v := range x {
			m = math.Max(m, math.Abs(v))
		}
		return m
	}
	M := maxAbs(q.s) + maxAbs(q.f) + float64(T-1)*maxAbs(q.p)
	for t := range T {
		M += maxAbs(q.u[t*k : (t+1)*k])
	}
	var ct chainTol
	ct.e = gamma(2*T+1, 2) * M
	ct.logZ = safety*float64(2*T+4)*u*l.Beta*M + gamma((T+1)*(k+2), 4)
	ct.p = l.Beta*ct.e + ct.logZ + gamma(4, 0)
	if !labelled {
		return ct
	}
	ec, ei := r.row.ec, r.row.ei
	if math.IsInf(ei, 1) {
		ei = 0
	}
	pc := math.Exp(-l.Beta*r.row.ec - r.row.logZ)
	sg := sigmoid(ec - ei)
	// lip bounds the derivatives of the coefficients C, I, All with
	// respect to E_C, E_I and log Z (zero where they are constants), and
	// gm their size, sum_Y |dL/dE(Y)| >= |C| + |I| + |All|: both relative
	// to the gradient, so that MEE's gradients of 1e-6 are still checked
	// to float32 precision.
	var lip, gm float64
	for _, g := range r.row.grad {
		gm += math.Abs(g)
	}
	switch l.Kind {
	case model.Log, model.MCE:
		lip = sg * (1 - sg)
	case model.LVQ2:
		lip = 2 * (1 + math.Abs(ec) + math.Abs(ei)) / l.Delta
	case model.SquareSquare:
		lip = 2
	case model.SquareExp:
		lip = 2 + l.Gamma*math.Exp(-r.row.ei)
	case model.MEE:
		lip = l.Beta * (l.Beta + 1) * pc
	}
	ct.coef = lip*(2*ct.e+ct.logZ) + gamma(8, 0)*gm
	switch l.Kind {
	case model.NLL:
		ct.all = 1
	case model.MEE:
		ct.all = l.Beta * pc
	}
	ct.loss = 4*ct.e*(1+lip+l.Beta) + ct.logZ*(1+1/l.Beta) + gamma(8, 0)*(math.Abs(r.row.loss)+1)
	g := 4 * ct.e
	d := ec - ei
	finite := !math.IsInf(r.row.loss, 0) && !math.IsNaN(r.row.loss) && !math.IsInf(lip, 0)
	for _, x := range r.row.grad {
		finite = finite && !math.IsInf(x, 0) && !math.IsNaN(x)
	}
	switch {
	case !finite:
		// The loss overflowed (square-exp with E_I of -1000): the value
		// is checked (+Inf is +Inf), the gradient is not comparable.
		ct.nearKink = true
		ct.loss = math.Inf(1)
	case r.gap12 > 0 && r.gap12 < g, r.gap23 > 0 && r.gap23 < g:
		ct.nearKink = true
	case l.Kind == model.Hinge && math.Abs(l.Margin+d) < g:
		ct.nearKink = true
	case l.Kind == model.LVQ2:
		D := math.Max(1, ei)
		ratio := d / (l.Delta * D)
		ct.nearKink = (d != 0 && math.Abs(d) < g) || math.Abs(ratio-1) < g/(l.Delta*D)+gamma(8, 0) || (d > 0 && math.Abs(ei-1) < g)
	}
	return ct
}

// chainLosses are the losses of the suite, parameters away from 1 so a
// backend that ignores one is caught.
func chainLosses() []model.Loss {
	var ls []model.Loss
	for _, kind := range model.LossKinds() {
		l := model.Loss{Kind: kind, Beta: 0.7, Margin: 1.5, Gamma: 0.8, Delta: 2.5}
		ls = append(ls, l)
	}
	return ls
}

// TestChainOps checks model.ChainOps when the backend implements it (else
// it skips): for every case of chainCases and every loss, ChainLoss against
// the enumeration (statistics, Viterbi path, every gradient); ChainMarginals
// (log Z, marginals, pairwise marginals) and ChainViterbi (path, energy);
// outputs poisoned before every call, inputs untouched, a second call
// bitwise equal. Then cases too large to enumerate (K = 31, 33, 100, T up
// to 7) through identities, and misuse.
func TestChainOps(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	co, ok := b.(model.ChainOps)
	if !ok {
		t.Skip("backend has no ChainOps: chain models cannot run on it")
	}
	for _, c := range chainCases {
		t.Run(c.String(), func(t *testing.T) {
			for _, l := range chainLosses() {
				t.Run(l.Kind.String(), func(t *testing.T) { testChainLoss(t, b, co, c, l) })
			}
			t.Run("marginals", func(t *testing.T) { testChainMarginals(t, b, co, c) })
			t.Run("viterbi", func(t *testing.T) { testChainViterbi(t, b, co, c) })
		})
	}
	for _, c := range []chainCase{
		{k: 31, lens: []int{7, 1, 2}},
		{k: 33, lens: []int{2, 7}, lead: 1, trail: 2},
		{k: 100, lens: []int{7, 3}},
	} {
		t.Run("large/"+c.String(), func(t *testing.T) { testChainLarge(t, b, co, c) })
	}
	t.Run("errors", func(t *testing.T) { testChainErrors(t, b, co) })
}

// chainLossOut is what one ChainLoss call leaves behind.
type chainLossOut struct {
	du, stats, dp, ds, df []float32
	path                  []int32
}

func callChainLoss(t *testing.T, h *helper, co model.ChainOps, d *chainData, l model.Loss, gs float32, grads bool) chainLossOut {
	t.Helper()
	k := d.c.k
	c, labels := d.upload(h)
	stats := h.poisoned(len(d.off)-1, model.NumStats)
	path := h.poisonedInts(d.r)
	var g model.ChainGrads
	if grads {
		g = model.ChainGrads{P: h.poisoned(k, k), Start: h.poisoned(1, k), Final: h.poisoned(1, k)}
	}
	must(t, "ChainLoss", func() error { return co.ChainLoss(c, labels, l, gs, stats, path, g) })
	out := chainLossOut{du: h.get(c.U), stats: h.get(stats), path: h.getInts(path)}
	if grads {
		out.dp, out.ds, out.df = h.get(g.P), h.get(g.Start), h.get(g.Final)
	}
	mm := newMismatches(t, "ChainLoss inputs")
	mm.checkBits("P (input)", h.get(c.P), d.p, k)
	mm.checkBits("Start (input)", h.get(c.Start), d.s, k)
	mm.checkBits("Final (input)", h.get(c.Final), d.f, k)
	mm.checkInts("labels (input)", h.getInts(labels), d.labels)
	mm.checkInts("offsets (input)", h.getInts(c.Offsets), d.off)
	mm.report()
	return out
}

func testChainLoss(t *testing.T, b model.Backend, co model.ChainOps, c chainCase, l model.Loss) {
	h := newHelper(t, b)
	d := newChainData(h, c)
	k, B := c.k, len(c.lens)
	gs := float32(0.37)
	out := callChainLoss(t, h, co, d, l, gs, true)
	mm := newMismatches(t, "ChainLoss %v %v", c, l)
	wantStats, tolStats := make([]float64, B*model.NumStats), make([]float64, B*model.NumStats)
	wantDU, tolDU := make([]float64, d.r*k), make([]float64, d.r*k)
	wantDP, tolDP := make([]float64, k*k), make([]float64, k*k)
	wantDS, tolDS := make([]float64, k), make([]float64, k)
	wantDF, tolDF := make([]float64, k), make([]float64, k)
	wantPath := slices.Repeat([]int32{model.IgnoreLabel}, d.r)
	skipGrad := false
	for i := range B {
		lo, hi := int(d.off[i]), int(d.off[i+1])
		if lo == hi {
			continue // an empty sequence: all zero, exactly
		}
		q, labels := d.seq(i)
		r := refChain(q, labels, l)
		ct := newChainTol(q, r, l, labels != nil)
		s := i * model.NumStats
		wantStats[s+model.StatLoss], tolStats[s+model.StatLoss] = r.row.loss, ct.loss
		wantStats[s+model.StatLogZ], tolStats[s+model.StatLogZ] = r.row.logZ, ct.logZ
		wantStats[s+model.StatCorrect], tolStats[s+model.StatCorrect] = r.row.ec, ct.e
		wantStats[s+model.StatOffending], tolStats[s+model.StatOffending] = r.row.ei, ct.e
		nearTie := (r.gap12 > 0 && r.gap12 < 4*ct.e) || (r.gap23 > 0 && r.gap23 < 4*ct.e)
		for t, y := range r.argmin {
			wantPath[lo+t] = int32(y)
		}
		if nearTie {
			copy(wantPath[lo:hi], out.path[lo:hi]) // either path is right
		}
		if labels == nil {
			continue // a zero gradient, exactly
		}
		if ct.nearKink {
			skipGrad = true
			continue
		}
		tolG := math.Abs(float64(gs)) * (2*ct.coef + ct.all*ct.p)
		for j := range r.dU {
			wantDU[lo*k+j] = float64(gs) * r.dU[j]
			tolDU[lo*k+j] = tolG + gamma(4, 0)*math.Abs(wantDU[lo*k+j])
		}
		for j := range k {
			wantDS[j] += float64(gs) * r.dS[j]
			wantDF[j] += float64(gs) * r.dF[j]
			tolDS[j] += tolG + gamma(B+4, 0)*math.Abs(float64(gs)*r.dS[j])
			tolDF[j] += tolG + gamma(B+4, 0)*math.Abs(float64(gs)*r.dF[j])
		}
		for j := range r.dP {
			wantDP[j] += float64(gs) * r.dP[j]
			tolDP[j] += float64(q.t-1)*tolG + gamma(B*q.t+4, 0)*math.Abs(float64(gs)*r.dP[j])
		}
	}
	mm.check("stats", out.stats, wantStats, tolStats, model.NumStats)
	mm.checkInts("path", out.path, wantPath)
	if !skipGrad {
		mm.check("dU", out.du, wantDU, tolDU, k)
		mm.check("dP", out.dp, wantDP, tolDP, k)
		mm.check("dStart", out.ds, wantDS, tolDS, 0)
		mm.check("dFinal", out.df, wantDF, tolDF, 0)
	} else {
		t.Logf("%v %v: a sequence lies within rounding of a kink or tie: gradients not compared", c, l)
	}
	mm.report()

	// Determinism, and the same per-position results without gradients.
	again := callChainLoss(t, h, co, d, l, gs, true)
	noGrad := callChainLoss(t, h, co, d, l, gs, false)
	mm = newMismatches(t, "ChainLoss %v %v called again", c, l)
	mm.checkBits("dU", again.du, out.du, k)
	mm.checkBits("stats", again.stats, out.stats, model.NumStats)
	mm.checkInts("path", again.path, out.path)
	mm.checkBits("dP", again.dp, out.dp, k)
	mm.checkBits("dStart", again.ds, out.ds, 0)
	mm.checkBits("dFinal", again.df, out.df, 0)
	mm.checkBits("dU without the factor gradients", noGrad.du, out.du, k)
	mm.checkBits("stats without the factor gradients", noGrad.stats, out.stats, model.NumStats)
	mm.report()
}

func testChainMarginals(t *testing.T, b model.Backend, co model.ChainOps, c chainCase) {
	h := newHelper(t, b)
	d := newChainData(h, c)
	k, B := c.k, len(c.lens)
	beta := 1.3
	l := model.Loss{Kind: model.NLL, Beta: beta, Margin: 1, Gamma: 1, Delta: 1}
	call := func() (logZ, marg, pair []float32) {
		ch, _ := d.upload(h)
		mz, mg, mp := h.poisoned(B, 1), h.poisoned(d.r, k), h.poisoned(k, k)
		must(t, "ChainMarginals", func() error { return co.ChainMarginals(ch, beta, mz, mg, mp) })
		mm := newMismatches(t, "ChainMarginals inputs")
		mm.checkBits("U (input)", h.get(ch.U), d.u, k)
		mm.report()
		return h.get(mz), h.get(mg), h.get(mp)
	}
	logZ, marg, pair := call()
	wantZ, tolZ := make([]float64, B), make([]float64, B)
	wantM, tolM := make([]float64, d.r*k), make([]float64, d.r*k)
	wantP, tolP := make([]float64, k*k), make([]float64, k*k)
	for i := range B {
		lo, hi := int(d.off[i]), int(d.off[i+1])
		if lo == hi {
			continue
		}
		q, _ := d.seq(i)
		r := refChain(q, nil, l)
		ct := newChainTol(q, r, l, false)
		wantZ[i], tolZ[i] = r.row.logZ, ct.logZ
		for j, v := range r.mu {
			wantM[lo*k+j], tolM[lo*k+j] = v, ct.p
		}
		for j, v := range r.pair {
			wantP[j] += v
			tolP[j] += float64(q.t-1) * ct.p
		}
	}
	mm := newMismatches(t, "ChainMarginals %v", c)
	mm.check("logZ", logZ, wantZ, tolZ, 0)
	mm.check("marg", marg, wantM, tolM, k)
	mm.check("pair", pair, wantP, tolP, k)
	// Without pair: the same log Z and marginals.
	ch, _ := d.upload(h)
	mz, mg := h.poisoned(B, 1), h.poisoned(d.r, k)
	must(t, "ChainMarginals without pair", func() error { return co.ChainMarginals(ch, beta, mz, mg, nil) })
	mm.checkBits("logZ without pair", h.get(mz), logZ, 0)
	mm.checkBits("marg without pair", h.get(mg), marg, k)
	z2, m2, p2 := call()
	mm.checkBits("logZ of a second call", z2, logZ, 0)
	mm.checkBits("marg of a second call", m2, marg, k)
	mm.checkBits("pair of a second call", p2, pair, k)
	mm.report()
}

func testChainViterbi(t *testing.T, b model.Backend, co model.ChainOps, c chainCase) {
	h := newHelper(t, b)
	d := newChainData(h, c)
	B := len(c.lens)
	call := func() ([]int32, []float32) {
		ch, _ := d.upload(h)
		path, energy := h.poisonedInts(d.r), h.poisoned(B, 1)
		must(t, "ChainViterbi", func() error { return co.ChainViterbi(ch, path, energy) })
		return h.getInts(path), h.get(energy)
	}
	path, energy := call()
	l := model.DefaultLoss(model.Energy)
	wantPath := slices.Repeat([]int32{model.IgnoreLabel}, d.r)
	wantE, tolE := make([]float64, B), make([]float64, B)
	for i := range B {
		lo, hi := int(d.off[i]), int(d.off[i+1])
		if lo == hi {
			continue
		}
		q, _ := d.seq(i)
		r := refChain(q, nil, l)
		ct := newChainTol(q, r, l, false)
		wantE[i], tolE[i] = r.e[r.row.argmin], ct.e
		for t, y := range r.argmin {
			wantPath[lo+t] = int32(y)
		}
		if r.gap12 > 0 && r.gap12 < 4*ct.e {
			copy(wantPath[lo:hi], path[lo:hi])
		}
	}
	mm := newMismatches(t, "ChainViterbi %v", c)
	mm.checkInts("path", path, wantPath)
	mm.check("energy", energy, wantE, tolE, 0)
	p2, e2 := call()
	mm.checkInts("path of a second call", p2, path)
	mm.checkBits("energy of a second call", e2, energy, 0)
	// The 2-best pass of ChainLoss finds the same Viterbi path.
	out := callChainLoss(t, h, co, d, l, 1, false)
	mm.checkInts("ChainLoss's path", out.path, path)
	mm.report()
}

// testChainLarge checks cases too large to enumerate (K up to 100) by what
// must hold of the answers and between the operations:
//   - the Viterbi energy is the energy of the Viterbi path, and no change
//     of one position of that path lowers it;
//   - with a hinge loss whose margin keeps it active, dL/dU is the
//     indicator counts of Y_i minus those of the most offending sequence,
//     which therefore can be read off dU: it differs from Y_i, its energy
//     is E_I, it is the Viterbi path when that is not Y_i, and otherwise
//     no change of one position (keeping it different from Y_i) lowers
//     its energy; sequence 0 is labelled with its own Viterbi path so that
//     the second-best branch runs;
//   - NLL's gradients are the indicator counts of Y_i minus the marginals
//     and pairwise marginals of ChainMarginals, and its log Z is theirs;
//   - every position's marginals sum to 1, and the pairwise marginals sum
//     over y_t to the marginal of y_{t-1} (and over y_{t-1} to that of y_t).
func testChainLarge(t *testing.T, b model.Backend, co model.ChainOps, c chainCase) {
	h := newHelper(t, b)
	d := newChainData(h, c)
	k, B := c.k, len(c.lens)
	ch, _ := d.upload(h)
	path, energy := h.poisonedInts(d.r), h.poisoned(B, 1)
	must(t, "ChainViterbi", func() error { return co.ChainViterbi(ch, path, energy) })
	vp, ve := h.getInts(path), h.get(energy)
	mm := newMismatches(t, "large %v", c)
	tols := make([]chainTol, B)
	seqs := make([]*refSeq, B)
	for i := range B {
		q, _ := d.seq(i)
		seqs[i] = q
		tols[i] = newChainTol(q, refChainSeq{}, model.DefaultLoss(model.NLL), false)
	}
	// localMin reports a change of one position of ys (keeping it different
	// from avoid, when avoid is not nil) that lowers E(ys) by more than tol.
	localMin := func(q *refSeq, ys, avoid []int32, tol float64) string {
		e := refPathEnergy(q, ys)
		z := slices.Clone(ys)
		for t := range z {
			for v := range int32(k) {
				if v == ys[t] {
					continue
				}
				z[t] = v
				if (avoid == nil || !slices.Equal(z, avoid)) && refPathEnergy(q, z) < e-tol {
					return fmt.Sprintf("position %d = %d gives %v < %v", t, v, refPathEnergy(q, z), e)
				}
			}
			z[t] = ys[t]
		}
		return ""
	}
	for i := range B {
		lo, hi := int(d.off[i]), int(d.off[i+1])
		ys := vp[lo:hi]
		if e := refPathEnergy(seqs[i], ys); !close32(ve[i], e, tols[i].e) {
			mm.add("sequence %d: Viterbi energy %v, its path has energy %v", i, ve[i], e)
		}
		if why := localMin(seqs[i], ys, nil, tols[i].e); why != "" {
			mm.add("sequence %d: the Viterbi path is not a local minimum: %s", i, why)
		}
	}
	mm.report()

	// Hinge, always active: read the most offending sequence off dU.
	copy(d.labels[d.off[0]:d.off[1]], vp[d.off[0]:d.off[1]])
	hinge := model.Loss{Kind: model.Hinge, Beta: 1, Margin: 1e6, Gamma: 1, Delta: 1}
	out := callChainLoss(t, h, co, d, hinge, 1, true)
	mm = newMismatches(t, "large %v hinge", c)
	for i := range B {
		lo, hi := int(d.off[i]), int(d.off[i+1])
		q, ys := d.seq(i)
		st := out.stats[i*model.NumStats : (i+1)*model.NumStats]
		ybar := make([]int32, hi-lo)
		for t := range ybar {
			row := out.du[(lo+t)*k : (lo+t+1)*k]
			ybar[t] = ys[t]
			for v, g := range row {
				want := 0.0
				if int32(v) == ys[t] {
					want = 1
				}
				switch {
				case g == float32(want):
				case g == float32(want-1):
					ybar[t] = int32(v)
				default:
					mm.add("sequence %d: dU[%d,%d] = %v is not an indicator difference", i, t, v, g)
				}
			}
		}
		ct := tols[i]
		if e := refPathEnergy(q, ys); !close32(st[model.StatCorrect], e, ct.e) {
			mm.add("sequence %d: E_C = %v, want %v", i, st[model.StatCorrect], e)
		}
		if slices.Equal(ybar, ys) {
			mm.add("sequence %d: the most offending sequence is Y_i itself", i)
			continue
		}
		if e := refPathEnergy(q, ybar); !close32(st[model.StatOffending], e, ct.e) {
			mm.add("sequence %d: E_I = %v, the offending sequence read from dU has energy %v", i, st[model.StatOffending], e)
		}
		if !slices.Equal(vp[lo:hi], ys) && !slices.Equal(ybar, vp[lo:hi]) {
			mm.add("sequence %d: Viterbi path != Y_i, yet the offending sequence %v is not it (%v)", i, ybar, vp[lo:hi])
		}
		if why := localMin(q, ybar, ys, ct.e); why != "" {
			mm.add("sequence %d: the offending sequence is not a local minimum among Y != Y_i: %s", i, why)
		}
		if !slices.Equal(out.path[lo:hi], vp[lo:hi]) {
			mm.add("sequence %d: ChainLoss's path differs from ChainViterbi's", i)
		}
	}
	mm.report()

	// NLL against ChainMarginals, and the marginals' own sums.
	beta := 0.9
	nll := model.Loss{Kind: model.NLL, Beta: beta, Margin: 1, Gamma: 1, Delta: 1}
	gs := float32(-0.5)
	out = callChainLoss(t, h, co, d, nll, gs, true)
	ch, _ = d.upload(h)
	mz, mg, mp := h.poisoned(B, 1), h.poisoned(d.r, k), h.poisoned(k, k)
	must(t, "ChainMarginals", func() error { return co.ChainMarginals(ch, beta, mz, mg, mp) })
	logZ, marg, pair := h.get(mz), h.get(mg), h.get(mp)
	mm = newMismatches(t, "large %v NLL against the marginals", c)
	tp := 0.0 // the largest probability tolerance of the batch
	for i := range B {
		ct := newChainTol(seqs[i], refChainSeq{}, nll, false)
		tp = math.Max(tp, ct.p)
		if !close32(out.stats[i*model.NumStats+model.StatLogZ], float64(logZ[i]), 2*ct.logZ) {
			mm.add("sequence %d: ChainLoss log Z %v, ChainMarginals %v", i, out.stats[i*model.NumStats+model.StatLogZ], logZ[i])
		}
	}
	g := float64(gs)
	wantDP := make([]float64, k*k)
	wantDS, wantDF := make([]float64, k), make([]float64, k)
	rowIn, colIn := make([]float64, k), make([]float64, k) // marginals of non-last and non-first positions
	for i := range B {
		lo, hi := int(d.off[i]), int(d.off[i+1])
		_, ys := d.seq(i)
		for t := range hi - lo {
			row := marg[(lo+t)*k : (lo+t+1)*k]
			sum := 0.0
			for v, p := range row {
				sum += float64(p)
				want := -float64(p)
				if int32(v) == ys[t] {
					want++
				}
				if !close32(out.du[(lo+t)*k+v], g*want, math.Abs(g)*4*tp) {
					mm.add("sequence %d: dU[%d,%d] = %v, ChainMarginals give %v", i, t, v, out.du[(lo+t)*k+v], g*want)
				}
				if t == 0 {
					wantDS[v] += g * want
				}
				if t == hi-lo-1 {
					wantDF[v] += g * want
				} else {
					rowIn[v] += float64(p)
				}
				if t > 0 {
					colIn[v] += float64(p)
				}
			}
			if math.Abs(sum-1) > float64(k)*tp {
				mm.add("sequence %d position %d: marginals sum to %v", i, t, sum)
			}
			if t > 0 {
				wantDP[int(ys[t-1])*k+int(ys[t])] += g
			}
		}
	}
	n := d.r
	for j := range k {
		var rs, cs float64
		for v := range k {
			rs += float64(pair[j*k+v])
			cs += float64(pair[v*k+j])
			wantDP[j*k+v] -= g * float64(pair[j*k+v])
		}
		if math.Abs(rs-rowIn[j]) > float64(n*k)*tp || math.Abs(cs-colIn[j]) > float64(n*k)*tp {
			mm.add("state %d: pairwise marginals sum to %v over y_t and %v over y_{t-1}; the marginals give %v and %v", j, rs, cs, rowIn[j], colIn[j])
		}
	}
	tolDP := slices.Repeat([]float64{math.Abs(g) * float64(n) * 4 * tp}, k*k)
	tolDS := slices.Repeat([]float64{math.Abs(g) * float64(B) * 4 * tp}, k)
	mm.check("dP against the pairwise marginals", out.dp, wantDP, tolDP, k)
	mm.check("dStart against the marginals", out.ds, wantDS, tolDS, 0)
	mm.check("dFinal against the marginals", out.df, wantDF, tolDS, 0)
	mm.report()
}

// testChainErrors checks that misuse is an error and that a refused call
// writes nothing.
func testChainErrors(t *testing.T, b model.Backend, co model.ChainOps) {
	h := newHelper(t, b)
	m := func(r, c int) model.Mat { return h.mat(r, c, h.uniform(r*c, -1, 1)) }
	// K = 3, two sequences of lengths 2 and 3 in 6 rows (one of padding).
	const k, rows = 3, 6
	good := func() model.Chain {
		return model.Chain{U: m(rows, k), P: m(k, k), Start: m(1, k), Final: m(1, k), Offsets: h.ints([]int32{0, 2, 5})}
	}
	c := good()
	uData := h.get(c.U)
	labels := h.ints([]int32{0, 1, 2, 2, 0, 7})
	stats, path := h.poisoned(2, model.NumStats), h.poisonedInts(rows)
	g := model.ChainGrads{P: h.poisoned(k, k), Start: h.poisoned(1, k), Final: h.poisoned(1, k)}
	logZ, marg, pair, energy := h.poisoned(2, 1), h.poisoned(rows, k), h.poisoned(k, k), h.poisoned(2, 1)
	nll := model.DefaultLoss(model.NLL)
	loss := func(c model.Chain, lb model.Ints, l model.Loss, st model.Mat, p model.Ints, g model.ChainGrads) func() error {
		return func() error { return co.ChainLoss(c, lb, l, 1, st, p, g) }
	}
	with := func(f func(*model.Chain)) model.Chain {
		x := c
		f(&x)
		return x
	}
	bad := []struct {
		what string
		c    model.Chain
	}{
		{"U with no states", with(func(x *model.Chain) { x.U = h.poisoned(rows, 0) })},
		{"P 3x4", with(func(x *model.Chain) { x.P = m(3, 4) })},
		{"P 2x2", with(func(x *model.Chain) { x.P = m(2, 2) })},
		{"Start 1x2", with(func(x *model.Chain) { x.Start = m(1, 2) })},
		{"Final 3x1", with(func(x *model.Chain) { x.Final = m(3, 1) })},
		{"Start = Final", with(func(x *model.Chain) { x.Final = x.Start })},
		{"no offsets", with(func(x *model.Chain) { x.Offsets = h.ints(nil) })},
		{"decreasing offsets", with(func(x *model.Chain) { x.Offsets = h.ints([]int32{0, 3, 2}) })},
		{"negative offset", with(func(x *model.Chain) { x.Offsets = h.ints([]int32{-1, 2, 5}) })},
		{"offsets past the rows", with(func(x *model.Chain) { x.Offsets = h.ints([]int32{0, 2, 7}) })},
		{"a foreign U", with(func(x *model.Chain) { x.U = foreignMat{rows, k} })},
		{"a nil P", with(func(x *model.Chain) { x.P = nil })},
	}
	for _, bc := range bad {
		wantErr(t, "ChainLoss with "+bc.what, loss(bc.c, labels, nll, stats, path, g))
		wantErr(t, "ChainMarginals with "+bc.what, func() error { return co.ChainMarginals(bc.c, 1, logZ, marg, pair) })
		wantErr(t, "ChainViterbi with "+bc.what, func() error { return co.ChainViterbi(bc.c, path, energy) })
	}
	wantErr(t, "ChainLoss with a label outside [0, K)", loss(c, h.ints([]int32{0, 3, 2, 2, 0, 0}), nll, stats, path, g))
	wantErr(t, "ChainLoss with a negative label", loss(c, h.ints([]int32{0, 1, -2, 2, 0, 0}), nll, stats, path, g))
	wantErr(t, "ChainLoss with a partly ignored sequence", loss(c, h.ints([]int32{0, 1, 2, -1, 0, 0}), nll, stats, path, g))
	wantErr(t, "ChainLoss with labels of length 5", loss(c, h.ints([]int32{0, 1, 2, 2, 0}), nll, stats, path, g))
	wantErr(t, "ChainLoss with stats 3x4", loss(c, labels, nll, h.poisoned(3, model.NumStats), path, g))
	wantErr(t, "ChainLoss with path of length 5", loss(c, labels, nll, stats, h.poisonedInts(5), g))
	wantErr(t, "ChainLoss with path = labels", loss(c, labels, nll, stats, labels, g))
	wantErr(t, "ChainLoss with only dP", loss(c, labels, nll, stats, path, model.ChainGrads{P: g.P}))
	wantErr(t, "ChainLoss with dP 3x2", loss(c, labels, nll, stats, path, model.ChainGrads{P: h.poisoned(3, 2), Start: g.Start, Final: g.Final}))
	wantErr(t, "ChainLoss with dP = P", loss(c, labels, nll, stats, path, model.ChainGrads{P: c.P, Start: g.Start, Final: g.Final}))
	wantErr(t, "ChainLoss with beta 0", loss(c, labels, model.Loss{Kind: model.NLL, Beta: 0, Margin: 1, Gamma: 1, Delta: 1}, stats, path, g))
	wantErr(t, "ChainMarginals with beta 0", func() error { return co.ChainMarginals(c, 0, logZ, marg, pair) })
	wantErr(t, "ChainMarginals with beta NaN", func() error { return co.ChainMarginals(c, math.NaN(), logZ, marg, pair) })
	wantErr(t, "ChainMarginals with logZ 3x1", func() error { return co.ChainMarginals(c, 1, h.poisoned(3, 1), marg, pair) })
	wantErr(t, "ChainMarginals with marg 6x2", func() error { return co.ChainMarginals(c, 1, logZ, h.poisoned(rows, 2), pair) })
	wantErr(t, "ChainMarginals with pair 2x3", func() error { return co.ChainMarginals(c, 1, logZ, marg, h.poisoned(2, 3)) })
	wantErr(t, "ChainMarginals with marg = U", func() error { return co.ChainMarginals(c, 1, logZ, c.U, pair) })
	wantErr(t, "ChainViterbi with energy 2x2", func() error { return co.ChainViterbi(c, path, h.poisoned(2, 2)) })
	wantErr(t, "ChainViterbi with path of length 7", func() error { return co.ChainViterbi(c, h.poisonedInts(7), energy) })

	mm := newMismatches(t, "refused chain calls must write nothing")
	mm.checkBits("U", h.get(c.U), uData, k)
	mm.checkBits("stats", h.get(stats), nans(2*model.NumStats), model.NumStats)
	mm.checkInts("path", h.getInts(path), slices.Repeat([]int32{poisonInt}, rows))
	mm.checkBits("dP", h.get(g.P), nans(k*k), k)
	mm.checkBits("logZ", h.get(logZ), nans(2), 0)
	mm.checkBits("marg", h.get(marg), nans(rows*k), k)
	mm.checkBits("pair", h.get(pair), nans(k*k), k)
	mm.checkBits("energy", h.get(energy), nans(2), 0)
	mm.report()
	// And the valid call goes through (the padding row's label 7 is not looked at).
	must(t, "ChainLoss (valid operands)", loss(c, labels, nll, stats, path, g))
}
