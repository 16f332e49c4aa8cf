package backendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// The optional model.EnergyHeadOps capability (the fused energy head). Two
// references, both independent of the head's tiling:
//
//   - the float64 naive computation: E = -(h w^T + b) by plain float64
//     loops, then refEnergyLoss (reference.go) row by row, and the
//     gradients -dE w, -dE^T h, -colsums(dE) by float64 loops;
//   - the backend's own materializing path, Gemm + AddRowVector +
//     EnergyLoss + Gemm + ColumnSums + Gemm, over a stored B x K buffer,
//     checked against the same float64 values and tolerances (so a
//     tolerance the materializing path cannot meet is a bug of the suite),
//     and whose argmin must be the head's exactly.
//
// Tolerances: every energy the backend computes carries at most errE =
// gamma(D, 2) (sum_d |h_d w_yd| + |b_y|) (a D-term dot product and the
// bias); the statistics, the loss and dE get the float32 error of the loss
// pipeline (energyLossTol) plus those energy errors propagated to first
// order (exactly, through the derivatives, for NLL and MEE; by perturbing
// E_C, E_I and the argmin by +-errE in float64 for the others); the
// gradients get the error of their reduction (B or K terms) plus the dE
// errors they sum. Rows whose energies lie within 4 errE of a tie that
// matters (argmin, E_I) or of a kink of the loss are redrawn, so that the
// comparison is unambiguous; exact ties are tested separately, with
// duplicated answers (TestEnergyHead's "ties" cases).

// ehShapes are the (B, D, K) of TestEnergyHead: K = 1, 31, 1000 and 65537
// (one past a power of two: a partial last tile everywhere), B and D
// awkward (1, primes, one past multiples of 16 and 64).
var ehShapes = [][3]int{
	{1, 1, 1}, {7, 5, 1}, {1, 7, 31}, {33, 17, 31}, {7, 65, 1000}, {130, 3, 1000}, {3, 5, 65537},
}

// ehCase is one head call: hidden rows h (B x D), weights w (K x D), bias
// (1 x K), labels, the loss and gradScale.
type ehCase struct {
	b, d, k      int
	loss         model.Loss
	gradScale    float32
	h, w, bias   []float32
	labels       []int32
	tied         bool // answers duplicated on purpose: no redrawing
	hugeEnergies bool // biases of +-1e30
	// prec is the precision of the energies' products (the head through
	// model.EnergyHeadPrecisionOps unless FP32; see ehEnergies).
	prec model.Precision
}

func (c *ehCase) String() string {
	return fmt.Sprintf("EnergyHead(%v, %v, beta=%v, B=%d, D=%d, K=%d, gradScale=%v)", c.prec, c.loss, c.loss.Beta, c.b, c.d, c.k, c.gradScale)
}

// ehRef is the float64 reference of one case, with the allowed errors.
type ehRef struct {
	stats, statsTol   []float64
	argmin            []int32
	dh, dhTol         []float64
	dw, dwTol         []float64
	db, dbTol         []float64
	rowsRedrawn       int
	energy, energyTol []float64 // B x K, for the ties checks
}

// ehEnergies returns E (B x K) in float64 and each element's error bound.
// At TF32 and BF16 the products are those of the operands rounded by
// refRound (the reference's own rounding, not the backend's), exact in
// float64, and the bound is twice the float32 one: a tensor core's
// accumulation inside an mma is not documented to round to nearest
// (gemm_tc.cu). At TF32x3 E is the unrounded product and the bound that of
// GemmPrecision's split (precisionGemmTol): three chains of D products and
// the split's own error, a few u per product.
func ehEnergies(c *ehCase, rows []int) (e, tol []float64) {
	e = make([]float64, c.b*c.k)
	tol = make([]float64, c.b*c.k)
	g := gamma(c.d, 2)
	op := func(x float32) float64 { return float64(x) }
	switch c.prec {
	case model.TF32:
		g = 2 * g
		op = func(x float32) float64 { return refRound(x, 10, true) }
	case model.BF16:
		g = 2 * g
		op = func(x float32) float64 { return refRound(x, 7, false) }
	case model.TF32x3:
		g = precisionGemmTol(model.TF32x3, c.d)
	}
	for _, i := range rows {
		hr := c.h[i*c.d : (i+1)*c.d]
		for y := 0; y < c.k; y++ {
			wr := c.w[y*c.d : (y+1)*c.d]
			var s, mag float64
			for d, x := range hr {
				p := op(x) * op(wr[d])
				s += p
				mag += math.Abs(p)
			}
			b := float64(c.bias[y])
			e[i*c.k+y] = -(s + b)
			tol[i*c.k+y] = g*(mag+math.Abs(b)) + u*math.Abs(s+b)
		}
	}
	return e, tol
}

