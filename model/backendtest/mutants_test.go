package backendtest_test

// Mutation tests of the suite: each mutant is cpu with one plausible bug
// injected through a wrapper, and the suite (the part of it that should
// notice) must fail on it. The suite takes a *testing.T, so each mutant
// runs in a child process of this test binary (TestMutantTarget, selected
// by an environment variable) and the parent requires that child to fail
// with a test failure, not a crash.

import (
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendtest"
)

const mutantEnv = "BACKENDTEST_MUTANT"

// hooked is a backend whose methods run a hook when one is set.
type hooked struct {
	model.Backend
	gemm         func(transA, transB bool, alpha float32, a, b model.Mat, beta float32, c model.Mat) error
	columnSums   func(dst model.Mat, alpha float32, src model.Mat, beta float32) error
	addRowVector func(m model.Mat, alpha float32, v model.Mat) error
	activate     func(act model.Activation, m model.Mat) error
	actGrad      func(act model.Activation, g, out model.Mat) error
	argminRows   func(e model.Mat, out model.Ints) error
	gatherRows   func(dst, src model.Mat, idx model.Ints) error
	sgd          func(w, g model.Mat, lr, wd float32) error
	momentum     func(w, g, v model.Mat, lr, mu, wd float32) error
	adam         func(w, g, m, v model.Mat, lr, b1, b2, eps, wd float32, t int) error
	energyLoss   func(e model.Mat, labels model.Ints, l model.Loss, gs float32, stats model.Mat, argmin model.Ints) error
	free         func(x any) error
	upload       func(dst model.Mat, src []float32) error
	// The model.JointOps hooks: a mutant that sets either runs as
	// jointHooked, which implements JointOps through cpu's.
	jointEnergies  func(s, p model.Mat, vars []int, e model.Mat) error
	jointGradients func(de model.Mat, vars []int, ds, dp model.Mat) error
	// The PrecisionOps and DenseOps hooks: a mutant that sets one runs as
	// extHooked, which has both (through cpu's where no hook is set).
	gemmPrecision func(p model.Precision, transA, transB bool, alpha float32, a, b model.Mat, beta float32, c model.Mat) error
	denseForward  func(p model.Precision, x, w, b model.Mat, alpha float32, act model.Activation, z model.Mat) error
	denseBwdData  func(p model.Precision, dz, w model.Mat, alpha float32, act model.Activation, y, dx model.Mat) error
	denseGradW    func(p model.Precision, dz, x model.Mat, alpha float32, dw, db model.Mat) error
}

// extHooked is a hooked backend that also has PrecisionOps and DenseOps
// (hooked alone has neither, so those suites skip on the other mutants).
type extHooked struct{ *hooked }

func (h extHooked) GemmPrecision(p model.Precision, ta, tb bool, alpha float32, a, b model.Mat, beta float32, c model.Mat) error {
	if h.gemmPrecision != nil {
		return h.gemmPrecision(p, ta, tb, alpha, a, b, beta, c)
	}
	return h.Backend.(model.PrecisionOps).GemmPrecision(p, ta, tb, alpha, a, b, beta, c)
}

func (h extHooked) DenseForward(p model.Precision, x, w, b model.Mat, alpha float32, act model.Activation, z model.Mat) error {
	if h.denseForward != nil {
		return h.denseForward(p, x, w, b, alpha, act, z)
	}
	return h.Backend.(model.DenseOps).DenseForward(p, x, w, b, alpha, act, z)
}

func (h extHooked) DenseBackwardData(p model.Precision, dz, w model.Mat, alpha float32, act model.Activation, y, dx model.Mat) error {
	if h.denseBwdData != nil {
		return h.denseBwdData(p, dz, w, alpha, act, y, dx)
	}
	return h.Backend.(model.DenseOps).DenseBackwardData(p, dz, w, alpha, act, y, dx)
}

func (h extHooked) DenseGradWeights(p model.Precision, dz, x model.Mat, alpha float32, dw, db model.Mat) error {
	if h.denseGradW != nil {
		return h.denseGradW(p, dz, x, alpha, dw, db)
	}
	return h.Backend.(model.DenseOps).DenseGradWeights(p, dz, x, alpha, dw, db)
}

