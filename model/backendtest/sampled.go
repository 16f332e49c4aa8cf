package backendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// The sampled losses' model.SampledOps, against a float64 reference written
// from the doc comment of model/sampled.go, and their gradients against
// central finite differences of that reference loss.

// sampledRef is the float64 result of one call.
type sampledRef struct {
	stats, statsTol []float64
	dh, dw, db      []float64
	dhTol, dwTol    []float64
	dbTol           []float64
}

// sampledCase is one SampledHead call.
type sampledCase struct {
	kind          model.SampledKind
	b, d, k       int
	beta          float64
	gs            float32
	h, w, bias    []float32
	logQ          []float32
	labels, samps []int32
}

// refSampledLoss returns the summed loss of the rows (and, with grads,
// every row's dL/dE at its label and at each sample) in float64.
func refSampledLoss(c *sampledCase, h, w, bias []float64) (total float64, rows []float64, est []float64, gy []float64, gs [][]float64) {
	S := len(c.samps)
	logS := math.Log(float64(S))
	rows, est, gy = make([]float64, c.b), make([]float64, c.b), make([]float64, c.b)
	gs = make([][]float64, c.b)
	energy := func(i, y int) float64 {
		var s float64
		for d := 0; d < c.d; d++ {
			s += h[i*c.d+d] * w[y*c.d+d]
		}
		return -(s + bias[y])
	}
	for i := 0; i < c.b; i++ {
		gs[i] = make([]float64, S)
		// The IS estimate of log Z: log((1/S) sum_j exp(-beta E_j)/Q(s_j)).
		var z float64
		terms := make([]float64, S)
		mx := math.Inf(-1)
		for j, s := range c.samps {
			terms[j] = -c.beta*energy(i, int(s)) - float64(c.logQ[s])
			mx = math.Max(mx, terms[j])
		}
		for _, x := range terms {
			z += math.Exp(x - mx)
		}
		est[i] = mx + math.Log(z) - logS
		y := int(c.labels[i])
		if y == model.IgnoreLabel {
			continue
		}
		corr := func(cand int, e float64) float64 {
			return -c.beta*e - math.Log(float64(S)*math.Exp(float64(c.logQ[cand])))
		}
		oy := corr(y, energy(i, y))
		o := make([]float64, S)
		for j, s := range c.samps {
			o[j] = corr(int(s), energy(i, int(s)))
		}
		switch c.kind {
		case model.NCE:
			rows[i] = softplus(-oy)
			gy[i] = c.beta * sigmoid(-oy)
			for j, s := range c.samps {
				if int(s) != y {
					rows[i] += softplus(o[j])
					gs[i][j] = -c.beta * sigmoid(o[j])
				}
			}
		default:
			m := oy
			for j, s := range c.samps {
				if int(s) != y {
					m = math.Max(m, o[j])
				}
			}
			zz := math.Exp(oy - m)
			for j, s := range c.samps {
				if int(s) != y {
					zz += math.Exp(o[j] - m)
				}
			}
			lz := m + math.Log(zz)
			rows[i] = (lz - oy) / c.beta
			gy[i] = 1 - math.Exp(oy-lz)
			for j, s := range c.samps {
				if int(s) != y {
					gs[i][j] = -math.Exp(o[j] - lz)
				}
			}
		}
		total += rows[i]
	}
	return total, rows, est, gy, gs
}

