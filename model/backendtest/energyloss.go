package backendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// The batch sizes B and answer counts K of EnergyLoss.
var (
	elBatches = []int{1, 7, 33, 257}
	elClasses = []int{1, 2, 7, 31, 33, 1000}
	elBetas   = []float64{1, 0.5, 3}
	// gradScale rotates through 1, a negative value, a small one and 1/B
	// (what a trainer passes for a mean loss) — see gradScaleFor.
	elScales = []float32{1, -1.5, 0.25}
)

// elParams are the loss parameters that cases alternate between: the
// defaults and a second set, so that a backend that ignores a parameter
// (or reads another's) fails.
var elParams = []model.Loss{
	{Beta: 1, Margin: 1, Gamma: 1, Delta: 1},
	{Beta: 1, Margin: 0.5, Gamma: 2, Delta: 0.5},
}

// elCase is one EnergyLoss call.
type elCase struct {
	b, k      int
	loss      model.Loss
	gradScale float32
	e         []float32 // b x k energies
	labels    []int32
}

func (c *elCase) String() string {
	return fmt.Sprintf("EnergyLoss(%v, beta=%v, B=%d, K=%d, gradScale=%v)", c.loss, c.loss.Beta, c.b, c.k, c.gradScale)
}

// TestEnergyLoss checks the fused energy-loss operation for every loss
// kind against the float64 reference: per-row statistics, argmin, and the
// gradient written over E, for B in {1, 7, 33, 257} x K in {1, 2, 7, 31,
// 33, 1000} with beta in {0.5, 1, 3} and gradScale in {1, -1.5, 0.25, 1/B}
// rotating through the cases; rows labelled IgnoreLabel mixed in; rows
// with tied energies (the minimum repeated, the correct answer tied with
// the most offending one); all rows ignored; energies of +-1e30; the
// gradient against central finite differences of the float64 loss; and
// two identical calls giving bitwise identical outputs.
func TestEnergyLoss(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	for _, kind := range model.LossKinds() {
		t.Run(kind.String(), func(t *testing.T) {
			b := open(t, newBackend)
			ci := 0
			for _, bs := range elBatches {
				for _, k := range elClasses {
					l := elParams[ci%len(elParams)]
					l.Kind, l.Beta = kind, elBetas[ci%len(elBetas)]
					gs := gradScaleFor(ci, bs)
					ci++
					t.Run(fmt.Sprintf("B=%d/K=%d/beta=%v", bs, k, l.Beta), func(t *testing.T) {
						skipIfBig(t, bs*k > 100_000)
						h := newHelper(t, b)
						c := &elCase{b: bs, k: k, loss: l, gradScale: gs}
						c.e, c.labels = randomEnergies(h, bs, k, 0.2, true)
						runEnergyLoss(t, h, c)
					})
				}
			}
			t.Run("all-ignored", func(t *testing.T) {
				h := newHelper(t, b)
				l := model.DefaultLoss(kind)
				c := &elCase{b: 7, k: 33, loss: l, gradScale: 1}
				c.e, c.labels = randomEnergies(h, 7, 33, 1, true)
				runEnergyLoss(t, h, c)
			})
			for _, k := range []int{1, 2, 7, 33} {
				for _, beta := range elBetas {
					t.Run(fmt.Sprintf("huge/K=%d/beta=%v", k, beta), func(t *testing.T) {
						h := newHelper(t, b)
						l := model.DefaultLoss(kind)
						l.Beta = beta
						c := &elCase{b: 33, k: k, loss: l, gradScale: 0.5}
						c.e, c.labels = hugeEnergies(h, 33, k)
						runEnergyLoss(t, h, c)
					})
				}
			}
			for _, k := range []int{2, 7, 33} {
				t.Run(fmt.Sprintf("finite-differences/K=%d", k), func(t *testing.T) {
					h := newHelper(t, b)
					l := elParams[k%len(elParams)]
					l.Kind, l.Beta = kind, elBetas[k%len(elBetas)]
					testFiniteDifferences(t, h, l, 7, k)
				})
			}
			t.Run("deterministic", func(t *testing.T) {
				h := newHelper(t, b)
				c := &elCase{b: 33, k: 257, loss: model.DefaultLoss(kind), gradScale: 1.0 / 33}
				c.e, c.labels = randomEnergies(h, 33, 257, 0.2, true)
				testEnergyLossDeterministic(t, h, c)
			})
		})
	}
}

