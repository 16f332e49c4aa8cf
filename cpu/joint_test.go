package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// jointCases are the awkward shapes every joint test runs: one variable, a
// variable with one value among others, primes, and five binary variables.
var jointCases = [][]int{{1}, {2, 3}, {3, 1, 4}, {7, 5}, {2, 2, 2, 2, 2}}

// jointNaive is the float64 reference of model.JointOps, sharing no code
// with cpu: it decodes every joint index with model.JointValues and walks
// the pairs with nested loops and a running table offset.
type jointNaive struct {
	vars []int
	offK []int
	sumK int
	sumP int
	j    int
}

func newJointNaive(vars []int) *jointNaive {
	n := &jointNaive{vars: vars, j: 1}
	for _, k := range vars {
		n.offK = append(n.offK, n.sumK)
		n.sumK += k
		n.j *= k
	}
	for a := range vars {
		for c := a + 1; c < len(vars); c++ {
			n.sumP += vars[a] * vars[c]
		}
	}
	return n
}

// pairCols calls f with the pairwise vector's column of every pair for the
// joint answer with digits d.
func (n *jointNaive) pairCols(d []int, f func(col int)) {
	off := 0
	for a := range n.vars {
		for c := a + 1; c < len(n.vars); c++ {
			f(off + d[a]*n.vars[c] + d[c])
			off += n.vars[a] * n.vars[c]
		}
	}
}

// energies returns E (B x J) and, per element, the sum of the absolute
// values of its terms (the scale of its rounding error).
func (n *jointNaive) energies(s, p []float32, B int) (e, scale []float64) {
	e, scale = make([]float64, B*n.j), make([]float64, B*n.j)
	d := make([]int, len(n.vars))
	for b := 0; b < B; b++ {
		for y := 0; y < n.j; y++ {
			model.JointValues(n.vars, y, d)
			var v, a float64
			for i, di := range d {
				x := float64(s[b*n.sumK+n.offK[i]+di])
				v, a = v+x, a+math.Abs(x)
			}
			if p != nil {
				n.pairCols(d, func(col int) { v, a = v+float64(p[col]), a+math.Abs(float64(p[col])) })
			}
			e[b*n.j+y], scale[b*n.j+y] = v, a
		}
	}
	return e, scale
}

// gradients returns dS, dP and their scales.
func (n *jointNaive) gradients(de []float32, B int) (ds, dsScale, dp, dpScale []float64) {
	ds, dsScale = make([]float64, B*n.sumK), make([]float64, B*n.sumK)
	dp, dpScale = make([]float64, n.sumP), make([]float64, n.sumP)
	d := make([]int, len(n.vars))
	for b := 0; b < B; b++ {
		for y := 0; y < n.j; y++ {
			model.JointValues(n.vars, y, d)
			g := float64(de[b*n.j+y])
			for i, di := range d {
				ds[b*n.sumK+n.offK[i]+di] += g
				dsScale[b*n.sumK+n.offK[i]+di] += math.Abs(g)
			}
			n.pairCols(d, func(col int) { dp[col] += g; dpScale[col] += math.Abs(g) })
		}
	}
	return ds, dsScale, dp, dpScale
}

