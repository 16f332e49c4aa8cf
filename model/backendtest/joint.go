package backendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// The optional model.JointOps capability. Its reference is written here
// from the doc comment of model/jointops.go alone: every joint answer is
// decoded into its digits by division (not by the digit counter the
// backends use), the pair offsets are recomputed by plain loops, and every
// sum is a float64 loop in the reference style of reference.go.

// jointVars are the variable shapes of TestJointOps: one variable, a
// pair, a variable with a single value between two others, a pair of
// primes, and five binary variables (ten pairwise tables).
var jointVars = [][]int{{1}, {2, 3}, {3, 1, 4}, {7, 5}, {2, 2, 2, 2, 2}}

// refJointDigits returns the digits y_i(y): row-major, the last variable
// fastest.
func refJointDigits(vars []int, y int) []int {
	d := make([]int, len(vars))
	for i := len(vars) - 1; i >= 0; i-- {
		d[i] = y % vars[i]
		y /= vars[i]
	}
	return d
}

// refJointSizes returns J, sumK and sumP of vars.
func refJointSizes(vars []int) (j, sumK, sumP int) {
	j = 1
	for i, k := range vars {
		j *= k
		sumK += k
		for _, k2 := range vars[i+1:] {
			sumP += k * k2
		}
	}
	return j, sumK, sumP
}

// refJointTerms calls f with the column of S and, for each pair i < j in
// lexicographic order, the index into P of every term of E[., y].
func refJointTerms(vars []int, y int, unary func(col int), pair func(idx int)) {
	d := refJointDigits(vars, y)
	off := 0
	for i, k := range vars {
		unary(off + d[i])
		off += k
	}
	poff := 0
	for i := range vars {
		for j := i + 1; j < len(vars); j++ {
			pair(poff + d[i]*vars[j] + d[j])
			poff += vars[i] * vars[j]
		}
	}
}

// refJointEnergies returns E (B x J) and the magnitudes sum |terms| of each
// element; p nil means no pairwise term.
func refJointEnergies(vars []int, rows int, s, p []float32) (e, mag []float64, terms int) {
	j, sumK, _ := refJointSizes(vars)
	e = make([]float64, rows*j)
	mag = make([]float64, rows*j)
	for b := 0; b < rows; b++ {
		for y := 0; y < j; y++ {
			var acc, abs float64
			n := 0
			refJointTerms(vars, y, func(col int) {
				v := float64(s[b*sumK+col])
				acc += v
				abs += math.Abs(v)
				n++
			}, func(idx int) {
				if p == nil {
					return
				}
				v := float64(p[idx])
				acc += v
				abs += math.Abs(v)
				n++
			})
			e[b*j+y], mag[b*j+y] = acc, abs
			terms = n
		}
	}
	return e, mag, terms
}

// refJointGradients returns dS (B x sumK), dP (1 x sumP) and their
// magnitudes: each dE[b,y] is added to every factor entry that E[b,y] uses.
func refJointGradients(vars []int, rows int, de []float32) (ds, dsMag, dp, dpMag []float64) {
	j, sumK, sumP := refJointSizes(vars)
	ds, dsMag = make([]float64, rows*sumK), make([]float64, rows*sumK)
	dp, dpMag = make([]float64, sumP), make([]float64, sumP)
	for b := 0; b < rows; b++ {
		for y := 0; y < j; y++ {
			g := float64(de[b*j+y])
			refJointTerms(vars, y, func(col int) {
				ds[b*sumK+col] += g
				dsMag[b*sumK+col] += math.Abs(g)
			}, func(idx int) {
				dp[idx] += g
				dpMag[idx] += math.Abs(g)
			})
		}
	}
	return ds, dsMag, dp, dpMag
}

// TestJointOps checks model.JointOps against the reference above when the
// backend implements it (a backend without it is skipped: the joint model
// then uses the GEMM path, which the other tests cover). For every shape of
// jointVars, B in {1, 7, 33}, with and without the pairwise vector:
// JointEnergies and JointGradients over NaN-poisoned outputs, inputs left
// untouched, and a second identical call bitwise equal. Then misuse: bad
// vars and wrong shapes must return errors and leave the outputs alone.
//
// Tolerances: each output is a sum of n float32 inputs (E: the unary and
// pairwise terms of one answer; dS[b, off_i+v]: J/K_i gradients; dP: B *
// J/(K_i K_j) gradients), so |got - ref| <= gamma(n, 1) * sum |terms|.
func TestJointOps(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	jo, ok := b.(model.JointOps)
	if !ok {
		t.Skip("backend has no JointOps: the joint model uses the GEMM fallback")
	}
	for _, vars := range jointVars {
		for _, rows := range []int{1, 7, 33} {
			for _, pairwise := range []bool{false, true} {
				t.Run(fmt.Sprintf("vars=%v/B=%d/pairwise=%v", vars, rows, pairwise), func(t *testing.T) {
					testJointCase(t, b, jo, vars, rows, pairwise)
				})
			}
		}
	}
	t.Run("errors", func(t *testing.T) { testJointErrors(t, b, jo) })
}