func gradScaleFor(ci, b int) float32 {
	if ci%4 == 3 {
		return 1 / float32(b)
	}
	return elScales[ci%4]
}

// randomEnergies returns b x k energies uniform in [-3, 3] and labels, a
// fraction ignored of them IgnoreLabel (row 0 is always labelled unless
// every row is ignored). With ties, every third row repeats its minimum
// at random places, half the time at the label too (E_C tied with E_I and
// with the argmin), and every third row after it copies a few energies
// onto others.
func randomEnergies(h *helper, b, k int, ignored float64, ties bool) ([]float32, []int32) {
	e := h.uniform(b*k, -3, 3)
	labels := make([]int32, b)
	for r := range labels {
		labels[r] = int32(h.rng.IntN(k))
		if h.rng.Float64() < ignored && (r > 0 || ignored >= 1) {
			labels[r] = model.IgnoreLabel
		}
		if !ties {
			continue
		}
		row := e[r*k : (r+1)*k]
		switch r % 3 {
		case 1:
			lo := row[0]
			for _, v := range row {
				lo = min(lo, v)
			}
			for range 1 + h.rng.IntN(3) {
				row[h.rng.IntN(k)] = lo
			}
			if labels[r] >= 0 && h.rng.IntN(2) == 0 {
				row[labels[r]] = lo
			}
		case 2:
			for range 1 + h.rng.IntN(3) {
				row[h.rng.IntN(k)] = row[h.rng.IntN(k)]
			}
		}
	}
	return e, labels
}

// hugeEnergies returns b x k energies each -1e30, +1e30 or uniform in
// [-3, 3], so that rows hold exact ties at +-1e30, and labels (a fifth
// ignored). Every quantity stays finite in float32 when computed with
// care (log Z = beta*1e30 + log(count) at most, E_C - E_I = 2e30), except
// where the loss itself overflows (square-square's E_C^2 and
// square-exp's exp(-E_I)).
func hugeEnergies(h *helper, b, k int) ([]float32, []int32) {
	e := h.uniform(b*k, -3, 3)
	for i := range e {
		switch h.rng.IntN(4) {
		case 0:
			e[i] = -1e30
		case 1:
			e[i] = 1e30
		}
	}
	labels := make([]int32, b)
	for r := range labels {
		labels[r] = int32(h.rng.IntN(k))
		if r > 0 && h.rng.IntN(5) == 0 {
			labels[r] = model.IgnoreLabel
		}
	}
	return e, labels
}

// elOutputs are what one EnergyLoss call leaves behind.
type elOutputs struct {
	grad, stats []float32
	argmin      []int32
}

// callEnergyLoss uploads the case, poisons the outputs and calls
// EnergyLoss.
func callEnergyLoss(t *testing.T, h *helper, c *elCase) elOutputs {
	t.Helper()
	me := h.mat(c.b, c.k, c.e)
	ml := h.ints(c.labels)
	stats := h.poisoned(c.b, model.NumStats)
	am := h.poisonedInts(c.b)
	must(t, c.String(), func() error { return h.b.EnergyLoss(me, ml, c.loss, c.gradScale, stats, am) })
	out := elOutputs{grad: h.get(me), stats: h.get(stats), argmin: h.getInts(am)}
	mm := newMismatches(t, "%v", c)
	mm.checkInts("labels (input)", h.getInts(ml), c.labels)
	mm.report()
	checkEnergyStats(t, h, c, out)
	return out
}

