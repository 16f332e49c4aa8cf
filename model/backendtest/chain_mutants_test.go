package backendtest_test

// Mutation tests of the chain suite (TestChainOps): each mutant is cpu's
// ChainOps with one plausible bug injected by a wrapper that transforms
// the inputs or the outputs of the correct operation, and the part of the
// suite that should notice must fail. As in mutants_test.go, each mutant
// runs in a child process of this test binary.

import (
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendtest"
)

const chainMutantEnv = "BACKENDTEST_CHAIN_MUTANT"

// chainHooked is cpu with ChainOps whose methods run a hook when set.
type chainHooked struct {
	*cpu.Backend
	loss      func(c model.Chain, lb model.Ints, l model.Loss, gs float32, st model.Mat, p model.Ints, g model.ChainGrads) error
	marginals func(c model.Chain, beta float64, z, m, p model.Mat) error
	viterbi   func(c model.Chain, p model.Ints, e model.Mat) error
}

func (h *chainHooked) ChainLoss(c model.Chain, lb model.Ints, l model.Loss, gs float32, st model.Mat, p model.Ints, g model.ChainGrads) error {
	if h.loss != nil {
		return h.loss(c, lb, l, gs, st, p, g)
	}
	return h.Backend.ChainLoss(c, lb, l, gs, st, p, g)
}

func (h *chainHooked) ChainMarginals(c model.Chain, beta float64, z, m, p model.Mat) error {
	if h.marginals != nil {
		return h.marginals(c, beta, z, m, p)
	}
	return h.Backend.ChainMarginals(c, beta, z, m, p)
}

func (h *chainHooked) ChainViterbi(c model.Chain, p model.Ints, e model.Mat) error {
	if h.viterbi != nil {
		return h.viterbi(c, p, e)
	}
	return h.Backend.ChainViterbi(c, p, e)
}

// clone copies a matrix of b into a new one (freed by the caller).
func clone(b model.Backend, m model.Mat) model.Mat {
	c, err := b.Alloc(m.Rows(), m.Cols())
	if err != nil {
		panic(err)
	}
	put(b, c, get(b, m))
	return c
}

func cloneInts(b model.Backend, v model.Ints, x []int32) model.Ints {
	c, err := b.AllocInts(v.Len())
	if err != nil {
		panic(err)
	}
	if err := b.UploadInts(c, x); err != nil {
		panic(err)
	}
	return c
}

// reversed is c with the states renumbered k -> K-1-k (its own copies),
// which turns ties to the lowest state into ties to the highest.
func reversed(b model.Backend, c model.Chain) model.Chain {
	k := c.U.Cols()
	flip := func(m model.Mat, both bool) model.Mat {
		x := get(b, m)
		y := make([]float32, len(x))
		rows := m.Rows()
		for r := range rows {
			for j := range k {
				rr := r
				if both {
					rr = k - 1 - r
				}
				y[rr*k+(k-1-j)] = x[r*k+j]
			}
		}
		n := clone(b, m)
		put(b, n, y)
		return n
	}
	return model.Chain{U: flip(c.U, false), P: flip(c.P, true), Start: flip(c.Start, false), Final: flip(c.Final, false), Offsets: c.Offsets}
}

type chainMutant struct {
	name string
	run  string // the -test.run pattern below TestChainMutantTarget that must fail
	hook func(h *chainHooked)
}