// ehSeparated reports whether row e (energies with errors tol) is clear of
// every tie and kink that would make its float32 result ambiguous.
func ehSeparated(e, tol []float64, label int, l model.Loss) bool {
	maxTol := 0.0
	for _, t := range tol {
		maxTol = math.Max(maxTol, t)
	}
	gap := 4*maxTol + 1e-30
	// The argmin matters for every loss (it is an output).
	lo, lo2 := math.Inf(1), math.Inf(1)
	for _, v := range e {
		if v < lo {
			lo, lo2 = v, lo
		} else if v < lo2 {
			lo2 = v
		}
	}
	if len(e) > 1 && lo2-lo < gap {
		return false
	}
	if label == model.IgnoreLabel || len(e) == 1 {
		// One answer: E_I = +Inf, and every loss is smooth in E_C alone.
		return true
	}
	if kinkDistance(e, label, l) < gap {
		return false
	}
	r := refEnergyLoss(e, label, l)
	return !energyLossTol(e, label, l, r).nearKink
}

// newEHCase draws a case: h uniform in [-1, 1], w in [-2, 2]/sqrt(D), bias
// in [-0.5, 0.5], labels uniform with a fraction ignored (never row 0);
// rows too close to a tie or a kink are redrawn (new h row).
func newEHCase(h *helper, B, D, K int, l model.Loss, gs float32, ignored float64) (*ehCase, int) {
	return newEHCaseAt(h, model.FP32, B, D, K, l, gs, ignored)
}

// newEHCaseAt is newEHCase for the energies at precision p (the rows kept
// clear of ties at that precision's energies and error bounds).
func newEHCaseAt(h *helper, p model.Precision, B, D, K int, l model.Loss, gs float32, ignored float64) (*ehCase, int) {
	c := &ehCase{b: B, d: D, k: K, loss: l, gradScale: gs, prec: p}
	c.h = h.uniform(B*D, -1, 1)
	lim := 2 / math.Sqrt(float64(D))
	c.w = h.uniform(K*D, -lim, lim)
	c.bias = h.uniform(K, -0.5, 0.5)
	c.labels = make([]int32, B)
	for i := range c.labels {
		c.labels[i] = int32(h.rng.IntN(K))
		if i > 0 && h.rng.Float64() < ignored {
			c.labels[i] = model.IgnoreLabel
		}
	}
	redrawn := 0
	for i := 0; i < B; i++ {
		for try := 0; ; try++ {
			e, tol := ehEnergies(c, []int{i})
			row, rtol := e[i*K:(i+1)*K], tol[i*K:(i+1)*K]
			if ehSeparated(row, rtol, int(c.labels[i]), l) {
				break
			}
			if try == 500 {
				h.t.Fatalf("%v: row %d stays within rounding of a tie or kink after 500 draws", c, i)
			}
			copy(c.h[i*D:(i+1)*D], h.uniform(D, -1, 1))
			redrawn++
		}
	}
	return c, redrawn
}

