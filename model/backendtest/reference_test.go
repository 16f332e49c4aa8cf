package backendtest

// Tests of the reference itself, against cases derivable by hand, so that
// the suite cannot silently be wrong along with a backend that copied it.

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/model"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*(1+math.Abs(b)) }

func TestReferenceLogZ(t *testing.T) {
	// K equal energies e: log Z = -beta e + log K.
	for _, k := range []int{1, 2, 7, 1000} {
		for _, beta := range []float64{0.5, 1, 3} {
			e := make([]float64, k)
			for i := range e {
				e[i] = 0.75
			}
			if got, _, _ := refLogZ(e, beta); !near(got, -beta*0.75+math.Log(float64(k)), 1e-14) {
				t.Errorf("logZ of %d energies 0.75 at beta %v = %v, want %v", k, beta, got, -beta*0.75+math.Log(float64(k)))
			}
		}
	}
	// Huge energies: log Z = beta*1e30 + log(count of the minimum), finite.
	x := 1e30
	if got, _, _ := refLogZ([]float64{x, -x, 0, -x}, 3); !near(got, 3*x+math.Log(2), 1e-15) {
		t.Errorf("logZ of +-1e30 = %v, want %v", got, 3*x+math.Log(2))
	}
	// Two energies a, b: log(exp(-a) + exp(-b)) directly.
	if got, _, _ := refLogZ([]float64{0.3, -1.2}, 1); !near(got, math.Log(math.Exp(-0.3)+math.Exp(1.2)), 1e-14) {
		t.Errorf("logZ(0.3, -1.2) = %v", got)
	}
}

// With K = 2 several losses have closed forms in d = E_C - E_other.
func TestReferenceTwoAnswers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		ec, eo := 4*rng.Float64()-2, 4*rng.Float64()-2
		d := ec - eo
		for _, label := range []int{0, 1} {
			e := []float64{ec, eo}
			if label == 1 {
				e = []float64{eo, ec}
			}
			other := 1 - label
			for _, beta := range []float64{0.5, 1, 3} {
				// NLL = (1/beta) softplus(beta d); dL/dE_C = sigmoid(beta d).
				l := model.Loss{Kind: model.NLL, Beta: beta, Margin: 1, Gamma: 1, Delta: 1}
				r := refEnergyLoss(e, label, l)
				sp := math.Log(1+math.Exp(beta*d)) / beta
				s := 1 / (1 + math.Exp(-beta*d))
				if !near(r.loss, sp, 1e-12) || !near(r.grad[label], s, 1e-12) || !near(r.grad[other], -s, 1e-12) {
					t.Errorf("NLL beta=%v d=%v: loss %v grad %v, want %v and +-%v", beta, d, r.loss, r.grad, sp, s)
				}
				// MEE = 1 - P_C = sigmoid(beta d); dL/dE_C = beta s(1-s).
				l.Kind = model.MEE
				r = refEnergyLoss(e, label, l)
				if !near(r.loss, s, 1e-12) || !near(r.grad[label], beta*s*(1-s), 1e-12) || !near(r.grad[other], -beta*s*(1-s), 1e-12) {
					t.Errorf("MEE beta=%v d=%v: loss %v grad %v, want %v and +-%v", beta, d, r.loss, r.grad, s, beta*s*(1-s))
				}
			}
			// Log = softplus(d) and MCE = sigmoid(d), the beta = 1 cases above.
			s := 1 / (1 + math.Exp(-d))
			r := refEnergyLoss(e, label, model.DefaultLoss(model.Log))
			if !near(r.loss, math.Log(1+math.Exp(d)), 1e-12) || !near(r.grad[label], s, 1e-12) || !near(r.grad[other], -s, 1e-12) {
				t.Errorf("Log d=%v: loss %v grad %v", d, r.loss, r.grad)
			}
			r = refEnergyLoss(e, label, model.DefaultLoss(model.MCE))
			if !near(r.loss, s, 1e-12) || !near(r.grad[label], s*(1-s), 1e-12) {
				t.Errorf("MCE d=%v: loss %v grad %v", d, r.loss, r.grad)
			}
			// Hinge with margin 1.
			r = refEnergyLoss(e, label, model.DefaultLoss(model.Hinge))
			if want := math.Max(0, 1+d); !near(r.loss, want, 1e-15) {
				t.Errorf("Hinge d=%v: loss %v, want %v", d, r.loss, want)
			}
		}
	}
}

