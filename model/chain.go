package model

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// Chain energies: one energy over a whole sequence of answers.
//
// A ChainModel scores a sequence Y = (y_1..y_T) of answers in {0..K-1}
// for the inputs X = (x_1..x_T) with
//
//	E(Y, X) = sum_t U(y_t, x_t) + sum_{t>1} P(y_{t-1}, y_t) + S(y_1) + F(y_T)
//
// where U(k, x) = -(w_k . h(x) + b_k) is a dense model with K outputs on a
// trunk h (linear or MLP) shared by all positions, and P (K x K), S and F
// (K each) are learned. The Gibbs distribution is over all K^T sequences;
// the backend's ChainOps compute log Z, the marginals, the argmin and the
// most offending incorrect sequence by dynamic programming (chainops.go),
// so every loss of loss.go trains it, with sequences as the answers.
// Training goes through NewSequenceTrainer (chaintrain.go), inference
// through PredictChain; docs/SEQUENCE.md describes the data format and the
// commands.
//
// A ChainModel is also an EnergyModel, of the sequences of length one: a
// row x is such a sequence, and Forward gives its K energies U(y, x) +
// S(y) + F(y) (P plays no part). That view is exact, and lets checkpoints
// and other EnergyModel code handle the model; whole sequences need the
// chain operations.

// ChainSpec describes a ChainModel.
type ChainSpec struct {
	// States is K, the number of answers at each position (>= 1).
	States int
	// Trunk is the shared feature extractor of the unary energies, as for
	// NewEnergyModel.
	Trunk Spec
}

// ChainModel is the model described above.
type ChainModel struct {
	b                   Backend
	ops                 ChainOps
	spec                ChainSpec
	trunk               *dense // K outputs: the unary energies U
	trans, start, final *Param
	params              []*Param
	zeros               []float32 // K x K zeros: P's gradient in the length-one view
	freed               bool
}

// Names of the chain's own parameters (TensorName makes them the
// checkpoint's "chain.transitions", "chain.start", "chain.final").
const (
	ParamTransitions = "chain/transitions"
	ParamStart       = "chain/start"
	ParamFinal       = "chain/final"
)

// NewChainModel allocates a chain model on b for inputs of width inputs.
// The trunk and the unary layer are initialized like NewEnergyModel's, the
// transitions, start and final energies at zero, so training starts from a
// per-position classifier. The same rng state gives bitwise the same
// model. b must implement ChainOps.
func NewChainModel(b Backend, spec ChainSpec, inputs int, rng *rand.Rand) (*ChainModel, error) {
	if b == nil {
		return nil, errors.New("NewChainModel: nil backend")
	}
	ops, ok := b.(ChainOps)
	if !ok {
		return nil, fmt.Errorf("NewChainModel: backend %s has no chain operations (model.ChainOps)", b.Name())
	}
	if spec.States < 1 {
		return nil, fmt.Errorf("NewChainModel: need at least 1 state, got %d", spec.States)
	}
	k := spec.States
	trunk, err := NewEnergyModel(b, spec.Trunk, inputs, k, rng)
	if err != nil {
		return nil, fmt.Errorf("NewChainModel: %w", err)
	}
	m := &ChainModel{b: b, ops: ops, trunk: trunk.(*dense), zeros: make([]float32, k*k)}
	m.spec = ChainSpec{States: k, Trunk: m.trunk.spec}
	m.params = append(m.params, m.trunk.params...)
	for _, p := range []struct {
		dst        **Param
		name       string
		rows, cols int
	}{{&m.trans, ParamTransitions, k, k}, {&m.start, ParamStart, 1, k}, {&m.final, ParamFinal, 1, k}} {
		if *p.dst, err = newParam(b, p.name, p.rows, p.cols, make([]float32, p.rows*p.cols)); err != nil {
			_ = m.Free()
			return nil, fmt.Errorf("NewChainModel: %w", err)
		}
		m.params = append(m.params, *p.dst)
	}
	return m, nil
}

