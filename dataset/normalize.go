package dataset

import (
	"fmt"
	"math"
)

// MinStd is the standard deviation below which FitNormalizer treats a
// feature as constant and leaves it unscaled (Std 1). Dividing by a tiny
// deviation would turn a constant training feature (an always-black MNIST
// corner pixel) into huge values wherever the test set differs from it.
const MinStd = 1e-4

// Normalizer standardizes features: x' = (x - Mean[j]) / Std[j]. Fit it on
// the training set only and apply the same one to every set, so that test
// data sees the training statistics.
type Normalizer struct{ Mean, Std []float32 }

// FitNormalizer computes per-feature mean and standard deviation of train
// (accumulated in float64; population deviation, floored as described at
// MinStd).
func FitNormalizer(train *Set) (Normalizer, error) {
	if train.N == 0 || train.D == 0 {
		return Normalizer{}, fmt.Errorf("%s: cannot fit a normalizer on %d rows of %d features", train.Name, train.N, train.D)
	}
	if len(train.X) != train.N*train.D {
		return Normalizer{}, fmt.Errorf("%s: len(X) = %d, want N*D = %d", train.Name, len(train.X), train.N*train.D)
	}
	d := train.D
	sum := make([]float64, d)
	for i := range train.N {
		for j, v := range train.X[i*d : (i+1)*d] {
			sum[j] += float64(v)
		}
	}
	mean := make([]float64, d)
	for j := range mean {
		mean[j] = sum[j] / float64(train.N)
	}
	// Two passes (mean, then squared deviations) avoid the cancellation of
	// the one-pass E[x^2] - E[x]^2.
	sq := make([]float64, d)
	for i := range train.N {
		for j, v := range train.X[i*d : (i+1)*d] {
			t := float64(v) - mean[j]
			sq[j] += t * t
		}
	}
	n := Normalizer{Mean: make([]float32, d), Std: make([]float32, d)}
	for j := range d {
		n.Mean[j] = float32(mean[j])
		sd := math.Sqrt(sq[j] / float64(train.N))
		if !(sd >= MinStd) {
			sd = 1
		}
		n.Std[j] = float32(sd)
	}
	return n, nil
}

// Apply standardizes s in place.
func (n Normalizer) Apply(s *Set) error {
	if len(n.Mean) != s.D || len(n.Std) != s.D {
		return fmt.Errorf("%s: normalizer has %d means and %d deviations for %d features", s.Name, len(n.Mean), len(n.Std), s.D)
	}
	if len(s.X) != s.N*s.D {
		return fmt.Errorf("%s: len(X) = %d, want N*D = %d", s.Name, len(s.X), s.N*s.D)
	}
	inv := make([]float32, s.D)
	for j, sd := range n.Std {
		if !(sd > 0) {
			return fmt.Errorf("%s: normalizer deviation %d is %v, want > 0", s.Name, j, sd)
		}
		inv[j] = 1 / sd
	}
	for i := range s.N {
		row := s.X[i*s.D : (i+1)*s.D]
		for j := range row {
			row[j] = (row[j] - n.Mean[j]) * inv[j]
		}
	}
	return nil
}

// Scale01 maps the features of all the given sets, in place, from their
// joint [min, max] onto [0, 1] with one affine map, so that images keep
// their relative intensities and train and test stay comparable. Sets whose
// values are all equal become all zero.
func Scale01(sets ...*Set) error {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range sets {
		for _, v := range s.X {
			if math.IsNaN(float64(v)) {
				return fmt.Errorf("%s: NaN feature", s.Name)
			}
			lo = min(lo, float64(v))
			hi = max(hi, float64(v))
		}
	}
	if math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return nil // no data, or infinite values that no scale can map
	}
	scale := 0.0
	if hi > lo {
		scale = 1 / (hi - lo)
	}
	for _, s := range sets {
		for i, v := range s.X {
			s.X[i] = float32(min(max((float64(v)-lo)*scale, 0), 1))
		}
	}
	return nil
}
