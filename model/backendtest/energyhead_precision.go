package backendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// The fused energy head at the precisions other than FP32
// (model.EnergyHeadPrecisionOps).

// ehPrecisionShapes are the (B, D, K) of TestEnergyHeadPrecision: every B
// of {1, 31, 33, 65}, D of {1, 7, 31, 256} and K of {1, 31, 1000, 65537}
// appears (partial tiles of 64 rows and answers, a single k slab, D past
// several slabs of 16, K one past a power of two), at a cost an emulated
// device can afford.
var ehPrecisionShapes = [][3]int{
	{1, 1, 1}, {31, 7, 31}, {33, 31, 1000}, {65, 256, 31}, {1, 256, 1000}, {65, 1, 1000}, {33, 7, 65537},
}

// precHead is the head of one precision as a model.EnergyHeadOps, so that
// the checks of TestEnergyHead (testEHCase) run on it unchanged.
type precHead struct {
	ops model.EnergyHeadPrecisionOps
	p   model.Precision
}

func (h precHead) EnergyHead(x, w, bias model.Mat, labels model.Ints, loss model.Loss, stats model.Mat, argmin model.Ints) error {
	return h.ops.EnergyHeadPrecision(h.p, x, w, bias, labels, loss, stats, argmin)
}

func (h precHead) EnergyHeadGrad(x, w, bias model.Mat, labels model.Ints, loss model.Loss, gradScale float32, stats model.Mat, argmin model.Ints, dh, dw, db model.Mat) error {
	return h.ops.EnergyHeadGradPrecision(h.p, x, w, bias, labels, loss, gradScale, stats, argmin, dh, dw, db)
}

// unitRoundoff is the unit roundoff of precision p's operand format.
func unitRoundoff(p model.Precision) float64 {
	switch p {
	case model.TF32:
		return 0x1p-11
	case model.BF16:
		return 0x1p-8
	}
	return u
}

// TestEnergyHeadPrecision checks model.EnergyHeadPrecisionOps (skipped on a
// backend without it) at 3xtf32, tf32 and bf16, at every shape of
// ehPrecisionShapes, for NLL (dense backward: the tiles are recomputed at
// the precision) and one sparse loss rotating through the others (NLL only
// at 65537 answers, which -short skips):
//
//   - everything testEHCase checks, over NaN-poisoned outputs: statistics,
//     argmin and the gradients dh, dw, db against the float64 reference of
//     that precision (ehEnergies: tf32 and bf16 on the operands rounded by
//     the suite's own refRound, 3xtf32 on the unrounded ones within the
//     split's bound), against the backend's materializing path at the same
//     precision (GemmAt, argmin exactly equal), EnergyHead bitwise
//     EnergyHeadGrad's, a second identical call bitwise equal, the inputs
//     untouched;
//   - tf32 and bf16 against the float64 energies of the unrounded
//     operands: log Z and E_C within the operand rounding's bound
//     (2u + u^2 of each product |h_d w_yd|, u = 2^-11 or 2^-8, summed over
//     D: a random walk makes the typical error u sqrt(D) times the products'
//     size, the bound is the worst case) plus the float32 tolerance; and,
//     where D >= 7, the E_C of the rows together at least 4 times closer to
//     the rounded operands' energies than to the unrounded ones (float32
//     sums of the rounded products are off by about 2^-24 sqrt(D), the
//     rounding itself by about u sqrt(D), 2^13 or 2^16 times more): a head
//     that ignored the precision fails.
//
// FP32 through EnergyHeadPrecision must be bitwise EnergyHead's.
func TestEnergyHeadPrecision(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	TestEnergyHeadPrecisionSizes(t, newBackend, true)
}

