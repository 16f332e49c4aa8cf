package cpu

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// refResult is the float64 reference of one row of EnergyLoss.
type refResult struct {
	loss, logZ, eC, eI float64
	argmin             int
	grad               []float64
}

// refLoss computes a row straight from the formulas in model/loss.go, with a
// two-pass (max-shifted) log-sum-exp, so it shares no code with the backend.
func refLoss(e []float64, label int, l model.Loss) refResult {
	K := len(e)
	beta := l.Beta
	res := refResult{grad: make([]float64, K)}
	for j := range e {
		if e[j] < e[res.argmin] {
			res.argmin = j
		}
	}
	// Shifted by the smallest energy: p[j] = P_j exactly normalised, and
	// log Z = -beta E_min + log s keeps the log s that adding it to
	// -beta E_min may round away.
	eMin := e[res.argmin]
	p := make([]float64, K)
	var s float64
	for j, x := range e {
		p[j] = math.Exp(-beta * (x - eMin))
		s += p[j]
	}
	for j := range p {
		p[j] /= s
	}
	res.logZ = -beta*eMin + math.Log(s)
	if label < 0 {
		return res
	}
	off := -1
	for j := range e {
		if j != label && (off < 0 || e[j] < e[off]) {
			off = j
		}
	}
	eC, eI := e[label], math.Inf(1)
	if off >= 0 {
		eI = e[off]
	}
	res.eC, res.eI = eC, eI
	d := eC - eI
	g := res.grad
	addI := func(v float64) {
		if off >= 0 {
			g[off] += v
		}
	}
	switch l.Kind {
	case model.Energy:
		res.loss, g[label] = eC, 1
	case model.Perceptron:
		res.loss = eC - e[res.argmin]
		if res.argmin != label {
			g[label], g[res.argmin] = 1, -1
		}
	case model.Hinge:
		res.loss = math.Max(0, l.Margin+d)
		if l.Margin+d > 0 {
			g[label] = 1
			addI(-1)
		}
	case model.Log:
		if d > 30 {
			res.loss = d + math.Exp(-d)
		} else {
			res.loss = math.Log1p(math.Exp(d))
		}
		sg := 1 / (1 + math.Exp(-d))
		g[label] = sg
		addI(-sg)
	case model.LVQ2:
		if off < 0 {
			break
		}
		D := 1.0
		if eI > 1 {
			D = eI
		}
		r := d / (l.Delta * D)
		res.loss = math.Min(1, math.Max(0, r))
		if r > 0 && r < 1 {
			g[label] = 1 / (l.Delta * D)
			if eI > 1 {
				addI(-eC / (l.Delta * eI * eI))
			} else {
				addI(-1 / l.Delta)
			}
		}
	case model.MCE:
		sg := 1 / (1 + math.Exp(-d))
		res.loss = sg
		g[label] = sg * (1 - sg)
		addI(-sg * (1 - sg))
	case model.SquareSquare:
		h := math.Max(0, l.Margin-eI)
		res.loss = eC*eC + h*h
		g[label] = 2 * eC
		addI(-2 * h)
	case model.SquareExp:
		res.loss = eC*eC + l.Gamma*math.Exp(-eI)
		g[label] = 2 * eC
		addI(-l.Gamma * math.Exp(-eI))
	case model.NLL, model.MEE:
		if l.Kind == model.NLL {
			res.loss = (eC - eMin) + math.Log(s)/beta // = E_C + log Z / beta
		} else {
			res.loss = 1 - p[label]
		}
		for j := range g {
			ind := 0.0
			if j == label {
				ind = 1
			}
			g[j] = ind - p[j]
			if l.Kind == model.MEE {
				g[j] *= beta * p[label]
			}
		}
	}
	return res
}

type elCase struct {
	B, K   int
	e      []float32
	labels []int32
}

// runEnergyLoss runs the backend with NaN-poisoned outputs and returns the
// gradient, stats and argmin.
func runEnergyLoss(t *testing.T, b *Backend, c elCase, l model.Loss, scale float32) (grad, stats []float32, am []int32) {
	t.Helper()
	E := upload(t, b, c.B, c.K, c.e)
	S := upload(t, b, c.B, model.NumStats, nanSlice(c.B*model.NumStats))
	am0 := make([]int32, c.B)
	for i := range am0 {
		am0[i] = -7
	}
	A := uploadInts(t, b, am0)
	if err := b.EnergyLoss(E, uploadInts(t, b, c.labels), l, scale, S, A); err != nil {
		t.Fatalf("B=%d K=%d %v: %v", c.B, c.K, l, err)
	}
	return download(t, b, E), download(t, b, S), downloadInts(t, b, A)
}

