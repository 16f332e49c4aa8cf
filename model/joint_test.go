package model_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
)

// jointHost is a float64 copy of a JointModel's parameters and a float64
// evaluation of its energies that shares no code with the model: it
// enumerates the product space with nested counters and reads the tables
// directly, so it checks the indicator matrices too.
type jointHost struct {
	vars   []int
	hidden []int
	act    model.Activation
	w, b   [][]float64 // per layer, out x in and out
	outs   []int       // per layer: outputs
	pair   []float64   // nil without pairwise tables
}

func downloadJoint(t *testing.T, be model.Backend, m *model.JointModel) *jointHost {
	t.Helper()
	sp := m.Spec()
	h := &jointHost{vars: sp.Vars, hidden: sp.Trunk.Hidden, act: sp.Trunk.Activation}
	for _, p := range m.Params() {
		r, c := p.Shape()
		v := make([]float32, r*c)
		must(t, be.Download(v, p.Value))
		f := make([]float64, len(v))
		for i, x := range v {
			f[i] = float64(x)
		}
		switch {
		case p.Name == "pairwise/P":
			h.pair = f
		case len(h.w) == len(h.b):
			h.w = append(h.w, f)
			h.outs = append(h.outs, r)
		default:
			h.b = append(h.b, f)
		}
	}
	return h
}

// unary returns the sum K heads' energies of one input row.
func (h *jointHost) unary(x []float64) []float64 {
	in := x
	for l := range h.w {
		out := make([]float64, h.outs[l])
		for o := range out {
			s := h.b[l][o]
			for i, v := range in {
				s += h.w[l][o*len(in)+i] * v
			}
			out[o] = s
		}
		if l < len(h.hidden) {
			for o, s := range out {
				if h.act == model.ReLU {
					out[o] = math.Max(0, s)
				} else {
					out[o] = math.Tanh(s)
				}
			}
		} else {
			for o := range out {
				out[o] = -out[o]
			}
		}
		in = out
	}
	return in
}

// energies enumerates every joint answer of one input row, in row-major
// order, and returns their energies.
func (h *jointHost) energies(x []float64) []float64 {
	u := h.unary(x)
	n := len(h.vars)
	offK := make([]int, n)
	for i := 1; i < n; i++ {
		offK[i] = offK[i-1] + h.vars[i-1]
	}
	var out []float64
	d := make([]int, n) // the current tuple, last variable fastest
	for {
		var e float64
		for i, v := range d {
			e += u[offK[i]+v]
		}
		if h.pair != nil {
			off := 0
			for i := 0; i < n; i++ {
				for j := i + 1; j < n; j++ {
					e += h.pair[off+d[i]*h.vars[j]+d[j]]
					off += h.vars[i] * h.vars[j]
				}
			}
		}
		out = append(out, e)
		i := n - 1
		for ; i >= 0; i-- {
			d[i]++
			if d[i] < h.vars[i] {
				break
			}
			d[i] = 0
		}
		if i < 0 {
			return out
		}
	}
}

func logSumExp(beta float64, e []float64) float64 {
	mx := math.Inf(-1)
	for _, v := range e {
		mx = math.Max(mx, -beta*v)
	}
	var s float64
	for _, v := range e {
		s += math.Exp(-beta*v - mx)
	}
	return mx + math.Log(s)
}

// jointLoss64 is the summed loss of rows of energies e with labels y,
// in float64 (NLL and hinge).
func jointLoss64(loss model.Loss, e [][]float64, y []int32) float64 {
	var sum float64
	for r, row := range e {
		ec := row[y[r]]
		ei := math.Inf(1)
		for j, v := range row {
			if j != int(y[r]) {
				ei = math.Min(ei, v)
			}
		}
		switch loss.Kind {
		case model.NLL:
			sum += ec + logSumExp(loss.Beta, row)/loss.Beta
		case model.Hinge:
			sum += math.Max(0, loss.Margin+ec-ei)
		default:
			panic("jointLoss64: loss not implemented")
		}
	}
	return sum
}

func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

