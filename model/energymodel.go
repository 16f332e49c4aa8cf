package model

import (
	"errors"
	"fmt"
)

// Param is one trainable tensor of an EnergyModel: its value and the
// gradient of the loss with respect to it, both on the model's Backend and of
// the same shape. Name is stable across runs ("layer0/W", "layer0/b", ...) so
// checkpoints can match parameters by name, not by position alone.
type Param struct {
	Name  string
	Value Mat
	Grad  Mat
}

// Shape returns the parameter's rows and columns.
func (p *Param) Shape() (rows, cols int) { return p.Value.Rows(), p.Value.Cols() }

// Size returns the number of scalars in the parameter.
func (p *Param) Size() int { return p.Value.Rows() * p.Value.Cols() }

// EnergyModel computes the energy E(W, y, X) of every answer y for a batch of
// inputs X, and the gradient of a loss with respect to its parameters W.
//
// The answer space is flat: Classes() answers indexed 0..Classes()-1. A model
// over several output variables (a joint answer) fits by enumerating the
// product space in row-major order; the loss and the trainer never look
// inside an answer.
//
// A model is not safe for concurrent use. Mats it returns are owned by the
// model and valid until its next Forward with the same number of rows.
type EnergyModel interface {
	// Inputs is the number of columns of X.
	Inputs() int
	// Classes is the number of answers y: the columns of E.
	Classes() int
	// Forward computes the energies E (B x Classes) of the batch x (B x
	// Inputs). The model keeps x and its activations for Backward, so x
	// must not change before Backward returns.
	Forward(x Mat) (Mat, error)
	// Backward takes dL/dE for the batch of the last Forward and overwrites
	// every Param's Grad with dL/dW. It does not modify dE.
	Backward(dE Mat) error
	// Params lists the trainable parameters in a fixed order.
	Params() []*Param
	// Free releases everything the model holds on its Backend.
	Free() error
}

// freeAll frees every non-nil Mat/Ints in xs and returns the first error.
func freeAll(b Backend, xs ...any) error {
	var errs []error
	for _, x := range xs {
		if x == nil {
			continue
		}
		if err := b.Free(x); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// newParam allocates a rows x cols parameter with its gradient and uploads
// init into the value.
func newParam(b Backend, name string, rows, cols int, init []float32) (*Param, error) {
	v, err := b.Alloc(rows, cols)
	if err != nil {
		return nil, fmt.Errorf("allocating %s (%dx%d): %w", name, rows, cols, err)
	}
	g, err := b.Alloc(rows, cols)
	if err != nil {
		_ = b.Free(v)
		return nil, fmt.Errorf("allocating gradient of %s (%dx%d): %w", name, rows, cols, err)
	}
	if err := b.Upload(v, init); err != nil {
		_ = freeAll(b, v, g)
		return nil, fmt.Errorf("initializing %s: %w", name, err)
	}
	return &Param{Name: name, Value: v, Grad: g}, nil
}