func TestReferenceHandCases(t *testing.T) {
	l := model.DefaultLoss(model.Hinge)
	// Hinge: E = [0.5, 0.2, 0.9], label 0, m = 1: E_I = 0.2 at 1, L = 1.3.
	r := refEnergyLoss([]float64{0.5, 0.2, 0.9}, 0, l)
	if r.ei != 0.2 || r.offending != 1 || !near(r.loss, 1.3, 1e-15) || r.grad[0] != 1 || r.grad[1] != -1 || r.grad[2] != 0 || r.argmin != 1 {
		t.Errorf("hinge hand case: %+v", r)
	}
	// Ties: E = [1, 0, 0, 0], label 2: E_I = 0 at index 1 (lowest y != 2),
	// argmin 1; perceptron L = 0 but the argmin is not the label, so the
	// gradient is +1 at 2, -1 at 1.
	e := []float64{1, 0, 0, 0}
	r = refEnergyLoss(e, 2, l)
	if r.offending != 1 || r.argmin != 1 || r.ec != 0 || r.ei != 0 {
		t.Errorf("tie hand case: %+v", r)
	}
	r = refEnergyLoss(e, 2, model.DefaultLoss(model.Perceptron))
	if r.loss != 0 || r.grad[2] != 1 || r.grad[1] != -1 || r.grad[0] != 0 || r.grad[3] != 0 {
		t.Errorf("perceptron tie case: %+v", r)
	}
	// Perceptron when the label is the unique argmin: nothing to do.
	r = refEnergyLoss([]float64{1, -1, 0}, 1, model.DefaultLoss(model.Perceptron))
	if r.loss != 0 || r.grad[0] != 0 || r.grad[1] != 0 || r.grad[2] != 0 {
		t.Errorf("perceptron solved case: %+v", r)
	}
	// K = 1: E_I = +Inf; hinge, log, MCE, LVQ2 give 0, square-square E_C^2.
	for _, kind := range model.LossKinds() {
		r := refEnergyLoss([]float64{0.5}, 0, model.DefaultLoss(kind))
		if !math.IsInf(r.ei, 1) || r.offending != -1 || r.argmin != 0 || math.IsNaN(r.loss) || math.IsNaN(r.grad[0]) {
			t.Errorf("%v with K=1: %+v", kind, r)
		}
		want := map[model.LossKind]float64{model.Energy: 0.5, model.Perceptron: 0, model.Hinge: 0, model.Log: 0,
			model.LVQ2: 0, model.MCE: 0, model.SquareSquare: 0.25, model.SquareExp: 0.25, model.NLL: 0, model.MEE: 0}[kind]
		if !near(r.loss, want, 1e-15) {
			t.Errorf("%v with K=1: loss %v, want %v", kind, r.loss, want)
		}
	}
	// LVQ2, delta 1: E_C = 0.5, E_I = 0.2 (D = 1): ratio 0.3, gradient +-1.
	r = refEnergyLoss([]float64{0.5, 0.2}, 0, model.DefaultLoss(model.LVQ2))
	if !near(r.loss, 0.3, 1e-15) || r.grad[0] != 1 || r.grad[1] != -1 {
		t.Errorf("LVQ2 D=1 case: %+v", r)
	}
	// E_C = 3, E_I = 2 (D = 2): ratio 0.5, dL/dE_C = 1/2, dL/dE_I = -3/4.
	r = refEnergyLoss([]float64{3, 2}, 0, model.DefaultLoss(model.LVQ2))
	if !near(r.loss, 0.5, 1e-15) || r.grad[0] != 0.5 || r.grad[1] != -0.75 {
		t.Errorf("LVQ2 D=E_I case: %+v", r)
	}
	// E_C = 5, E_I = 2: ratio 1.5 saturates at 1, no gradient.
	r = refEnergyLoss([]float64{5, 2}, 0, model.DefaultLoss(model.LVQ2))
	if r.loss != 1 || r.grad[0] != 0 || r.grad[1] != 0 {
		t.Errorf("LVQ2 saturated case: %+v", r)
	}
	// Square-square, m = 1: E_C = 0.5, E_I = 0.25: 0.25 + 0.5625.
	r = refEnergyLoss([]float64{0.5, 0.25}, 0, model.DefaultLoss(model.SquareSquare))
	if r.loss != 0.8125 || r.grad[0] != 1 || r.grad[1] != -1.5 {
		t.Errorf("square-square case: %+v", r)
	}
	// Square-exp, gamma 1: E_C = 1, E_I = 0: 1 + 1, gradient 2 and -1.
	r = refEnergyLoss([]float64{1, 0}, 0, model.DefaultLoss(model.SquareExp))
	if r.loss != 2 || r.grad[0] != 2 || r.grad[1] != -1 {
		t.Errorf("square-exp case: %+v", r)
	}
	// An ignored row: zero loss, E_C, E_I and gradient, but log Z and argmin.
	r = refEnergyLoss([]float64{2, 1, 3}, model.IgnoreLabel, model.DefaultLoss(model.NLL))
	if r.loss != 0 || r.ec != 0 || r.ei != 0 || r.argmin != 1 || r.grad[0] != 0 || r.grad[1] != 0 || r.grad[2] != 0 ||
		!near(r.logZ, math.Log(math.Exp(-2)+math.Exp(-1)+math.Exp(-3)), 1e-15) {
		t.Errorf("ignored row: %+v", r)
	}
	// Huge energies stay finite where the mathematics is: log loss of
	// E_C - E_I = 2e30 is 2e30; NLL of a correct row tied at -1e30 with
	// one other answer is log(2)/beta, P = 1/2 each.
	r = refEnergyLoss([]float64{1e30, -1e30}, 0, model.DefaultLoss(model.Log))
	if r.loss != 2e30 || r.grad[0] != 1 || r.grad[1] != -1 {
		t.Errorf("log loss at 2e30: %+v", r)
	}
	r = refEnergyLoss([]float64{-1e30, -1e30, 1e30}, 0, model.Loss{Kind: model.NLL, Beta: 3, Margin: 1, Gamma: 1, Delta: 1})
	if !near(r.loss, math.Log(2)/3, 1e-15) || math.IsNaN(r.logZ) || r.grad[0] != 0.5 || r.grad[1] != -0.5 || r.grad[2] != 0 {
		t.Errorf("NLL at +-1e30: %+v", r)
	}
}