// ehPerturbed returns the largest change of the loss and of dL/dE at the
// answers in idx when the energies at idx move by +-tol, in float64: the
// first-order effect of the backend's energy errors on losses whose
// gradient touches few answers. Answers whose energy equals a perturbed
// one exactly (duplicated answers) move with it: an exact tie stays a tie
// in any arithmetic.
func ehPerturbed(e, tol []float64, label int, l model.Loss, idx []int, base refRow) (dLoss float64, dGrad map[int]float64) {
	dGrad = map[int]float64{}
	groups := make([][]int, len(idx))
	for b, y := range idx {
		for z, v := range e {
			if v == e[y] {
				groups[b] = append(groups[b], z)
			}
		}
	}
	x := append([]float64(nil), e...)
	for mask := 0; mask < 1<<len(idx); mask++ {
		copy(x, e)
		for b, y := range idx {
			step := -tol[y]
			if mask&(1<<b) != 0 {
				step = tol[y]
			}
			for _, z := range groups[b] {
				x[z] = e[z] + step
			}
		}
		r := refEnergyLoss(x, label, l)
		if !math.IsInf(r.loss, 0) && !math.IsInf(base.loss, 0) {
			dLoss = math.Max(dLoss, math.Abs(r.loss-base.loss))
		}
		for _, y := range idx {
			dGrad[y] = math.Max(dGrad[y], math.Abs(r.grad[y]-base.grad[y]))
		}
	}
	return dLoss, dGrad
}

// ehReference computes the float64 reference of c.
func ehReference(c *ehCase) *ehRef {
	B, D, K := c.b, c.d, c.k
	all := make([]int, B)
	for i := range all {
		all[i] = i
	}
	e, etol := ehEnergies(c, all)
	gs := float64(c.gradScale)
	beta := c.loss.Beta
	ref := &ehRef{
		stats: make([]float64, B*model.NumStats), statsTol: make([]float64, B*model.NumStats),
		argmin: make([]int32, B), energy: e, energyTol: etol,
	}
	dE := make([]float64, B*K)    // gs * dL/dE
	dETol := make([]float64, B*K) // its allowed error
	for i := 0; i < B; i++ {
		row, rtol := e[i*K:(i+1)*K], etol[i*K:(i+1)*K]
		label := int(c.labels[i])
		r := refEnergyLoss(row, label, c.loss)
		rt := energyLossTol(row, label, c.loss, r)
		ref.argmin[i] = int32(r.argmin)
		s := i * model.NumStats
		// sum_z P_z errE_z: the first-order error of log Z (times 1/beta).
		var pbar float64
		for z, p := range r.prob {
			pbar += p * rtol[z]
		}
		ref.stats[s+model.StatLogZ] = r.logZ
		ref.statsTol[s+model.StatLogZ] = rt.logZ + 1.5*beta*pbar
		if label == model.IgnoreLabel {
			continue // loss, E_C, E_I and the gradient are exactly 0
		}
		ref.stats[s+model.StatLoss] = r.loss
		ref.stats[s+model.StatCorrect] = r.ec
		ref.stats[s+model.StatOffending] = r.ei
		ref.statsTol[s+model.StatCorrect] = rtol[label]
		if r.offending >= 0 {
			ref.statsTol[s+model.StatOffending] = rtol[r.offending]
		}
		lossTol := rt.loss
		switch {
		case c.loss.Kind == model.NLL:
			for y := range row {
				lossTol += 1.5 * math.Abs(r.grad[y]) * rtol[y]
				ep := beta * r.prob[y] * (rtol[y] + pbar) // error of P_y from the energies
				dE[i*K+y] = gs * r.grad[y]
				dETol[i*K+y] = math.Abs(gs) * (rt.grad[y] + 1.5*ep)
			}
		case c.loss.Kind == model.MEE:
			pc := r.prob[label]
			epc := beta * pc * (rtol[label] + pbar)
			for y := range row {
				lossTol += 1.5 * math.Abs(r.grad[y]) * rtol[y]
				ind := 0.0
				if y == label {
					ind = 1
				}
				ep := beta * r.prob[y] * (rtol[y] + pbar)
				dE[i*K+y] = gs * r.grad[y]
				dETol[i*K+y] = math.Abs(gs) * (rt.grad[y] + 1.5*beta*(epc*(ind+r.prob[y])+pc*ep))
			}
		default:
			idx := []int{label}
			if r.offending >= 0 {
				idx = append(idx, r.offending)
			}
			if r.argmin != label && (r.offending < 0 || r.argmin != r.offending) {
				idx = append(idx, r.argmin)
			}
			dl, dg := ehPerturbed(row, rtol, label, c.loss, idx, r)
			lossTol += 1.5 * dl
			for y := range row {
				dE[i*K+y] = gs * r.grad[y]
				dETol[i*K+y] = math.Abs(gs) * (rt.grad[y] + 1.5*dg[y])
			}
		}
		ref.statsTol[s+model.StatLoss] = lossTol
	}
	// Gradients: dh = -dE w (K terms), dw = -dE^T h and db = -colsums(dE)
	// (B terms each).
	ref.dh, ref.dhTol = make([]float64, B*D), make([]float64, B*D)
	ref.dw, ref.dwTol = make([]float64, K*D), make([]float64, K*D)
	ref.db, ref.dbTol = make([]float64, K), make([]float64, K)
	gK, gB := gamma(K, 2), gamma(B, 2)
	for i := 0; i < B; i++ {
		for y := 0; y < K; y++ {
			g, gt := dE[i*K+y], dETol[i*K+y]
			if g == 0 && gt == 0 {
				continue
			}
			ref.db[y] -= g
			ref.dbTol[y] += gB*math.Abs(g) + gt
			for d := 0; d < D; d++ {
				hv, wv := float64(c.h[i*D+d]), float64(c.w[y*D+d])
				ref.dh[i*D+d] -= g * wv
				ref.dhTol[i*D+d] += gK*math.Abs(g*wv) + gt*math.Abs(wv)
				ref.dw[y*D+d] -= g * hv
				ref.dwTol[y*D+d] += gB*math.Abs(g*hv) + gt*math.Abs(hv)
			}
		}
	}
	return ref
}

