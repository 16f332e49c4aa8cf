package cpu

import (
	"fmt"
	"math"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// AddRowVector sets m[i,j] += alpha*v[j] for every row i.
func (b *Backend) AddRowVector(mm model.Mat, alpha float32, vm model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	m, err := b.mat(mm, "AddRowVector m")
	if err != nil {
		return err
	}
	v, err := b.mat(vm, "AddRowVector v")
	if err != nil {
		return err
	}
	if err := backendcheck.RowVector("v", v, "m", m); err != nil {
		return fmt.Errorf("cpu: AddRowVector: %w", err)
	}
	cols := m.cols
	b.parallelRows(m.rows, rowChunk(cols), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := m.data[i*cols : (i+1)*cols]
			for j, x := range v.data {
				row[j] += alpha * x
			}
		}
	})
	return nil
}

// ColumnSums sets dst[0,j] = alpha*sum_i src[i,j] + beta*dst[0,j]. The sums
// are accumulated in float64, row by row in order, and written after all of
// src is read (so dst may be a 1-row src). As in Gemm, beta == 0 means dst is
// only written.
func (b *Backend) ColumnSums(dm model.Mat, alpha float32, sm model.Mat, beta float32) error {
	if err := b.open(); err != nil {
		return err
	}
	dst, err := b.mat(dm, "ColumnSums dst")
	if err != nil {
		return err
	}
	src, err := b.mat(sm, "ColumnSums src")
	if err != nil {
		return err
	}
	if err := backendcheck.RowVector("dst", dst, "src", src); err != nil {
		return fmt.Errorf("cpu: ColumnSums: %w", err)
	}
	rows, cols := src.rows, src.cols
	// Split over columns so each column's sum is one goroutine's, in row
	// order, whatever the thread count.
	b.parallelRows(cols, max(16, elemChunk/max(rows, 1)), func(lo, hi int) {
		acc := make([]float64, hi-lo)
		for i := 0; i < rows; i++ {
			row := src.data[i*cols+lo : i*cols+hi]
			for j, x := range row {
				acc[j] += float64(x)
			}
		}
		for j, s := range acc {
			out := float64(alpha) * s
			if beta != 0 {
				out += float64(beta) * float64(dst.data[lo+j])
			}
			dst.data[lo+j] = float32(out)
		}
	})
	return nil
}

// Activate applies act to m in place. ReLU keeps NaN as NaN so a diverging
// run stays visible.
func (b *Backend) Activate(act model.Activation, mm model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	m, err := b.mat(mm, "Activate m")
	if err != nil {
		return err
	}
	var f func([]float32)
	switch act {
	case model.ReLU:
		f = func(x []float32) {
			for i, v := range x {
				if v < 0 {
					x[i] = 0
				}
			}
		}
	case model.Tanh:
		f = func(x []float32) {
			for i, v := range x {
				x[i] = float32(math.Tanh(float64(v)))
			}
		}
	default:
		return fmt.Errorf("cpu: Activate: unknown activation %v", act)
	}
	n := len(m.data)
	b.parallelRows(n, elemChunk, func(lo, hi int) { f(m.data[lo:hi]) })
	return nil
}

// ActivationGrad multiplies grad in place by act' computed from the
// activation's output (grad may be out itself: each element is read before
// it is written): 1[out > 0] for ReLU (a zero, not a product, where the
// unit is off, so an infinite gradient there does not become NaN) and
// 1 - out^2 for tanh.
func (b *Backend) ActivationGrad(act model.Activation, gm, om model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	g, err := b.mat(gm, "ActivationGrad grad")
	if err != nil {
		return err
	}
	o, err := b.mat(om, "ActivationGrad out")
	if err != nil {
		return err
	}
	if err := backendcheck.SameShape([]string{"out", "grad"}, o, g); err != nil {
		return fmt.Errorf("cpu: ActivationGrad: %w", err)
	}
	var f func(g, o []float32)
	switch act {
	case model.ReLU:
		f = func(g, o []float32) {
			o = o[:len(g)]
			// Branch-free: ReLU outputs are zero about half the time at
			// random, which defeats branch prediction (9x slower measured).
			// y > 0 (and not NaN) exactly when its bits, as an integer t,
			// satisfy 0 < t <= 0x7f800000; both tests become sign masks.
			for i, y := range o {
				t := int64(int32(math.Float32bits(y)))
				mask := (-t >> 63) & ((t - 0x7f800001) >> 63)
				g[i] = math.Float32frombits(math.Float32bits(g[i]) & uint32(mask))
			}
		}
	case model.Tanh:
		f = func(g, o []float32) {
			o = o[:len(g)]
			for i, y := range o {
				g[i] *= 1 - y*y
			}
		}
	default:
		return fmt.Errorf("cpu: ActivationGrad: unknown activation %v", act)
	}
	b.parallelRows(len(g.data), elemChunk, func(lo, hi int) { f(g.data[lo:hi], o.data[lo:hi]) })
	return nil
}