func checkEnergyLoss(t *testing.T, b *Backend, name string, c elCase, l model.Loss, scale float32) {
	t.Helper()
	grad, stats, am := runEnergyLoss(t, b, c, l, scale)
	rel := func(w float64) float64 { return 2e-6 * (1 + math.Abs(w)) }
	for i := 0; i < c.B; i++ {
		row := make([]float64, c.K)
		for j := range row {
			row[j] = float64(c.e[i*c.K+j])
		}
		want := refLoss(row, int(c.labels[i]), l)
		st := stats[i*model.NumStats : (i+1)*model.NumStats]
		for _, chk := range []struct {
			what string
			got  float32
			want float64
		}{
			{"loss", st[model.StatLoss], want.loss},
			{"logZ", st[model.StatLogZ], want.logZ},
			{"E_C", st[model.StatCorrect], want.eC},
			{"E_I", st[model.StatOffending], want.eI},
		} {
			if !closeTo(chk.got, chk.want, rel(chk.want)) {
				t.Fatalf("%s %v B=%d K=%d row %d (label %d): %s = %v, want %v", name, l, c.B, c.K, i, c.labels[i], chk.what, chk.got, chk.want)
			}
		}
		if int(am[i]) != want.argmin {
			t.Fatalf("%s %v row %d: argmin %d, want %d", name, l, i, am[i], want.argmin)
		}
		for j := range row {
			w := float64(scale) * want.grad[j]
			if got := grad[i*c.K+j]; !closeTo(got, w, rel(w)) {
				t.Fatalf("%s %v B=%d K=%d row %d (label %d) answer %d: grad = %v, want %v", name, l, c.B, c.K, i, c.labels[i], j, got, w)
			}
		}
	}
}

func randomCase(seed uint64, B, K int, lo, hi float64, ignoreFrac float64) elCase {
	r := newRand(seed)
	c := elCase{B: B, K: K, e: randSlice(r, B*K, lo, hi), labels: make([]int32, B)}
	for i := range c.labels {
		if r.Float64() < ignoreFrac {
			c.labels[i] = model.IgnoreLabel
		} else {
			c.labels[i] = int32(r.IntN(K))
		}
	}
	return c
}

func lossesWith(beta float64) []model.Loss {
	var ls []model.Loss
	for _, k := range model.LossKinds() {
		l := model.DefaultLoss(k)
		l.Beta, l.Margin, l.Gamma, l.Delta = beta, 0.5, 1.5, 0.7
		ls = append(ls, l)
	}
	return ls
}

func TestEnergyLossRandom(t *testing.T) {
	b := New()
	defer b.Close()
	sizes := [][2]int{{1, 1}, {7, 1}, {1, 2}, {33, 7}, {31, 10}, {257, 33}, {100, 1000}}
	seed := uint64(100)
	for _, sz := range sizes {
		for _, beta := range []float64{1, 0.3, 4} {
			for _, l := range lossesWith(beta) {
				seed++
				// Energies in [-2.5, 2.5] reach both sides of LVQ2's and
				// SquareSquare's kinks at E_I = 1 and E_I = m.
				c := randomCase(seed, sz[0], sz[1], -2.5, 2.5, 0.1)
				checkEnergyLoss(t, b, "random", c, l, 1)
				checkEnergyLoss(t, b, "scaled", c, l, -0.25)
			}
		}
	}
}

// TestEnergyLossTies checks that E_I and the argmin go to the lowest index
// among equal energies, and the gradient lands there.
func TestEnergyLossTies(t *testing.T) {
	b := New()
	defer b.Close()
	c := elCase{B: 5, K: 5,
		e: []float32{
			2, 1, 1, 3, 1, // label 0: E_I at 1, argmin 1
			2, 1, 1, 3, 1, // label 1: E_I at 2, argmin 1
			0, 0, 0, 0, 0, // label 3: E_I at 0, argmin 0
			0, 0, 0, 0, 0, // label 0: E_I at 1
			5, 4, 3, 3, 9, // label 2: E_I at 3, argmin 2
		},
		labels: []int32{0, 1, 3, 0, 2}}
	wantOff := []int{1, 2, 0, 1, 3}
	wantAm := []int32{1, 1, 0, 0, 2}
	for _, l := range lossesWith(1) {
		checkEnergyLoss(t, b, "ties", c, l, 1)
		if l.Kind != model.Hinge {
			continue
		}
		// The hinge (m = 0.5) is active on every row: -1 at the offending answer.
		grad, _, am := runEnergyLoss(t, b, c, l, 1)
		if !slices.Equal(am, wantAm) {
			t.Fatalf("ties: argmin %v, want %v", am, wantAm)
		}
		for i, o := range wantOff {
			if grad[i*c.K+o] != -1 {
				t.Fatalf("ties: row %d: grad %v, want -1 at answer %d", i, grad[i*c.K:(i+1)*c.K], o)
			}
		}
	}
}