// TestReferenceFiniteDifferences checks the reference gradient of every
// loss against central finite differences of the reference loss, at random
// points at least fdKinkGap away from any kink (see kinkDistance).
func TestReferenceFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, kind := range model.LossKinds() {
		checked := 0
		for trial := range 200 {
			k := 1 + rng.IntN(12)
			e := make([]float64, k)
			for i := range e {
				e[i] = 6*rng.Float64() - 3
			}
			label := rng.IntN(k)
			l := elParams[trial%2]
			l.Kind, l.Beta = kind, elBetas[trial%3]
			if kinkDistance(e, label, l) < fdKinkGap {
				continue
			}
			checked++
			fd := fdGradient(e, label, l)
			r := refEnergyLoss(e, label, l)
			for y := range fd {
				if !near(r.grad[y], fd[y], fdTol) {
					t.Errorf("%v beta=%v, E=%v, label %d: dL/dE[%d] = %v, finite differences %v", l, l.Beta, e, label, y, r.grad[y], fd[y])
				}
			}
		}
		if checked < 100 {
			t.Errorf("%v: only %d of 200 random points away from kinks; the test is too weak", kind, checked)
		}
	}
}

func TestReferenceDense(t *testing.T) {
	// [1 2; 3 4] * [5 6; 7 8] = [19 22; 43 50]; with transposes of A:
	// [1 3; 2 4] * [5 6; 7 8] = [26 30; 38 44].
	a := []float32{1, 2, 3, 4}
	b := []float32{5, 6, 7, 8}
	c, _ := refGemm(false, false, 1, a, 2, 2, b, 2, 2, 0, nans(4), 2, 2)
	if c[0] != 19 || c[1] != 22 || c[2] != 43 || c[3] != 50 {
		t.Errorf("Gemm = %v", c)
	}
	c, _ = refGemm(true, false, 1, a, 2, 2, b, 2, 2, 0, nans(4), 2, 2)
	if c[0] != 26 || c[1] != 30 || c[2] != 38 || c[3] != 44 {
		t.Errorf("Gemm A^T = %v", c)
	}
	// A * B^T = [1 2; 3 4] * [5 7; 6 8] = [17 23; 39 53]; beta 1 adds C.
	c, _ = refGemm(false, true, 2, a, 2, 2, b, 2, 2, 1, []float32{1, 1, 1, 1}, 2, 2)
	if c[0] != 35 || c[1] != 47 || c[2] != 79 || c[3] != 107 {
		t.Errorf("2 A B^T + 1 = %v", c)
	}
	s, _ := refColumnSums([]float32{10, 20}, 2, []float32{1, 2, 3, 4, 5, 6}, 3, 2, 0.5)
	if s[0] != 2*9+5 || s[1] != 2*12+10 {
		t.Errorf("ColumnSums = %v", s)
	}
	// Adam's first step moves each weight by lr * g/|g| (almost exactly:
	// m/c1 = g and sqrt(v/c2) = |g|), decay aside.
	st := &refOptState{w: []float64{1, 1}, m: make([]float64, 2), v: make([]float64, 2)}
	refAdamStep(st, []float32{0.5, -2}, 0.1, 0.9, 0.999, 1e-8, 0, 1)
	if !near(st.w[0], 0.9, 1e-7) || !near(st.w[1], 1.1, 1e-7) {
		t.Errorf("Adam first step: %v", st.w)
	}
	st = &refOptState{w: []float64{2}, v: make([]float64, 1)}
	refMomentumStep(st, []float32{1}, 0.1, 0.9, 0.5)
	refMomentumStep(st, []float32{1}, 0.1, 0.9, 0.5)
	// w1 = 2 - 0.1 - 0.1 = 1.8; v2 = 1.9; w2 = 1.8 - 0.09 - 0.19 = 1.52.
	if !near(st.w[0], 1.52, 1e-15) {
		t.Errorf("momentum: %v", st.w)
	}
}