// sampledReference computes the expected outputs and their tolerances.
func sampledReference(c *sampledCase) *sampledRef {
	h, w, bias := to64(c.h), to64(c.w), to64(c.bias)
	_, rows, est, gy, gsj := refSampledLoss(c, h, w, bias)
	S := len(c.samps)
	r := &sampledRef{
		stats: make([]float64, c.b*model.NumStats), statsTol: make([]float64, c.b*model.NumStats),
		dh: make([]float64, c.b*c.d), dhTol: make([]float64, c.b*c.d),
		dw: make([]float64, c.k*c.d), dwTol: make([]float64, c.k*c.d),
		db: make([]float64, c.k), dbTol: make([]float64, c.k),
	}
	g := float64(c.gs)
	// The energies' error: a D-term dot product and the bias.
	errE := func(i, y int) float64 {
		var mag float64
		for d := 0; d < c.d; d++ {
			mag += math.Abs(h[i*c.d+d] * w[y*c.d+d])
		}
		return gamma(c.d, 4) * (mag + math.Abs(bias[y]))
	}
	for i := 0; i < c.b; i++ {
		s := i * model.NumStats
		var eMax float64
		for _, sm := range c.samps {
			eMax = math.Max(eMax, errE(i, int(sm)))
		}
		if y := int(c.labels[i]); y >= 0 {
			eMax = math.Max(eMax, errE(i, y))
		}
		// Every loss here has |dL/dE_c| <= beta (NCE) or <= 1 per
		// candidate, summing to at most 2 beta (S + 1) over them.
		sens := 2 * c.beta * float64(S+1)
		r.stats[s+model.StatLoss] = rows[i]
		r.stats[s+model.StatLogZ] = est[i]
		r.statsTol[s+model.StatLoss] = sens*eMax + gamma(S+8, 8)*(1+math.Abs(rows[i]))
		r.statsTol[s+model.StatLogZ] = c.beta*eMax + gamma(S+8, 8)*(1+math.Abs(est[i]))
		y := int(c.labels[i])
		if y < 0 {
			continue
		}
		// E_C, and E_I among the samples (the smallest energy off the label).
		energy := func(cand int) float64 {
			var dot float64
			for d := 0; d < c.d; d++ {
				dot += h[i*c.d+d] * w[cand*c.d+d]
			}
			return -(dot + bias[cand])
		}
		r.stats[s+model.StatCorrect], r.statsTol[s+model.StatCorrect] = energy(y), errE(i, y)
		r.stats[s+model.StatOffending] = math.Inf(1)
		for _, sm := range c.samps {
			if int(sm) != y && energy(int(sm)) < r.stats[s+model.StatOffending] {
				r.stats[s+model.StatOffending], r.statsTol[s+model.StatOffending] = energy(int(sm)), errE(i, int(sm))
			}
		}
		// A coefficient's error: its derivative (<= beta^2 (S+1) in size)
		// times the energies' error, and float32's rounding.
		cErr := func(x float64) float64 {
			return (c.beta*c.beta*float64(S+1)*eMax+gamma(8, 8))*math.Abs(g) + u*math.Abs(x)
		}
		add := func(cand int, coef float64) {
			ce := cErr(coef)
			for d := 0; d < c.d; d++ {
				hv, wv := h[i*c.d+d], w[cand*c.d+d]
				r.dh[i*c.d+d] -= coef * wv
				r.dhTol[i*c.d+d] += gamma(S+2, 4)*math.Abs(coef*wv) + ce*math.Abs(wv)
				r.dw[cand*c.d+d] -= coef * hv
				r.dwTol[cand*c.d+d] += gamma(c.b+S+2, 4)*math.Abs(coef*hv) + ce*math.Abs(hv)
			}
			r.db[cand] -= coef
			r.dbTol[cand] += gamma(c.b+S+2, 4)*math.Abs(coef) + ce
		}
		add(y, g*gy[i])
		for j, sm := range c.samps {
			if gsj[i][j] != 0 {
				add(int(sm), g*gsj[i][j])
			}
		}
	}
	return r
}

