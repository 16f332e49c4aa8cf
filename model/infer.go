package model

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Energies runs m over the n rows of x (n x Inputs, row-major) in batches
// of at most batch rows and calls fn with each batch's first row index and
// its energies (rows x Classes, row-major; the slice is reused by the next
// call). It is inference: no labels, no gradients.
func Energies(b Backend, m EnergyModel, x []float32, n, batch int, fn func(start int, e []float32) error) error {
	if b == nil || m == nil {
		return errors.New("Energies: nil backend or model")
	}
	d, k := m.Inputs(), m.Classes()
	if n < 1 || batch < 1 || len(x) != n*d {
		return fmt.Errorf("Energies: need n >= 1, batch >= 1 and len(x) = n*%d; got n=%d batch=%d len(x)=%d", d, n, batch, len(x))
	}
	batch = min(batch, n)
	xb, err := b.Alloc(batch, d)
	if err != nil {
		return fmt.Errorf("Energies: %w", err)
	}
	defer b.Free(xb)
	hx := make([]float32, batch*d)
	he := make([]float32, batch*k)
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		// A short last batch is padded with zeros: one buffer size, and
		// the padding rows' energies are simply not passed on.
		clear(hx)
		copy(hx, x[start*d:end*d])
		if err := b.Upload(xb, hx); err != nil {
			return fmt.Errorf("Energies: %w", err)
		}
		e, err := m.Forward(xb)
		if err != nil {
			return fmt.Errorf("Energies rows %d..%d: %w", start, end-1, err)
		}
		if err := b.Download(he, e); err != nil {
			return fmt.Errorf("Energies: %w", err)
		}
		if err := fn(start, he[:(end-start)*k]); err != nil {
			return err
		}
	}
	return nil
}

// Ranked is one answer of a prediction: its index, energy and Gibbs
// probability at the model's beta.
type Ranked struct {
	Answer      int
	Energy      float64
	Probability float64
}

// Rank returns the top answers of one row of energies, lowest energy first
// (ties to the lower index), with their probabilities P(y) = exp(-beta E_y)
// / Z, computed stably from the minimum energy, and log Z. top <= 0 or
// beyond len(e) ranks every answer.
func Rank(e []float32, beta float64, top int) (ranked []Ranked, logZ float64) {
	if len(e) == 0 {
		return nil, math.Inf(-1)
	}
	lo := math.Inf(1)
	for _, v := range e {
		lo = math.Min(lo, float64(v))
	}
	var z float64
	for _, v := range e {
		z += math.Exp(-beta * (float64(v) - lo))
	}
	logZ = -beta*lo + math.Log(z)
	idx := make([]int, len(e))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return e[idx[i]] < e[idx[j]] })
	if top <= 0 || top > len(e) {
		top = len(e)
	}
	ranked = make([]Ranked, top)
	for i := range ranked {
		y := idx[i]
		ranked[i] = Ranked{Answer: y, Energy: float64(e[y]), Probability: math.Exp(-beta*(float64(e[y])-lo)) / z}
	}
	return ranked, logZ
}
