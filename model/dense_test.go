package model_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// hostLoss computes, in float64, the summed loss of energies e (B x K) for
// labels y: the reference the finite differences are taken of.
func hostLoss(t *testing.T, loss model.Loss, e []float32, y []int32, k int) float64 {
	t.Helper()
	var sum float64
	for i, yi := range y {
		row := e[i*k : (i+1)*k]
		ec := float64(row[yi])
		ei := math.Inf(1)
		for j, v := range row {
			if j != int(yi) && float64(v) < ei {
				ei = float64(v)
			}
		}
		switch loss.Kind {
		case model.NLL:
			mx := math.Inf(-1)
			for _, v := range row {
				mx = math.Max(mx, -loss.Beta*float64(v))
			}
			var z float64
			for _, v := range row {
				z += math.Exp(-loss.Beta*float64(v) - mx)
			}
			sum += ec + (mx+math.Log(z))/loss.Beta
		case model.Hinge:
			sum += math.Max(0, loss.Margin+ec-ei)
		default:
			t.Fatalf("hostLoss: %v not implemented", loss.Kind)
		}
	}
	return sum
}

// TestGradientsFiniteDifferences checks dL/dW of every parameter of tiny
// linear and MLP models against float64 central differences of the loss,
// computed on the host from the energies the model returns.
func TestGradientsFiniteDifferences(t *testing.T) {
	const (
		b = 7
		d = 5
		k = 4
	)
	specs := []string{"linear", "mlp:6:relu", "mlp:6:tanh", "mlp:6,3:relu", "mlp:6,3:tanh"}
	losses := []model.Loss{
		{Kind: model.NLL, Beta: 1.5, Margin: 1, Gamma: 1, Delta: 1},
		// A large margin keeps every row of the hinge active, away from its
		// kink, where the derivative is not defined.
		{Kind: model.Hinge, Beta: 1, Margin: 4, Gamma: 1, Delta: 1},
	}
	for _, specStr := range specs {
		for _, loss := range losses {
			t.Run(fmt.Sprintf("%s/%v", specStr, loss.Kind), func(t *testing.T) {
				be := cpu.New()
				defer be.Close()
				spec, err := model.ParseSpec(specStr)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(11, 12))
				m, err := model.NewEnergyModel(be, spec, d, k, rng)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Free()
				// Nonzero biases so their gradients flow through activations
				// at non-trivial points.
				for _, p := range m.Params() {
					r, c := p.Shape()
					v := make([]float32, r*c)
					if err := be.Download(v, p.Value); err != nil {
						t.Fatal(err)
					}
					for i := range v {
						if r == 1 {
							v[i] = float32(rng.NormFloat64() * 0.3)
						}
					}
					if err := be.Upload(p.Value, v); err != nil {
						t.Fatal(err)
					}
				}
				xs := make([]float32, b*d)
				for i := range xs {
					xs[i] = float32(rng.NormFloat64())
				}
				ys := make([]int32, b)
				for i := range ys {
					ys[i] = int32(rng.IntN(k))
				}
				x := mustMat(t, be, b, d, xs)
				lab, _ := be.AllocInts(b)
				if err := be.UploadInts(lab, ys); err != nil {
					t.Fatal(err)
				}
				stats, _ := be.Alloc(b, model.NumStats)
				argmin, _ := be.AllocInts(b)
				eHost := make([]float32, b*k)
				lossAt := func() float64 {
					e, err := m.Forward(x)
					if err != nil {
						t.Fatal(err)
					}
					if err := be.Download(eHost, e); err != nil {
						t.Fatal(err)
					}
					return hostLoss(t, loss, eHost, ys, k)
				}

				// Analytic gradient, poisoned first so unwritten entries show.
				for _, p := range m.Params() {
					r, c := p.Shape()
					if err := be.Upload(p.Grad, nanSlice(r*c)); err != nil {
						t.Fatal(err)
					}
				}
				e, err := m.Forward(x)
				if err != nil {
					t.Fatal(err)
				}
				if err := be.EnergyLoss(e, lab, loss, 1, stats, argmin); err != nil {
					t.Fatal(err)
				}
				if err := m.Backward(e); err != nil {
					t.Fatal(err)
				}
				const h = 1e-2
				checked := 0
				for _, p := range m.Params() {
					r, c := p.Shape()
					grad := make([]float32, r*c)
					if err := be.Download(grad, p.Grad); err != nil {
						t.Fatal(err)
					}
					val := make([]float32, r*c)
					if err := be.Download(val, p.Value); err != nil {
						t.Fatal(err)
					}
					for i := range val {
						orig := val[i]
						val[i] = orig + h
						must(t, be.Upload(p.Value, val))
						plus := lossAt()
						val[i] = orig - h
						must(t, be.Upload(p.Value, val))
						minus := lossAt()
						val[i] = orig
						must(t, be.Upload(p.Value, val))
						// The step actually taken in float32, not h.
						step := float64(orig+h) - float64(orig-h)
						fd := (plus - minus) / step
						got := float64(grad[i])
						if math.IsNaN(got) || math.Abs(got-fd) > 5e-4+2e-3*math.Abs(fd) {
							t.Errorf("%s[%d]: backward %.6g, finite difference %.6g", p.Name, i, got, fd)
						}
						checked++
					}
				}
				if checked == 0 {
					t.Fatal("no parameter checked")
				}
			})
		}
	}
}

func mustMat(t *testing.T, be model.Backend, r, c int, v []float32) model.Mat {
	t.Helper()
	m, err := be.Alloc(r, c)
	if err != nil {
		t.Fatal(err)
	}
	must(t, be.Upload(m, v))
	return m
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func nanSlice(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return v
}
