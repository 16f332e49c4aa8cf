package cpu

import (
	"fmt"
	"math"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

var _ model.DenseOps = (*Backend)(nil)

// DenseForward is model.DenseOps.DenseForward: the product, then one pass
// over Z that adds the bias and applies the activation (the unfused
// sequence makes two). The arithmetic is AddRowVector's and Activate's.
func (b *Backend) DenseForward(p model.Precision, x, w, bias model.Mat, alpha float32, act model.Activation, z model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	X, W, Z, err := b.mat3(x, "DenseForward X", w, "DenseForward W", z, "DenseForward Z")
	if err != nil {
		return err
	}
	var bv *Matrix
	if bias != nil {
		if bv, err = b.mat(bias, "DenseForward b"); err != nil {
			return err
		}
	}
	var bm model.Mat
	if bv != nil {
		bm = bv
	}
	if err := backendcheck.DenseForwardShapes(X, W, bm, act, Z); err != nil {
		return fmt.Errorf("cpu: DenseForward: %w", err)
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("cpu: DenseForward: %w", err)
	}
	rows, out := X.rows, W.rows
	if rows == 0 || out == 0 {
		return nil
	}
	b.gemmPrecision(p, false, true, rows, out, X.cols, alpha, X.data, W.data, 0, Z.data)
	if bv == nil && act == model.Linear {
		return nil
	}
	b.parallelRows(rows, rowChunk(out), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := Z.data[i*out : (i+1)*out]
			if bv != nil {
				for j, v := range bv.data {
					row[j] += alpha * v
				}
			}
			switch act {
			case model.ReLU:
				for j, v := range row {
					if v < 0 {
						row[j] = 0
					}
				}
			case model.Tanh:
				for j, v := range row {
					row[j] = float32(math.Tanh(float64(v)))
				}
			}
		}
	})
	return nil
}

// DenseBackwardData is model.DenseOps.DenseBackwardData: the product, then
// the activation derivative as ActivationGrad applies it.
func (b *Backend) DenseBackwardData(p model.Precision, dz, w model.Mat, alpha float32, act model.Activation, y, dx model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	DZ, W, DX, err := b.mat3(dz, "DenseBackwardData dZ", w, "DenseBackwardData W", dx, "DenseBackwardData dX")
	if err != nil {
		return err
	}
	var ym model.Mat
	if act != model.Linear {
		Y, err := b.mat(y, "DenseBackwardData Y")
		if err != nil {
			return err
		}
		ym = Y
	}
	if err := backendcheck.DenseBackwardDataShapes(DZ, W, act, ym, DX); err != nil {
		return fmt.Errorf("cpu: DenseBackwardData: %w", err)
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("cpu: DenseBackwardData: %w", err)
	}
	if DX.rows == 0 || DX.cols == 0 {
		return nil
	}
	b.gemmPrecision(p, false, false, DX.rows, DX.cols, DZ.cols, alpha, DZ.data, W.data, 0, DX.data)
	if act == model.Linear {
		return nil
	}
	return b.ActivationGrad(act, DX, ym)
}

// DenseGradWeights is model.DenseOps.DenseGradWeights: the product, then
// ColumnSums (its float64 sums in row order).
func (b *Backend) DenseGradWeights(p model.Precision, dz, x model.Mat, alpha float32, dw, db model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	DZ, X, DW, err := b.mat3(dz, "DenseGradWeights dZ", x, "DenseGradWeights X", dw, "DenseGradWeights dW")
	if err != nil {
		return err
	}
	var dbm model.Mat
	if db != nil {
		DB, err := b.mat(db, "DenseGradWeights db")
		if err != nil {
			return err
		}
		dbm = DB
	}
	if err := backendcheck.DenseGradWeightsShapes(DZ, X, DW, dbm); err != nil {
		return fmt.Errorf("cpu: DenseGradWeights: %w", err)
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("cpu: DenseGradWeights: %w", err)
	}
	if DW.rows > 0 && DW.cols > 0 {
		b.gemmPrecision(p, true, false, DW.rows, DW.cols, DZ.rows, alpha, DZ.data, X.data, 0, DW.data)
	}
	if dbm == nil {
		return nil
	}
	return b.ColumnSums(dbm, alpha, DZ, 0)
}

// mat3 resolves three handles.
func (b *Backend) mat3(x model.Mat, xw string, y model.Mat, yw string, z model.Mat, zw string) (X, Y, Z *Matrix, err error) {
	if X, err = b.mat(x, xw); err != nil {
		return
	}
	if Y, err = b.mat(y, yw); err != nil {
		return
	}
	Z, err = b.mat(z, zw)
	return
}