// newTestJoint builds a joint model with random nonzero biases and
// pairwise tables, so every parameter matters.
func newTestJoint(t *testing.T, be model.Backend, spec model.JointSpec, inputs int, seed uint64) *model.JointModel {
	t.Helper()
	m, err := model.NewJointModel(be, spec, inputs, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	for _, p := range m.Params() {
		if r, c := p.Shape(); r == 1 {
			must(t, be.Upload(p.Value, randSlice(rng, c, 0.5)))
		}
	}
	return m
}

func TestJointIndexRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 50; trial++ {
		vars := make([]int, 1+rng.IntN(5))
		for i := range vars {
			vars[i] = 1 + rng.IntN(7)
		}
		j, err := model.JointStates(vars)
		if err != nil {
			t.Fatal(err)
		}
		seen := make([]bool, j)
		d := make([]int, len(vars))
		vals := make([]int32, len(vars))
		for y := 0; y < j; y++ {
			model.JointValues(vars, y, d)
			for i, v := range d {
				if v < 0 || v >= vars[i] {
					t.Fatalf("%v: index %d decodes to %v", vars, y, d)
				}
				vals[i] = int32(v)
			}
			back, err := model.JointIndex(vars, vals)
			if err != nil || int(back) != y || seen[y] {
				t.Fatalf("%v: index %d -> %v -> %d (%v)", vars, y, d, back, err)
			}
			seen[y] = true
		}
	}
	if _, err := model.JointIndex([]int{3, 3}, []int32{1, 3}); err == nil {
		t.Error("value 3 of a 3-valued variable accepted")
	}
	if _, err := model.JointIndex([]int{3, 3}, []int32{1}); err == nil {
		t.Error("1 value for 2 variables accepted")
	}
	for _, bad := range [][]int{nil, {3, 0}, {1 << 11, 1 << 11}} {
		if _, err := model.JointStates(bad); err == nil {
			t.Errorf("JointStates(%v) accepted", bad)
		}
	}
	if v, err := model.ParseVars("3x4,2"); err != nil || fmt.Sprint(v) != "[3 4 2]" {
		t.Errorf("ParseVars: %v %v", v, err)
	}
	if _, err := model.ParseVars("3,0"); err == nil {
		t.Error("ParseVars accepted a variable of 0 values")
	}
}

var jointCases = []struct {
	vars     []int
	trunk    string
	pairwise bool
}{
	{[]int{3, 3}, "linear", true},
	{[]int{2, 3, 4}, "linear", true},
	{[]int{2, 3, 4}, "mlp:5:tanh", true},
	{[]int{4, 1, 3}, "mlp:6,3:tanh", true},
	{[]int{7}, "linear", true}, // one variable: no pairs, a plain model
	{[]int{3, 2, 2}, "mlp:4:tanh", false},
}

// TestJointForwardMatchesEnumeration checks the energies of every joint
// answer against the float64 enumeration, the exact partition function
// (log Z of EnergyLoss) against a float64 sum over the product space, and
// that Forward writes every energy (the buffer is poisoned in between).
func TestJointForwardMatchesEnumeration(t *testing.T) {
	for ci, tc := range jointCases {
		t.Run(fmt.Sprintf("%v/%s/pairwise=%v", tc.vars, tc.trunk, tc.pairwise), func(t *testing.T) {
			be := cpu.New()
			defer be.Close()
			spec, err := model.ParseSpec(tc.trunk)
			must(t, err)
			const d = 5
			m := newTestJoint(t, be, model.JointSpec{Vars: tc.vars, Trunk: spec, Pairwise: tc.pairwise}, d, uint64(ci))
			defer m.Free()
			host := downloadJoint(t, be, m)
			J := m.Classes()
			rng := rand.New(rand.NewPCG(uint64(ci), 9))
			for _, rows := range []int{1, 7, 33} {
				xs := randSlice(rng, rows*d, 1)
				x := mustMat(t, be, rows, d, xs)
				e, err := m.Forward(x)
				must(t, err)
				must(t, be.Upload(e, nanSlice(rows*J)))
				e, err = m.Forward(x)
				must(t, err)
				got := make([]float32, rows*J)
				must(t, be.Download(got, e))
				const beta = 0.7
				lab, _ := be.AllocInts(rows)
				ys := make([]int32, rows)
				for i := range ys {
					ys[i] = int32(rng.IntN(J))
				}
				must(t, be.UploadInts(lab, ys))
				stats, _ := be.Alloc(rows, model.NumStats)
				am, _ := be.AllocInts(rows)
				must(t, be.EnergyLoss(e, lab, model.Loss{Kind: model.NLL, Beta: beta, Margin: 1, Gamma: 1, Delta: 1}, 1, stats, am))
				st := make([]float32, rows*model.NumStats)
				must(t, be.Download(st, stats))
				for r := 0; r < rows; r++ {
					xr := make([]float64, d)
					for i := range xr {
						xr[i] = float64(xs[r*d+i])
					}
					want := host.energies(xr)
					if len(want) != J {
						t.Fatalf("enumeration has %d answers, model %d", len(want), J)
					}
					for y, w := range want {
						g := float64(got[r*J+y])
						if !(math.Abs(g-w) <= 1e-5*(1+math.Abs(w))) {
							t.Fatalf("row %d answer %d: energy %v, enumeration %v", r, y, g, w)
						}
					}
					lz := logSumExp(beta, want)
					if g := float64(st[r*model.NumStats+model.StatLogZ]); !(math.Abs(g-lz) <= 1e-5*(1+math.Abs(lz))) {
						t.Errorf("row %d: log Z %v, exact enumeration %v", r, g, lz)
					}
				}
				freeTest(t, be, x, lab, stats, am)
			}
		})
	}
}