func testJointCase(t *testing.T, b model.Backend, jo model.JointOps, vars []int, rows int, pairwise bool) {
	h := newHelper(t, b)
	j, sumK, sumP := refJointSizes(vars)
	s := h.uniform(rows*sumK, -2, 2)
	de := h.uniform(rows*j, -1, 1)
	var p []float32
	var mp, mdp model.Mat // nil interfaces when there is no pairwise term
	if pairwise {
		p = h.uniform(sumP, -2, 2)
		mp, mdp = h.mat(1, sumP, p), h.poisoned(1, sumP)
	}
	ms, me, mde, mds := h.mat(rows, sumK, s), h.poisoned(rows, j), h.mat(rows, j, de), h.poisoned(rows, sumK)
	energies := func() {
		must(t, "JointEnergies", func() error { return jo.JointEnergies(ms, mp, vars, me) })
	}
	gradients := func() {
		must(t, "JointGradients", func() error { return jo.JointGradients(mde, vars, mds, mdp) })
	}
	mm := newMismatches(t, "JointOps(vars=%v, B=%d, pairwise=%v)", vars, rows, pairwise)

	energies()
	gotE := h.get(me)
	wantE, magE, terms := refJointEnergies(vars, rows, s, p)
	tolE := make([]float64, len(magE))
	for i := range magE {
		tolE[i] = gamma(terms, 1) * magE[i]
	}
	mm.check("E", gotE, wantE, tolE, j)
	mm.checkBits("S (input)", h.get(ms), s, sumK)
	if pairwise {
		mm.checkBits("P (input)", h.get(mp), p, sumP)
	}

	gradients()
	gotDS := h.get(mds)
	wantDS, magDS, wantDP, magDP := refJointGradients(vars, rows, de)
	tolDS := make([]float64, len(magDS))
	off := 0
	for i, k := range vars {
		for v := 0; v < k; v++ {
			for r := 0; r < rows; r++ {
				tolDS[r*sumK+off+v] = gamma(j/vars[i], 1) * magDS[r*sumK+off+v]
			}
		}
		off += k
	}
	mm.check("dS", gotDS, wantDS, tolDS, sumK)
	mm.checkBits("dE (input)", h.get(mde), de, j)
	var gotDP []float32
	if pairwise {
		gotDP = h.get(mdp)
		tolDP := make([]float64, len(magDP))
		poff := 0
		for i := range vars {
			for c := i + 1; c < len(vars); c++ {
				for x := 0; x < vars[i]*vars[c]; x++ {
					tolDP[poff+x] = gamma(rows*j/(vars[i]*vars[c]), 1) * magDP[poff+x]
				}
				poff += vars[i] * vars[c]
			}
		}
		mm.check("dP", gotDP, wantDP, tolDP, 0)
	}

	// Determinism: the same calls over fresh poison give the same bits.
	must(t, "Upload", func() error { return b.Upload(me, nans(rows*j)) })
	must(t, "Upload", func() error { return b.Upload(mds, nans(rows*sumK)) })
	if pairwise {
		must(t, "Upload", func() error { return b.Upload(mdp, nans(sumP)) })
	}
	energies()
	gradients()
	mm.checkBits("E of a second identical call", h.get(me), gotE, j)
	mm.checkBits("dS of a second identical call", h.get(mds), gotDS, sumK)
	if pairwise {
		mm.checkBits("dP of a second identical call", h.get(mdp), gotDP, 0)
	}
	mm.report()
}