// ehOutputs are what one head (or materializing) call leaves behind.
type ehOutputs struct {
	stats      []float32
	argmin     []int32
	dh, dw, db []float32 // nil for EnergyHead
}

// ehMats are a case's operands on the backend.
type ehMats struct {
	h, w, bias model.Mat
	labels     model.Ints
}

func (c *ehCase) upload(h *helper) ehMats {
	return ehMats{h: h.mat(c.b, c.d, c.h), w: h.mat(c.k, c.d, c.w), bias: h.mat(1, c.k, c.bias), labels: h.ints(c.labels)}
}

// callHead runs EnergyHeadGrad (grad) or EnergyHead over poisoned outputs;
// withDH false passes a nil dh.
func callHead(t *testing.T, h *helper, ops model.EnergyHeadOps, c *ehCase, m ehMats, grad, withDH bool) ehOutputs {
	t.Helper()
	stats, am := h.poisoned(c.b, model.NumStats), h.poisonedInts(c.b)
	if !grad {
		must(t, c.String()+": EnergyHead", func() error { return ops.EnergyHead(m.h, m.w, m.bias, m.labels, c.loss, stats, am) })
		return ehOutputs{stats: h.get(stats), argmin: h.getInts(am)}
	}
	dw, db := h.poisoned(c.k, c.d), h.poisoned(1, c.k)
	var dh model.Mat
	if withDH {
		dh = h.poisoned(c.b, c.d)
	}
	must(t, c.String()+": EnergyHeadGrad", func() error {
		return ops.EnergyHeadGrad(m.h, m.w, m.bias, m.labels, c.loss, c.gradScale, stats, am, dh, dw, db)
	})
	out := ehOutputs{stats: h.get(stats), argmin: h.getInts(am), dw: h.get(dw), db: h.get(db)}
	if withDH {
		out.dh = h.get(dh)
	}
	return out
}

// callMaterializing computes the same outputs through a stored B x K
// energy matrix: Gemm, AddRowVector, EnergyLoss, then the three
// gradients, the way a dense model's last layer does without the head.
func callMaterializing(t *testing.T, h *helper, c *ehCase, m ehMats) ehOutputs {
	t.Helper()
	b := h.b
	e := h.poisoned(c.b, c.k)
	stats, am := h.poisoned(c.b, model.NumStats), h.poisonedInts(c.b)
	dh, dw, db := h.poisoned(c.b, c.d), h.poisoned(c.k, c.d), h.poisoned(1, c.k)
	must(t, "materializing Gemm", func() error { return model.GemmAt(b, c.prec, false, true, -1, m.h, m.w, 0, e) })
	must(t, "materializing AddRowVector", func() error { return b.AddRowVector(e, -1, m.bias) })
	must(t, "materializing EnergyLoss", func() error { return b.EnergyLoss(e, m.labels, c.loss, c.gradScale, stats, am) })
	must(t, "materializing dw", func() error { return b.Gemm(true, false, -1, e, m.h, 0, dw) })
	must(t, "materializing db", func() error { return b.ColumnSums(db, -1, e, 0) })
	must(t, "materializing dh", func() error { return b.Gemm(false, false, -1, e, m.w, 0, dh) })
	return ehOutputs{stats: h.get(stats), argmin: h.getInts(am), dh: h.get(dh), dw: h.get(dw), db: h.get(db)}
}

