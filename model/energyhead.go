package model

import "fmt"

// EnergyHeadOps is an optional Backend capability: the fused energy head,
// the last (linear) layer of an energy model together with its loss, for
// answer spaces too large to hold the energies of a batch.
//
// For hidden rows h (B x D), answer weights w (K x D) and biases bias
// (1 x K), the energies are
//
//	E[i,y] = -(h_i . w_y + bias_y)
//
// and the head computes them tile by tile (a few hundred answers at a
// time), folding each tile into the rows' online minimum and sum at beta
// (log Z), E_C, E_I and argmin as it goes, so that no B x K buffer ever
// exists: memory O(B x tile + B x D + K x D). Its results are what
// Gemm(h, w^T) + AddRowVector + EnergyLoss would give for the same E (the
// materializing path, which model/backendtest uses as its reference):
// the same statistics, the same tie rules (argmin and E_I to the lowest
// index), the same ten losses with their Margin, Beta, Gamma and Delta,
// rows labelled IgnoreLabel with loss 0, E_C = E_I = 0 and no gradient.
//
// EnergyHeadGrad adds the gradient of gradScale * sum_i L_i with respect to
// the head's inputs and parameters. It recomputes each tile of E, forms
// dE = gradScale * dL/dE on chip (in cache) and accumulates
//
//	dh = -dE w,   dw = -dE^T h,   db = -colsums(dE)
//
// in a fixed order, without float atomics: the same inputs give bitwise the
// same outputs, run after run, whatever the thread count or scheduling.
//
// The trainer, Evaluate and the models' loss pass (head.go) use it for the
// last layer of a dense model whenever the backend has it.
type EnergyHeadOps interface {
	// EnergyHead writes, for the energies above, the statistics stats
	// (B x NumStats) and argmin (B) that EnergyLoss writes. A label
	// outside [0, K) other than IgnoreLabel is an error, reported before
	// any write.
	EnergyHead(h, w, bias Mat, labels Ints, loss Loss, stats Mat, argmin Ints) error
	// EnergyHeadGrad writes what EnergyHead writes and overwrites dw
	// (K x D), db (1 x K) and, unless it is nil (the head's input needs no
	// gradient), dh (B x D) with the gradients above.
	EnergyHeadGrad(h, w, bias Mat, labels Ints, loss Loss, gradScale float32, stats Mat, argmin Ints, dh, dw, db Mat) error
}

// EnergyHeadPrecisionOps is an optional Backend capability beside
// EnergyHeadOps: the fused energy head with the energies' products at a
// Precision other than FP32, the model's own (Config.Precision), so that a
// dense model's last layer computes the same energies through the head as
// through DenseForward. The operands h and w of E = -(h w^T + bias) are
// rounded as GemmPrecision rounds them (TF32, BF16: each element; TF32x3:
// the three-product split); the bias is not rounded. EnergyHeadGradPrecision
// recomputes the energies with the same products, so the probabilities of
// the backward are those of the forward; the gradients' own products
// (dh = -dE w, dw = -dE^T h) are float32 on unrounded operands on every
// backend. FP32 is exactly EnergyHeadOps.
//
// The loss pass uses it for a model whose precision is not FP32; a
// backend with EnergyHeadOps but without this capability gets the
// materializing path for such a model.
type EnergyHeadPrecisionOps interface {
	EnergyHeadPrecision(p Precision, h, w, bias Mat, labels Ints, loss Loss, stats Mat, argmin Ints) error
	EnergyHeadGradPrecision(p Precision, h, w, bias Mat, labels Ints, loss Loss, gradScale float32, stats Mat, argmin Ints, dh, dw, db Mat) error
}

// HasEnergyHeadAt reports whether b has the fused energy head at
// precision p: EnergyHeadOps, and for a p other than FP32
// EnergyHeadPrecisionOps too.
func HasEnergyHeadAt(b Backend, p Precision) bool {
	if _, ok := b.(EnergyHeadOps); !ok {
		return false
	}
	if p == FP32 {
		return true
	}
	_, ok := b.(EnergyHeadPrecisionOps)
	return ok
}

// EnergyHeadAt is the fused head's forward at precision p, as GemmAt is
// Gemm at p: EnergyHead for FP32, EnergyHeadPrecision otherwise.
func EnergyHeadAt(b Backend, p Precision, h, w, bias Mat, labels Ints, loss Loss, stats Mat, argmin Ints) error {
	if err := CheckEnergyHeadAt(b, p); err != nil {
		return err
	}
	if p == FP32 {
		return b.(EnergyHeadOps).EnergyHead(h, w, bias, labels, loss, stats, argmin)
	}
	return b.(EnergyHeadPrecisionOps).EnergyHeadPrecision(p, h, w, bias, labels, loss, stats, argmin)
}

// EnergyHeadGradAt is EnergyHeadAt with the gradients: EnergyHeadGrad for
// FP32, EnergyHeadGradPrecision otherwise.
func EnergyHeadGradAt(b Backend, p Precision, h, w, bias Mat, labels Ints, loss Loss, gradScale float32, stats Mat, argmin Ints, dh, dw, db Mat) error {
	if err := CheckEnergyHeadAt(b, p); err != nil {
		return err
	}
	if p == FP32 {
		return b.(EnergyHeadOps).EnergyHeadGrad(h, w, bias, labels, loss, gradScale, stats, argmin, dh, dw, db)
	}
	return b.(EnergyHeadPrecisionOps).EnergyHeadGradPrecision(p, h, w, bias, labels, loss, gradScale, stats, argmin, dh, dw, db)
}

// CheckEnergyHeadAt is HasEnergyHeadAt as an error naming what b lacks.
func CheckEnergyHeadAt(b Backend, p Precision) error {
	if HasEnergyHeadAt(b, p) {
		return nil
	}
	if _, ok := b.(EnergyHeadOps); !ok {
		return fmt.Errorf("backend %s has no fused energy head (model.EnergyHeadOps)", b.Name())
	}
	return fmt.Errorf("backend %s has no %v energy head (model.EnergyHeadPrecisionOps)", b.Name(), p)
}
