package backendcheck

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
)

// DenseForwardShapes checks the operands of model.DenseOps.DenseForward:
// Z = act(alpha (X W^T + 1 b)) with X B x In, W Out x In, Z B x Out and b
// nil or 1 x Out; Z must be none of the inputs.
func DenseForwardShapes(x, w, b model.Mat, act model.Activation, z model.Mat) error {
	if err := model.CheckDenseActivation(act); err != nil {
		return err
	}
	if _, _, _, err := GemmDims(false, true, x, w, z); err != nil {
		return fmt.Errorf("X W^T -> Z: %w", err)
	}
	if b != nil {
		if err := RowVector("b", b, "Z", z); err != nil {
			return err
		}
		if sameHandle(b, z) {
			return fmt.Errorf("Z (%s) must not be the bias b", Shape(z))
		}
	}
	return nil
}

// DenseBackwardDataShapes checks the operands of DenseBackwardData: dX =
// (alpha dZ W) * act'(Y) with dZ B x Out, W Out x In, dX and Y B x In (Y
// may be nil for Linear); dX must be none of the inputs.
func DenseBackwardDataShapes(dz, w model.Mat, act model.Activation, y, dx model.Mat) error {
	if err := model.CheckDenseActivation(act); err != nil {
		return err
	}
	if _, _, _, err := GemmDims(false, false, dz, w, dx); err != nil {
		return fmt.Errorf("dZ W -> dX: %w", err)
	}
	if act == model.Linear {
		return nil
	}
	if y == nil {
		return fmt.Errorf("the activation output Y is nil (needed for the %v derivative)", act)
	}
	if err := SameShape([]string{"dX", "Y"}, dx, y); err != nil {
		return err
	}
	if sameHandle(y, dx) {
		return fmt.Errorf("dX (%s) must not be the activation output Y", Shape(dx))
	}
	return nil
}

// DenseGradWeightsShapes checks the operands of DenseGradWeights: dW =
// alpha dZ^T X, db = alpha colsum(dZ) with dZ B x Out, X B x In, dW Out x In
// and db nil or 1 x Out; dW and db must be distinct and none of the inputs.
func DenseGradWeightsShapes(dz, x, dw, db model.Mat) error {
	if _, _, _, err := GemmDims(true, false, dz, x, dw); err != nil {
		return fmt.Errorf("dZ^T X -> dW: %w", err)
	}
	if db == nil {
		return nil
	}
	if err := RowVector("db", db, "dZ", dz); err != nil {
		return err
	}
	if sameHandle(db, dz) || sameHandle(db, x) || sameHandle(db, dw) {
		return fmt.Errorf("db (%s) must not be dZ, X or dW", Shape(db))
	}
	return nil
}