func jtRand(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func jtNaNs(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return v
}

func jtMat(t *testing.T, b model.Backend, rows, cols int, data []float32) model.Mat {
	t.Helper()
	m, err := b.Alloc(rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(m, data); err != nil {
		t.Fatal(err)
	}
	return m
}

func jtDownload(t *testing.T, b model.Backend, m model.Mat) []float32 {
	t.Helper()
	v := make([]float32, m.Rows()*m.Cols())
	if err := b.Download(v, m); err != nil {
		t.Fatal(err)
	}
	return v
}

// jtCompare checks got against want within float32 rounding of the scale of
// each element's terms.
func jtCompare(t *testing.T, what string, got []float32, want, scale []float64) {
	t.Helper()
	bad := 0
	for i := range want {
		if tol := 1e-6 * (1 + scale[i]); !(math.Abs(float64(got[i])-want[i]) <= tol) {
			if bad++; bad <= 5 {
				t.Errorf("%s[%d] = %v, want %v (tol %.2g)", what, i, got[i], want[i], tol)
			}
		}
	}
}

func TestJointOpsMatchNaive(t *testing.T) {
	for _, threads := range []int{1, 2} {
		be := cpu.NewWithThreads(threads)
		for ci, vars := range jointCases {
			for _, B := range []int{1, 7, 33} {
				for _, pairwise := range []bool{false, true} {
					t.Run(fmt.Sprintf("threads%d/%v/B%d/pairwise=%v", threads, vars, B, pairwise), func(t *testing.T) {
						rng := rand.New(rand.NewPCG(uint64(ci), uint64(B)))
						n := newJointNaive(vars)
						hs := jtRand(rng, B*n.sumK)
						var hp []float32
						var p model.Mat
						if pairwise {
							hp = jtRand(rng, n.sumP)
							p = jtMat(t, be, 1, n.sumP, hp)
						}
						s := jtMat(t, be, B, n.sumK, hs)
						e := jtMat(t, be, B, n.j, jtNaNs(B*n.j))
						if err := be.JointEnergies(s, p, vars, e); err != nil {
							t.Fatal(err)
						}
						we, ws := n.energies(hs, hp, B)
						jtCompare(t, "E", jtDownload(t, be, e), we, ws)

						hde := jtRand(rng, B*n.j)
						de := jtMat(t, be, B, n.j, hde)
						ds := jtMat(t, be, B, n.sumK, jtNaNs(B*n.sumK))
						var dp model.Mat
						if pairwise {
							dp = jtMat(t, be, 1, n.sumP, jtNaNs(n.sumP))
						}
						if err := be.JointGradients(de, vars, ds, dp); err != nil {
							t.Fatal(err)
						}
						wds, wdss, wdp, wdps := n.gradients(hde, B)
						jtCompare(t, "dS", jtDownload(t, be, ds), wds, wdss)
						if pairwise {
							jtCompare(t, "dP", jtDownload(t, be, dp), wdp, wdps)
						}
					})
				}
			}
		}
	}
}

// TestJointOpsThreadIndependent: the results are bitwise the same with 1
// and 2 goroutines, on a batch large enough to be split.
func TestJointOpsThreadIndependent(t *testing.T) {
	vars := []int{5, 4, 3}
	n := newJointNaive(vars)
	B := 300
	rng := rand.New(rand.NewPCG(9, 9))
	hs, hp, hde := jtRand(rng, B*n.sumK), jtRand(rng, n.sumP), jtRand(rng, B*n.j)
	run := func(threads int) (e, ds, dp []float32) {
		be := cpu.NewWithThreads(threads)
		em, dsm, dpm := jtMat(t, be, B, n.j, jtNaNs(B*n.j)), jtMat(t, be, B, n.sumK, jtNaNs(B*n.sumK)), jtMat(t, be, 1, n.sumP, jtNaNs(n.sumP))
		if err := be.JointEnergies(jtMat(t, be, B, n.sumK, hs), jtMat(t, be, 1, n.sumP, hp), vars, em); err != nil {
			t.Fatal(err)
		}
		if err := be.JointGradients(jtMat(t, be, B, n.j, hde), vars, dsm, dpm); err != nil {
			t.Fatal(err)
		}
		return jtDownload(t, be, em), jtDownload(t, be, dsm), jtDownload(t, be, dpm)
	}
	e1, ds1, dp1 := run(1)
	e2, ds2, dp2 := run(2)
	for _, c := range []struct {
		name string
		a, b []float32
	}{{"E", e1, e2}, {"dS", ds1, ds2}, {"dP", dp1, dp2}} {
		for i := range c.a {
			if math.Float32bits(c.a[i]) != math.Float32bits(c.b[i]) {
				t.Fatalf("%s[%d]: %v with 1 thread, %v with 2", c.name, i, c.a[i], c.b[i])
			}
		}
	}
}

func TestJointOpsErrors(t *testing.T) {
	be := cpu.New()
	s := jtMat(t, be, 2, 5, make([]float32, 10))
	e := jtMat(t, be, 2, 6, make([]float32, 12))
	p := jtMat(t, be, 1, 6, make([]float32, 6))
	ds := jtMat(t, be, 2, 5, make([]float32, 10))
	s2 := jtMat(t, be, 2, 2, make([]float32, 4))
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"no vars", be.JointEnergies(s, nil, nil, e), "no output variables"},
		{"zero values", be.JointEnergies(s, nil, []int{2, 0}, e), "variable 1 has 0 values"},
		{"s width", be.JointEnergies(s, nil, []int{3, 3}, e), "want Bx6 and Bx9"},
		{"p width", be.JointEnergies(s, jtMat(t, be, 1, 5, make([]float32, 5)), []int{2, 3}, e), "p is 1x5, want 1x6"},
		{"e rows", be.JointEnergies(s, p, []int{2, 3}, jtMat(t, be, 3, 6, make([]float32, 18))), "want Bx5 and Bx6"},
		{"aliased", be.JointEnergies(s, p, []int{2, 3}, p), "want Bx5 and Bx6"},
		{"de is ds", be.JointGradients(s2, []int{2}, s2, nil), "must be distinct"},
		{"de width", be.JointGradients(s, []int{2, 3}, ds, nil), "de is 2x5"},
		{"dp width", be.JointGradients(e, []int{2, 3}, ds, jtMat(t, be, 1, 7, make([]float32, 7))), "dp is 1x7, want 1x6"},
		{"dp aliases", be.JointGradients(e, []int{2, 3}, ds, e), "dp is 2x6"},
		{"foreign", be.JointGradients(e, []int{2, 3}, jtMat(t, cpu.New(), 2, 5, make([]float32, 10)), nil), "another cpu backend"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, c.err, c.want)
		}
	}
}