// TestSampled checks model.SampledOps when the backend has it: for both
// kinds, several shapes with repeated samples and accidental hits (a
// sample equal to a row's label) and ignored rows, the statistics and
// gradients against the float64 reference over poisoned outputs, the
// gradients against central finite differences of the reference loss, the
// forward-only call (dw nil) giving the same statistics, determinism, and
// misuse refused.
func TestSampled(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	ops, ok := b.(model.SampledOps)
	if !ok {
		t.Skip("backend has no SampledOps: the sampled losses cannot train on it")
	}
	for _, kind := range []model.SampledKind{model.SampledSoftmax, model.NCE} {
		for ci, s := range [][4]int{{1, 3, 5, 1}, {7, 5, 31, 9}, {33, 17, 1000, 64}} {
			B, D, K, S := s[0], s[1], s[2], s[3]
			t.Run(fmt.Sprintf("%v/B=%d,D=%d,K=%d,S=%d", kind, B, D, K, S), func(t *testing.T) {
				h := newHelper(t, b)
				c := &sampledCase{kind: kind, b: B, d: D, k: K, beta: elBetas[ci%len(elBetas)], gs: gradScaleFor(ci+1, B)}
				c.h = h.uniform(B*D, -1, 1)
				c.w = h.uniform(K*D, -1, 1)
				c.bias = h.uniform(K, -0.5, 0.5)
				// A proposal that is not uniform: log of normalized random weights.
				q := make([]float64, K)
				var tot float64
				for i := range q {
					q[i] = 0.2 + h.rng.Float64()
					tot += q[i]
				}
				c.logQ = make([]float32, K)
				for i := range q {
					c.logQ[i] = float32(math.Log(q[i] / tot))
				}
				c.samps = make([]int32, S)
				for j := range c.samps {
					c.samps[j] = int32(h.rng.IntN(K))
				}
				if S > 2 {
					c.samps[1] = c.samps[0] // a repeated sample
				}
				c.labels = make([]int32, B)
				for i := range c.labels {
					c.labels[i] = int32(h.rng.IntN(K))
					if i%4 == 3 {
						c.labels[i] = model.IgnoreLabel
					}
				}
				c.labels[0] = c.samps[0] // an accidental hit
				testSampledCase(t, h, ops, c)
			})
		}
	}
	t.Run("errors", func(t *testing.T) {
		h := newHelper(t, b)
		m := func(r, c int) model.Mat { return h.mat(r, c, h.uniform(r*c, -1, 1)) }
		hh, w, bias, lq := m(3, 4), m(5, 4), m(1, 5), m(1, 5)
		labels, samples := h.ints([]int32{0, 4, model.IgnoreLabel}), h.ints([]int32{1, 2})
		st, dw, db := h.poisoned(3, model.NumStats), h.poisoned(5, 4), h.poisoned(1, 5)
		call := func(what string, kind model.SampledKind, beta float64, hh, w, bias model.Mat, labels, samples model.Ints, lq, st, dw, db model.Mat) {
			wantErr(t, "SampledHead with "+what, func() error {
				return ops.SampledHead(kind, hh, w, bias, labels, samples, lq, beta, 1, st, nil, dw, db)
			})
		}
		call("kind none", model.SampledNone, 1, hh, w, bias, labels, samples, lq, st, dw, db)
		call("beta 0", model.NCE, 0, hh, w, bias, labels, samples, lq, st, dw, db)
		call("a sample past K", model.NCE, 1, hh, w, bias, labels, h.ints([]int32{1, 5}), lq, st, dw, db)
		call("a negative sample", model.NCE, 1, hh, w, bias, labels, h.ints([]int32{-1}), lq, st, dw, db)
		call("no samples", model.NCE, 1, hh, w, bias, labels, h.ints(nil), lq, st, dw, db)
		call("a label past K", model.SampledSoftmax, 1, hh, w, bias, h.ints([]int32{0, 5, 1}), samples, lq, st, dw, db)
		call("logQ 1x4", model.SampledSoftmax, 1, hh, w, bias, labels, samples, m(1, 4), st, dw, db)
		call("stats 3x1", model.SampledSoftmax, 1, hh, w, bias, labels, samples, lq, h.poisoned(3, 1), dw, db)
		call("dw 4x4", model.SampledSoftmax, 1, hh, w, bias, labels, samples, lq, st, h.poisoned(4, 4), db)
		call("dw = w", model.SampledSoftmax, 1, hh, w, bias, labels, samples, lq, st, w, db)
		mm := newMismatches(t, "refused SampledHead calls must write nothing")
		mm.checkBits("stats", h.get(st), nans(3*model.NumStats), model.NumStats)
		mm.checkBits("dw", h.get(dw), nans(20), 4)
		mm.checkBits("db", h.get(db), nans(5), 0)
		mm.report()
	})
}