// TestClose32 checks the comparison itself: overflow to +-Inf required,
// NaN where the reference is NaN only, tolerance respected.
func TestClose32(t *testing.T) {
	inf := float32(math.Inf(1))
	cases := []struct {
		got       float32
		want, tol float64
		ok        bool
	}{
		{1, 1, 0, true},
		{1.0001, 1, 1e-3, true},
		{1.01, 1, 1e-3, false},
		{inf, 1e60, 1e50, true},
		{3e38, 1e60, 1e70, false},
		{-inf, -1e60, 0, true},
		{inf, 1, 1e300, false},
		{float32(math.NaN()), 1, 1e300, false},
		{float32(math.NaN()), math.NaN(), 0, true},
		{0, math.NaN(), 1, false},
	}
	for _, c := range cases {
		if got := close32(c.got, c.want, c.tol); got != c.ok {
			t.Errorf("close32(%v, %v, %v) = %v", c.got, c.want, c.tol, got)
		}
	}
}

// TestRefRound checks the suite's float64 rounding against hand-worked
// TF32 and bfloat16 values, then against model.RoundTF32 and RoundBF16 (the
// bit-twiddling functions cpu uses, written like the GPU's cvt) on random
// bit patterns: two independent implementations that must agree exactly.
func TestRefRound(t *testing.T) {
	cases := []struct {
		x, tf32, bf16 float64
	}{
		{1, 1, 1},
		{1 + 0x1p-11, 1 + 0x1p-10, 1},               // tf32 tie: away; bf16: below half an ulp
		{-(1 + 0x1p-11), -(1 + 0x1p-10), -1},        // away from zero
		{1 + 3*0x1p-11, 1 + 0x1p-9, 1},              // tie between 1+2^-10 (odd) and 1+2^-9: away = up
		{1 + 0x1p-8, 1 + 0x1p-8, 1},                 // bf16 tie, the even neighbour below
		{1 + 3*0x1p-8, 1 + 3*0x1p-8, 1 + 0x1p-6},    // bf16 tie, the even neighbour above
		{0x1p-136, 0x1p-136, 0},                     // a tf32 subnormal; half of bf16's 2^-133 spacing or less
		{0x1p-134, 0x1p-134, 0},                     // bf16: a quarter of its spacing
		{3 * 0x1p-134, 3 * 0x1p-134, 0x1p-132},      // bf16: 1.5 spacings, a tie: to the even 2
		{math.MaxFloat32, math.Inf(1), math.Inf(1)}, // overflow (no saturation)
	}
	for _, c := range cases {
		if got := refRound(float32(c.x), 10, true); got != c.tf32 {
			t.Errorf("refRound(%g) to tf32 = %g, want %g", c.x, got, c.tf32)
		}
		if got := refRound(float32(c.x), 7, false); got != c.bf16 {
			t.Errorf("refRound(%g) to bf16 = %g, want %g", c.x, got, c.bf16)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		x := math.Float32frombits(rng.Uint32())
		if x != x {
			continue
		}
		if got, want := float64(model.RoundTF32(x)), refRound(x, 10, true); got != want {
			t.Fatalf("model.RoundTF32(%g = %#08x) = %g, the reference %g", x, math.Float32bits(x), got, want)
		}
		if got, want := float64(model.RoundBF16(x)), refRound(x, 7, false); got != want {
			t.Fatalf("model.RoundBF16(%g = %#08x) = %g, the reference %g", x, math.Float32bits(x), got, want)
		}
	}
}
