package device

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

var (
	_ model.DenseOps     = (*Backend)(nil)
	_ model.PrecisionOps = (*Backend)(nil)
)

// actFlags are the epilogue bits of a forward activation.
func actFlags(act model.Activation) int64 {
	switch act {
	case model.ReLU:
		return epiReLU
	case model.Tanh:
		return epiTanh
	}
	return 0
}

// dactFlags are the epilogue bits of an activation derivative.
func dactFlags(act model.Activation) int64 {
	switch act {
	case model.ReLU:
		return epiDReLU
	case model.Tanh:
		return epiDTanh
	}
	return 0
}

// optMat resolves a handle that may be nil.
func (b *Backend) optMat(x model.Mat, what string) (*Matrix, model.Mat, error) {
	if x == nil {
		return nil, nil, nil
	}
	m, err := b.mat(x, what)
	if err != nil {
		return nil, nil, err
	}
	return m, m, nil
}

// DenseForward is model.DenseOps.DenseForward in one GEMM launch (nt): the
// epilogue adds alpha*b and applies the activation as it stores Z.
func (b *Backend) DenseForward(p model.Precision, x, w, bias model.Mat, alpha float32, act model.Activation, z model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	X, err := b.mat(x, "DenseForward X")
	if err != nil {
		return err
	}
	W, err := b.mat(w, "DenseForward W")
	if err != nil {
		return err
	}
	Z, err := b.mat(z, "DenseForward Z")
	if err != nil {
		return err
	}
	bv, bm, err := b.optMat(bias, "DenseForward b")
	if err != nil {
		return err
	}
	if err := backendcheck.DenseForwardShapes(X, W, bm, act, Z); err != nil {
		return fmt.Errorf("device: DenseForward: %w", err)
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("device: DenseForward: %w", err)
	}
	epi := epilogue{flags: actFlags(act)}
	if bv != nil {
		epi.flags |= epiBias
		epi.bias = bv.ptr
	}
	return b.gemm("DenseForward", p, false, true, int64(X.rows), int64(W.rows), int64(X.cols), alpha, X, W, 0, Z, epi)
}

// DenseBackwardData is model.DenseOps.DenseBackwardData in one GEMM launch
// (nn): the epilogue multiplies by act'(Y) as it stores dX.
func (b *Backend) DenseBackwardData(p model.Precision, dz, w model.Mat, alpha float32, act model.Activation, y, dx model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	DZ, err := b.mat(dz, "DenseBackwardData dZ")
	if err != nil {
		return err
	}
	W, err := b.mat(w, "DenseBackwardData W")
	if err != nil {
		return err
	}
	DX, err := b.mat(dx, "DenseBackwardData dX")
	if err != nil {
		return err
	}
	var Y *Matrix
	var ym model.Mat
	if act != model.Linear {
		if Y, err = b.mat(y, "DenseBackwardData Y"); err != nil {
			return err
		}
		ym = Y
	}
	if err := backendcheck.DenseBackwardDataShapes(DZ, W, act, ym, DX); err != nil {
		return fmt.Errorf("device: DenseBackwardData: %w", err)
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("device: DenseBackwardData: %w", err)
	}
	epi := epilogue{flags: dactFlags(act)}
	if Y != nil {
		epi.aux = Y.ptr
	}
	return b.gemm("DenseBackwardData", p, false, false, int64(DX.rows), int64(DX.cols), int64(DZ.cols), alpha, DZ, W, 0, DX, epi)
}

// DenseGradWeights is model.DenseOps.DenseGradWeights in one GEMM launch
// (tn): the blocks of the first column of tiles also sum the columns of dZ
// over the whole batch as they stream it through shared memory, each
// column's sum in a fixed order (per thread in k order, then a fixed merge
// of the threads), and write db. Where the product rounds its operands on
// the SIMT kernels (tf32/bf16 below sm_80), db takes a second launch
// (ColumnSums), since those kernels round the shared tiles the sums would
// read.
func (b *Backend) DenseGradWeights(p model.Precision, dz, x model.Mat, alpha float32, dw, db model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	DZ, err := b.mat(dz, "DenseGradWeights dZ")
	if err != nil {
		return err
	}
	X, err := b.mat(x, "DenseGradWeights X")
	if err != nil {
		return err
	}
	DW, err := b.mat(dw, "DenseGradWeights dW")
	if err != nil {
		return err
	}
	DB, dbm, err := b.optMat(db, "DenseGradWeights db")
	if err != nil {
		return err
	}
	if err := backendcheck.DenseGradWeightsShapes(DZ, X, DW, dbm); err != nil {
		return fmt.Errorf("device: DenseGradWeights: %w", err)
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("device: DenseGradWeights: %w", err)
	}
	m, n, k := int64(DW.rows), int64(DW.cols), int64(DZ.rows)
	var epi epilogue
	fuse := DB != nil && m > 0 && n > 0 && !b.roundsOnSIMT(p, true, false)
	if fuse {
		epi = epilogue{flags: epiColSum, colsum: DB.ptr}
	}
	if err := b.gemm("DenseGradWeights", p, true, false, m, n, k, alpha, DZ, X, 0, DW, epi); err != nil {
		return err
	}
	if DB == nil || fuse {
		return nil
	}
	return b.ColumnSums(DB, alpha, DZ, 0)
}
