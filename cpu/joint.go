package cpu

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// The joint-model operations (model.JointOps) on the CPU: the reference the
// device kernels are checked against. Every sum is in float64, in a fixed
// order, each output element computed whole by one goroutine, so results do
// not depend on the thread count.

var _ model.JointOps = (*Backend)(nil)

// jointShape checks vars and returns the layout with J.
type jointShape struct {
	vars       []int
	offK, offP []int
	sumK, sumP int
	j          int
}

func newJointShape(op string, vars []int) (*jointShape, error) {
	offK, sumK, offP, sumP, err := model.JointLayout(vars)
	if err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", op, err)
	}
	j, _ := model.JointStates(vars)
	return &jointShape{vars: vars, offK: offK, offP: offP, sumK: sumK, sumP: sumP, j: j}, nil
}

// next advances the digits d of a joint answer to the next one (last
// variable fastest), the order of the joint indices.
func (js *jointShape) next(d []int) {
	for i := len(d) - 1; i >= 0; i-- {
		d[i]++
		if d[i] < js.vars[i] {
			return
		}
		d[i] = 0
	}
}

// pairTable returns q[y] = sum_{i<j} P[poff_ij + y_i*K_j + y_j] in float64,
// pairs in lexicographic order: the pairwise energy of every joint answer,
// the same for every row.
func (js *jointShape) pairTable(p []float32) []float64 {
	q := make([]float64, js.j)
	d := make([]int, len(js.vars))
	for y := range q {
		var acc float64
		k := 0
		for i := range d {
			for jj := i + 1; jj < len(d); jj++ {
				acc += float64(p[js.offP[k]+d[i]*js.vars[jj]+d[jj]])
				k++
			}
		}
		q[y] = acc
		js.next(d)
	}
	return q
}

// JointEnergies sets E[b,y] = sum_i S[b, off_i + y_i] + q[y], q the
// pairwise energies (see model.JointOps), accumulated in float64: the unary
// terms in variable order, then q.
func (b *Backend) JointEnergies(sm, pm model.Mat, vars []int, em model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	js, err := newJointShape("JointEnergies", vars)
	if err != nil {
		return err
	}
	s, err := b.mat(sm, "JointEnergies s")
	if err != nil {
		return err
	}
	e, err := b.mat(em, "JointEnergies e")
	if err != nil {
		return err
	}
	var q []float64
	if pm != nil {
		p, err := b.mat(pm, "JointEnergies p")
		if err != nil {
			return err
		}
		if err := backendcheck.JointEnergiesShapes(sm, pm, vars, em); err != nil {
			return fmt.Errorf("cpu: JointEnergies: %w", err)
		}
		q = js.pairTable(p.data)
	} else if err := backendcheck.JointEnergiesShapes(sm, nil, vars, em); err != nil {
		return fmt.Errorf("cpu: JointEnergies: %w", err)
	}
	b.parallelRows(s.rows, max(1, elemChunk/max(1, js.j*len(vars))), func(lo, hi int) {
		d := make([]int, len(vars))
		for r := lo; r < hi; r++ {
			srow := s.data[r*js.sumK : (r+1)*js.sumK]
			erow := e.data[r*js.j : (r+1)*js.j]
			clear(d)
			for y := range erow {
				var acc float64
				for i, v := range d {
					acc += float64(srow[js.offK[i]+v])
				}
				if q != nil {
					acc += q[y]
				}
				erow[y] = float32(acc)
				js.next(d)
			}
		}
	})
	return nil
}

// JointGradients sets dS[b, off_i + v] = sum_{y: y_i = v} dE[b,y] (y
// ascending, float64) and, when dp is not nil, dP[poff_ij + a*K_j + c] =
// sum over y ascending of c[y] = sum_b dE[b,y] (b ascending), for the y
// with y_i = a and y_j = c.
func (b *Backend) JointGradients(dem model.Mat, vars []int, dsm, dpm model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	js, err := newJointShape("JointGradients", vars)
	if err != nil {
		return err
	}
	de, err := b.mat(dem, "JointGradients de")
	if err != nil {
		return err
	}
	ds, err := b.mat(dsm, "JointGradients ds")
	if err != nil {
		return err
	}
	var dp *Matrix
	if dpm != nil {
		if dp, err = b.mat(dpm, "JointGradients dp"); err != nil {
			return err
		}
	}
	if err := backendcheck.JointGradientsShapes(dem, vars, dsm, dpm); err != nil {
		return fmt.Errorf("cpu: JointGradients: %w", err)
	}
	b.parallelRows(de.rows, max(1, elemChunk/max(1, js.j*len(vars))), func(lo, hi int) {
		d := make([]int, len(vars))
		acc := make([]float64, js.sumK)
		for r := lo; r < hi; r++ {
			erow := de.data[r*js.j : (r+1)*js.j]
			clear(d)
			clear(acc)
			for _, g := range erow {
				for i, v := range d {
					acc[js.offK[i]+v] += float64(g)
				}
				js.next(d)
			}
			drow := ds.data[r*js.sumK : (r+1)*js.sumK]
			for c, v := range acc {
				drow[c] = float32(v)
			}
		}
	})
	if dp == nil {
		return nil
	}
	// Column sums of dE, each column by one goroutine over rows in order.
	cs := make([]float64, js.j)
	b.parallelRows(js.j, max(1, elemChunk/max(1, de.rows)), func(lo, hi int) {
		for r := 0; r < de.rows; r++ {
			row := de.data[r*js.j : (r+1)*js.j]
			for y := lo; y < hi; y++ {
				cs[y] += float64(row[y])
			}
		}
	})
	acc := make([]float64, js.sumP)
	d := make([]int, len(vars))
	for _, c := range cs {
		k := 0
		for i := range d {
			for jj := i + 1; jj < len(d); jj++ {
				acc[js.offP[k]+d[i]*js.vars[jj]+d[jj]] += c
				k++
			}
		}
		js.next(d)
	}
	for t, v := range acc {
		dp.data[t] = float32(v)
	}
	return nil
}
