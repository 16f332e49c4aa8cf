package backendtest_test

// A second, deliberately float32-only implementation of the numerical
// operations (sequential float32 sums, an online log-sum-exp in float32,
// probabilities as exp(-beta E - log Z), Adam's bias corrections by float32
// powers), the way a straightforward GPU kernel computes them. cpu computes
// in float64 and so cannot show whether the suite's tolerances are wide
// enough for a correct float32 backend; this twin does, in CI, without a
// GPU. It runs on top of cpu: it downloads the operands, computes, and
// uploads the results.

import (
	"math"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendtest"
)

type float32Twin struct{ model.Backend }

func newFloat32Twin(t *testing.T) model.Backend { return float32Twin{cpu.New()} }

func TestFloat32TwinPassesSuite(t *testing.T) {
	t.Run("Gemm", func(t *testing.T) { backendtest.TestGemm(t, newFloat32Twin) })
	t.Run("ColumnSums", func(t *testing.T) { backendtest.TestColumnSums(t, newFloat32Twin) })
	t.Run("Optimizers", func(t *testing.T) { backendtest.TestOptimizers(t, newFloat32Twin) })
	t.Run("EnergyLoss", func(t *testing.T) { backendtest.TestEnergyLoss(t, newFloat32Twin) })
}

func (b float32Twin) get(m model.Mat) []float32 {
	x := make([]float32, m.Rows()*m.Cols())
	if err := b.Download(x, m); err != nil {
		panic(err) // the suite only gives the twin valid operands
	}
	return x
}

func (b float32Twin) Gemm(transA, transB bool, alpha float32, a, bm model.Mat, beta float32, c model.Mat) error {
	ad, bd, cd := b.get(a), b.get(bm), b.get(c)
	m, n := c.Rows(), c.Cols()
	k := a.Cols()
	if transA {
		k = a.Rows()
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for l := 0; l < k; l++ {
				var x, y float32
				if transA {
					x = ad[l*a.Cols()+i]
				} else {
					x = ad[i*a.Cols()+l]
				}
				if transB {
					y = bd[j*bm.Cols()+l]
				} else {
					y = bd[l*bm.Cols()+j]
				}
				s += x * y
			}
			if beta == 0 {
				cd[i*n+j] = alpha * s
			} else {
				cd[i*n+j] = alpha*s + beta*cd[i*n+j]
			}
		}
	}
	return b.Upload(c, cd)
}

func (b float32Twin) ColumnSums(dst model.Mat, alpha float32, src model.Mat, beta float32) error {
	s, d := b.get(src), b.get(dst)
	cols := src.Cols()
	for j := 0; j < cols; j++ {
		var acc float32
		for i := 0; i < src.Rows(); i++ {
			acc += s[i*cols+j]
		}
		if beta == 0 {
			d[j] = alpha * acc
		} else {
			d[j] = alpha*acc + beta*d[j]
		}
	}
	return b.Upload(dst, d)
}

func exp32(x float32) float32 { return float32(math.Exp(float64(x))) }

func (b float32Twin) SGDStep(wm, gm model.Mat, lr, wd float32) error {
	w, g := b.get(wm), b.get(gm)
	for i := range w {
		w[i] = w[i] - lr*wd*w[i] - lr*g[i]
	}
	return b.Upload(wm, w)
}

func (b float32Twin) MomentumStep(wm, gm, vm model.Mat, lr, mu, wd float32) error {
	w, g, v := b.get(wm), b.get(gm), b.get(vm)
	for i := range w {
		v[i] = mu*v[i] + g[i]
		w[i] = w[i] - lr*wd*w[i] - lr*v[i]
	}
	if err := b.Upload(vm, v); err != nil {
		return err
	}
	return b.Upload(wm, w)
}

func (b float32Twin) AdamStep(wm, gm, mm, vm model.Mat, lr, b1, b2, eps, wd float32, t int) error {
	w, g, m, v := b.get(wm), b.get(gm), b.get(mm), b.get(vm)
	p1, p2 := float32(1), float32(1)
	for range t {
		p1 *= b1
		p2 *= b2
	}
	c1, c2 := 1-p1, 1-p2
	for i := range w {
		m[i] = b1*m[i] + (1-b1)*g[i]
		v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
		q := (m[i] / c1) / (float32(math.Sqrt(float64(v[i]/c2))) + eps)
		w[i] = w[i] - lr*wd*w[i] - lr*q
	}
	for _, u := range []struct {
		m model.Mat
		x []float32
	}{{mm, m}, {vm, v}, {wm, w}} {
		if err := b.Upload(u.m, u.x); err != nil {
			return err
		}
	}
	return nil
}

