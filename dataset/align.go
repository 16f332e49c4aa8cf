package dataset

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gputrain/gputrain/internal/clip"
)

// AlignFeatures reorders s's feature columns to the order of names, the
// feature names of the data a model was trained on, matching columns by
// header name: a file whose columns come in another order gives the model
// the same inputs. A name the model needs that s lacks, or a column of s
// that the model does not know, is refused. s must have FeatureNames (a
// header); with names nil there is nothing to match and s is left as it is
// when its width fits.
func (s *Set) AlignFeatures(names []string) error {
	if names == nil {
		return nil
	}
	if s.FeatureNames == nil {
		if s.D != len(names) {
			return fmt.Errorf("%s has %d feature columns and no header; the model takes %d (%s)", s.Name, s.D, len(names), clip.String(strings.Join(names, ", ")))
		}
		return nil
	}
	perm, err := matchColumns(s.Name, s.FeatureNames, names)
	if err != nil {
		return err
	}
	if !slices.Equal(perm, identity(len(perm))) {
		x := make([]float32, s.N*len(names))
		for i := range s.N {
			row := s.X[i*s.D : (i+1)*s.D]
			for j, c := range perm {
				x[i*len(names)+j] = row[c]
			}
		}
		s.X = x
	}
	s.D, s.Shape, s.FeatureNames = len(names), []int{len(names)}, slices.Clone(names)
	return nil
}

func identity(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// matchColumns returns, for each wanted name, its index among have; every
// name of have must be wanted and every wanted name present.
func matchColumns(what string, have, want []string) ([]int, error) {
	at := make(map[string]int, len(have))
	for i, h := range have {
		if _, dup := at[h]; dup {
			return nil, fmt.Errorf("%s: the header names column %s twice", what, clip.Quote(h))
		}
		at[h] = i
	}
	perm := make([]int, len(want))
	for j, w := range want {
		i, ok := at[w]
		if !ok {
			return nil, fmt.Errorf("%s has no column %s, a feature of the model (its features: %s)", what, clip.Quote(w), clip.String(strings.Join(want, ", ")))
		}
		perm[j] = i
		delete(at, w)
	}
	for _, h := range have {
		if _, extra := at[h]; extra {
			return nil, fmt.Errorf("%s has a column %s that is not a feature of the model (its features: %s)", what, clip.Quote(h), clip.String(strings.Join(want, ", ")))
		}
	}
	return perm, nil
}

// Relabel maps s's string labels onto names, the class names of the data a
// model was trained on (so class i means the same answer in both); a label
// the model does not know is refused. Integer labels (s.ClassNames nil)
// must lie below len(names) when names is given.
func (s *Set) Relabel(names []string) error {
	if s.Y == nil || names == nil {
		return nil
	}
	if s.ClassNames == nil {
		for i, y := range s.Y {
			if int(y) >= len(names) {
				return fmt.Errorf("%s: label %d of row %d is not one of the %d classes (%s)", s.Name, y, i, len(names), clip.String(strings.Join(names, ", ")))
			}
		}
		s.Classes, s.ClassNames = len(names), slices.Clone(names)
		return nil
	}
	index := make(map[string]int32, len(names))
	for i, n := range names {
		index[n] = int32(i)
	}
	remap := make([]int32, len(s.ClassNames))
	for i, n := range s.ClassNames {
		j, ok := index[n]
		if !ok {
			return fmt.Errorf("%s has the label %s, which is not one of the classes (%s)", s.Name, clip.Quote(n), clip.String(strings.Join(names, ", ")))
		}
		remap[i] = j
	}
	for i, y := range s.Y {
		s.Y[i] = remap[y]
	}
	s.Classes, s.ClassNames = len(names), slices.Clone(names)
	return nil
}