// checkAgainst compares out with the float64 reference.
func (ref *ehRef) checkAgainst(mm *mismatches, what string, c *ehCase, out ehOutputs) {
	mm.check(what+" stats", out.stats, ref.stats, ref.statsTol, model.NumStats)
	mm.checkInts(what+" argmin", out.argmin, ref.argmin)
	if out.dw != nil {
		mm.check(what+" dw", out.dw, ref.dw, ref.dwTol, c.d)
		mm.check(what+" db", out.db, ref.db, ref.dbTol, 0)
	}
	if out.dh != nil {
		mm.check(what+" dh", out.dh, ref.dh, ref.dhTol, c.d)
	}
}

// TestEnergyHead checks model.EnergyHeadOps when the backend implements it
// (a backend without it is skipped: the trainer then uses the
// materializing path). For every loss kind and every shape of ehShapes,
// with beta, the loss parameters and gradScale rotating as in
// TestEnergyLoss and a fifth of the rows ignored: EnergyHeadGrad and
// EnergyHead over NaN-poisoned outputs against the float64 reference and
// against the backend's materializing path (argmin exactly equal), the
// inputs untouched, EnergyHead's statistics bitwise those of
// EnergyHeadGrad, dw and db bitwise the same with and without dh, and a
// second identical call bitwise equal. Then exact ties made by duplicated
// answers (argmin and E_I to the lowest index, through both paths),
// energies of +-1e30 (from the biases), and misuse (errors, nothing
// written).
func TestEnergyHead(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	ops, ok := b.(model.EnergyHeadOps)
	if !ok {
		t.Skip("backend has no EnergyHeadOps: models use the materializing path (Gemm + EnergyLoss)")
	}
	for _, kind := range model.LossKinds() {
		t.Run(kind.String(), func(t *testing.T) {
			for ci, s := range ehShapes {
				l := elParams[ci%len(elParams)]
				l.Kind, l.Beta = kind, elBetas[ci%len(elBetas)]
				gs := gradScaleFor(ci, s[0])
				t.Run(fmt.Sprintf("B=%d,D=%d,K=%d", s[0], s[1], s[2]), func(t *testing.T) {
					skipIfBig(t, s[2] > 10_000)
					h := newHelper(t, b)
					c, redrawn := newEHCase(h, s[0], s[1], s[2], l, gs, 0.2)
					testEHCase(t, h, ops, c)
					if redrawn > 0 {
						t.Logf("%v: %d rows redrawn to keep clear of ties and kinks", c, redrawn)
					}
				})
			}
			t.Run("ties", func(t *testing.T) { testEHTies(t, newHelper(t, b), ops, kind) })
			t.Run("huge", func(t *testing.T) { testEHHuge(t, newHelper(t, b), ops, kind) })
		})
	}
	t.Run("errors", func(t *testing.T) { testEHErrors(t, newHelper(t, b), ops) })
}

