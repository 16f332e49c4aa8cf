package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// dense is a stack of fully connected layers: hidden layers h = act(W h' +
// b), then a linear output layer whose negated scores are the energies,
// E(y, x) = -(W_y . h + b_y). With no hidden layer it is the linear energy
// model E(y, x) = -(W_y . x + b_y), W being Classes x Inputs.
type dense struct {
	b               Backend
	inputs, classes int
	spec            Spec
	w, bias         []*Param // per layer; W is out x in, b is 1 x out
	params          []*Param
	bufs            map[int]*denseBuffers // per batch size: batches differ only at the end of an epoch and in eval
	lastX           Mat
	last            *denseBuffers
	freed           bool
	// inputGrad makes Backward (and the fused head's backward) also write
	// dL/dx into the batch's dx buffer: a model below this one needs it
	// (the CBOW layer, cbow.go).
	inputGrad bool
	// prec is the precision of the layers' products (Config.Precision);
	// ops runs them, fused where the backend has DenseOps.
	prec Precision
	ops  DenseOps
}

// denseBuffers holds the activations of one batch size.
type denseBuffers struct {
	h  []Mat // post-activation outputs of the hidden layers (B x H_l)
	dh []Mat // dL/dh, then dL/d(pre-activation) in place (B x H_l)
	e  Mat   // energies (B x Classes); nil until Forward needs them
	dx Mat   // dL/dx (B x Inputs), only with inputGrad
}

// NewEnergyModel allocates the model spec describes on b, for inputs of
// width inputs and classes answers, initialized from rng: ReLU hidden layers
// He-uniform, tanh hidden layers and the output layer Glorot-uniform, biases
// zero. The same rng state gives bitwise the same initial parameters.
func NewEnergyModel(b Backend, spec Spec, inputs, classes int, rng *rand.Rand) (EnergyModel, error) {
	if b == nil {
		return nil, errors.New("NewEnergyModel: nil backend")
	}
	if rng == nil {
		return nil, errors.New("NewEnergyModel: nil rng")
	}
	if inputs < 1 || classes < 1 {
		return nil, fmt.Errorf("NewEnergyModel: need inputs >= 1 and classes >= 1, got %d and %d", inputs, classes)
	}
	if spec.Embed > 0 {
		return newCBOW(b, spec, inputs, classes, rng)
	}
	if spec.Activation != ReLU && spec.Activation != Tanh {
		return nil, fmt.Errorf("NewEnergyModel: unknown activation %v", spec.Activation)
	}
	for _, h := range spec.Hidden {
		if h < 1 {
			return nil, fmt.Errorf("NewEnergyModel: hidden size %d < 1 in %v", h, spec.Hidden)
		}
	}
	m := &dense{b: b, inputs: inputs, classes: classes, spec: Spec{Hidden: append([]int(nil), spec.Hidden...), Activation: spec.Activation}, bufs: map[int]*denseBuffers{}, ops: denseOps(b)}
	in := inputs
	sizes := append(append([]int(nil), spec.Hidden...), classes)
	for l, out := range sizes {
		hidden := l < len(spec.Hidden)
		// He for ReLU keeps the activations' variance through the layer;
		// Glorot suits tanh and the linear output layer.
		limit := math.Sqrt(6 / float64(in+out))
		if hidden && spec.Activation == ReLU {
			limit = math.Sqrt(6 / float64(in))
		}
		init := make([]float32, out*in)
		for i := range init {
			init[i] = float32((2*rng.Float64() - 1) * limit)
		}
		w, err := newParam(b, fmt.Sprintf("layer%d/W", l), out, in, init)
		if err != nil {
			_ = m.Free()
			return nil, err
		}
		m.w = append(m.w, w)
		m.params = append(m.params, w)
		bias, err := newParam(b, fmt.Sprintf("layer%d/b", l), 1, out, make([]float32, out))
		if err != nil {
			_ = m.Free()
			return nil, err
		}
		m.bias = append(m.bias, bias)
		m.params = append(m.params, bias)
		in = out
	}
	return m, nil
}

func (m *dense) Inputs() int       { return m.inputs }
func (m *dense) Classes() int      { return m.classes }
func (m *dense) Params() []*Param  { return m.params }
func (m *dense) String() string    { return m.spec.String() }
func (m *dense) hiddenLayers() int { return len(m.spec.Hidden) }

func (m *dense) buffers(rows int) (*denseBuffers, error) {
	if bf := m.bufs[rows]; bf != nil {
		return bf, nil
	}
	bf := &denseBuffers{}
	for _, h := range m.spec.Hidden {
		a, err := m.b.Alloc(rows, h)
		if err != nil {
			_ = bf.free(m.b)
			return nil, err
		}
		bf.h = append(bf.h, a)
		d, err := m.b.Alloc(rows, h)
		if err != nil {
			_ = bf.free(m.b)
			return nil, err
		}
		bf.dh = append(bf.dh, d)
	}
	if m.inputGrad {
		d, err := m.b.Alloc(rows, m.inputs)
		if err != nil {
			_ = bf.free(m.b)
			return nil, err
		}
		bf.dx = d
	}
	// The energies (B x Classes) are allocated by Forward on first use:
	// the fused energy head (head.go) never needs them.
	m.bufs[rows] = bf
	return bf, nil
}

func (bf *denseBuffers) free(b Backend) error {
	var xs []any
	for _, x := range bf.h {
		xs = append(xs, x)
	}
	for _, x := range bf.dh {
		xs = append(xs, x)
	}
	for _, x := range []Mat{bf.e, bf.dx} {
		if x != nil {
			xs = append(xs, x)
		}
	}
	return freeAll(b, xs...)
}

