package backendtest_test

// Mutation tests of TestEnergyHead and TestEmbedding, as mutants_test.go
// does for the rest of the suite: cpu's energy head or embedding with one
// plausible bug injected, run in a child process, which must fail with a
// test failure.

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

const headMutantEnv = "BACKENDTEST_HEAD_MUTANT"

type headFunc func(h, w, bias model.Mat, labels model.Ints, l model.Loss, stats model.Mat, argmin model.Ints) error
type headGradFunc func(h, w, bias model.Mat, labels model.Ints, l model.Loss, gs float32, stats model.Mat, argmin model.Ints, dh, dw, db model.Mat) error

// headHooked is cpu with hooks on its EnergyHeadOps and EmbeddingOps.
type headHooked struct {
	model.Backend
	head      headFunc
	headGrad  headGradFunc
	embed     func(table, ids, out model.Mat) error
	embedGrad func(dout, ids, dtable model.Mat) error
	sampled   func(kind model.SampledKind, h, w, bias model.Mat, labels, samples model.Ints, logQ model.Mat, beta float64, gs float32, stats, dh, dw, db model.Mat) error
}

func (h *headHooked) sops() model.SampledOps { return h.Backend.(model.SampledOps) }

func (h *headHooked) SampledHead(kind model.SampledKind, hh, w, bias model.Mat, labels, samples model.Ints, logQ model.Mat, beta float64, gs float32, stats, dh, dw, db model.Mat) error {
	if h.sampled != nil {
		return h.sampled(kind, hh, w, bias, labels, samples, logQ, beta, gs, stats, dh, dw, db)
	}
	return h.sops().SampledHead(kind, hh, w, bias, labels, samples, logQ, beta, gs, stats, dh, dw, db)
}

func (h *headHooked) eops() model.EmbeddingOps { return h.Backend.(model.EmbeddingOps) }

func (h *headHooked) EmbedMean(table, ids, out model.Mat) error {
	if h.embed != nil {
		return h.embed(table, ids, out)
	}
	return h.eops().EmbedMean(table, ids, out)
}

func (h *headHooked) EmbedMeanGrad(dout, ids, dtable model.Mat) error {
	if h.embedGrad != nil {
		return h.embedGrad(dout, ids, dtable)
	}
	return h.eops().EmbedMeanGrad(dout, ids, dtable)
}

func (h *headHooked) ops() model.EnergyHeadOps { return h.Backend.(model.EnergyHeadOps) }

func (h *headHooked) EnergyHead(hh, w, bias model.Mat, labels model.Ints, l model.Loss, stats model.Mat, argmin model.Ints) error {
	if h.head != nil {
		return h.head(hh, w, bias, labels, l, stats, argmin)
	}
	return h.ops().EnergyHead(hh, w, bias, labels, l, stats, argmin)
}

func (h *headHooked) EnergyHeadGrad(hh, w, bias model.Mat, labels model.Ints, l model.Loss, gs float32, stats model.Mat, argmin model.Ints, dh, dw, db model.Mat) error {
	if h.headGrad != nil {
		return h.headGrad(hh, w, bias, labels, l, gs, stats, argmin, dh, dw, db)
	}
	return h.ops().EnergyHeadGrad(hh, w, bias, labels, l, gs, stats, argmin, dh, dw, db)
}

// both applies the same input mutation to both methods.
func (h *headHooked) both(f func(l *model.Loss, gs *float32, bias *model.Mat, labels *model.Ints)) {
	h.head = func(hh, w, bias model.Mat, labels model.Ints, l model.Loss, stats model.Mat, argmin model.Ints) error {
		var gs float32
		f(&l, &gs, &bias, &labels)
		return h.ops().EnergyHead(hh, w, bias, labels, l, stats, argmin)
	}
	h.headGrad = func(hh, w, bias model.Mat, labels model.Ints, l model.Loss, gs float32, stats model.Mat, argmin model.Ints, dh, dw, db model.Mat) error {
		f(&l, &gs, &bias, &labels)
		return h.ops().EnergyHeadGrad(hh, w, bias, labels, l, gs, stats, argmin, dh, dw, db)
	}
}