// roundedGemm runs cpu's fp32 GEMM on copies of A and B rounded by f
// (a mutant's idea of a precision's rounding).
func roundedGemm(h *hooked, f func(float32) float32, ta, tb bool, alpha float32, a, b model.Mat, beta float32, c model.Mat) error {
	ra, rb := get(h.Backend, a), get(h.Backend, b)
	for i := range ra {
		ra[i] = f(ra[i])
	}
	for i := range rb {
		rb[i] = f(rb[i])
	}
	ma, _ := h.Backend.Alloc(a.Rows(), a.Cols())
	mb, _ := h.Backend.Alloc(b.Rows(), b.Cols())
	defer h.Backend.Free(ma)
	defer h.Backend.Free(mb)
	put(h.Backend, ma, ra)
	put(h.Backend, mb, rb)
	return h.Backend.Gemm(ta, tb, alpha, ma, mb, beta, c)
}

// mutatePrecision makes p's GEMMs round with f; other precisions run as cpu's.
func mutatePrecision(h *hooked, p model.Precision, f func(float32) float32) {
	h.gemmPrecision = func(q model.Precision, ta, tb bool, alpha float32, a, b model.Mat, beta float32, c model.Mat) error {
		if q != p {
			return h.Backend.(model.PrecisionOps).GemmPrecision(q, ta, tb, alpha, a, b, beta, c)
		}
		return roundedGemm(h, f, ta, tb, alpha, a, b, beta, c)
	}
}

// jointHooked is a hooked backend that also has JointOps (hooked alone
// has not, so the suite's JointOps test skips on the other mutants).
type jointHooked struct{ *hooked }

func (h jointHooked) JointEnergies(s, p model.Mat, vars []int, e model.Mat) error {
	if h.jointEnergies != nil {
		return h.jointEnergies(s, p, vars, e)
	}
	return h.Backend.(model.JointOps).JointEnergies(s, p, vars, e)
}

func (h jointHooked) JointGradients(de model.Mat, vars []int, ds, dp model.Mat) error {
	if h.jointGradients != nil {
		return h.jointGradients(de, vars, ds, dp)
	}
	return h.Backend.(model.JointOps).JointGradients(de, vars, ds, dp)
}

func (h *hooked) Gemm(ta, tb bool, alpha float32, a, b model.Mat, beta float32, c model.Mat) error {
	if h.gemm != nil {
		return h.gemm(ta, tb, alpha, a, b, beta, c)
	}
	return h.Backend.Gemm(ta, tb, alpha, a, b, beta, c)
}

func (h *hooked) ColumnSums(dst model.Mat, alpha float32, src model.Mat, beta float32) error {
	if h.columnSums != nil {
		return h.columnSums(dst, alpha, src, beta)
	}
	return h.Backend.ColumnSums(dst, alpha, src, beta)
}

func (h *hooked) AddRowVector(m model.Mat, alpha float32, v model.Mat) error {
	if h.addRowVector != nil {
		return h.addRowVector(m, alpha, v)
	}
	return h.Backend.AddRowVector(m, alpha, v)
}

func (h *hooked) Activate(act model.Activation, m model.Mat) error {
	if h.activate != nil {
		return h.activate(act, m)
	}
	return h.Backend.Activate(act, m)
}

func (h *hooked) ActivationGrad(act model.Activation, g, out model.Mat) error {
	if h.actGrad != nil {
		return h.actGrad(act, g, out)
	}
	return h.Backend.ActivationGrad(act, g, out)
}

func (h *hooked) ArgminRows(e model.Mat, out model.Ints) error {
	if h.argminRows != nil {
		return h.argminRows(e, out)
	}
	return h.Backend.ArgminRows(e, out)
}

func (h *hooked) GatherRows(dst, src model.Mat, idx model.Ints) error {
	if h.gatherRows != nil {
		return h.gatherRows(dst, src, idx)
	}
	return h.Backend.GatherRows(dst, src, idx)
}