// Inputs is the width of one position's x.
func (m *ChainModel) Inputs() int { return m.trunk.inputs }

// Classes is K, the answers of one position (and of a sequence of length
// one, the EnergyModel view).
func (m *ChainModel) Classes() int { return m.spec.States }

// States is K.
func (m *ChainModel) States() int { return m.spec.States }

// Spec returns the model's description.
func (m *ChainModel) Spec() ChainSpec { return m.spec }

// Params lists the trunk's layers (the last one has the K unary outputs),
// then ParamTransitions (K x K, P[j*K+k] = P(j -> k)), ParamStart and
// ParamFinal (1 x K).
func (m *ChainModel) Params() []*Param { return m.params }

func (m *ChainModel) String() string {
	return fmt.Sprintf("chain over %d states, trunk %v", m.spec.States, m.spec.Trunk)
}

// Ops returns the backend's chain operations.
func (m *ChainModel) Ops() ChainOps { return m.ops }

// Chain returns the model's factors with the unary energies u of a batch
// packed by offsets (see Chain).
func (m *ChainModel) Chain(u Mat, offsets Ints) Chain {
	return Chain{U: u, P: m.trans.Value, Start: m.start.Value, Final: m.final.Value, Offsets: offsets}
}

// Grads returns where the gradients of P, S and F go.
func (m *ChainModel) Grads() ChainGrads {
	return ChainGrads{P: m.trans.Grad, Start: m.start.Grad, Final: m.final.Grad}
}

// UnaryEnergies computes U (rows x K) of the positions x (rows x Inputs).
// The Mat is the trunk's and valid until its next forward pass with the
// same number of rows; x must not change before BackwardUnary.
func (m *ChainModel) UnaryEnergies(x Mat) (Mat, error) {
	if m.freed {
		return nil, errors.New("chain model: used after Free")
	}
	return m.trunk.Forward(x)
}

// BackwardUnary takes dL/dU of the last UnaryEnergies and writes the
// trunk's gradients (P, S and F have theirs from ChainLoss).
func (m *ChainModel) BackwardUnary(dU Mat) error {
	if m.freed {
		return errors.New("chain model: used after Free")
	}
	return m.trunk.Backward(dU)
}

// Forward is the EnergyModel view: every row of x is a sequence of length
// one, whose energies are U(y, x) + S(y) + F(y).
func (m *ChainModel) Forward(x Mat) (Mat, error) {
	e, err := m.UnaryEnergies(x)
	if err != nil {
		return nil, err
	}
	if err := m.b.AddRowVector(e, 1, m.start.Value); err != nil {
		return nil, fmt.Errorf("chain model: %w", err)
	}
	if err := m.b.AddRowVector(e, 1, m.final.Value); err != nil {
		return nil, fmt.Errorf("chain model: %w", err)
	}
	return e, nil
}

// Backward is the EnergyModel view's: dS = dF = the column sums of dE,
// dP = 0 (a sequence of length one has no transition).
func (m *ChainModel) Backward(dE Mat) error {
	if err := m.BackwardUnary(dE); err != nil {
		return err
	}
	if err := m.b.ColumnSums(m.start.Grad, 1, dE, 0); err != nil {
		return fmt.Errorf("chain model: %w", err)
	}
	if err := m.b.ColumnSums(m.final.Grad, 1, dE, 0); err != nil {
		return fmt.Errorf("chain model: %w", err)
	}
	if err := m.b.Upload(m.trans.Grad, m.zeros); err != nil {
		return fmt.Errorf("chain model: %w", err)
	}
	return nil
}

// Free releases everything the model holds on its backend.
func (m *ChainModel) Free() error {
	if m.freed {
		return nil
	}
	m.freed = true
	var errs []error
	if m.trunk != nil {
		errs = append(errs, m.trunk.Free())
	}
	for _, p := range []*Param{m.trans, m.start, m.final} {
		if p != nil {
			errs = append(errs, freeAll(m.b, p.Value, p.Grad))
		}
	}
	return errors.Join(errs...)
}