// runEnergyLoss calls EnergyLoss once and compares everything with the
// reference. E_C, E_I and the argmin are exact (they are input values and
// indices); log Z, the loss and the gradient are within energyLossTol.
// Rows within rounding of a kink have their gradient skipped (see rowTol).
func runEnergyLoss(t *testing.T, h *helper, c *elCase) {
	t.Helper()
	out := callEnergyLoss(t, h, c)
	mm := newMismatches(t, "%v", c)
	e64 := to64(c.e)
	gs := float64(c.gradScale)
	want := make([]float64, c.b*model.NumStats)
	tol := make([]float64, c.b*model.NumStats)
	wantArgmin := make([]int32, c.b)
	skipped, labelled := 0, 0
	for r := 0; r < c.b; r++ {
		row := e64[r*c.k : (r+1)*c.k]
		label := int(c.labels[r])
		ref := refEnergyLoss(row, label, c.loss)
		rt := energyLossTol(row, label, c.loss, ref)
		s := r * model.NumStats
		want[s+model.StatLoss], tol[s+model.StatLoss] = ref.loss, rt.loss
		want[s+model.StatLogZ], tol[s+model.StatLogZ] = ref.logZ, rt.logZ
		want[s+model.StatCorrect] = ref.ec
		want[s+model.StatOffending] = ref.ei
		wantArgmin[r] = int32(ref.argmin)
		if label != model.IgnoreLabel {
			labelled++
		}
		if rt.nearKink {
			skipped++
			continue
		}
		wg := make([]float64, c.k)
		tg := make([]float64, c.k)
		for y := range wg {
			wg[y] = gs * ref.grad[y]
			tg[y] = math.Abs(gs) * rt.grad[y]
		}
		mm.check(fmt.Sprintf("gradient row %d (label %d)", r, label), out.grad[r*c.k:(r+1)*c.k], wg, tg, 0)
	}
	mm.check("stats", out.stats, want, tol, model.NumStats)
	mm.checkInts("argmin", out.argmin, wantArgmin)
	mm.report()
	if skipped > 0 && skipped == labelled {
		t.Logf("%v: the gradient of every labelled row (%d) was skipped: each lies within rounding of a kink of the loss", c, skipped)
	}
}

// testEnergyLossDeterministic runs the same call twice and requires
// bitwise identical outputs.
func testEnergyLossDeterministic(t *testing.T, h *helper, c *elCase) {
	a := callEnergyLoss(t, h, c)
	b := callEnergyLoss(t, h, c)
	mm := newMismatches(t, "%v called twice", c)
	mm.checkBits("gradient", b.grad, a.grad, c.k)
	mm.checkBits("stats", b.stats, a.stats, model.NumStats)
	mm.checkInts("argmin", b.argmin, a.argmin)
	mm.report()
}

// Finite differences: the step, the distance from any kink below which a
// row is skipped (far more than the step, so the central difference never
// straddles one), and the allowed truncation and cancellation error of the
// difference quotient, relative to 1 + |derivative|.
const (
	fdStep    = 1e-5
	fdKinkGap = 1e-3
	fdTol     = 1e-6
)

// fdGradient returns the central finite-difference gradient of the float64
// reference loss of row e at label.
func fdGradient(e []float64, label int, l model.Loss) []float64 {
	g := make([]float64, len(e))
	x := append([]float64(nil), e...)
	for y := range x {
		x[y] = e[y] + fdStep
		up := refLossValue(x, label, l)
		x[y] = e[y] - fdStep
		down := refLossValue(x, label, l)
		x[y] = e[y]
		g[y] = (up - down) / (2 * fdStep)
	}
	return g
}

// testFiniteDifferences checks the backend's gradient (divided by
// gradScale) against central finite differences of the float64 reference
// loss, at random energies (no ties) away from kinks: rows whose distance
// to a kink of the loss (kinkDistance: hinge's m + E_C - E_I = 0, LVQ2's
// ratio at 0 or 1 and E_I at 1, square-square's E_I = m, and any switch
// of E_I or of the argmin between two answers) is under fdKinkGap are
// skipped. A row of ignored label must have a zero gradient; that is also
// what the finite differences of its constant zero loss give.
func testFiniteDifferences(t *testing.T, h *helper, l model.Loss, b, k int) {
	c := &elCase{b: b, k: k, loss: l, gradScale: 0.5}
	c.e, c.labels = randomEnergies(h, b, k, 0.15, false)
	out := callEnergyLoss(t, h, c)
	mm := newMismatches(t, "%v vs central finite differences", c)
	e64 := to64(c.e)
	gs := float64(c.gradScale)
	checked := 0
	for r := 0; r < b; r++ {
		row := e64[r*k : (r+1)*k]
		label := int(c.labels[r])
		if kinkDistance(row, label, l) < fdKinkGap {
			continue
		}
		checked++
		fd := fdGradient(row, label, l)
		ref := refEnergyLoss(row, label, l)
		rt := energyLossTol(row, label, l, ref)
		want := make([]float64, k)
		tol := make([]float64, k)
		for y := range fd {
			want[y] = gs * fd[y]
			tol[y] = math.Abs(gs) * (rt.grad[y] + fdTol*(1+math.Abs(fd[y])))
		}
		mm.check(fmt.Sprintf("gradient row %d (label %d)", r, label), out.grad[r*k:(r+1)*k], want, tol, 0)
	}
	mm.report()
	if checked == 0 {
		t.Skipf("%v: every row lies within %g of a kink of the loss; nothing to compare", c, fdKinkGap)
	}
}