// TestJointGradientsFiniteDifferences checks every parameter's gradient
// (trunk, unary heads, pairwise tables) after the loss's EnergyLoss and
// Backward against float64 central differences of the float64 enumeration.
func TestJointGradientsFiniteDifferences(t *testing.T) {
	losses := []model.Loss{
		{Kind: model.NLL, Beta: 1.3, Margin: 1, Gamma: 1, Delta: 1},
		// A large margin keeps every hinge active, away from its kink.
		{Kind: model.Hinge, Beta: 1, Margin: 6, Gamma: 1, Delta: 1},
	}
	for ci, tc := range jointCases {
		for _, loss := range losses {
			t.Run(fmt.Sprintf("%v/%s/pairwise=%v/%v", tc.vars, tc.trunk, tc.pairwise, loss.Kind), func(t *testing.T) {
				be := cpu.New()
				defer be.Close()
				spec, err := model.ParseSpec(tc.trunk)
				must(t, err)
				const d, rows = 4, 7
				m := newTestJoint(t, be, model.JointSpec{Vars: tc.vars, Trunk: spec, Pairwise: tc.pairwise}, d, uint64(100+ci))
				defer m.Free()
				J := m.Classes()
				rng := rand.New(rand.NewPCG(uint64(ci), 77))
				xs := randSlice(rng, rows*d, 1)
				ys := make([]int32, rows)
				for i := range ys {
					ys[i] = int32(rng.IntN(J))
				}
				x := mustMat(t, be, rows, d, xs)
				lab, _ := be.AllocInts(rows)
				must(t, be.UploadInts(lab, ys))
				stats, _ := be.Alloc(rows, model.NumStats)
				am, _ := be.AllocInts(rows)
				for _, p := range m.Params() {
					r, c := p.Shape()
					must(t, be.Upload(p.Grad, nanSlice(r*c)))
				}
				e, err := m.Forward(x)
				must(t, err)
				must(t, be.EnergyLoss(e, lab, loss, 1, stats, am))
				must(t, m.Backward(e))

				host := downloadJoint(t, be, m)
				lossAt := func() float64 {
					es := make([][]float64, rows)
					for r := range es {
						xr := make([]float64, d)
						for i := range xr {
							xr[i] = float64(xs[r*d+i])
						}
						es[r] = host.energies(xr)
					}
					return jointLoss64(loss, es, ys)
				}
				// Every host parameter slice, in Params order.
				var hostParams [][]float64
				for l := range host.w {
					hostParams = append(hostParams, host.w[l], host.b[l])
				}
				if host.pair != nil {
					hostParams = append(hostParams, host.pair)
				}
				params := m.Params()
				if len(params) != len(hostParams) {
					t.Fatalf("%d params, host copy has %d", len(params), len(hostParams))
				}
				const h = 1e-5
				for pi, p := range params {
					r, c := p.Shape()
					grad := make([]float32, r*c)
					must(t, be.Download(grad, p.Grad))
					hv := hostParams[pi]
					for i := range hv {
						orig := hv[i]
						hv[i] = orig + h
						plus := lossAt()
						hv[i] = orig - h
						minus := lossAt()
						hv[i] = orig
						fd := (plus - minus) / (2 * h)
						if g := float64(grad[i]); !(math.Abs(g-fd) <= 1e-4+1e-3*math.Abs(fd)) {
							t.Errorf("%s[%d]: backward %.7g, finite difference %.7g", p.Name, i, g, fd)
						}
					}
				}
			})
		}
	}
}