// after runs EnergyHeadGrad, then f on its outputs.
func (h *headHooked) after(f func(hh, w, bias model.Mat, labels model.Ints, stats model.Mat, argmin model.Ints, dh, dw, db model.Mat)) {
	h.headGrad = func(hh, w, bias model.Mat, labels model.Ints, l model.Loss, gs float32, stats model.Mat, argmin model.Ints, dh, dw, db model.Mat) error {
		err := h.ops().EnergyHeadGrad(hh, w, bias, labels, l, gs, stats, argmin, dh, dw, db)
		if err == nil {
			f(hh, w, bias, labels, stats, argmin, dh, dw, db)
		}
		return err
	}
}

// energiesOf computes -(h w^T + bias) on the inner backend.
func energiesOf(b model.Backend, hh, w, bias model.Mat) []float32 {
	e, err := b.Alloc(hh.Rows(), w.Rows())
	if err != nil {
		panic(err)
	}
	defer b.Free(e)
	if err := b.Gemm(false, true, -1, hh, w, 0, e); err != nil {
		panic(err)
	}
	if err := b.AddRowVector(e, -1, bias); err != nil {
		panic(err)
	}
	return get(b, e)
}

type headMutant struct {
	name string
	run  string // the -test.run pattern below TestHeadMutantTarget/<suite> that must fail
	hook func(h *headHooked)
}

// The suites TestHeadMutantTarget runs: a mutant's run pattern starts with
// one of their names.
var headSuites = map[string]func(*testing.T, func(*testing.T) model.Backend){
	"head":    backendtest.TestEnergyHead,
	"embed":   backendtest.TestEmbedding,
	"sampled": backendtest.TestSampled,
}