func (h *hooked) SGDStep(w, g model.Mat, lr, wd float32) error {
	if h.sgd != nil {
		return h.sgd(w, g, lr, wd)
	}
	return h.Backend.SGDStep(w, g, lr, wd)
}

func (h *hooked) MomentumStep(w, g, v model.Mat, lr, mu, wd float32) error {
	if h.momentum != nil {
		return h.momentum(w, g, v, lr, mu, wd)
	}
	return h.Backend.MomentumStep(w, g, v, lr, mu, wd)
}

func (h *hooked) AdamStep(w, g, m, v model.Mat, lr, b1, b2, eps, wd float32, t int) error {
	if h.adam != nil {
		return h.adam(w, g, m, v, lr, b1, b2, eps, wd, t)
	}
	return h.Backend.AdamStep(w, g, m, v, lr, b1, b2, eps, wd, t)
}

func (h *hooked) EnergyLoss(e model.Mat, labels model.Ints, l model.Loss, gs float32, stats model.Mat, argmin model.Ints) error {
	if h.energyLoss != nil {
		return h.energyLoss(e, labels, l, gs, stats, argmin)
	}
	return h.Backend.EnergyLoss(e, labels, l, gs, stats, argmin)
}

func (h *hooked) Free(x any) error {
	if h.free != nil {
		return h.free(x)
	}
	return h.Backend.Free(x)
}

func (h *hooked) Upload(dst model.Mat, src []float32) error {
	if h.upload != nil {
		return h.upload(dst, src)
	}
	return h.Backend.Upload(dst, src)
}

// get and put move data for the hooks; errors cannot happen on the valid
// operands the suite's numerical tests use, and a panic would show anyway.
func get(b model.Backend, m model.Mat) []float32 {
	x := make([]float32, m.Rows()*m.Cols())
	if err := b.Download(x, m); err != nil {
		panic(err)
	}
	return x
}

func put(b model.Backend, m model.Mat, x []float32) {
	if err := b.Upload(m, x); err != nil {
		panic(err)
	}
}

func getInts(b model.Backend, v model.Ints) []int32 {
	x := make([]int32, v.Len())
	if err := b.DownloadInts(x, v); err != nil {
		panic(err)
	}
	return x
}

// mapMat applies f to every element of m after op has run.
func mapMat(b model.Backend, m model.Mat, f func(i int, x float32) float32) {
	x := get(b, m)
	for i := range x {
		x[i] = f(i, x[i])
	}
	put(b, m, x)
}

type mutant struct {
	name string
	run  string // the -test.run pattern below TestMutantTarget that must fail
	hook func(h *hooked)
}