// TestJointTenThousandfold runs a 5 variables x 10 values model (10^5 joint
// answers) through Forward, EnergyLoss and Backward at a small batch: every
// value finite, log Z equal to a float64 sum over all 10^5 answers, and the
// argmin the enumeration's.
func TestJointTenThousandfold(t *testing.T) {
	if testing.Short() {
		t.Skip("enumerates 10^5 joint answers per row in float64 (seconds); skipped with -short")
	}
	be := cpu.New()
	defer be.Close()
	const d, rows = 6, 3
	vars := []int{10, 10, 10, 10, 10}
	m := newTestJoint(t, be, model.JointSpec{Vars: vars, Pairwise: true}, d, 5)
	defer m.Free()
	J := m.Classes()
	if J != 100000 {
		t.Fatalf("Classes() = %d, want 100000", J)
	}
	host := downloadJoint(t, be, m)
	rng := rand.New(rand.NewPCG(5, 6))
	xs := randSlice(rng, rows*d, 1)
	ys := []int32{0, 54321, 99999}
	x := mustMat(t, be, rows, d, xs)
	lab, _ := be.AllocInts(rows)
	must(t, be.UploadInts(lab, ys))
	stats, _ := be.Alloc(rows, model.NumStats)
	am, _ := be.AllocInts(rows)
	e, err := m.Forward(x)
	must(t, err)
	eh := make([]float32, rows*J)
	must(t, be.Download(eh, e))
	for _, p := range m.Params() {
		r, c := p.Shape()
		must(t, be.Upload(p.Grad, nanSlice(r*c)))
	}
	loss := model.DefaultLoss(model.NLL)
	must(t, be.EnergyLoss(e, lab, loss, 1, stats, am))
	must(t, m.Backward(e))
	st := make([]float32, rows*model.NumStats)
	must(t, be.Download(st, stats))
	amh := make([]int32, rows)
	must(t, be.DownloadInts(amh, am))
	for r := 0; r < rows; r++ {
		xr := make([]float64, d)
		for i := range xr {
			xr[i] = float64(xs[r*d+i])
		}
		want := host.energies(xr)
		best := 0
		for y, w := range want {
			if w < want[best] {
				best = y
			}
			if g := float64(eh[r*J+y]); !(math.Abs(g-w) <= 1e-5*(1+math.Abs(w))) {
				t.Fatalf("row %d answer %d: energy %v, enumeration %v", r, y, g, w)
			}
		}
		lz := logSumExp(1, want)
		if g := float64(st[r*model.NumStats+model.StatLogZ]); !(math.Abs(g-lz) <= 1e-5*(1+math.Abs(lz))) {
			t.Errorf("row %d: log Z %v, float64 sum over 10^5 answers %v", r, g, lz)
		}
		if g := float64(st[r*model.NumStats+model.StatLoss]); math.IsNaN(g) || math.IsInf(g, 0) {
			t.Errorf("row %d: loss %v", r, g)
		}
		if int(amh[r]) != best && want[amh[r]] != want[best] {
			t.Errorf("row %d: argmin %d (E %v), enumeration %d (E %v)", r, amh[r], want[amh[r]], best, want[best])
		}
	}
	for _, p := range m.Params() {
		r, c := p.Shape()
		g := make([]float32, r*c)
		must(t, be.Download(g, p.Grad))
		var norm float64
		for i, v := range g {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s[%d] gradient %v", p.Name, i, v)
			}
			norm += float64(v) * float64(v)
		}
		if norm == 0 {
			t.Errorf("%s: zero gradient", p.Name)
		}
	}
}

