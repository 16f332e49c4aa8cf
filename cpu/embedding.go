package cpu

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// The CBOW input layer's operations (model.EmbeddingOps).

var _ model.EmbeddingOps = (*Backend)(nil)

// EmbedMean sets out[i] to the mean of the table rows row i of ids names
// (model.EmbedID), summed in float32 in window order and divided by their
// count; rows split over goroutines.
func (b *Backend) EmbedMean(tm, idm, om model.Mat) error {
	table, ids, out, err := b.embedOperands("EmbedMean", tm, idm, om)
	if err != nil {
		return err
	}
	V, E, W := table.rows, table.cols, ids.cols
	b.parallelRows(ids.rows, max(1, elemChunk/max(W*E, 1)), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := out.data[i*E : (i+1)*E]
			clear(row)
			n := 0
			for _, x := range ids.data[i*W : (i+1)*W] {
				v := model.EmbedID(x, V)
				if v < 0 {
					continue
				}
				n++
				for d, t := range table.data[v*E : (v+1)*E] {
					row[d] += t
				}
			}
			if n > 1 {
				fn := float32(n)
				for d := range row {
					row[d] /= fn
				}
			}
		}
	})
	return nil
}

// EmbedMeanGrad overwrites dtable with the gradient of EmbedMean: table
// rows split over goroutines, each scanning every id in (row, position)
// order and adding dout[i]/n_i to the rows it owns, so each row's sum has
// one fixed order.
func (b *Backend) EmbedMeanGrad(dm, idm, tm model.Mat) error {
	dtable, ids, dout, err := b.embedOperands("EmbedMeanGrad", tm, idm, dm)
	if err != nil {
		return err
	}
	V, E, W, B := dtable.rows, dtable.cols, ids.cols, ids.rows
	// The row counts n_i, once.
	counts := make([]int, B)
	for i := range counts {
		for _, x := range ids.data[i*W : (i+1)*W] {
			if model.EmbedID(x, V) >= 0 {
				counts[i]++
			}
		}
	}
	b.parallelRows(V, max(16, elemChunk/max(E, 1)), func(lo, hi int) {
		clear(dtable.data[lo*E : hi*E])
		for i := 0; i < B; i++ {
			if counts[i] == 0 {
				continue
			}
			fn := float32(counts[i])
			g := dout.data[i*E : (i+1)*E]
			for _, x := range ids.data[i*W : (i+1)*W] {
				v := model.EmbedID(x, V)
				if v < lo || v >= hi {
					continue
				}
				dst := dtable.data[v*E : (v+1)*E]
				for d, gd := range g {
					dst[d] += gd / fn
				}
			}
		}
	})
	return nil
}

func (b *Backend) embedOperands(op string, tm, idm, rm model.Mat) (table, ids, rows *Matrix, err error) {
	if err := b.open(); err != nil {
		return nil, nil, nil, err
	}
	if table, err = b.mat(tm, op+" table"); err != nil {
		return nil, nil, nil, err
	}
	if ids, err = b.mat(idm, op+" ids"); err != nil {
		return nil, nil, nil, err
	}
	if rows, err = b.mat(rm, op+" rows"); err != nil {
		return nil, nil, nil, err
	}
	if err := backendcheck.EmbedShapes(table, ids, rows); err != nil {
		return nil, nil, nil, fmt.Errorf("cpu: %s: %w", op, err)
	}
	return table, ids, rows, nil
}