func testEHCase(t *testing.T, h *helper, ops model.EnergyHeadOps, c *ehCase) {
	t.Helper()
	m := c.upload(h)
	ref := ehReference(c)
	mm := newMismatches(t, "%v", c)
	got := callHead(t, h, ops, c, m, true, true)
	ref.checkAgainst(mm, "head", c, got)
	mat := callMaterializing(t, h, c, m)
	ref.checkAgainst(mm, "materializing path (a failure here is the suite's tolerance)", c, mat)
	mm.checkInts("head argmin vs the materializing path's", got.argmin, mat.argmin)

	if c.k > 10_000 {
		// The calls below check properties the smaller cases check too;
		// on an emulated device each call at this size takes a second.
		mm.checkBits("h (input)", h.get(m.h), c.h, c.d)
		mm.checkBits("w (input)", h.get(m.w), c.w, c.d)
		mm.report()
		return
	}
	fwd := callHead(t, h, ops, c, m, false, false)
	mm.checkBits("EnergyHead stats vs EnergyHeadGrad's", fwd.stats, got.stats, model.NumStats)
	mm.checkInts("EnergyHead argmin vs EnergyHeadGrad's", fwd.argmin, got.argmin)
	noDH := callHead(t, h, ops, c, m, true, false)
	mm.checkBits("dw with dh = nil", noDH.dw, got.dw, c.d)
	mm.checkBits("db with dh = nil", noDH.db, got.db, 0)
	again := callHead(t, h, ops, c, m, true, true)
	mm.checkBits("stats of a second identical call", again.stats, got.stats, model.NumStats)
	mm.checkInts("argmin of a second identical call", again.argmin, got.argmin)
	mm.checkBits("dh of a second identical call", again.dh, got.dh, c.d)
	mm.checkBits("dw of a second identical call", again.dw, got.dw, c.d)
	mm.checkBits("db of a second identical call", again.db, got.db, 0)
	mm.checkBits("h (input)", h.get(m.h), c.h, c.d)
	mm.checkBits("w (input)", h.get(m.w), c.w, c.d)
	mm.checkBits("bias (input)", h.get(m.bias), c.bias, 0)
	mm.checkInts("labels (input)", h.getInts(m.labels), c.labels)
	mm.report()
}

// testEHTies duplicates answers so that energies tie exactly in any
// arithmetic (the same dot product computed twice): answer 3 copies answer
// 1, answer 9 copies answer 2, and rows are aimed at them (h_i a multiple
// of w_1 or w_2, which lie along two axes and are three times longer than
// the other answers' weights, so they are the lowest energies). Row 0's argmin is
// tied between 1 and 3; row 1 is labelled 1, so its E_I is 3's and E_C ==
// E_I exactly; row 2 is labelled 3, its E_I is 1;
// row 3's minimum is tied between 2 and 9 and it is labelled 5, so E_I is
// also 2. The float64 reference breaks the ties to the lowest index, as
// the backend must, on both paths.
func testEHTies(t *testing.T, h *helper, ops model.EnergyHeadOps, kind model.LossKind) {
	const B, D, K = 5, 6, 40
	c := &ehCase{b: B, d: D, k: K, loss: model.DefaultLoss(kind), gradScale: 0.5, tied: true}
	c.loss.Margin = 0.5
	c.w = h.uniform(K*D, -0.5, 0.5)
	c.bias = h.uniform(K, -0.1, 0.1)
	// Answers 1 and 2 along two axes and three times longer than the
	// others, so that rows aimed at them have them as their clear minimum.
	for d := 0; d < D; d++ {
		c.w[1*D+d] *= 0.1
		c.w[2*D+d] *= 0.1
	}
	c.w[1*D+0], c.w[2*D+1] = 1.5, -1.5
	copy(c.w[3*D:4*D], c.w[1*D:2*D])
	copy(c.w[9*D:10*D], c.w[2*D:3*D])
	c.bias[3], c.bias[9] = c.bias[1], c.bias[2]
	c.h = h.uniform(B*D, -0.1, 0.1)
	aim := func(i, y int, f float32) {
		for d := 0; d < D; d++ {
			c.h[i*D+d] = f * c.w[y*D+d]
		}
	}
	aim(0, 1, 4)
	aim(1, 1, 4)
	aim(2, 1, 4)
	aim(3, 2, 4)
	c.labels = []int32{7, 1, 3, 5, model.IgnoreLabel}
	m := c.upload(h)
	ref := ehReference(c)
	mm := newMismatches(t, "%v with tied answers", c)
	want := []int32{1, 1, 1, 2}
	for i, a := range want {
		if ref.argmin[i] != a {
			t.Fatalf("the suite's tie construction failed: row %d's reference argmin is %d, want %d", i, ref.argmin[i], a)
		}
	}
	got := callHead(t, h, ops, c, m, true, true)
	mat := callMaterializing(t, h, c, m)
	for _, o := range []struct {
		name string
		out  ehOutputs
	}{{"head", got}, {"materializing path", mat}} {
		mm.checkInts(o.name+" argmin", o.out.argmin, ref.argmin)
		for i := 0; i < 4; i++ {
			s := i * model.NumStats
			mm.check(fmt.Sprintf("%s E_I of row %d", o.name, i), o.out.stats[s+model.StatOffending:s+model.StatOffending+1],
				ref.stats[s+model.StatOffending:s+model.StatOffending+1], ref.statsTol[s+model.StatOffending:s+model.StatOffending+1], 0)
		}
	}
	// The gradient of a tie-sensitive loss goes to the lowest of the tied
	// indices: dw of the duplicate stays 0 where the original gets it.
	ref.checkAgainst(mm, "head", c, got)
	mm.report()
}