// TestPredictJointMatchesEnumeration checks the argmin, its probability and
// every marginal against float64 sums over the product space, and that each
// variable's marginal sums to 1. 7 rows in batches of 3 exercise a short
// last batch.
func TestPredictJointMatchesEnumeration(t *testing.T) {
	for ci, tc := range jointCases {
		t.Run(fmt.Sprintf("%v/%s/pairwise=%v", tc.vars, tc.trunk, tc.pairwise), func(t *testing.T) {
			be := cpu.New()
			defer be.Close()
			spec, err := model.ParseSpec(tc.trunk)
			must(t, err)
			const d, n = 3, 7
			m := newTestJoint(t, be, model.JointSpec{Vars: tc.vars, Trunk: spec, Pairwise: tc.pairwise}, d, uint64(200+ci))
			defer m.Free()
			host := downloadJoint(t, be, m)
			rng := rand.New(rand.NewPCG(uint64(ci), 31))
			xs := randSlice(rng, n*d, 1.5)
			const beta = 1.7
			p, err := model.PredictJoint(be, m, xs, n, beta, 3)
			must(t, err)
			digits := make([]int, len(tc.vars))
			for r := 0; r < n; r++ {
				xr := make([]float64, d)
				for i := range xr {
					xr[i] = float64(xs[r*d+i])
				}
				es := host.energies(xr)
				lz := logSumExp(beta, es)
				best := 0
				marg := make([][]float64, len(tc.vars))
				for i, k := range tc.vars {
					marg[i] = make([]float64, k)
				}
				for y, e := range es {
					if e < es[best] {
						best = y
					}
					model.JointValues(tc.vars, y, digits)
					for i, v := range digits {
						marg[i][v] += math.Exp(-beta*e - lz)
					}
				}
				if int(p.Answer[r]) != best && es[p.Answer[r]] != es[best] {
					t.Errorf("row %d: answer %d, enumeration %d", r, p.Answer[r], best)
				}
				if want := math.Exp(-beta*es[best] - lz); math.Abs(p.Prob[r]-want) > 1e-5 {
					t.Errorf("row %d: P(answer) %v, enumeration %v", r, p.Prob[r], want)
				}
				if math.Abs(p.LogZ[r]-lz) > 1e-5*(1+math.Abs(lz)) {
					t.Errorf("row %d: log Z %v, enumeration %v", r, p.LogZ[r], lz)
				}
				for i := range tc.vars {
					got := p.Marginal(r, i)
					var sum float64
					for v, g := range got {
						sum += g
						if math.Abs(g-marg[i][v]) > 1e-5 {
							t.Errorf("row %d: P(y_%d = %d) = %v, enumeration %v", r, i, v, g, marg[i][v])
						}
					}
					if math.Abs(sum-1) > 1e-5 {
						t.Errorf("row %d: marginal of variable %d sums to %v", r, i, sum)
					}
				}
				vals := p.Values(r)
				model.JointValues(tc.vars, int(p.Answer[r]), digits)
				if fmt.Sprint(vals) != fmt.Sprint(digits) {
					t.Errorf("row %d: Values %v, want %v", r, vals, digits)
				}
			}
		})
	}
}

