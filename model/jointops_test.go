package model_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
)

// gemmOnly wraps a backend and hides its JointOps (the embedded interface
// has only Backend's methods), so a JointModel on it takes the
// indicator-matrix GEMM path.
type gemmOnly struct{ model.Backend }

// jointRun is what one model computes: energies, loss statistics, every
// parameter's gradient and PredictJoint's marginals.
type jointRun struct {
	e, stats  []float32
	grads     [][]float32
	marginals []float64
}

func runJointModel(t *testing.T, be model.Backend, spec model.JointSpec, x []float32, labels []int32, inputs int) jointRun {
	t.Helper()
	m := newTestJoint(t, be, spec, inputs, 11)
	defer m.Free()
	B := len(labels)
	xm := mustMat(t, be, B, inputs, x)
	e, err := m.Forward(xm)
	must(t, err)
	var r jointRun
	r.e = make([]float32, B*m.Classes())
	must(t, be.Download(r.e, e))
	lab, err := be.AllocInts(B)
	must(t, err)
	must(t, be.UploadInts(lab, labels))
	am, err := be.AllocInts(B)
	must(t, err)
	stats := mustMat(t, be, B, model.NumStats, make([]float32, B*model.NumStats))
	must(t, be.EnergyLoss(e, lab, model.Loss{Kind: model.NLL, Beta: 1, Margin: 1, Gamma: 1, Delta: 1}, 1, stats, am))
	r.stats = make([]float32, B*model.NumStats)
	must(t, be.Download(r.stats, stats))
	must(t, m.Backward(e))
	for _, p := range m.Params() {
		rows, cols := p.Shape()
		g := make([]float32, rows*cols)
		must(t, be.Download(g, p.Grad))
		r.grads = append(r.grads, g)
	}
	pred, err := model.PredictJoint(be, m, x, B, 1, 3)
	must(t, err)
	r.marginals = pred.Marginals
	return r
}

// TestJointOpsPathMatchesGemm: a JointModel gives the same energies, loss
// statistics, gradients and marginals through its backend's JointOps and
// through the indicator-matrix GEMM fallback, on cpu and on device with the
// emulator, within float32 tolerance.
func TestJointOpsPathMatchesGemm(t *testing.T) {
	newEmu := func(t *testing.T) model.Backend {
		drv, err := emu.New(emu.Options{Mode: emu.Permuted, Seed: 3})
		must(t, err)
		b, err := device.New(drv)
		must(t, err)
		return b
	}
	backends := []struct {
		name string
		new  func(t *testing.T) model.Backend
	}{{"cpu", func(*testing.T) model.Backend { return cpu.New() }}, {"device/emu", newEmu}}
	for _, bk := range backends {
		for _, c := range []struct {
			vars     []int
			pairwise bool
			hidden   []int
		}{{[]int{3, 3}, true, nil}, {[]int{2, 3, 4}, true, []int{5}}, {[]int{4, 1, 3}, true, nil}, {[]int{7}, true, nil}, {[]int{3, 2, 2}, false, []int{4}}} {
			t.Run(fmt.Sprintf("%s/%v/pairwise=%v", bk.name, c.vars, c.pairwise), func(t *testing.T) {
				spec := model.JointSpec{Vars: c.vars, Pairwise: c.pairwise, Trunk: model.Spec{Hidden: c.hidden, Activation: model.Tanh}}
				j, _ := model.JointStates(c.vars)
				const inputs, B = 6, 7
				rng := rand.New(rand.NewPCG(5, uint64(j)))
				x := randSlice(rng, B*inputs, 1)
				labels := make([]int32, B)
				for i := range labels {
					labels[i] = int32(rng.IntN(j))
				}
				ops := bk.new(t)
				defer ops.Close()
				if _, ok := ops.(model.JointOps); !ok {
					t.Fatalf("%s does not implement model.JointOps", ops.Name())
				}
				plain := bk.new(t)
				defer plain.Close()
				got := runJointModel(t, ops, spec, x, labels, inputs)
				want := runJointModel(t, gemmOnly{plain}, spec, x, labels, inputs)
				near := func(what string, g, w []float32) {
					t.Helper()
					if len(g) != len(w) {
						t.Fatalf("%s: %d values, GEMM path %d", what, len(g), len(w))
					}
					for i := range w {
						if !(math.Abs(float64(g[i]-w[i])) <= 1e-5*(1+math.Abs(float64(w[i])))) {
							t.Fatalf("%s[%d] = %v through JointOps, %v through GEMM", what, i, g[i], w[i])
						}
					}
				}
				near("E", got.e, want.e)
				near("stats", got.stats, want.stats)
				if len(got.grads) != len(want.grads) {
					t.Fatalf("%d parameters, GEMM path %d", len(got.grads), len(want.grads))
				}
				for i := range want.grads {
					near(fmt.Sprintf("grad %d", i), got.grads[i], want.grads[i])
				}
				for i := range want.marginals {
					if math.Abs(got.marginals[i]-want.marginals[i]) > 1e-5 {
						t.Fatalf("marginal %d = %v through JointOps, %v through GEMM", i, got.marginals[i], want.marginals[i])
					}
				}
			})
		}
	}
}