func TestEnergyLossKOne(t *testing.T) {
	b := New()
	defer b.Close()
	c := randomCase(7, 9, 1, -3, 3, 0.2)
	for _, l := range lossesWith(2) {
		checkEnergyLoss(t, b, "K=1", c, l, 1)
		_, stats, _ := runEnergyLoss(t, b, c, l, 1)
		for i, y := range c.labels {
			eI := stats[i*model.NumStats+model.StatOffending]
			if y >= 0 && !math.IsInf(float64(eI), 1) {
				t.Fatalf("K=1 %v row %d: E_I = %v, want +Inf", l, i, eI)
			}
		}
	}
}

func TestEnergyLossAllIgnored(t *testing.T) {
	b := New()
	defer b.Close()
	c := randomCase(8, 33, 7, -2, 2, 1.1)
	for _, l := range lossesWith(1) {
		grad, stats, _ := runEnergyLoss(t, b, c, l, 3)
		for i := 0; i < c.B; i++ {
			st := stats[i*model.NumStats:]
			if st[model.StatLoss] != 0 || st[model.StatCorrect] != 0 || st[model.StatOffending] != 0 || math.IsNaN(float64(st[model.StatLogZ])) {
				t.Fatalf("ignored row %d %v: stats %v", i, l, st[:model.NumStats])
			}
		}
		for j, g := range grad {
			if g != 0 {
				t.Fatalf("ignored rows %v: grad[%d] = %v, want 0", l, j, g)
			}
		}
		checkEnergyLoss(t, b, "ignored", c, l, 3)
	}
}

// TestEnergyLossHuge uses energies of +-1e30: log Z stays finite and the
// probabilities are exact 0s and 1s, not NaN.
func TestEnergyLossHuge(t *testing.T) {
	b := New()
	defer b.Close()
	r := newRand(9)
	for _, K := range []int{1, 2, 7, 33} {
		c := elCase{B: 40, K: K, e: make([]float32, 40*K), labels: make([]int32, 40)}
		for i := range c.e {
			switch r.IntN(3) {
			case 0:
				c.e[i] = 1e30
			case 1:
				c.e[i] = -1e30
			default:
				c.e[i] = float32(r.NormFloat64())
			}
		}
		for i := range c.labels {
			c.labels[i] = int32(r.IntN(K))
		}
		for _, beta := range []float64{1, 1e-3} {
			for _, l := range lossesWith(beta) {
				checkEnergyLoss(t, b, "huge", c, l, 1)
				grad, stats, _ := runEnergyLoss(t, b, c, l, 1)
				for i := 0; i < c.B; i++ {
					if lz := stats[i*model.NumStats+model.StatLogZ]; math.IsNaN(float64(lz)) || math.IsInf(float64(lz), 0) {
						t.Fatalf("huge K=%d %v row %d: log Z = %v", K, l, i, lz)
					}
				}
				if l.Kind.TouchesAll() {
					for j, g := range grad {
						if math.IsNaN(float64(g)) {
							t.Fatalf("huge K=%d %v: grad[%d] is NaN", K, l, j)
						}
					}
				}
			}
		}
	}
}

// TestEnergyLossFiniteDifference checks the gradients, including LVQ2's
// (whose derivative loss.go leaves implicit), against central differences of
// the reference loss, at points away from every kink.
func TestEnergyLossFiniteDifference(t *testing.T) {
	b := New()
	defer b.Close()
	const h = 1e-4
	c := randomCase(10, 300, 6, -3, 3, 0)
	for _, l := range lossesWith(0.8) {
		grad, _, _ := runEnergyLoss(t, b, c, l, 1)
		checked := 0
		for i := 0; i < c.B; i++ {
			row := make([]float64, c.K)
			for j := range row {
				row[j] = float64(c.e[i*c.K+j])
			}
			label := int(c.labels[i])
			if nearKink(row, label, l, 10*h) {
				continue
			}
			checked++
			for j := range row {
				p, m := slices.Clone(row), slices.Clone(row)
				p[j] += h
				m[j] -= h
				num := (refLoss(p, label, l).loss - refLoss(m, label, l).loss) / (2 * h)
				if got := float64(grad[i*c.K+j]); math.Abs(got-num) > 1e-4*(1+math.Abs(num)) {
					t.Fatalf("%v row %d answer %d: grad %v, finite difference %v", l, i, j, got, num)
				}
			}
		}
		if checked < c.B/4 {
			t.Fatalf("%v: only %d of %d rows away from kinks", l, checked, c.B)
		}
	}
}