var chainMutants = []chainMutant{
	// The bug the issue warns about: E_I taken as the second-best sequence
	// even when the best one is not Y_i.
	{"offending-always-second-best", "K=3/T=\\[7\\]/hinge", func(h *chainHooked) {
		h.loss = func(c model.Chain, lb model.Ints, l model.Loss, gs float32, st model.Mat, p model.Ints, g model.ChainGrads) error {
			vit, err := h.Backend.AllocInts(lb.Len())
			if err != nil {
				return err
			}
			e, _ := h.Backend.Alloc(c.Offsets.Len()-1, 1)
			if err := h.Backend.ChainViterbi(c, vit, e); err != nil {
				return err
			}
			labels, best := getInts(h.Backend, lb), getInts(h.Backend, vit)
			for i, y := range labels {
				if y == model.IgnoreLabel || y < 0 || int(y) >= c.U.Cols() {
					best[i] = y
				}
			}
			second := c
			second.U = clone(h.Backend, c.U)
			st2, _ := h.Backend.Alloc(st.Rows(), st.Cols())
			p2 := cloneInts(h.Backend, p, make([]int32, p.Len()))
			if err := h.Backend.ChainLoss(second, cloneInts(h.Backend, lb, best), l, gs, st2, p2, model.ChainGrads{}); err != nil {
				return err
			}
			if err := h.Backend.ChainLoss(c, lb, l, gs, st, p, g); err != nil {
				return err
			}
			s, s2 := get(h.Backend, st), get(h.Backend, st2)
			for i := 0; i < st.Rows(); i++ {
				s[i*model.NumStats+model.StatOffending] = s2[i*model.NumStats+model.StatOffending]
			}
			put(h.Backend, st, s)
			return nil
		}
	}},
	{"viterbi-ties-highest", "K=3/T=\\[7_7_2\\]/ties/viterbi", func(h *chainHooked) {
		h.viterbi = func(c model.Chain, p model.Ints, e model.Mat) error {
			if err := h.Backend.ChainViterbi(reversed(h.Backend, c), p, e); err != nil {
				return err
			}
			x, k := getInts(h.Backend, p), int32(c.U.Cols())
			for i, v := range x {
				if v >= 0 {
					x[i] = k - 1 - v
				}
			}
			return h.Backend.UploadInts(p, x)
		}
	}},
	{"marginals-without-final", "K=5/T=\\[4_1_2\\]/pad=0\\+1/marginals", func(h *chainHooked) {
		h.marginals = func(c model.Chain, beta float64, z, m, p model.Mat) error {
			c.Final = clone(h.Backend, c.Final)
			put(h.Backend, c.Final, make([]float32, c.Final.Cols()))
			return h.Backend.ChainMarginals(c, beta, z, m, p)
		}
	}},
	{"loss-beta-1", "K=2/T=\\[2_7_1\\]/nll", func(h *chainHooked) {
		h.loss = func(c model.Chain, lb model.Ints, l model.Loss, gs float32, st model.Mat, p model.Ints, g model.ChainGrads) error {
			l.Beta = 1
			return h.Backend.ChainLoss(c, lb, l, gs, st, p, g)
		}
	}},
	{"start-final-swapped", "K=3/T=\\[7\\]/energy", func(h *chainHooked) {
		h.loss = func(c model.Chain, lb model.Ints, l model.Loss, gs float32, st model.Mat, p model.Ints, g model.ChainGrads) error {
			c.Start, c.Final = c.Final, c.Start
			return h.Backend.ChainLoss(c, lb, l, gs, st, p, g)
		}
	}},
	{"pair-misses-last-sequence", "K=5/T=\\[4_1_2\\]/pad=0\\+1/marginals", func(h *chainHooked) {
		h.marginals = func(c model.Chain, beta float64, z, m, p model.Mat) error {
			if err := h.Backend.ChainMarginals(c, beta, z, m, p); err != nil || p == nil {
				return err
			}
			off := getInts(h.Backend, c.Offsets)
			short := c
			short.Offsets = cloneInts(h.Backend, c.Offsets, off[:len(off)-1])
			z2, _ := h.Backend.Alloc(len(off)-2, 1)
			m2 := clone(h.Backend, m)
			return h.Backend.ChainMarginals(short, beta, z2, m2, p)
		}
	}},
	{"factor-gradients-unscaled", "K=3/T=\\[7\\]/mee", func(h *chainHooked) {
		h.loss = func(c model.Chain, lb model.Ints, l model.Loss, gs float32, st model.Mat, p model.Ints, g model.ChainGrads) error {
			if g.P == nil {
				return h.Backend.ChainLoss(c, lb, l, gs, st, p, g)
			}
			u := clone(h.Backend, c.U)
			if err := h.Backend.ChainLoss(c, lb, l, gs, st, p, model.ChainGrads{}); err != nil {
				return err
			}
			c.U = u
			st2, _ := h.Backend.Alloc(st.Rows(), st.Cols())
			return h.Backend.ChainLoss(c, lb, l, 1, st2, cloneInts(h.Backend, p, make([]int32, p.Len())), g)
		}
	}},
	{"padding-gradient-left", "K=3/T=\\[2_0_1_7_3\\]/pad=2\\+3/log", func(h *chainHooked) {
		h.loss = func(c model.Chain, lb model.Ints, l model.Loss, gs float32, st model.Mat, p model.Ints, g model.ChainGrads) error {
			before := get(h.Backend, c.U)
			err := h.Backend.ChainLoss(c, lb, l, gs, st, p, g)
			off := getInts(h.Backend, c.Offsets)
			k := c.U.Cols()
			mapMat(h.Backend, c.U, func(i int, x float32) float32 {
				if r := int32(i / k); r < off[0] || r >= off[len(off)-1] {
					return before[i]
				}
				return x
			})
			return err
		}
	}},
	{"ignored-sequence-gets-gradient", "K=2/T=\\[2_7_1\\]/square-square", func(h *chainHooked) {
		h.loss = func(c model.Chain, lb model.Ints, l model.Loss, gs float32, st model.Mat, p model.Ints, g model.ChainGrads) error {
			// The ignored sequence labelled 0 everywhere instead.
			x := getInts(h.Backend, lb)
			for i, v := range x {
				if v == model.IgnoreLabel {
					x[i] = 0
				}
			}
			return h.Backend.ChainLoss(c, cloneInts(h.Backend, lb, x), l, gs, st, p, g)
		}
	}},
	{"gradient-relative-error-1e-4", "K=5/T=\\[3_3\\]/ties/nll", func(h *chainHooked) {
		h.loss = func(c model.Chain, lb model.Ints, l model.Loss, gs float32, st model.Mat, p model.Ints, g model.ChainGrads) error {
			err := h.Backend.ChainLoss(c, lb, l, gs, st, p, g)
			mapMat(h.Backend, c.U, func(i int, x float32) float32 { return x * (1 + 1e-4) })
			return err
		}
	}},
	{"nondeterministic-marginals", "K=2/T=\\[1\\]/marginals", func(h *chainHooked) {
		calls := 0
		h.marginals = func(c model.Chain, beta float64, z, m, p model.Mat) error {
			err := h.Backend.ChainMarginals(c, beta, z, m, p)
			if calls++; calls%2 == 0 {
				mapMat(h.Backend, m, func(i int, x float32) float32 { return math.Nextafter32(x, 2) })
			}
			return err
		}
	}},
	{"writes-before-check", "errors", func(h *chainHooked) {
		h.loss = func(c model.Chain, lb model.Ints, l model.Loss, gs float32, st model.Mat, p model.Ints, g model.ChainGrads) error {
			err := h.Backend.ChainLoss(c, lb, l, gs, st, p, g)
			if err != nil {
				if _, ok := st.(*cpu.Matrix); ok && st.Rows()*st.Cols() > 0 {
					put(h.Backend, st, make([]float32, st.Rows()*st.Cols()))
				}
			}
			return err
		}
	}},
	// Large K, where only identities check: the Viterbi path replaced by
	// the greedy per-position argmin of U (with its true energy).
	{"viterbi-greedy", "large/K=33", func(h *chainHooked) {
		h.viterbi = func(c model.Chain, p model.Ints, e model.Mat) error {
			if err := h.Backend.ChainViterbi(c, p, e); err != nil {
				return err
			}
			u, k := get(h.Backend, c.U), c.U.Cols()
			x := getInts(h.Backend, p)
			for r, v := range x {
				if v >= 0 {
					row := u[r*k : (r+1)*k]
					x[r] = int32(slices.Index(row, slices.Min(row)))
				}
			}
			return h.Backend.UploadInts(p, x)
		}
	}},
	{"large-offending-not-second", "large/K=31", func(h *chainHooked) {
		// With Y_i = the Viterbi path, the offending sequence taken as
		// Y_i with its first position changed to the next state.
		h.loss = func(c model.Chain, lb model.Ints, l model.Loss, gs float32, st model.Mat, p model.Ints, g model.ChainGrads) error {
			if err := h.Backend.ChainLoss(c, lb, l, gs, st, p, g); err != nil || l.Kind != model.Hinge {
				return err
			}
			off, labels, k := getInts(h.Backend, c.Offsets), getInts(h.Backend, lb), c.U.Cols()
			du := get(h.Backend, c.U)
			lo, hi := int(off[0]), int(off[1])
			for t := lo; t < hi; t++ {
				row := du[t*k : (t+1)*k]
				clear(row)
			}
			row := du[lo*k : (lo+1)*k]
			row[labels[lo]] += gs
			row[(int(labels[lo])+1)%k] -= gs
			put(h.Backend, c.U, du)
			return nil
		}
	}},
}

func TestChainSuiteCatchesMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the mutation tests start a child process per mutant")
	}
	if os.Getenv(chainMutantEnv) != "" || os.Getenv(mutantEnv) != "" {
		t.Skip("in a mutant's child process")
	}
	for _, m := range chainMutants {
		t.Run(m.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestChainMutantTarget$/"+m.run, "-test.count=1")
			cmd.Env = append(os.Environ(), chainMutantEnv+"="+m.name)
			out, err := cmd.CombinedOutput()
			switch {
			case err == nil:
				t.Errorf("the chain suite passed cpu with the bug %q injected (run %s)", m.name, m.run)
			case strings.Contains(string(out), "panic:") && !strings.Contains(string(out), "panicked"):
				t.Errorf("the chain suite crashed instead of failing on %q:\n%s", m.name, out)
			case !strings.Contains(string(out), "--- FAIL: TestChainMutantTarget/"):
				t.Errorf("mutant %q: the child process failed without a test failure:\n%s", m.name, out)
			}
		})
	}
}

// TestChainMutantTarget runs the chain suite on the mutant named by the
// environment; only TestChainSuiteCatchesMutants starts it so.
func TestChainMutantTarget(t *testing.T) {
	name := os.Getenv(chainMutantEnv)
	if name == "" {
		t.Skip("runs only in the child processes of TestChainSuiteCatchesMutants")
	}
	for _, m := range chainMutants {
		if m.name == name {
			backendtest.TestChainOps(t, func(t *testing.T) model.Backend {
				h := &chainHooked{Backend: cpu.New()}
				m.hook(h)
				return h
			})
			return
		}
	}
	t.Fatalf("no chain mutant %q", name)
}