// ArgminRows writes the index of the smallest entry of each row of e (ties
// to the lowest index).
func (b *Backend) ArgminRows(em model.Mat, outv model.Ints) error {
	if err := b.open(); err != nil {
		return err
	}
	e, err := b.mat(em, "ArgminRows e")
	if err != nil {
		return err
	}
	out, err := b.ints(outv, "ArgminRows out")
	if err != nil {
		return err
	}
	if err := backendcheck.ArgminShapes(e, out); err != nil {
		return fmt.Errorf("cpu: ArgminRows: %w", err)
	}
	cols := e.cols
	b.parallelRows(e.rows, rowChunk(cols), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			out.data[i] = int32(argmin(e.data[i*cols : (i+1)*cols]))
		}
	})
	return nil
}

// argmin returns the index of the smallest element, ties to the lowest: a
// later element replaces the best only when strictly smaller. EnergyLoss
// uses the same rule.
func argmin(row []float32) int {
	best := 0
	for j := 1; j < len(row); j++ {
		if row[j] < row[best] {
			best = j
		}
	}
	return best
}

// GatherRows sets dst row r to src row idx[r].
func (b *Backend) GatherRows(dm, sm model.Mat, iv model.Ints) error {
	if err := b.open(); err != nil {
		return err
	}
	dst, err := b.mat(dm, "GatherRows dst")
	if err != nil {
		return err
	}
	src, err := b.mat(sm, "GatherRows src")
	if err != nil {
		return err
	}
	idx, err := b.ints(iv, "GatherRows idx")
	if err != nil {
		return err
	}
	if err := backendcheck.GatherRowsShapes(dst, src, idx); err != nil {
		return fmt.Errorf("cpu: GatherRows: %w", err)
	}
	if r, bad := backendcheck.FirstBadIndex(idx.data, src.rows, false); bad {
		return fmt.Errorf("cpu: GatherRows: %w", backendcheck.RowIndexError(r, idx.data[r], src))
	}
	cols := src.cols
	b.parallelRows(len(idx.data), rowChunk(cols), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			i := int(idx.data[r])
			copy(dst.data[r*cols:(r+1)*cols], src.data[i*cols:(i+1)*cols])
		}
	})
	return nil
}

// GatherInts sets dst[r] = src[idx[r]].
func (b *Backend) GatherInts(dv, sv, iv model.Ints) error {
	if err := b.open(); err != nil {
		return err
	}
	dst, err := b.ints(dv, "GatherInts dst")
	if err != nil {
		return err
	}
	src, err := b.ints(sv, "GatherInts src")
	if err != nil {
		return err
	}
	idx, err := b.ints(iv, "GatherInts idx")
	if err != nil {
		return err
	}
	if err := backendcheck.GatherIntsShapes(dst, src, idx); err != nil {
		return fmt.Errorf("cpu: GatherInts: %w", err)
	}
	if r, bad := backendcheck.FirstBadIndex(idx.data, len(src.data), false); bad {
		return fmt.Errorf("cpu: GatherInts: %w", backendcheck.IntIndexError(r, idx.data[r], len(src.data)))
	}
	for r, i := range idx.data {
		dst.data[r] = src.data[i]
	}
	return nil
}