// testJointErrors checks that bad vars and operands of the wrong shapes
// (or aliased) are errors, and that a refused call writes nothing.
func testJointErrors(t *testing.T, b model.Backend, jo model.JointOps) {
	h := newHelper(t, b)
	m := func(r, c int) model.Mat { return h.mat(r, c, h.uniform(r*c, -1, 1)) }
	// vars {2, 3}: J = 6, sumK = 5, sumP = 6; B = 4.
	vars := []int{2, 3}
	s, p, de := m(4, 5), m(1, 6), m(4, 6)
	e, ds, dp := h.poisoned(4, 6), h.poisoned(4, 5), h.poisoned(1, 6)
	must(t, "JointEnergies (valid operands)", func() error { return jo.JointEnergies(s, p, vars, e) })
	must(t, "JointGradients (valid operands)", func() error { return jo.JointGradients(de, vars, ds, dp) })
	// Fresh poisoned outputs for the refused calls.
	e, ds, dp = h.poisoned(4, 6), h.poisoned(4, 5), h.poisoned(1, 6)

	badVars := [][]int{nil, {}, {0}, {2, 0}, {3, -1}, {model.MaxJointStates + 1}, {1 << 10, 1 << 10, 2}}
	for _, bv := range badVars {
		wantErr(t, fmt.Sprintf("JointEnergies with vars %v", bv), func() error { return jo.JointEnergies(s, p, bv, e) })
		wantErr(t, fmt.Sprintf("JointEnergies with vars %v and no P", bv), func() error { return jo.JointEnergies(s, nil, bv, e) })
		wantErr(t, fmt.Sprintf("JointGradients with vars %v", bv), func() error { return jo.JointGradients(de, bv, ds, dp) })
		wantErr(t, fmt.Sprintf("JointGradients with vars %v and no dP", bv), func() error { return jo.JointGradients(de, bv, ds, nil) })
	}
	// Valid vars that do not match the operands.
	wantErr(t, "JointEnergies for vars {2,4} on {2,3} operands", func() error { return jo.JointEnergies(s, p, []int{2, 4}, e) })
	wantErr(t, "JointEnergies with S 4x4", func() error { return jo.JointEnergies(m(4, 4), p, vars, e) })
	wantErr(t, "JointEnergies with S 3x5 for E 4x6", func() error { return jo.JointEnergies(m(3, 5), p, vars, e) })
	wantErr(t, "JointEnergies with E 4x7", func() error { return jo.JointEnergies(s, p, vars, h.poisoned(4, 7)) })
	wantErr(t, "JointEnergies with E 5x6", func() error { return jo.JointEnergies(s, p, vars, h.poisoned(5, 6)) })
	wantErr(t, "JointEnergies with P 1x5", func() error { return jo.JointEnergies(s, m(1, 5), vars, e) })
	wantErr(t, "JointEnergies with P 2x6", func() error { return jo.JointEnergies(s, m(2, 6), vars, e) })
	wantErr(t, "JointEnergies with a foreign S", func() error { return jo.JointEnergies(foreignMat{4, 5}, p, vars, e) })
	wantErr(t, "JointEnergies with a nil E", func() error { return jo.JointEnergies(s, p, vars, nil) })
	wantErr(t, "JointGradients with dE 4x5", func() error { return jo.JointGradients(m(4, 5), vars, ds, dp) })
	wantErr(t, "JointGradients with dS 4x6", func() error { return jo.JointGradients(de, vars, h.poisoned(4, 6), dp) })
	wantErr(t, "JointGradients with dS 3x5 for dE 4x6", func() error { return jo.JointGradients(de, vars, h.poisoned(3, 5), dp) })
	wantErr(t, "JointGradients with dP 1x5", func() error { return jo.JointGradients(de, vars, ds, h.poisoned(1, 5)) })
	wantErr(t, "JointGradients with dP 6x1", func() error { return jo.JointGradients(de, vars, ds, h.poisoned(6, 1)) })
	wantErr(t, "JointGradients with a foreign dS", func() error { return jo.JointGradients(de, vars, foreignMat{4, 5}, dp) })
	// Aliasing: vars {3} has S and E both B x 3.
	sq := m(4, 3)
	sqData := h.get(sq)
	wantErr(t, "JointEnergies with E = S", func() error { return jo.JointEnergies(sq, nil, []int{3}, sq) })
	wantErr(t, "JointGradients with dS = dE", func() error { return jo.JointGradients(sq, []int{3}, sq, nil) })
	// And with B = 1, dE (1 x J) and dP (1 x sumP) are both 1x6.
	de1 := m(1, 6)
	wantErr(t, "JointGradients with dP = dE", func() error { return jo.JointGradients(de1, vars, h.poisoned(1, 5), de1) })

	mm := newMismatches(t, "refused JointOps calls must write nothing")
	mm.checkBits("E", h.get(e), nans(4*6), 6)
	mm.checkBits("dS", h.get(ds), nans(4*5), 5)
	mm.checkBits("dP", h.get(dp), nans(6), 6)
	mm.checkBits("S = E", h.get(sq), sqData, 3)
	mm.report()
}
