package backendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// denseShapes are (B, In, Out) of a layer: awkward sizes, partial tiles,
// a batch longer than a tile column, one input.
var denseShapes = [][3]int{{1, 1, 1}, {7, 33, 5}, {33, 31, 65}, {130, 65, 129}, {257, 10, 3}, {1000, 9, 17}}

// TestDenseOps checks model.DenseOps (skipped on a backend without it) in
// every precision the backend has, for ReLU, tanh and Linear, alpha 1 and
// -1 (fp32, tf32; the others with tanh and -1), with and without a bias: each output against a float64 reference of
// its definition (the operands rounded as the precision says, as in
// TestGemmPrecision), and against the unfused sequence of Backend calls
// (model.DenseUnfused) on the same backend, within the same tolerance;
// outputs NaN-poisoned before the call, inputs untouched after it.
func TestDenseOps(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	d, ok := b.(model.DenseOps)
	if !ok {
		t.Skipf("%s has no model.DenseOps", b.Name())
	}
	precs := []model.Precision{model.FP32}
	if _, ok := b.(model.PrecisionOps); ok {
		precs = append(precs, model.TF32x3, model.TF32, model.BF16)
	}
	for _, p := range precs {
		// Every activation and sign in fp32 and tf32; the other precisions
		// differ only in the product (TestGemmPrecision), so one of each.
		acts, alphas := []model.Activation{model.ReLU, model.Tanh, model.Linear}, []float32{1, -1}
		if p != model.FP32 && p != model.TF32 {
			acts, alphas = []model.Activation{model.Tanh}, []float32{-1}
		}
		for _, s := range denseShapes {
			for _, act := range acts {
				for _, alpha := range alphas {
					name := fmt.Sprintf("%v/B=%d,in=%d,out=%d/%v/alpha=%v", p, s[0], s[1], s[2], act, alpha)
					t.Run(name, func(t *testing.T) {
						skipIfBig(t, s[0] >= 1000)
						testDenseCase(t, b, d, p, s[0], s[1], s[2], act, alpha)
					})
				}
			}
		}
	}
	t.Run("errors", func(t *testing.T) { testDenseErrors(t, b, d) })
}

// refProduct returns alpha * op(A) op(B) with the operands rounded as p
// says, and the magnitude sums of the tolerance.
func refProduct(p model.Precision, transA, transB bool, alpha float64, a []float32, ar, ac int, b []float32, br, bc int, m, n int) (out, mag []float64) {
	ra, rb := make([]float32, len(a)), make([]float32, len(b))
	for i, v := range a {
		ra[i] = refOperand(p, v)
	}
	for i, v := range b {
		rb[i] = refOperand(p, v)
	}
	return refGemm(transA, transB, alpha, ra, ar, ac, rb, br, bc, 0, nil, m, n)
}