var headMutants = []headMutant{
	{"head-ignores-bias", "head/energy/B=33,D=17,K=31$", func(h *headHooked) {
		h.both(func(_ *model.Loss, _ *float32, bias *model.Mat, _ *model.Ints) {
			z, err := h.Backend.Alloc(1, (*bias).Cols())
			if err != nil {
				panic(err)
			}
			put(h.Backend, z, make([]float32, (*bias).Cols()))
			*bias = z
		})
	}},
	{"head-ignores-gradscale", "head/log/B=130,D=3,K=1000$", func(h *headHooked) {
		h.headGrad = func(hh, w, bias model.Mat, labels model.Ints, l model.Loss, gs float32, stats model.Mat, argmin model.Ints, dh, dw, db model.Mat) error {
			return h.ops().EnergyHeadGrad(hh, w, bias, labels, l, 1, stats, argmin, dh, dw, db)
		}
	}},
	{"head-forward-beta-1", "head/nll/B=1,D=7,K=31$", func(h *headHooked) {
		h.head = func(hh, w, bias model.Mat, labels model.Ints, l model.Loss, stats model.Mat, argmin model.Ints) error {
			l.Beta = 1
			return h.ops().EnergyHead(hh, w, bias, labels, l, stats, argmin)
		}
	}},
	{"head-ignored-rows-labelled-0", "head/nll/B=33,D=17,K=31$", func(h *headHooked) {
		h.both(func(_ *model.Loss, _ *float32, _ *model.Mat, labels *model.Ints) {
			ls := getInts(h.Backend, *labels)
			for i, y := range ls {
				if y == model.IgnoreLabel {
					ls[i] = 0
				}
			}
			v, err := h.Backend.AllocInts(len(ls))
			if err != nil {
				panic(err)
			}
			if err := h.Backend.UploadInts(v, ls); err != nil {
				panic(err)
			}
			*labels = v
		})
	}},
	// The last answer's row of dw left unwritten (an off-by-one at the
	// edge of the last, partial tile).
	{"head-dw-last-answer-unwritten", "head/nll/B=7,D=65,K=1000$", func(h *headHooked) {
		h.after(func(_, _, _ model.Mat, _ model.Ints, _ model.Mat, _ model.Ints, _, dw, _ model.Mat) {
			n := dw.Rows() * dw.Cols()
			mapMat(h.Backend, dw, func(i int, x float32) float32 {
				if i >= n-dw.Cols() {
					return 0
				}
				return x
			})
		})
	}},
	// db = +colsums(dE): the sign of E = -(scores) forgotten.
	{"head-db-sign", "head/mee/B=130,D=3,K=1000$", func(h *headHooked) {
		h.after(func(_, _, _ model.Mat, _ model.Ints, _ model.Mat, _ model.Ints, _, _, db model.Mat) {
			mapMat(h.Backend, db, func(_ int, x float32) float32 { return -x })
		})
	}},
	{"head-dh-relative-error-1e-4", "head/nll/B=33,D=17,K=31$", func(h *headHooked) {
		h.after(func(_, _, _ model.Mat, _ model.Ints, _ model.Mat, _ model.Ints, dh, _, _ model.Mat) {
			if dh != nil {
				mapMat(h.Backend, dh, func(_ int, x float32) float32 { return x * (1 + 1e-4) })
			}
		})
	}},
	{"head-logz-relative-error-1e-5", "head/square-exp/B=130,D=3,K=1000$", func(h *headHooked) {
		h.after(func(_, _, _ model.Mat, _ model.Ints, stats model.Mat, _ model.Ints, _, _, _ model.Mat) {
			mapMat(h.Backend, stats, func(i int, x float32) float32 {
				if i%model.NumStats == model.StatLogZ {
					return x * (1 + 1e-5)
				}
				return x
			})
		})
	}},
	{"head-argmin-ties-highest", "head/nll/ties$", func(h *headHooked) {
		h.after(func(hh, w, bias model.Mat, _ model.Ints, _ model.Mat, argmin model.Ints, _, _, _ model.Mat) {
			e, k := energiesOf(h.Backend, hh, w, bias), w.Rows()
			a := getInts(h.Backend, argmin)
			for r := range a {
				for j := range k {
					if e[r*k+j] == e[r*k+int(a[r])] {
						a[r] = int32(j)
					}
				}
			}
			if err := h.Backend.UploadInts(argmin, a); err != nil {
				panic(err)
			}
		})
	}},
	// The most offending answer tied: its gradient goes to the highest of
	// the tied answers (dw's rows swapped).
	{"head-offending-ties-highest", "head/hinge/ties$", func(h *headHooked) {
		h.after(func(hh, w, bias model.Mat, labels model.Ints, _ model.Mat, _ model.Ints, _, dw, _ model.Mat) {
			e, k, d := energiesOf(h.Backend, hh, w, bias), w.Rows(), w.Cols()
			ls := getInts(h.Backend, labels)
			g := get(h.Backend, dw)
			for r, y := range ls {
				if y < 0 {
					continue
				}
				lo, hi := -1, -1
				for j := range k {
					if j == int(y) {
						continue
					}
					if lo < 0 || e[r*k+j] < e[r*k+lo] {
						lo, hi = j, j
					} else if e[r*k+j] == e[r*k+lo] {
						hi = j
					}
				}
				if lo >= 0 && hi != lo {
					for c := 0; c < d; c++ {
						g[hi*d+c], g[lo*d+c] = g[lo*d+c], g[hi*d+c]
					}
					break // one row is enough
				}
			}
			put(h.Backend, dw, g)
		})
	}},
	{"head-nan-when-huge", "head/mee/huge$", func(h *headHooked) {
		h.after(func(_, _, _ model.Mat, _ model.Ints, stats model.Mat, _ model.Ints, _, _, _ model.Mat) {
			mapMat(h.Backend, stats, func(_ int, x float32) float32 {
				if math.Abs(float64(x)) > 1e20 {
					return float32(math.NaN())
				}
				return x
			})
		})
	}},
	{"head-nondeterministic", "head/perceptron/B=7,D=5,K=1$", func(h *headHooked) {
		calls := 0
		h.after(func(_, _, _ model.Mat, _ model.Ints, _ model.Mat, _ model.Ints, _, _, db model.Mat) {
			calls++
			if calls%3 == 0 {
				mapMat(h.Backend, db, func(_ int, x float32) float32 { return math.Nextafter32(x, float32(math.Inf(1))) })
			}
		})
	}},
	{"head-dw-depends-on-dh", "head/square-square/B=33,D=17,K=31$", func(h *headHooked) {
		h.after(func(_, _, _ model.Mat, _ model.Ints, _ model.Mat, _ model.Ints, dh, dw, _ model.Mat) {
			if dh == nil {
				mapMat(h.Backend, dw, func(_ int, x float32) float32 { return math.Nextafter32(x, 1) })
			}
		})
	}},
	{"embed-mean-divides-by-window", "embed/B=7,W=4,V=3,E=5$", func(h *headHooked) {
		h.embed = func(table, ids, out model.Mat) error {
			err := h.eops().EmbedMean(table, ids, out)
			x, w := get(h.Backend, ids), ids.Cols()
			mapMat(h.Backend, out, func(i int, v float32) float32 {
				n := 0
				row := i / out.Cols()
				for _, id := range x[row*w : (row+1)*w] {
					if model.EmbedID(id, table.Rows()) >= 0 {
						n++
					}
				}
				return v * float32(n) / float32(w)
			})
			return err
		}
	}},
	{"embed-nan-id-is-row-0", "embed/B=33,W=8,V=1000,E=17$", func(h *headHooked) {
		fix := func(ids model.Mat) model.Mat {
			x := get(h.Backend, ids)
			for i, v := range x {
				if v != v {
					x[i] = 0
				}
			}
			m, err := h.Backend.Alloc(ids.Rows(), ids.Cols())
			if err != nil {
				panic(err)
			}
			put(h.Backend, m, x)
			return m
		}
		h.embed = func(table, ids, out model.Mat) error { return h.eops().EmbedMean(table, fix(ids), out) }
		h.embedGrad = func(dout, ids, dtable model.Mat) error { return h.eops().EmbedMeanGrad(dout, fix(ids), dtable) }
	}},
	{"embed-grad-not-divided", "embed/B=130,W=3,V=7,E=65$", func(h *headHooked) {
		h.embedGrad = func(dout, ids, dtable model.Mat) error {
			// The gradient of the sum, not of the mean: dout scaled by n_i.
			x, w := get(h.Backend, ids), ids.Cols()
			g := get(h.Backend, dout)
			for i := 0; i < dout.Rows(); i++ {
				n := 0
				for _, id := range x[i*w : (i+1)*w] {
					if model.EmbedID(id, dtable.Rows()) >= 0 {
						n++
					}
				}
				for d := 0; d < dout.Cols(); d++ {
					g[i*dout.Cols()+d] *= float32(max(n, 1))
				}
			}
			m, err := h.Backend.Alloc(dout.Rows(), dout.Cols())
			if err != nil {
				panic(err)
			}
			put(h.Backend, m, g)
			return h.eops().EmbedMeanGrad(m, ids, dtable)
		}
	}},
	{"embed-grad-stale-rows", "embed/B=33,W=8,V=1000,E=17$", func(h *headHooked) {
		// Rows no id names keep what was there (NaN poison) instead of 0.
		h.embedGrad = func(dout, ids, dtable model.Mat) error {
			old := get(h.Backend, dtable)
			err := h.eops().EmbedMeanGrad(dout, ids, dtable)
			mapMat(h.Backend, dtable, func(i int, v float32) float32 {
				if v == 0 {
					return old[i]
				}
				return v
			})
			return err
		}
	}},
	{"sampled-no-logq-correction", "sampled/softmax/B=7,D=5,K=31,S=9$", func(h *headHooked) {
		h.sampled = func(kind model.SampledKind, hh, w, bias model.Mat, labels, samples model.Ints, logQ model.Mat, beta float64, gs float32, stats, dh, dw, db model.Mat) error {
			z, err := h.Backend.Alloc(1, logQ.Cols())
			if err != nil {
				panic(err)
			}
			put(h.Backend, z, make([]float32, logQ.Cols())) // log Q = 0: no correction
			return h.sops().SampledHead(kind, hh, w, bias, labels, samples, z, beta, gs, stats, dh, dw, db)
		}
	}},
	{"sampled-estimate-without-1/S", "sampled/nce/B=33,D=17,K=1000,S=64$", func(h *headHooked) {
		h.sampled = func(kind model.SampledKind, hh, w, bias model.Mat, labels, samples model.Ints, logQ model.Mat, beta float64, gs float32, stats, dh, dw, db model.Mat) error {
			err := h.sops().SampledHead(kind, hh, w, bias, labels, samples, logQ, beta, gs, stats, dh, dw, db)
			mapMat(h.Backend, stats, func(i int, x float32) float32 {
				if i%model.NumStats == model.StatLogZ {
					return x + float32(math.Log(float64(samples.Len())))
				}
				return x
			})
			return err
		}
	}},
	{"sampled-db-relative-error-1e-3", "sampled/softmax/B=33,D=17,K=1000,S=64$", func(h *headHooked) {
		h.sampled = func(kind model.SampledKind, hh, w, bias model.Mat, labels, samples model.Ints, logQ model.Mat, beta float64, gs float32, stats, dh, dw, db model.Mat) error {
			err := h.sops().SampledHead(kind, hh, w, bias, labels, samples, logQ, beta, gs, stats, dh, dw, db)
			if db != nil {
				mapMat(h.Backend, db, func(_ int, x float32) float32 { return x * (1 + 1e-3) })
			}
			return err
		}
	}},
	{"nce-dh-sign", "sampled/nce/B=7,D=5,K=31,S=9$", func(h *headHooked) {
		h.sampled = func(kind model.SampledKind, hh, w, bias model.Mat, labels, samples model.Ints, logQ model.Mat, beta float64, gs float32, stats, dh, dw, db model.Mat) error {
			err := h.sops().SampledHead(kind, hh, w, bias, labels, samples, logQ, beta, gs, stats, dh, dw, db)
			if dh != nil {
				mapMat(h.Backend, dh, func(_ int, x float32) float32 { return -x })
			}
			return err
		}
	}},
	{"head-writes-before-label-check", "head/errors$", func(h *headHooked) {
		h.headGrad = func(hh, w, bias model.Mat, labels model.Ints, l model.Loss, gs float32, stats model.Mat, argmin model.Ints, dh, dw, db model.Mat) error {
			err := h.ops().EnergyHeadGrad(hh, w, bias, labels, l, gs, stats, argmin, dh, dw, db)
			if err != nil {
				if _, ok := stats.(*cpu.Matrix); ok && stats.Cols() == model.NumStats {
					put(h.Backend, stats, make([]float32, stats.Rows()*stats.Cols()))
				}
			}
			return err
		}
	}},
}

func TestSuiteCatchesHeadMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the mutation tests start a child process per mutant")
	}
	if os.Getenv(headMutantEnv) != "" || os.Getenv(mutantEnv) != "" {
		t.Skip("in a mutant's child process")
	}
	for _, m := range headMutants {
		t.Run(m.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHeadMutantTarget$/"+m.run, "-test.count=1")
			cmd.Env = append(os.Environ(), headMutantEnv+"="+m.name)
			out, err := cmd.CombinedOutput()
			switch {
			case err == nil:
				t.Errorf("TestEnergyHead passed cpu with the bug %q injected (run %s)", m.name, m.run)
			case strings.Contains(string(out), "panic:") && !strings.Contains(string(out), "panicked"):
				t.Errorf("the suite crashed instead of failing on %q:\n%s", m.name, out)
			case !strings.Contains(string(out), "--- FAIL: TestHeadMutantTarget/"):
				t.Errorf("mutant %q: the child process failed without a test failure:\n%s", m.name, out)
			}
		})
	}
}

// TestHeadMutantTarget runs TestEnergyHead and TestEmbedding on the mutant
// named by the environment; only TestSuiteCatchesHeadMutants starts it so.
func TestHeadMutantTarget(t *testing.T) {
	name := os.Getenv(headMutantEnv)
	if name == "" {
		t.Skip("runs only in the child processes of TestSuiteCatchesHeadMutants")
	}
	for _, m := range headMutants {
		if m.name == name {
			for suite, run := range headSuites {
				t.Run(suite, func(t *testing.T) {
					run(t, func(t *testing.T) model.Backend {
						h := &headHooked{Backend: cpu.New()}
						m.hook(h)
						return h
					})
				})
			}
			return
		}
	}
	t.Fatalf("no mutant %q", name)
}