// TestEnergyHeadPrecisionSizes is TestEnergyHeadPrecision without its
// 65537-answer cases (which -short skips in any case) and its sparse losses
// unless huge.
func TestEnergyHeadPrecisionSizes(t *testing.T, newBackend func(t *testing.T) model.Backend, huge bool) {
	b := open(t, newBackend)
	pops, ok := b.(model.EnergyHeadPrecisionOps)
	if !ok {
		t.Skipf("%s has no model.EnergyHeadPrecisionOps: models of other precisions use the materializing path", b.Name())
	}
	ops := b.(model.EnergyHeadOps)
	kinds := model.LossKinds()
	for _, p := range []model.Precision{model.TF32x3, model.TF32, model.BF16} {
		for ci, s := range ehPrecisionShapes {
			runKinds := []model.LossKind{model.NLL, kinds[1+ci%(len(kinds)-1)]}
			if !huge {
				// A narrowed run (another configuration of a backend the
				// caller also runs in full): NLL, which exercises the
				// recomputed tiles and, through its label term, the sparse
				// path too.
				runKinds = runKinds[:1]
			}
			for _, kind := range runKinds {
				l := elParams[ci%len(elParams)]
				l.Kind, l.Beta = kind, elBetas[ci%len(elBetas)]
				gs := gradScaleFor(ci, s[0])
				t.Run(fmt.Sprintf("%v/%v/B=%d,D=%d,K=%d", p, kind, s[0], s[1], s[2]), func(t *testing.T) {
					// 65537 answers: about 25 s per precision and loss on
					// an emulated device; the 1000-answer shapes cover the
					// same code (several chunks and groups), so -short skips
					// it, and the full run takes it for NLL only (a sparse
					// loss's forward is NLL's, and its backward recomputes
					// no tile).
					skipIfBig(t, s[2] > 10_000)
					if s[2] > 10_000 && !huge {
						t.Skip("65537 answers: the caller runs them in another configuration")
					}
					if s[2] > 10_000 && kind != model.NLL {
						t.Skip("65537 answers: NLL only (see above)")
					}
					h := newHelper(t, b)
					c, redrawn := newEHCaseAt(h, p, s[0], s[1], s[2], l, gs, 0.2)
					testEHCase(t, h, precHead{pops, p}, c)
					if p != model.TF32x3 {
						testEHRounding(t, h, precHead{pops, p}, c)
					}
					if redrawn > 0 {
						t.Logf("%v: %d rows redrawn to keep clear of ties and kinks", c, redrawn)
					}
				})
			}
		}
	}
	t.Run("fp32", func(t *testing.T) {
		h := newHelper(t, b)
		c, _ := newEHCase(h, 33, 31, 1000, model.DefaultLoss(model.NLL), 0.5, 0.2)
		m := c.upload(h)
		want := callHead(t, h, ops, c, m, true, true)
		got := callHead(t, h, precHead{pops, model.FP32}, c, m, true, true)
		mm := newMismatches(t, "%v", c)
		mm.checkBits("fp32 stats vs EnergyHeadGrad's", got.stats, want.stats, model.NumStats)
		mm.checkBits("fp32 dh vs EnergyHeadGrad's", got.dh, want.dh, c.d)
		mm.checkBits("fp32 dw vs EnergyHeadGrad's", got.dw, want.dw, c.d)
		mm.checkBits("fp32 db vs EnergyHeadGrad's", got.db, want.db, 0)
		mm.report()
	})
	t.Run("errors", func(t *testing.T) {
		h := newHelper(t, b)
		c, _ := newEHCase(h, 3, 2, 5, model.DefaultLoss(model.NLL), 1, 0)
		m := c.upload(h)
		st, am := h.poisoned(c.b, model.NumStats), h.poisonedInts(c.b)
		wantErr(t, "EnergyHeadPrecision with an unknown precision", func() error {
			return pops.EnergyHeadPrecision(model.Precision(17), m.h, m.w, m.bias, m.labels, c.loss, st, am)
		})
	})
}

// testEHRounding compares a tf32 or bf16 head with the float64 energies of
// the unrounded operands (see TestEnergyHeadPrecision).
func testEHRounding(t *testing.T, h *helper, ops model.EnergyHeadOps, c *ehCase) {
	t.Helper()
	up := unitRoundoff(c.prec)
	exact := *c
	exact.prec = model.FP32
	all := make([]int, c.b)
	for i := range all {
		all[i] = i
	}
	e, etol := ehEnergies(&exact, all)
	eR, _ := ehEnergies(c, all)
	got := callHead(t, h, ops, c, c.upload(h), false, false)
	mm := newMismatches(t, "%v against the unrounded operands", c)
	var offU, offR float64 // sum over rows of |E_C - unrounded|, |E_C - rounded|
	for i := 0; i < c.b; i++ {
		label := int(c.labels[i])
		row := e[i*c.k : (i+1)*c.k]
		// bound[y]: the operand rounding's worst case on E_y.
		bound := make([]float64, c.k)
		maxBound, maxTol := 0.0, 0.0
		for y := range bound {
			var mag float64
			for d := 0; d < c.d; d++ {
				mag += math.Abs(float64(c.h[i*c.d+d]) * float64(c.w[y*c.d+d]))
			}
			bound[y] = safety * (2*up + up*up) * mag
			maxBound = math.Max(maxBound, bound[y])
			maxTol = math.Max(maxTol, etol[i*c.k+y])
		}
		r := refEnergyLoss(row, label, c.loss)
		rt := energyLossTol(row, label, c.loss, r)
		s := i * model.NumStats
		lz := float64(got.stats[s+model.StatLogZ])
		if tol := rt.logZ + 1.5*c.loss.Beta*(maxBound+maxTol); math.Abs(lz-r.logZ) > tol || math.IsNaN(lz) {
			mm.add("%s", fmt.Sprintf("row %d log Z = %v, unrounded %v: beyond the rounding bound %.3g", i, lz, r.logZ, tol))
		}
		if label == model.IgnoreLabel {
			continue
		}
		ec := float64(got.stats[s+model.StatCorrect])
		diff := math.Abs(ec - r.ec)
		if diff > bound[label]+etol[i*c.k+label] || math.IsNaN(ec) {
			mm.add("%s", fmt.Sprintf("row %d E_C = %v, unrounded %v: beyond the rounding bound %.3g", i, ec, r.ec, bound[label]+etol[i*c.k+label]))
		}
		offU += diff
		offR += math.Abs(ec - eR[i*c.k+label])
	}
	if c.d >= 7 && !(offU > 4*offR) {
		mm.add("%s", fmt.Sprintf("E_C is off the unrounded operands' energies by %.3g in all, off the %v-rounded ones' by %.3g: were the operands rounded?", offU, c.prec, offR))
	}
	mm.report()
}