func testDenseCase(t *testing.T, b model.Backend, d model.DenseOps, p model.Precision, B, in, out int, act model.Activation, alpha float32) {
	h := newHelper(t, b)
	u32 := func(x float64) float64 { return safety * 4 * u * math.Abs(x) } // a few float32 roundings of x
	x := h.uniform(B*in, -1, 1)
	w := h.uniform(out*in, -1, 1)
	bias := h.uniform(out, -1, 1)
	mx, mw := h.mat(B, in, x), h.mat(out, in, w)
	// The shape with 17 outputs runs without a bias (and db).
	var mb model.Mat
	if out != 17 {
		mb = h.mat(1, out, bias)
	} else {
		bias = make([]float32, out)
	}
	ktol := precisionGemmTol(p, in)
	unfused := model.DenseUnfused{B: b}

	// Forward: Z = act(alpha (X W^T + b)).
	pre, mag := refProduct(p, false, true, float64(alpha), x, B, in, w, out, in, B, out)
	wantZ, tolZ := make([]float64, B*out), make([]float64, B*out)
	for i := range pre {
		j := i % out
		v := pre[i] + float64(alpha)*float64(bias[j])
		e := ktol*mag[i] + u32(float64(bias[j])) + u32(v)
		switch act {
		case model.ReLU:
			v = math.Max(v, 0)
		case model.Tanh:
			v = math.Tanh(v) // 1-Lipschitz: the error of its argument carries over
			e += u32(v)
		}
		wantZ[i], tolZ[i] = v, e
	}
	mz := h.poisoned(B, out)
	must(t, "DenseForward", func() error { return d.DenseForward(p, mx, mw, mb, alpha, act, mz) })
	gotZ := h.get(mz)
	mm := newMismatches(t, "DenseForward(%v, X %dx%d, W %dx%d, alpha=%v, %v)", p, B, in, out, in, alpha, act)
	mm.check("Z", gotZ, wantZ, tolZ, out)
	mz2 := h.poisoned(B, out)
	must(t, "unfused forward", func() error { return unfused.DenseForward(p, mx, mw, mb, alpha, act, mz2) })
	tolU := make([]float64, len(tolZ))
	for i := range tolZ {
		tolU[i] = 2 * tolZ[i]
	}
	mm.check("Z (against the unfused sequence)", gotZ, to64(h.get(mz2)), tolU, out)
	mm.checkBits("X (input)", h.get(mx), x, in)
	mm.checkBits("W (input)", h.get(mw), w, in)
	mm.report()

	// Backward data: dX = (alpha dZ W) * act'(Y), Y a valid activation
	// output of the layer below (B x in), with exact zeros for ReLU.
	dz := h.uniform(B*out, -1, 1)
	y := h.uniform(B*in, -1, 1)
	for i, v := range y {
		switch act {
		case model.ReLU:
			y[i] = float32(math.Max(float64(v), 0))
		case model.Tanh:
			y[i] = float32(math.Tanh(2 * float64(v)))
		}
	}
	mdz, my := h.mat(B, out, dz), h.mat(B, in, y)
	prod, magD := refProduct(p, false, false, float64(alpha), dz, B, out, w, out, in, B, in)
	ktolD := precisionGemmTol(p, out)
	wantX, tolX := make([]float64, B*in), make([]float64, B*in)
	for i := range prod {
		f := 1.0
		if act != model.Linear {
			f = refActivationGrad(act, 1, float64(y[i]))
		}
		wantX[i] = prod[i] * f
		tolX[i] = (ktolD*magD[i]+u32(prod[i]))*math.Abs(f) + u32(wantX[i])
		if act == model.Tanh {
			tolX[i] += math.Abs(prod[i]) * u32(2) // 1 - y^2 carries a rounding or two
		}
	}
	if act == model.Linear {
		my = nil
	}
	mdx := h.poisoned(B, in)
	must(t, "DenseBackwardData", func() error { return d.DenseBackwardData(p, mdz, mw, alpha, act, my, mdx) })
	gotX := h.get(mdx)
	mb2 := newMismatches(t, "DenseBackwardData(%v, dZ %dx%d, W %dx%d, alpha=%v, %v)", p, B, out, out, in, alpha, act)
	mb2.check("dX", gotX, wantX, tolX, in)
	mdx2 := h.poisoned(B, in)
	must(t, "unfused backward data", func() error { return unfused.DenseBackwardData(p, mdz, mw, alpha, act, my, mdx2) })
	tolU = make([]float64, len(tolX))
	for i := range tolX {
		tolU[i] = 2 * tolX[i]
	}
	mb2.check("dX (against the unfused sequence)", gotX, to64(h.get(mdx2)), tolU, in)
	mb2.checkBits("dZ (input)", h.get(mdz), dz, out)
	if my != nil {
		mb2.checkBits("Y (input)", h.get(my), y, in)
	}
	mb2.report()

	// Weight gradients: dW = alpha dZ^T X, db = alpha colsum(dZ).
	wantW, magW := refProduct(p, true, false, float64(alpha), dz, B, out, x, B, in, out, in)
	tolW := make([]float64, len(magW))
	for i := range magW {
		tolW[i] = precisionGemmTol(p, B) * magW[i]
	}
	wantB, magB := refColumnSums(nil, float64(alpha), dz, B, out, 0)
	tolB := make([]float64, out)
	for j := range tolB {
		tolB[j] = gamma(B, 3) * magB[j]
	}
	mdw := h.poisoned(out, in)
	var mdb model.Mat
	if mb != nil {
		mdb = h.poisoned(1, out)
	}
	must(t, "DenseGradWeights", func() error { return d.DenseGradWeights(p, mdz, mx, alpha, mdw, mdb) })
	mg := newMismatches(t, "DenseGradWeights(%v, dZ %dx%d, X %dx%d, alpha=%v)", p, B, out, B, in, alpha)
	mg.check("dW", h.get(mdw), wantW, tolW, in)
	if mdb != nil {
		mg.check("db", h.get(mdb), wantB, tolB, 0)
	}
	mg.checkBits("dZ (input)", h.get(mdz), dz, out)
	mg.checkBits("X (input)", h.get(mx), x, in)
	mg.report()
}

