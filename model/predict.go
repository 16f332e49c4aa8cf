package model

import (
	"errors"
	"fmt"
)

// Prediction is a model's answer for one raw input row.
type Prediction struct {
	Answer      int     // the answer of lowest energy
	Name        string  // its class name, when the checkpoint has them
	Energy      float64 // E(Answer, x)
	Probability float64 // P(Answer | x) at the checkpoint's beta
	// Energies holds E(y, x) of every answer y.
	Energies []float32
}

// Predictor answers raw inputs with a checkpoint's model on a backend: the
// checkpoint's normalization is applied to each row first, as training
// applied it, so rows come as they are in the data file.
type Predictor struct {
	ck    *Checkpoint
	b     Backend
	m     EnergyModel
	batch int
}

// NewPredictor builds c's model on b for Predict. Close it to free the model.
func (c *Checkpoint) NewPredictor(b Backend) (*Predictor, error) {
	if b == nil {
		return nil, errors.New("NewPredictor: nil backend")
	}
	if c.Config.Chain {
		// Its rows would be scored as sequences of length one.
		return nil, fmt.Errorf("NewPredictor: %s is a chain model, whose answers are sequences: use PredictChain", c.Path)
	}
	m, err := c.NewModel(b)
	if err != nil {
		return nil, err
	}
	return &Predictor{ck: c, b: b, m: m, batch: 1024}, nil
}

// Predict answers each row: Inputs raw feature values, in the order (and
// units) of the training data. Rows of another length, or with a
// non-finite value, are refused, naming the row.
func (p *Predictor) Predict(rows [][]float32) ([]Prediction, error) {
	c := p.ck
	d := c.Inputs
	if len(rows) == 0 {
		return nil, nil
	}
	x := make([]float32, 0, len(rows)*d)
	for i, r := range rows {
		if len(r) != d {
			return nil, fmt.Errorf("predict: row %d has %d values, the model %s takes %d", i, len(r), c.Spec(), d)
		}
		for j, v := range r {
			if v-v != 0 {
				return nil, fmt.Errorf("predict: value %d of row %d is %v", j, i, v)
			}
			if c.Data.Mean != nil {
				v = (v - c.Data.Mean[j]) / c.Data.Std[j]
			}
			x = append(x, v)
		}
	}
	k := c.Classes
	out := make([]Prediction, 0, len(rows))
	err := Energies(p.b, p.m, x, len(rows), p.batch, func(start int, e []float32) error {
		for r := 0; r*k < len(e); r++ {
			row := append([]float32(nil), e[r*k:(r+1)*k]...)
			top, _ := Rank(row, c.Config.Loss.Beta, 1)
			pr := Prediction{Answer: top[0].Answer, Energy: top[0].Energy, Probability: top[0].Probability, Energies: row}
			if pr.Answer < len(c.Data.ClassNames) {
				pr.Name = c.Data.ClassNames[pr.Answer]
			}
			out = append(out, pr)
		}
		return nil
	})
	return out, err
}

// Close frees the model.
func (p *Predictor) Close() error {
	if p.m == nil {
		return nil
	}
	err := p.m.Free()
	p.m = nil
	return err
}

// Predict answers raw input rows with the checkpoint's model on b in one
// call (see Predictor, which keeps the model for many calls).
func (c *Checkpoint) Predict(b Backend, rows [][]float32) ([]Prediction, error) {
	p, err := c.NewPredictor(b)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return p.Predict(rows)
}