// nearKink reports whether a row is within eps of a point where the loss is
// not differentiable (or its offending answer or argmin changes).
func nearKink(e []float64, label int, l model.Loss, eps float64) bool {
	s := slices.Clone(e)
	slices.Sort(s)
	for j := 1; j < len(s); j++ {
		if s[j]-s[j-1] < eps {
			return true // argmin / E_I may switch
		}
	}
	r := refLoss(e, label, l)
	d := r.eC - r.eI
	switch l.Kind {
	case model.Hinge:
		return math.Abs(l.Margin+d) < eps
	case model.LVQ2:
		D := math.Max(1, r.eI)
		ratio := d / (l.Delta * D)
		return math.Abs(ratio) < eps || math.Abs(ratio-1) < eps || math.Abs(r.eI-1) < eps
	case model.SquareSquare:
		return math.Abs(l.Margin-r.eI) < eps
	}
	return false
}

func TestEnergyLossErrors(t *testing.T) {
	b := New()
	defer b.Close()
	c := randomCase(11, 4, 3, -1, 1, 0)
	for _, bad := range []int32{3, -2, 100} {
		labels := slices.Clone(c.labels)
		labels[2] = bad
		E := upload(t, b, 4, 3, c.e)
		S := upload(t, b, 4, model.NumStats, nanSlice(4*model.NumStats))
		A := uploadInts(t, b, []int32{-7, -7, -7, -7})
		err := b.EnergyLoss(E, uploadInts(t, b, labels), model.DefaultLoss(model.NLL), 1, S, A)
		wantErr(t, err, fmt.Sprintf("label %d of row 2", bad))
		if !slices.Equal(download(t, b, E), c.e) || !slices.Equal(downloadInts(t, b, A), []int32{-7, -7, -7, -7}) {
			t.Fatal("EnergyLoss wrote before reporting a bad label")
		}
		for _, x := range download(t, b, S) {
			if !math.IsNaN(float64(x)) {
				t.Fatal("EnergyLoss wrote stats before reporting a bad label")
			}
		}
	}
	E := upload(t, b, 4, 3, c.e)
	L := uploadInts(t, b, c.labels)
	S, _ := b.Alloc(4, model.NumStats)
	A, _ := b.AllocInts(4)
	nll := model.DefaultLoss(model.NLL)
	S3, _ := b.Alloc(3, model.NumStats)
	wantErr(t, b.EnergyLoss(E, L, nll, 1, S3, A), "stats is 3x4")
	A5, _ := b.AllocInts(5)
	wantErr(t, b.EnergyLoss(E, L, nll, 1, S, A5), "argmin has length 5")
	wantErr(t, b.EnergyLoss(E, A5, nll, 1, S, A), "labels have length 5")
	wantErr(t, b.EnergyLoss(E, L, model.Loss{Kind: model.NLL}, 1, S, A), "beta")
	wantErr(t, b.EnergyLoss(E, L, nll, 1, S, L), "different")
	other := New()
	defer other.Close()
	OE, _ := other.Alloc(4, 3)
	wantErr(t, b.EnergyLoss(OE, L, nll, 1, S, A), "another")
}

// TestDeterministic runs the parallel operations twice on inputs large
// enough to split and compares the outputs bitwise.
func TestDeterministic(t *testing.T) {
	b := New()
	defer b.Close()
	c := randomCase(12, 2000, 100, -3, 3, 0.05)
	r := newRand(13)
	a := randSlice(r, 300*500, -1, 1)
	w := randSlice(r, 400*500, -1, 1)
	var prevG, prevS, prevC []float32
	for run := 0; run < 2; run++ {
		g, s, _ := runEnergyLoss(t, b, c, model.DefaultLoss(model.NLL), 1)
		C := upload(t, b, 300, 400, nanSlice(300*400))
		if err := b.Gemm(false, true, 1, upload(t, b, 300, 500, a), upload(t, b, 400, 500, w), 0, C); err != nil {
			t.Fatal(err)
		}
		cc := download(t, b, C)
		if run == 1 && (!slices.Equal(g, prevG) || !slices.Equal(s, prevS) || !slices.Equal(cc, prevC)) {
			t.Fatal("two identical runs gave different bits")
		}
		prevG, prevS, prevC = g, s, cc
	}
	// A single-threaded backend gives the same EnergyLoss bits.
	one := NewWithThreads(1)
	defer one.Close()
	g1, s1, _ := runEnergyLoss(t, one, c, model.DefaultLoss(model.NLL), 1)
	if !slices.Equal(g1, prevG) || !slices.Equal(s1, prevS) {
		t.Fatal("1 thread and many threads gave different bits")
	}
}