// testDenseErrors: mismatched shapes, a missing Y and aliased outputs are
// errors, reported before anything is written.
func testDenseErrors(t *testing.T, b model.Backend, d model.DenseOps) {
	h := newHelper(t, b)
	x, w, bias := h.mat(4, 3, h.uniform(12, -1, 1)), h.mat(5, 3, h.uniform(15, -1, 1)), h.mat(1, 5, h.uniform(5, -1, 1))
	z, dz := h.poisoned(4, 5), h.mat(4, 5, h.uniform(20, -1, 1))
	dx, dw, db := h.poisoned(4, 3), h.poisoned(5, 3), h.poisoned(1, 5)
	bad := h.poisoned(4, 4)
	badBias := h.mat(1, 4, h.uniform(4, -1, 1))
	cases := []struct {
		name string
		f    func() error
		outs []model.Mat
	}{
		{"forward: Z of the wrong shape", func() error { return d.DenseForward(model.FP32, x, w, bias, 1, model.ReLU, bad) }, []model.Mat{bad}},
		{"forward: bias of the wrong length", func() error { return d.DenseForward(model.FP32, x, w, badBias, 1, model.ReLU, z) }, []model.Mat{z}},
		{"forward: unknown activation", func() error { return d.DenseForward(model.FP32, x, w, bias, 1, model.Activation(7), z) }, []model.Mat{z}},
		{"forward: unknown precision", func() error { return d.DenseForward(model.Precision(9), x, w, bias, 1, model.ReLU, z) }, []model.Mat{z}},
		{"backward data: Y missing", func() error { return d.DenseBackwardData(model.FP32, dz, w, 1, model.ReLU, nil, dx) }, []model.Mat{dx}},
		{"backward data: Y of the wrong shape", func() error { return d.DenseBackwardData(model.FP32, dz, w, 1, model.Tanh, bad, dx) }, []model.Mat{dx}},
		{"backward data: dX is Y", func() error { return d.DenseBackwardData(model.FP32, dz, w, 1, model.ReLU, dx, dx) }, nil},
		{"grad weights: db of the wrong length", func() error { return d.DenseGradWeights(model.FP32, dz, x, 1, dw, badBias) }, []model.Mat{dw}},
		{"grad weights: dW of the wrong shape", func() error { return d.DenseGradWeights(model.FP32, dz, x, 1, bad, db) }, []model.Mat{bad, db}},
	}
	for _, c := range cases {
		before := make([][]float32, len(c.outs))
		for i, o := range c.outs {
			before[i] = h.get(o)
		}
		if err := call(t, c.name, c.f); err == nil {
			t.Errorf("%s: no error", c.name)
		}
		for i, o := range c.outs {
			mm := newMismatches(t, "%s: output written before the error", c.name)
			mm.checkBits("out", h.get(o), before[i], o.Cols())
			mm.report()
		}
	}
}