func (m *dense) Forward(x Mat) (Mat, error) {
	in, bf, err := m.forwardHidden(x)
	if err != nil {
		return nil, err
	}
	if bf.e == nil {
		if bf.e, err = m.b.Alloc(x.Rows(), m.classes); err != nil {
			return nil, err
		}
	}
	L := m.hiddenLayers()
	// E = -(in W^T + b): the sign is folded into alpha rather than a pass.
	if err := m.ops.DenseForward(m.prec, in, m.w[L].Value, m.bias[L].Value, -1, Linear, bf.e); err != nil {
		return nil, fmt.Errorf("output layer: %w", err)
	}
	return bf.e, nil
}

// forwardHidden runs the hidden layers on x and returns the output
// layer's input (x itself for a linear model) and the batch's buffers; it
// records x and the buffers for the backward pass.
func (m *dense) forwardHidden(x Mat) (Mat, *denseBuffers, error) {
	if m.freed {
		return nil, nil, errors.New("model: Forward after Free")
	}
	if x == nil || x.Cols() != m.inputs || x.Rows() < 1 {
		return nil, nil, fmt.Errorf("model %v: Forward needs a B x %d input (B >= 1), got %s", m.spec, m.inputs, shapeOf(x))
	}
	bf, err := m.buffers(x.Rows())
	if err != nil {
		return nil, nil, err
	}
	// Each layer is one DenseOps call: on a GPU one GEMM launch with the
	// bias and activation in its epilogue.
	in := x
	for l := range m.spec.Hidden {
		h := bf.h[l]
		if err := m.ops.DenseForward(m.prec, in, m.w[l].Value, m.bias[l].Value, 1, m.spec.Activation, h); err != nil {
			return nil, nil, fmt.Errorf("layer %d: %w", l, err)
		}
		in = h
	}
	m.lastX, m.last = x, bf
	return in, bf, nil
}

func (m *dense) Backward(dE Mat) error {
	if m.freed {
		return errors.New("model: Backward after Free")
	}
	if m.last == nil {
		return errors.New("model: Backward before Forward")
	}
	rows := m.lastX.Rows()
	if dE == nil || dE.Rows() != rows || dE.Cols() != m.classes {
		return fmt.Errorf("model %v: Backward needs dE of shape %dx%d (the last Forward's batch), got %s", m.spec, rows, m.classes, shapeOf(dE))
	}
	L := m.hiddenLayers()
	bf := m.last
	in := m.lastX
	if L > 0 {
		in = bf.h[L-1]
	}
	// Output layer, scores = in W^T + b and E = -scores:
	// dW = -dE^T in, db = -colsum(dE) (one pass, DenseGradWeights), and
	// d(pre-activation of the last hidden layer) = -(dE W) * act'(h), the
	// activation derivative fused into that product (DenseBackwardData).
	if err := m.ops.DenseGradWeights(m.prec, dE, in, -1, m.w[L].Grad, m.bias[L].Grad); err != nil {
		return fmt.Errorf("output layer: %w", err)
	}
	if L == 0 {
		if m.inputGrad {
			// d(in) = -dE W, in being the model's input (no activation).
			return m.ops.DenseBackwardData(m.prec, dE, m.w[L].Value, -1, Linear, nil, bf.dx)
		}
		return nil
	}
	if err := m.ops.DenseBackwardData(m.prec, dE, m.w[L].Value, -1, m.spec.Activation, bf.h[L-1], bf.dh[L-1]); err != nil {
		return fmt.Errorf("output layer: %w", err)
	}
	return m.backwardHidden(bf, true)
}

// backwardHidden back-propagates through the hidden layers (L >= 1) from
// bf.dh[L-1], which holds dL/d(pre-activation) of the last hidden layer
// when preact (the model's own Backward fuses the activation derivative
// into the product that computes it), or dL/dh (the fused energy head's
// input gradient), which it first multiplies by act'. Below, each layer's
// DenseBackwardData leaves dL/d(pre-activation) in dh[l-1] the same way.
func (m *dense) backwardHidden(bf *denseBuffers, preact bool) error {
	L := m.hiddenLayers()
	if !preact {
		if err := m.b.ActivationGrad(m.spec.Activation, bf.dh[L-1], bf.h[L-1]); err != nil {
			return fmt.Errorf("layer %d: %w", L-1, err)
		}
	}
	for l := L - 1; l >= 0; l-- {
		d := bf.dh[l]
		in := m.lastX
		if l > 0 {
			in = bf.h[l-1]
		}
		if err := m.ops.DenseGradWeights(m.prec, d, in, 1, m.w[l].Grad, m.bias[l].Grad); err != nil {
			return fmt.Errorf("layer %d: %w", l, err)
		}
		if l > 0 {
			if err := m.ops.DenseBackwardData(m.prec, d, m.w[l].Value, 1, m.spec.Activation, bf.h[l-1], bf.dh[l-1]); err != nil {
				return fmt.Errorf("layer %d: %w", l, err)
			}
		} else if m.inputGrad {
			if err := m.ops.DenseBackwardData(m.prec, d, m.w[0].Value, 1, Linear, nil, bf.dx); err != nil {
				return fmt.Errorf("layer 0 input gradient: %w", err)
			}
		}
	}
	return nil
}

func (m *dense) Free() error {
	if m.freed {
		return nil
	}
	m.freed = true
	var errs []error
	for _, p := range m.params {
		errs = append(errs, freeAll(m.b, p.Value, p.Grad))
	}
	for _, bf := range m.bufs {
		errs = append(errs, bf.free(m.b))
	}
	m.bufs, m.last, m.lastX = nil, nil, nil
	return errors.Join(errs...)
}

func shapeOf(x Mat) string {
	if x == nil {
		return "nil"
	}
	return fmt.Sprintf("%dx%d", x.Rows(), x.Cols())
}