func sigmoid32(x float32) float32 { return 1 / (1 + exp32(-x)) }

func (b float32Twin) EnergyLoss(em model.Mat, lv model.Ints, l model.Loss, gs float32, sm model.Mat, av model.Ints) error {
	e := b.get(em)
	labels := make([]int32, lv.Len())
	if err := b.DownloadInts(labels, lv); err != nil {
		return err
	}
	bs, k := em.Rows(), em.Cols()
	stats := make([]float32, bs*model.NumStats)
	amin := make([]int32, bs)
	beta, m0, gamma, delta := float32(l.Beta), float32(l.Margin), float32(l.Gamma), float32(l.Delta)
	inf := float32(math.Inf(1))
	for r := 0; r < bs; r++ {
		row := e[r*k : (r+1)*k]
		label := int(labels[r])
		// Online max/sum in float32.
		mx, s := float32(math.Inf(-1)), float32(0)
		am := 0
		ec, ei, ii := float32(0), inf, -1
		for y, v := range row {
			a := -beta * v
			if a > mx {
				s = s*exp32(mx-a) + 1
				mx = a
			} else {
				s += exp32(a - mx)
			}
			if v < row[am] {
				am = y
			}
			if y != label && (ii < 0 || v < ei) {
				ei, ii = v, y
			}
		}
		logZ := mx + float32(math.Log(float64(s)))
		st := stats[r*model.NumStats : (r+1)*model.NumStats]
		st[model.StatLogZ] = logZ
		amin[r] = int32(am)
		grad := make([]float32, k)
		if label == model.IgnoreLabel {
			copy(row, grad)
			continue
		}
		ec = row[label]
		d := ec - ei
		var loss, gc, gi float32
		switch l.Kind {
		case model.Energy:
			loss, gc = ec, 1
		case model.Perceptron:
			loss = ec - row[am]
			if am != label {
				grad[am] = -1
				gc = 1
			}
		case model.Hinge:
			if z := m0 + ec - ei; z > 0 {
				loss, gc, gi = z, 1, -1
			}
		case model.Log:
			sg := sigmoid32(d)
			if d > 0 {
				loss = d + float32(math.Log1p(float64(exp32(-d))))
			} else {
				loss = float32(math.Log1p(float64(exp32(d))))
			}
			gc, gi = sg, -sg
		case model.LVQ2:
			if d > 0 {
				dd := float32(1)
				if ei > 1 {
					dd = ei
				}
				ratio := d / (delta * dd)
				if ratio >= 1 {
					loss = 1
				} else {
					loss, gc = ratio, 1/(delta*dd)
					if ei > 1 {
						gi = -ec / (delta * ei * ei)
					} else {
						gi = -1 / delta
					}
				}
			}
		case model.MCE:
			sg := sigmoid32(d)
			loss, gc, gi = sg, sg*(1-sg), -sg*(1-sg)
		case model.SquareSquare:
			h := max(0, m0-ei)
			loss, gc, gi = ec*ec+h*h, 2*ec, -2*h
		case model.SquareExp:
			x := gamma * exp32(-ei)
			loss, gc, gi = ec*ec+x, 2*ec, -x
		case model.NLL:
			loss = ec + logZ/beta
			for y, v := range row {
				grad[y] = -exp32(-beta*v - logZ)
			}
			gc = 1
		case model.MEE:
			pc := exp32(-beta*ec - logZ)
			loss = 1 - pc
			for y, v := range row {
				grad[y] = -beta * pc * exp32(-beta*v-logZ)
			}
			gc = beta * pc
		}
		grad[label] += gc
		if ii >= 0 && gi != 0 {
			grad[ii] += gi
		}
		for y := range grad {
			grad[y] *= gs
		}
		copy(row, grad)
		st[model.StatLoss], st[model.StatCorrect], st[model.StatOffending] = loss, ec, ei
	}
	if err := b.Upload(sm, stats); err != nil {
		return err
	}
	if err := b.UploadInts(av, amin); err != nil {
		return err
	}
	return b.Upload(em, e)
}
