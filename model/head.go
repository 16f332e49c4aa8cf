package model

import "fmt"

// The loss pass: a batch through the model to its loss statistics (and,
// when training, every parameter's gradient), by the fused energy head
// whenever the backend has one (EnergyHeadOps) and the model ends in a
// plain linear energy layer, else by Forward + EnergyLoss + Backward. The
// trainer's step and Evaluate both go through it, so they take the same
// path and the large answer spaces the head exists for never allocate the
// B x K energies.

// headModel is an EnergyModel whose last layer is a linear energy head,
// E = -(h W^T + b), that EnergyHeadOps can compute in place of Forward:
// the dense model and the models built on it (the CBOW model).
type headModel interface {
	EnergyModel
	// headForward runs every layer but the head on x and returns the
	// head's input h (B x D; x itself for a linear model) and the head's
	// parameters W (K x D) and b (1 x K).
	headForward(x Mat) (h Mat, w, b *Param, err error)
	// headInputGrad is where the head writes dL/dh for the batch of the
	// last headForward; nil when h needs no gradient (it is the data).
	headInputGrad() Mat
	// headBackward back-propagates dL/dh (in headInputGrad) through the
	// layers below the head, overwriting their gradients.
	headBackward() error
	// headPrecision is the precision of the head's products (the model's
	// Config.Precision).
	headPrecision() Precision
}

// fusedHead returns m as a headModel, and its precision, when the loss
// pass can run its last layer on the backend's fused head at that
// precision (HasEnergyHeadAt; else the materializing path computes the
// model's energies at its precision).
func fusedHead(b Backend, m EnergyModel) (headModel, Precision, bool) {
	hm, ok := m.(headModel)
	if !ok || !HasEnergyHeadAt(b, hm.headPrecision()) {
		return nil, FP32, false
	}
	return hm, hm.headPrecision(), true
}

// lossPass runs m on the batch x with labels y and writes the per-row
// statistics and argmin of loss (see Backend.EnergyLoss). With grad, every
// parameter's Grad is also overwritten with the gradient of scale * sum of
// the rows' losses: for the head at once, for the layers below by the
// returned backward function, which the caller runs once it has looked at
// the loss (the trainer stops before a non-finite step). Without grad,
// backward is nil.
func lossPass(b Backend, m EnergyModel, x Mat, y Ints, loss Loss, scale float32, stats Mat, argmin Ints, grad bool) (backward func() error, err error) {
	if hm, p, ok := fusedHead(b, m); ok {
		h, w, bias, err := hm.headForward(x)
		if err != nil {
			return nil, err
		}
		if !grad {
			if err := EnergyHeadAt(b, p, h, w.Value, bias.Value, y, loss, stats, argmin); err != nil {
				return nil, fmt.Errorf("energy head: %w", err)
			}
			return nil, nil
		}
		if err := EnergyHeadGradAt(b, p, h, w.Value, bias.Value, y, loss, scale, stats, argmin, hm.headInputGrad(), w.Grad, bias.Grad); err != nil {
			return nil, fmt.Errorf("energy head: %w", err)
		}
		return hm.headBackward, nil
	}
	e, err := m.Forward(x)
	if err != nil {
		return nil, err
	}
	if !grad {
		// The backend's forward-only statistics where it has them
		// (energyStats, eval.go).
		return nil, energyStats(b, e, y, loss, stats, argmin)
	}
	if err := b.EnergyLoss(e, y, loss, scale, stats, argmin); err != nil {
		return nil, err
	}
	return func() error { return m.Backward(e) }, nil
}

// The dense model's head: its output layer.

func (m *dense) headForward(x Mat) (Mat, *Param, *Param, error) {
	h, _, err := m.forwardHidden(x)
	if err != nil {
		return nil, nil, nil, err
	}
	L := m.hiddenLayers()
	return h, m.w[L], m.bias[L], nil
}

func (m *dense) headPrecision() Precision { return m.prec }

func (m *dense) headInputGrad() Mat {
	if m.last == nil {
		return nil
	}
	if L := m.hiddenLayers(); L > 0 {
		return m.last.dh[L-1]
	}
	return m.last.dx // nil unless the input needs a gradient
}

func (m *dense) headBackward() error {
	if m.last == nil {
		return fmt.Errorf("model: backward before forward")
	}
	if m.hiddenLayers() == 0 {
		return nil
	}
	return m.backwardHidden(m.last, false) // the head wrote dL/dh of the last hidden layer
}

// plain hides a backend's optional operations from lossPass (the fused
// head among them): Trainer.NoEnergyHead.
type plain struct{ Backend }