// TestJointCPUMatchesEmulatedDevice builds the same joint model on cpu and
// on device with the emulator (same seed, so the same parameters) and
// compares energies, loss statistics and gradients within float32
// tolerance.
func TestJointCPUMatchesEmulatedDevice(t *testing.T) {
	drv, err := emu.New(emu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := device.New(drv)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	ref := cpu.New()
	defer ref.Close()
	for ci, tc := range []struct {
		vars  []int
		trunk string
	}{{[]int{3, 3}, "linear"}, {[]int{2, 5, 3}, "mlp:7:tanh"}} {
		t.Run(fmt.Sprintf("%v/%s", tc.vars, tc.trunk), func(t *testing.T) {
			spec, err := model.ParseSpec(tc.trunk)
			must(t, err)
			js := model.JointSpec{Vars: tc.vars, Trunk: spec, Pairwise: true}
			const d, rows = 5, 7
			ms := []*model.JointModel{newTestJoint(t, ref, js, d, uint64(300+ci)), newTestJoint(t, dev, js, d, uint64(300+ci))}
			defer ms[0].Free()
			defer ms[1].Free()
			J := ms[0].Classes()
			rng := rand.New(rand.NewPCG(uint64(ci), 8))
			xs := randSlice(rng, rows*d, 1)
			ys := make([]int32, rows)
			for i := range ys {
				ys[i] = int32(rng.IntN(J))
			}
			ys[2] = model.IgnoreLabel
			type result struct {
				e, stats []float32
				grads    [][]float32
			}
			var res [2]result
			for k, be := range []model.Backend{ref, dev} {
				m := ms[k]
				x := mustMat(t, be, rows, d, xs)
				lab, _ := be.AllocInts(rows)
				must(t, be.UploadInts(lab, ys))
				stats, _ := be.Alloc(rows, model.NumStats)
				am, _ := be.AllocInts(rows)
				for _, p := range m.Params() {
					r, c := p.Shape()
					must(t, be.Upload(p.Grad, nanSlice(r*c)))
				}
				e, err := m.Forward(x)
				must(t, err)
				res[k].e = make([]float32, rows*J)
				must(t, be.Download(res[k].e, e))
				must(t, be.EnergyLoss(e, lab, model.DefaultLoss(model.NLL), 1.0/rows, stats, am))
				must(t, m.Backward(e))
				res[k].stats = make([]float32, rows*model.NumStats)
				must(t, be.Download(res[k].stats, stats))
				for _, p := range m.Params() {
					r, c := p.Shape()
					g := make([]float32, r*c)
					must(t, be.Download(g, p.Grad))
					res[k].grads = append(res[k].grads, g)
				}
				freeTest(t, be, x, lab, stats, am)
			}
			near := func(what string, a, b []float32) {
				t.Helper()
				for i := range a {
					if !(math.Abs(float64(a[i])-float64(b[i])) <= 1e-5*(1+math.Abs(float64(a[i])))) {
						t.Fatalf("%s[%d]: cpu %v, device/emu %v", what, i, a[i], b[i])
					}
				}
			}
			near("energies", res[0].e, res[1].e)
			near("stats", res[0].stats, res[1].stats)
			for i, p := range ms[0].Params() {
				near(p.Name+" gradient", res[0].grads[i], res[1].grads[i])
			}
		})
	}
}

// TestTrainerJointEveryLoss trains a small joint model with each of the ten
// losses through the ordinary Trainer (Config.Vars), checking that every
// epoch's loss and evaluation are finite and that NLL learns.
func TestTrainerJointEveryLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	vars := []int{3, 2, 2}
	const n, d = 300, 4
	mk := func(n int) *model.Data {
		data := &model.Data{N: n, D: d, Classes: 12, X: randSlice(rng, n*d, 1), Y: make([]int32, n)}
		for i := range data.Y {
			x := data.X[i*d : (i+1)*d]
			a := 0
			if x[0] > 0.4 {
				a = 2
			} else if x[0] > -0.4 {
				a = 1
			}
			b, c := 0, 0
			if x[1]+x[2] > 0 {
				b, c = 1, 1 // b and c agree: a pairwise structure
			}
			data.Y[i] = int32((a*2+b)*2 + c)
		}
		return data
	}
	train, test := mk(n), mk(97)
	for _, kind := range model.LossKinds() {
		t.Run(kind.String(), func(t *testing.T) {
			be := cpu.New()
			defer be.Close()
			cfg := model.DefaultConfig()
			cfg.Loss = model.DefaultLoss(kind)
			cfg.Vars = vars
			cfg.Model = "mlp:8:tanh"
			cfg.Epochs = 3
			cfg.Batch = 31
			cfg.Optimizer.LR = 0.02
			tr, err := model.NewTrainer(be, cfg, train, test)
			must(t, err)
			defer tr.Close()
			if _, ok := tr.Model.(*model.JointModel); !ok {
				t.Fatalf("Config.Vars %v gave a %T, want a *JointModel", vars, tr.Model)
			}
			res, err := tr.Run(context.Background())
			must(t, err)
			for _, r := range res {
				if math.IsNaN(r.TrainLoss) || math.IsInf(r.TrainLoss, 0) || math.IsNaN(r.Eval.Accuracy) {
					t.Fatalf("epoch %d: train loss %v, accuracy %v", r.Epoch, r.TrainLoss, r.Eval.Accuracy)
				}
			}
			if kind == model.NLL && res[len(res)-1].Eval.Accuracy < 0.6 {
				t.Errorf("NLL joint accuracy %v after 3 epochs, want >= 0.6", res[len(res)-1].Eval.Accuracy)
			}
		})
	}
	cfg := model.DefaultConfig()
	cfg.Vars = []int{3, 3}
	be := cpu.New()
	defer be.Close()
	if _, err := model.NewTrainer(be, cfg, train, test); err == nil {
		t.Error("Config.Vars with 9 joint answers accepted data of 12 classes")
	}
}

func freeTest(t *testing.T, be model.Backend, xs ...any) {
	t.Helper()
	for _, x := range xs {
		must(t, be.Free(x))
	}
}