func testSampledCase(t *testing.T, h *helper, ops model.SampledOps, c *sampledCase) {
	t.Helper()
	mh, mw, mb, mq := h.mat(c.b, c.d, c.h), h.mat(c.k, c.d, c.w), h.mat(1, c.k, c.bias), h.mat(1, c.k, c.logQ)
	ml, ms := h.ints(c.labels), h.ints(c.samps)
	st, dh, dw, db := h.poisoned(c.b, model.NumStats), h.poisoned(c.b, c.d), h.poisoned(c.k, c.d), h.poisoned(1, c.k)
	run := func() {
		must(t, "SampledHead", func() error {
			return ops.SampledHead(c.kind, mh, mw, mb, ml, ms, mq, c.beta, c.gs, st, dh, dw, db)
		})
	}
	run()
	gotSt, gotDH, gotDW, gotDB := h.get(st), h.get(dh), h.get(dw), h.get(db)
	ref := sampledReference(c)
	mm := newMismatches(t, "SampledHead(%v, beta=%v, B=%d, D=%d, K=%d, S=%d, gradScale=%v)", c.kind, c.beta, c.b, c.d, c.k, len(c.samps), c.gs)
	mm.check("stats", gotSt, ref.stats, ref.statsTol, model.NumStats)
	mm.check("dh", gotDH, ref.dh, ref.dhTol, c.d)
	mm.check("dw", gotDW, ref.dw, ref.dwTol, c.d)
	mm.check("db", gotDB, ref.db, ref.dbTol, 0)

	// Central differences of the reference loss (times gradScale) at a
	// few entries of h, w (the label's and a sample's rows) and b.
	h64, w64, b64 := to64(c.h), to64(c.w), to64(c.bias)
	g := float64(c.gs)
	fd := func(x []float64, i int) float64 {
		const step = 1e-4
		old := x[i]
		x[i] = old + step
		up, _, _, _, _ := refSampledLoss(c, h64, w64, b64)
		x[i] = old - step
		down, _, _, _, _ := refSampledLoss(c, h64, w64, b64)
		x[i] = old
		return g * (up - down) / (2 * step)
	}
	probe := func(name string, x []float64, i int, got float32) {
		want := fd(x, i)
		if math.Abs(float64(got)-want) > 1e-4*(math.Abs(g)+math.Abs(want)) {
			mm.add("%s[%d] = %v, central difference %v", name, i, got, want)
		}
	}
	y0 := int(c.labels[0])
	for d := 0; d < c.d; d++ {
		probe("dh", h64, d, gotDH[d])
		probe("dw (a label's row)", w64, y0*c.d+d, gotDW[y0*c.d+d])
		s := int(c.samps[len(c.samps)-1])
		probe("dw (a sample's row)", w64, s*c.d+d, gotDW[s*c.d+d])
	}
	probe("db", b64, y0, gotDB[y0])
	probe("db", b64, int(c.samps[len(c.samps)-1]), gotDB[c.samps[len(c.samps)-1]])

	// Forward only, determinism, inputs untouched.
	st2 := h.poisoned(c.b, model.NumStats)
	must(t, "SampledHead without gradients", func() error {
		return ops.SampledHead(c.kind, mh, mw, mb, ml, ms, mq, c.beta, c.gs, st2, nil, nil, nil)
	})
	mm.checkBits("stats without gradients", h.get(st2), gotSt, model.NumStats)
	run()
	mm.checkBits("dw of a second identical call", h.get(dw), gotDW, c.d)
	mm.checkBits("dh of a second identical call", h.get(dh), gotDH, c.d)
	mm.checkBits("w (input)", h.get(mw), c.w, c.d)
	mm.report()
}