// testEHHuge gives some answers biases of -1e30 or +1e30, so energies of
// about +-1e30 tie exactly, and log Z, the loss and the gradients must
// stay finite wherever the mathematics is (see hugeEnergies).
func testEHHuge(t *testing.T, h *helper, ops model.EnergyHeadOps, kind model.LossKind) {
	const B, D, K = 7, 5, 33
	c := &ehCase{b: B, d: D, k: K, loss: model.DefaultLoss(kind), gradScale: 0.5, hugeEnergies: true}
	c.h = h.uniform(B*D, -1, 1)
	c.w = h.uniform(K*D, -1, 1)
	c.bias = h.uniform(K, -1, 1)
	for y := range c.bias {
		switch h.rng.IntN(4) {
		case 0:
			c.bias[y] = -1e30
		case 1:
			c.bias[y] = 1e30
		}
	}
	c.labels = make([]int32, B)
	for i := range c.labels {
		c.labels[i] = int32(h.rng.IntN(K))
	}
	c.labels[B-1] = model.IgnoreLabel
	m := c.upload(h)
	ref := ehReference(c)
	mm := newMismatches(t, "%v with energies of +-1e30", c)
	got := callHead(t, h, ops, c, m, true, true)
	mat := callMaterializing(t, h, c, m)
	mm.check("head stats", got.stats, ref.stats, ref.statsTol, model.NumStats)
	mm.check("materializing stats", mat.stats, ref.stats, ref.statsTol, model.NumStats)
	mm.checkInts("head argmin", got.argmin, ref.argmin)
	mm.checkInts("head argmin vs the materializing path's", got.argmin, mat.argmin)
	// The gradients: finite exactly where the materializing path's are.
	for _, g := range []struct {
		name     string
		got, mat []float32
	}{{"dh", got.dh, mat.dh}, {"dw", got.dw, mat.dw}, {"db", got.db, mat.db}} {
		for i := range g.got {
			gi, mi := g.got[i], g.mat[i]
			if math.IsInf(float64(gi), 0) != math.IsInf(float64(mi), 0) || (gi != gi) != (mi != mi) {
				mm.add("%s[%d] = %v, the materializing path gives %v", g.name, i, gi, mi)
			}
		}
	}
	mm.report()
}