var mutants = []mutant{
	{"gemm-beta0-reads-C", "Gemm/m=7,n=1,k=33/", func(h *hooked) {
		h.gemm = func(ta, tb bool, alpha float32, a, b model.Mat, beta float32, c model.Mat) error {
			old := get(h.Backend, c)
			err := h.Backend.Gemm(ta, tb, alpha, a, b, beta, c)
			mapMat(h.Backend, c, func(i int, x float32) float32 { return x + beta*old[i] })
			return err
		}
	}},
	{"gemm-ignores-alpha", "Gemm/m=33,n=31,k=7/", func(h *hooked) {
		h.gemm = func(ta, tb bool, alpha float32, a, b model.Mat, beta float32, c model.Mat) error {
			return h.Backend.Gemm(ta, tb, 1, a, b, beta, c)
		}
	}},
	{"gemm-relative-error-1e-5", "Gemm/m=33,n=31,k=7/", func(h *hooked) {
		h.gemm = func(ta, tb bool, alpha float32, a, b model.Mat, beta float32, c model.Mat) error {
			err := h.Backend.Gemm(ta, tb, alpha, a, b, beta, c)
			mapMat(h.Backend, c, func(i int, x float32) float32 { return x * (1 + 1e-5) })
			return err
		}
	}},
	{"gemm-nondeterministic", "Gemm/m=1,n=1,k=1/", func(h *hooked) {
		calls := 0
		h.gemm = func(ta, tb bool, alpha float32, a, b model.Mat, beta float32, c model.Mat) error {
			err := h.Backend.Gemm(ta, tb, alpha, a, b, beta, c)
			calls++
			if calls%2 == 0 {
				mapMat(h.Backend, c, func(i int, x float32) float32 { return math.Nextafter32(x, float32(math.Inf(1))) })
			}
			return err
		}
	}},
	{"columnsums-ignores-beta", "ColumnSums/7x33/", func(h *hooked) {
		h.columnSums = func(dst model.Mat, alpha float32, src model.Mat, beta float32) error {
			return h.Backend.ColumnSums(dst, alpha, src, 0)
		}
	}},
	{"addrowvector-ignores-alpha", "AddRowVector/", func(h *hooked) {
		h.addRowVector = func(m model.Mat, alpha float32, v model.Mat) error { return h.Backend.AddRowVector(m, 1, v) }
	}},
	{"relu-grad-passes-at-zero", "Activation/relu/", func(h *hooked) {
		h.actGrad = func(act model.Activation, g, out model.Mat) error {
			y := get(h.Backend, out)
			mapMat(h.Backend, g, func(i int, x float32) float32 {
				if y[i] >= 0 {
					return x
				}
				return 0
			})
			return nil
		}
	}},
	{"tanh-approximate", "Activation/tanh/", func(h *hooked) {
		h.activate = func(act model.Activation, m model.Mat) error {
			err := h.Backend.Activate(act, m)
			mapMat(h.Backend, m, func(i int, x float32) float32 { return x * (1 - 1.0/4096) })
			return err
		}
	}},
	{"argmin-ties-highest", "ArgminRows/", func(h *hooked) {
		h.argminRows = func(e model.Mat, out model.Ints) error {
			x, k := get(h.Backend, e), e.Cols()
			am := make([]int32, e.Rows())
			for r := range am {
				for j := 1; j < k; j++ {
					if x[r*k+j] <= x[r*k+int(am[r])] {
						am[r] = int32(j)
					}
				}
			}
			return h.Backend.UploadInts(out, am)
		}
	}},
	{"gather-last-row-wrong", "Gather/", func(h *hooked) {
		h.gatherRows = func(dst, src model.Mat, idx model.Ints) error {
			err := h.Backend.GatherRows(dst, src, idx)
			n := dst.Rows() * dst.Cols()
			mapMat(h.Backend, dst, func(i int, x float32) float32 {
				if i == n-1 {
					return x + 1
				}
				return x
			})
			return err
		}
	}},
	{"sgd-ignores-decay", "Optimizers/sgd/", func(h *hooked) {
		h.sgd = func(w, g model.Mat, lr, wd float32) error { return h.Backend.SGDStep(w, g, lr, 0) }
	}},
	{"momentum-ignores-mu", "Optimizers/momentum/", func(h *hooked) {
		h.momentum = func(w, g, v model.Mat, lr, mu, wd float32) error { return h.Backend.MomentumStep(w, g, v, lr, 0.5, wd) }
	}},
	{"adam-no-bias-correction", "Optimizers/adam/", func(h *hooked) {
		h.adam = func(w, g, m, v model.Mat, lr, b1, b2, eps, wd float32, t int) error {
			return h.Backend.AdamStep(w, g, m, v, lr, b1, b2, eps, wd, 100000)
		}
	}},
	{"adam-decay-after-step", "Optimizers/adam/weightDecay=0.1/", func(h *hooked) {
		h.adam = func(w, g, m, v model.Mat, lr, b1, b2, eps, wd float32, t int) error {
			err := h.Backend.AdamStep(w, g, m, v, lr, b1, b2, eps, 0, t)
			mapMat(h.Backend, w, func(i int, x float32) float32 { return x - lr*wd*x })
			return err
		}
	}},
	{"energyloss-ignores-gradscale", "EnergyLoss/hinge/", func(h *hooked) {
		h.energyLoss = func(e model.Mat, lb model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints) error {
			return h.Backend.EnergyLoss(e, lb, l, 1, st, am)
		}
	}},
	{"energyloss-beta-1", "EnergyLoss/energy/", func(h *hooked) {
		h.energyLoss = func(e model.Mat, lb model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints) error {
			l.Beta = 1 // log Z wrong for every loss
			return h.Backend.EnergyLoss(e, lb, l, gs, st, am)
		}
	}},
	{"energyloss-margin-1", "EnergyLoss/square-square/", func(h *hooked) {
		h.energyLoss = func(e model.Mat, lb model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints) error {
			l.Margin = 1
			return h.Backend.EnergyLoss(e, lb, l, gs, st, am)
		}
	}},
	{"energyloss-delta-1", "EnergyLoss/lvq2/", func(h *hooked) {
		h.energyLoss = func(e model.Mat, lb model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints) error {
			l.Delta = 1
			return h.Backend.EnergyLoss(e, lb, l, gs, st, am)
		}
	}},
	{"energyloss-gamma-1", "EnergyLoss/square-exp/", func(h *hooked) {
		h.energyLoss = func(e model.Mat, lb model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints) error {
			l.Gamma = 1
			return h.Backend.EnergyLoss(e, lb, l, gs, st, am)
		}
	}},
	{"energyloss-gradient-1e-4", "EnergyLoss/nll/", func(h *hooked) {
		h.energyLoss = func(e model.Mat, lb model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints) error {
			err := h.Backend.EnergyLoss(e, lb, l, gs, st, am)
			mapMat(h.Backend, e, func(i int, x float32) float32 { return x * (1 + 1e-4) })
			return err
		}
	}},
	{"energyloss-ignored-logz-zero", "EnergyLoss/log/", func(h *hooked) {
		h.energyLoss = func(e model.Mat, lb model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints) error {
			err := h.Backend.EnergyLoss(e, lb, l, gs, st, am)
			labels := getInts(h.Backend, lb)
			mapMat(h.Backend, st, func(i int, x float32) float32 {
				if i%model.NumStats == model.StatLogZ && labels[i/model.NumStats] == model.IgnoreLabel {
					return 0
				}
				return x
			})
			return err
		}
	}},
	{"energyloss-nan-when-huge", "EnergyLoss/mee/huge/", func(h *hooked) {
		h.energyLoss = func(e model.Mat, lb model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints) error {
			err := h.Backend.EnergyLoss(e, lb, l, gs, st, am)
			mapMat(h.Backend, st, func(i int, x float32) float32 {
				if math.Abs(float64(x)) > 1e20 {
					return float32(math.NaN())
				}
				return x
			})
			return err
		}
	}},
	{"energyloss-k1-offending-zero", "EnergyLoss/energy/", func(h *hooked) {
		h.energyLoss = func(e model.Mat, lb model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints) error {
			k := e.Cols()
			err := h.Backend.EnergyLoss(e, lb, l, gs, st, am)
			mapMat(h.Backend, st, func(i int, x float32) float32 {
				if k == 1 && i%model.NumStats == model.StatOffending {
					return 0
				}
				return x
			})
			return err
		}
	}},
	{"energyloss-argmin-ties-highest", "EnergyLoss/nll/", func(h *hooked) {
		h.energyLoss = func(e model.Mat, lb model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints) error {
			x, k := get(h.Backend, e), e.Cols()
			err := h.Backend.EnergyLoss(e, lb, l, gs, st, am)
			a := getInts(h.Backend, am)
			for r := range a {
				for j := range k {
					if x[r*k+j] == x[r*k+int(a[r])] {
						a[r] = int32(j)
					}
				}
			}
			if err := h.Backend.UploadInts(am, a); err != nil {
				panic(err)
			}
			return err
		}
	}},
	// The most offending answer tied: the gradient goes to the highest of
	// the tied indices instead of the lowest.
	{"energyloss-offending-ties-highest", "EnergyLoss/hinge/", func(h *hooked) {
		h.energyLoss = func(e model.Mat, lb model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints) error {
			x, k := get(h.Backend, e), e.Cols()
			labels := getInts(h.Backend, lb)
			err := h.Backend.EnergyLoss(e, lb, l, gs, st, am)
			g := get(h.Backend, e)
			for r, y := range labels {
				if y < 0 {
					continue
				}
				lo, hi := -1, -1
				for j := range k {
					if j == int(y) {
						continue
					}
					if lo < 0 || x[r*k+j] < x[r*k+lo] {
						lo, hi = j, j
					} else if x[r*k+j] == x[r*k+lo] {
						hi = j
					}
				}
				if lo >= 0 && hi != lo {
					g[r*k+hi], g[r*k+lo] = g[r*k+lo], g[r*k+hi]
				}
			}
			put(h.Backend, e, g)
			return err
		}
	}},
	{"energyloss-writes-before-label-check", "Errors/bad-label/nll/", func(h *hooked) {
		h.energyLoss = func(e model.Mat, lb model.Ints, l model.Loss, gs float32, st model.Mat, am model.Ints) error {
			err := h.Backend.EnergyLoss(e, lb, l, gs, st, am)
			if err != nil {
				put(h.Backend, st, make([]float32, st.Rows()*st.Cols()))
			}
			return err
		}
	}},
	{"joint-energies-drop-last-pair", "JointOps/vars=\\[2_2_2_2_2\\]/B=7/pairwise=true", func(h *hooked) {
		h.jointEnergies = func(s, p model.Mat, vars []int, e model.Mat) error {
			if p == nil || p.Cols() < 1 {
				return h.Backend.(model.JointOps).JointEnergies(s, p, vars, e)
			}
			// P with its last entry (pair (3,4), values (1,1)) zeroed.
			q := get(h.Backend, p)
			q[len(q)-1] = 0
			tmp, err := h.Backend.Alloc(1, len(q))
			if err != nil {
				return err
			}
			defer h.Backend.Free(tmp)
			put(h.Backend, tmp, q)
			return h.Backend.(model.JointOps).JointEnergies(s, tmp, vars, e)
		}
	}},
	{"joint-gradients-skip-last-row", "JointOps/vars=\\[7_5\\]/B=33/pairwise=false", func(h *hooked) {
		h.jointGradients = func(de model.Mat, vars []int, ds, dp model.Mat) error {
			old := get(h.Backend, ds)
			err := h.Backend.(model.JointOps).JointGradients(de, vars, ds, dp)
			n := ds.Cols()
			mapMat(h.Backend, ds, func(i int, x float32) float32 {
				if i >= len(old)-n {
					return old[i]
				}
				return x
			})
			return err
		}
	}},
	{"joint-dp-sums-one-row", "JointOps/vars=\\[3_1_4\\]/B=33/pairwise=true", func(h *hooked) {
		h.jointGradients = func(de model.Mat, vars []int, ds, dp model.Mat) error {
			if dp == nil {
				return h.Backend.(model.JointOps).JointGradients(de, vars, ds, dp)
			}
			// dP from the first row of dE only.
			first, err := h.Backend.Alloc(1, de.Cols())
			if err != nil {
				return err
			}
			defer h.Backend.Free(first)
			put(h.Backend, first, get(h.Backend, de)[:de.Cols()])
			scratch, err := h.Backend.Alloc(1, ds.Cols())
			if err != nil {
				return err
			}
			defer h.Backend.Free(scratch)
			if err := h.Backend.(model.JointOps).JointGradients(first, vars, scratch, dp); err != nil {
				return err
			}
			return h.Backend.(model.JointOps).JointGradients(de, vars, ds, nil)
		}
	}},
	{"joint-writes-before-shape-check", "JointOps/errors", func(h *hooked) {
		h.jointEnergies = func(s, p model.Mat, vars []int, e model.Mat) error {
			err := h.Backend.(model.JointOps).JointEnergies(s, p, vars, e)
			if err != nil {
				if _, ok := e.(*cpu.Matrix); ok {
					put(h.Backend, e, make([]float32, e.Rows()*e.Cols()))
				}
			}
			return err
		}
	}},
	{"joint-nondeterministic", "JointOps/vars=\\[2_3\\]/B=1/pairwise=false", func(h *hooked) {
		calls := 0
		h.jointEnergies = func(s, p model.Mat, vars []int, e model.Mat) error {
			err := h.Backend.(model.JointOps).JointEnergies(s, p, vars, e)
			calls++
			if calls%2 == 0 {
				mapMat(h.Backend, e, func(i int, x float32) float32 { return math.Nextafter32(x, float32(math.Inf(1))) })
			}
			return err
		}
	}},
	{"free-does-nothing", "Errors/use-after-free", func(h *hooked) {
		h.free = func(x any) error { return nil }
	}},
	{"upload-pads-short-data", "Errors/shapes", func(h *hooked) {
		h.upload = func(dst model.Mat, src []float32) error {
			n := dst.Rows() * dst.Cols()
			if len(src) != n {
				src = append(src, make([]float32, n)...)[:n]
			}
			return h.Backend.Upload(dst, src)
		}
	}},
	{"tf32-truncates", "GemmPrecision/tf32/m=33,n=31,k=7/", func(h *hooked) {
		mutatePrecision(h, model.TF32, func(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ 0x1fff) })
	}},
	{"tf32-ties-to-even", "GemmPrecision/tf32/m=31,n=33,k=257/", func(h *hooked) {
		mutatePrecision(h, model.TF32, func(x float32) float32 {
			u := math.Float32bits(x)
			return math.Float32frombits((u + 0xfff + (u>>13)&1) &^ 0x1fff)
		})
	}},
	{"bf16-ties-away", "GemmPrecision/bf16/m=31,n=33,k=257/", func(h *hooked) {
		mutatePrecision(h, model.BF16, func(x float32) float32 { return math.Float32frombits((math.Float32bits(x) + 0x8000) &^ 0xffff) })
	}},
	{"bf16-as-tf32", "GemmPrecision/bf16/m=33,n=31,k=7/", func(h *hooked) { mutatePrecision(h, model.BF16, model.RoundTF32) }},
	{"tf32-not-rounded", "GemmPrecision/tf32/m=33,n=31,k=7/", func(h *hooked) {
		mutatePrecision(h, model.TF32, func(x float32) float32 { return x })
	}},
	{"3xtf32-as-tf32", "GemmPrecision/3xtf32/m=33,n=31,k=7/", func(h *hooked) { mutatePrecision(h, model.TF32x3, model.RoundTF32) }},
	{"3xtf32-drops-a-cross-term", "GemmPrecision/3xtf32/m=33,n=31,k=7/", func(h *hooked) {
		h.gemmPrecision = func(q model.Precision, ta, tb bool, alpha float32, a, b model.Mat, beta float32, c model.Mat) error {
			if q != model.TF32x3 {
				return h.Backend.(model.PrecisionOps).GemmPrecision(q, ta, tb, alpha, a, b, beta, c)
			}
			// hi*hi + hi*lo: A's remainder never meets B.
			hiA := func(x float32) float32 { return model.RoundTF32(x) }
			ra := get(h.Backend, a)
			for i := range ra {
				ra[i] = hiA(ra[i])
			}
			ma, _ := h.Backend.Alloc(a.Rows(), a.Cols())
			defer h.Backend.Free(ma)
			put(h.Backend, ma, ra)
			return h.Backend.Gemm(ta, tb, alpha, ma, b, beta, c)
		}
	}},
	{"dense-bias-not-scaled-by-alpha", "DenseOps/fp32/B=7,in=33,out=5/tanh/alpha=-1", func(h *hooked) {
		h.denseForward = func(p model.Precision, x, w, b model.Mat, alpha float32, act model.Activation, z model.Mat) error {
			if err := model.GemmAt(h.Backend, p, false, true, alpha, x, w, 0, z); err != nil {
				return err
			}
			if b != nil {
				if err := h.Backend.AddRowVector(z, 1, b); err != nil {
					return err
				}
			}
			if act == model.Linear {
				return nil
			}
			return h.Backend.Activate(act, z)
		}
	}},
	{"dense-forward-skips-activation", "DenseOps/fp32/B=33,in=31,out=65/relu/alpha=1", func(h *hooked) {
		h.denseForward = func(p model.Precision, x, w, b model.Mat, alpha float32, act model.Activation, z model.Mat) error {
			return model.DenseUnfused{B: h.Backend}.DenseForward(p, x, w, b, alpha, model.Linear, z)
		}
	}},
	{"dense-derivative-of-the-product", "DenseOps/fp32/B=7,in=33,out=5/tanh/alpha=1", func(h *hooked) {
		// act' taken from dX itself rather than from Y.
		h.denseBwdData = func(p model.Precision, dz, w model.Mat, alpha float32, act model.Activation, y, dx model.Mat) error {
			if err := model.GemmAt(h.Backend, p, false, false, alpha, dz, w, 0, dx); err != nil || act == model.Linear {
				return err
			}
			return h.Backend.ActivationGrad(act, dx, dx)
		}
	}},
	{"dense-db-misses-last-row", "DenseOps/fp32/B=33,in=31,out=65/relu/alpha=1", func(h *hooked) {
		h.denseGradW = func(p model.Precision, dz, x model.Mat, alpha float32, dw, db model.Mat) error {
			if err := model.GemmAt(h.Backend, p, true, false, alpha, dz, x, 0, dw); err != nil || db == nil {
				return err
			}
			d := get(h.Backend, dz)
			cols := dz.Cols()
			part, _ := h.Backend.Alloc(dz.Rows()-1, cols)
			defer h.Backend.Free(part)
			put(h.Backend, part, d[:len(d)-cols])
			return h.Backend.ColumnSums(db, alpha, part, 0)
		}
	}},
	{"dense-ignores-precision", "DenseOps/bf16/B=33,in=31,out=65/", func(h *hooked) {
		h.denseForward = func(p model.Precision, x, w, b model.Mat, alpha float32, act model.Activation, z model.Mat) error {
			return h.Backend.(model.DenseOps).DenseForward(model.FP32, x, w, b, alpha, act, z)
		}
	}},
	{"dense-writes-before-shape-check", "DenseOps/errors", func(h *hooked) {
		h.denseForward = func(p model.Precision, x, w, b model.Mat, alpha float32, act model.Activation, z model.Mat) error {
			put(h.Backend, z, make([]float32, z.Rows()*z.Cols()))
			return h.Backend.(model.DenseOps).DenseForward(p, x, w, b, alpha, act, z)
		}
	}},
}

func TestSuiteCatchesMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the mutation tests start a child process per mutant")
	}
	if os.Getenv(mutantEnv) != "" {
		t.Skip("in a mutant's child process")
	}
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutantTarget$/"+m.run, "-test.count=1")
			cmd.Env = append(os.Environ(), mutantEnv+"="+m.name)
			out, err := cmd.CombinedOutput()
			switch {
			case err == nil:
				t.Errorf("the suite passed cpu with the bug %q injected (run %s)", m.name, m.run)
			case strings.Contains(string(out), "panic:") && !strings.Contains(string(out), "panicked"):
				t.Errorf("the suite crashed instead of failing on %q:\n%s", m.name, out)
			case !strings.Contains(string(out), "--- FAIL: TestMutantTarget/"):
				t.Errorf("mutant %q: the child process failed without a test failure:\n%s", m.name, out)
			}
		})
	}
}

// TestMutantTarget runs the suite on the mutant named by the environment;
// only TestSuiteCatchesMutants starts it so.
func TestMutantTarget(t *testing.T) {
	name := os.Getenv(mutantEnv)
	if name == "" {
		t.Skip("runs only in the child processes of TestSuiteCatchesMutants")
	}
	for _, m := range mutants {
		if m.name == name {
			backendtest.TestBackend(t, func(t *testing.T) model.Backend {
				h := &hooked{Backend: cpu.New()}
				m.hook(h)
				if h.jointEnergies != nil || h.jointGradients != nil {
					return jointHooked{h}
				}
				if h.gemmPrecision != nil || h.denseForward != nil || h.denseBwdData != nil || h.denseGradW != nil {
					return extHooked{h}
				}
				return h
			})
			return
		}
	}
	t.Fatalf("no mutant %q", name)
}
