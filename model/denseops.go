package model

import "fmt"

// Linear is the Activation of a DenseOps call with no nonlinearity (an
// output layer). Only DenseOps accepts it; Activate does not.
const Linear Activation = -1

// DenseOps is an optional Backend capability: a dense layer's products with
// their elementwise neighbours fused in, each one launch on a GPU (the
// GEMM's epilogue does the rest) where the unfused sequence takes two to
// four. The dense model (dense.go) uses it when the backend has it; the
// unfused sequence of Backend calls that each method names is its
// reference (model/backendtest checks every backend against it).
//
// Shapes: X is B x In, W is Out x In (a layer maps In to Out), b 1 x Out,
// Z, Y and dZ B x Out. p is the precision of the product (Precision).
// Outputs are overwritten, never read (NaN in them does not propagate); an
// output must not be one of the inputs.
type DenseOps interface {
	// DenseForward sets Z = act(alpha * (X W^T + 1 b)), act the identity
	// for Linear; b may be nil (no bias). Unfused:
	//
	//	GemmAt(p, false, true, alpha, X, W, 0, Z)
	//	AddRowVector(Z, alpha, b)
	//	Activate(act, Z)            (not for Linear)
	DenseForward(p Precision, x, w, b Mat, alpha float32, act Activation, z Mat) error
	// DenseBackwardData sets dX = (alpha * dZ W) * act'(Y) elementwise,
	// where Y (B x In, like dX) is the activation output the layer's input
	// came from, act' taken from it as ActivationGrad does; Linear: no
	// factor. This is the gradient of the layer below's pre-activation:
	// dX feeds that layer's DenseGradWeights directly. Unfused:
	//
	//	GemmAt(p, false, false, alpha, dZ, W, 0, dX)
	//	ActivationGrad(act, dX, Y)  (not for Linear; Y may then be nil)
	DenseBackwardData(p Precision, dz, w Mat, alpha float32, act Activation, y, dx Mat) error
	// DenseGradWeights sets dW = alpha * dZ^T X and db = alpha * colsum(dZ)
	// (db may be nil: no bias gradient). db comes from the same pass over
	// dZ as dW, summed in a fixed order. Unfused:
	//
	//	GemmAt(p, true, false, alpha, dZ, X, 0, dW)
	//	ColumnSums(db, alpha, dZ, 0)
	DenseGradWeights(p Precision, dz, x Mat, alpha float32, dw, db Mat) error
}

// CheckDenseActivation reports an activation DenseOps does not know.
func CheckDenseActivation(act Activation) error {
	switch act {
	case ReLU, Tanh, Linear:
		return nil
	}
	return fmt.Errorf("unknown activation %v (DenseOps takes relu, tanh or linear)", act)
}

// DenseUnfused runs the DenseOps operations as their unfused sequences of
// Backend calls: the reference of model/backendtest, and what dense.go
// does on a backend without DenseOps.
type DenseUnfused struct{ B Backend }

// DenseForward is DenseOps.DenseForward by Gemm, AddRowVector and Activate.
func (u DenseUnfused) DenseForward(p Precision, x, w, b Mat, alpha float32, act Activation, z Mat) error {
	if err := CheckDenseActivation(act); err != nil {
		return err
	}
	if err := GemmAt(u.B, p, false, true, alpha, x, w, 0, z); err != nil {
		return err
	}
	if b != nil {
		if err := u.B.AddRowVector(z, alpha, b); err != nil {
			return err
		}
	}
	if act == Linear {
		return nil
	}
	return u.B.Activate(act, z)
}

// DenseBackwardData is DenseOps.DenseBackwardData by Gemm and ActivationGrad.
func (u DenseUnfused) DenseBackwardData(p Precision, dz, w Mat, alpha float32, act Activation, y, dx Mat) error {
	if err := CheckDenseActivation(act); err != nil {
		return err
	}
	if err := GemmAt(u.B, p, false, false, alpha, dz, w, 0, dx); err != nil {
		return err
	}
	if act == Linear {
		return nil
	}
	return u.B.ActivationGrad(act, dx, y)
}

// DenseGradWeights is DenseOps.DenseGradWeights by Gemm and ColumnSums.
func (u DenseUnfused) DenseGradWeights(p Precision, dz, x Mat, alpha float32, dw, db Mat) error {
	if err := GemmAt(u.B, p, true, false, alpha, dz, x, 0, dw); err != nil {
		return err
	}
	if db == nil {
		return nil
	}
	return u.B.ColumnSums(db, alpha, dz, 0)
}

// denseOps returns b's DenseOps, or the unfused sequence when it has none.
func denseOps(b Backend) DenseOps {
	if d, ok := b.(DenseOps); ok {
		return d
	}
	return DenseUnfused{B: b}
}