// testEHErrors checks that misuse is an error and writes nothing.
func testEHErrors(t *testing.T, h *helper, ops model.EnergyHeadOps) {
	m := func(r, c int) model.Mat { return h.mat(r, c, h.uniform(r*c, -1, 1)) }
	// B = 3, D = 4, K = 5.
	hh, w, bias := m(3, 4), m(5, 4), m(1, 5)
	labels := h.ints([]int32{0, 4, model.IgnoreLabel})
	nl := model.DefaultLoss(model.NLL)
	st, am := h.poisoned(3, model.NumStats), h.poisonedInts(3)
	dh, dw, db := h.poisoned(3, 4), h.poisoned(5, 4), h.poisoned(1, 5)
	must(t, "EnergyHeadGrad (valid operands)", func() error { return ops.EnergyHeadGrad(hh, w, bias, labels, nl, 1, st, am, dh, dw, db) })
	must(t, "EnergyHead (valid operands)", func() error { return ops.EnergyHead(hh, w, bias, labels, nl, st, am) })
	// Fresh poisoned outputs for the refused calls.
	st, am = h.poisoned(3, model.NumStats), h.poisonedInts(3)
	dh, dw, db = h.poisoned(3, 4), h.poisoned(5, 4), h.poisoned(1, 5)
	grad := func(what string, hh, w, bias model.Mat, labels model.Ints, l model.Loss, st model.Mat, am model.Ints, dh, dw, db model.Mat) {
		wantErr(t, "EnergyHeadGrad with "+what, func() error { return ops.EnergyHeadGrad(hh, w, bias, labels, l, 1, st, am, dh, dw, db) })
	}
	fwd := func(what string, hh, w, bias model.Mat, labels model.Ints, l model.Loss, st model.Mat, am model.Ints) {
		wantErr(t, "EnergyHead with "+what, func() error { return ops.EnergyHead(hh, w, bias, labels, l, st, am) })
	}
	for _, bad := range [][]int32{{0, 5, 1}, {-2, 0, 0}, {0, 0, 1 << 30}} {
		bl := h.ints(bad)
		grad(fmt.Sprintf("labels %v for K = 5", bad), hh, w, bias, bl, nl, st, am, dh, dw, db)
		fwd(fmt.Sprintf("labels %v for K = 5", bad), hh, w, bias, bl, nl, st, am)
	}
	badLoss := nl
	badLoss.Beta = 0
	grad("beta 0", hh, w, bias, labels, badLoss, st, am, dh, dw, db)
	fwd("beta 0", hh, w, bias, labels, badLoss, st, am)
	grad("w 5x3", hh, m(5, 3), bias, labels, nl, st, am, dh, dw, db)
	fwd("w 5x3", hh, m(5, 3), bias, labels, nl, st, am)
	grad("bias 1x4", hh, w, m(1, 4), labels, nl, st, am, dh, dw, db)
	grad("bias 5x1", hh, w, m(5, 1), labels, nl, st, am, dh, dw, db)
	grad("labels of length 2", hh, w, bias, h.ints([]int32{0, 1}), nl, st, am, dh, dw, db)
	grad("stats 3x3", hh, w, bias, labels, nl, h.poisoned(3, 3), am, dh, dw, db)
	grad("argmin of length 4", hh, w, bias, labels, nl, st, h.poisonedInts(4), dh, dw, db)
	grad("argmin = labels", hh, w, bias, labels, nl, st, labels, dh, dw, db)
	grad("dh 3x5", hh, w, bias, labels, nl, st, am, h.poisoned(3, 5), dw, db)
	grad("dw 4x4", hh, w, bias, labels, nl, st, am, dh, h.poisoned(4, 4), db)
	grad("db 1x4", hh, w, bias, labels, nl, st, am, dh, dw, h.poisoned(1, 4))
	grad("nil dw", hh, w, bias, labels, nl, st, am, dh, nil, db)
	grad("nil db", hh, w, bias, labels, nl, st, am, dh, dw, nil)
	grad("a foreign h", foreignMat{3, 4}, w, bias, labels, nl, st, am, dh, dw, db)
	grad("a foreign dw", hh, w, bias, labels, nl, st, am, dh, foreignMat{5, 4}, db)
	fwd("a nil h", nil, w, bias, labels, nl, st, am)
	// Aliasing: outputs that are inputs.
	sq := m(3, 4) // a second B x D matrix to use as h and dh at once
	sqData := h.get(sq)
	grad("dh = h", sq, w, bias, labels, nl, st, am, sq, dw, db)
	wsq := m(5, 4)
	wsqData := h.get(wsq)
	grad("dw = w", hh, wsq, bias, labels, nl, st, am, dh, wsq, db)

	mm := newMismatches(t, "refused EnergyHead calls must write nothing")
	mm.checkBits("stats", h.get(st), nans(3*model.NumStats), model.NumStats)
	mm.checkInts("argmin", h.getInts(am), []int32{poisonInt, poisonInt, poisonInt})
	mm.checkBits("dh", h.get(dh), nans(12), 4)
	mm.checkBits("dw", h.get(dw), nans(20), 4)
	mm.checkBits("db", h.get(db), nans(5), 0)
	mm.checkBits("h = dh", h.get(sq), sqData, 4)
	mm.checkBits("w = dw", h.get(wsq), wsqData, 4)
	mm.report()
}
