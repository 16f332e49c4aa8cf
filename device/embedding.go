package device

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// The CBOW input layer's operations (model.EmbeddingOps): kernels of
// kernels/embedding.cu.

var _ model.EmbeddingOps = (*Backend)(nil)

// embedRows is GT_EMB_ROWS: the table rows one gradient block owns.
const embedRows = 8

// EmbedMean sets out[i] to the mean of the table rows row i of ids names.
func (b *Backend) EmbedMean(tm, idm, om model.Mat) error {
	table, ids, out, err := b.embedOperands("EmbedMean", tm, idm, om)
	if err != nil {
		return err
	}
	if out.len() == 0 {
		return nil
	}
	return b.launch("EmbedMean", "gt_embed_mean", b.rowGrid(int64(ids.rows)), rowBlock(int64(table.cols)),
		PtrArg(table.ptr), PtrArg(ids.ptr), IntArg(int64(ids.rows)), IntArg(int64(ids.cols)),
		IntArg(int64(table.rows)), IntArg(int64(table.cols)), PtrArg(out.ptr))
}

// EmbedMeanGrad overwrites dtable with EmbedMean's gradient, each element
// summed by one thread in (row, position) order.
func (b *Backend) EmbedMeanGrad(dm, idm, tm model.Mat) error {
	dtable, ids, dout, err := b.embedOperands("EmbedMeanGrad", tm, idm, dm)
	if err != nil {
		return err
	}
	if dtable.len() == 0 {
		return nil
	}
	B, W, V, E := int64(ids.rows), int64(ids.cols), int64(dtable.rows), int64(dtable.cols)
	counts := b.head.embedCounts
	if err := b.growScratch(&counts, &b.head.embedCountsCap, 4*max(B, 1)); err != nil {
		return fmt.Errorf("device: EmbedMeanGrad: allocating %d counts: %w", B, err)
	}
	b.head.embedCounts = counts
	if B > 0 {
		grid, block := b.elemShape(B)
		if err := b.launch("EmbedMeanGrad", "gt_embed_counts", grid, block,
			PtrArg(ids.ptr), IntArg(B), IntArg(W), IntArg(V), PtrArg(counts)); err != nil {
			return err
		}
	}
	grid := Dim3{X: int(min(ceilDiv(V, embedRows), b.maxBlocks)), Y: 1, Z: 1}
	return b.launch("EmbedMeanGrad", "gt_embed_grad", grid, rowBlock(E),
		PtrArg(dout.ptr), PtrArg(ids.ptr), PtrArg(counts), IntArg(B), IntArg(W), IntArg(V), IntArg(E), PtrArg(dtable.ptr))
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
		return nil, nil, nil, fmt.Errorf("device: %s: %w", op, err)
	}
	return table, ids, rows, nil
}
