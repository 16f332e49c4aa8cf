package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// MaxClasses bounds the number of classes a loader accepts. A label like
// 1000000 in a CSV file is far more likely a wrong label column than a real
// million-way problem, and every model allocates an output per class.
const MaxClasses = 1 << 16

// Set is a labelled data set held in memory: N examples of D float32
// features each, with a class label per example.
type Set struct {
	Name string
	// X holds the features, N x D row-major: row i is X[i*D : (i+1)*D].
	X []float32
	// Y holds the labels, one per row, in [0, Classes). Nil when the set has
	// several label variables and no single answer (see Labels).
	Y    []int32
	N, D int
	// Shape is the shape of one example, e.g. [28 28] for MNIST; its product
	// is D. Tabular data has Shape [D].
	Shape []int
	// Classes is the number of answers: the largest integer label + 1, or
	// the number of distinct string labels (or of the class names a
	// scikit-learn header gives). A single class is a set a loader may
	// return (an evaluation file of one class); training refuses it.
	Classes int
	// ClassNames, when the labels were strings or a header named the
	// classes, names class i.
	ClassNames []string
	// FeatureNames, when the file had a header of column names, names the
	// feature columns in order (nil otherwise).
	FeatureNames []string
	// Layout says how a CSV file was read: header or not, scikit-learn's
	// layout, which column is the label and why. For the first line a
	// command prints.
	Layout string
	// LabelColumns are the CSV columns (0-based) the labels came from, and
	// LabelNames their header names (nil without a header).
	LabelColumns []int
	LabelNames   []string

	// Labels, set when the set was loaded with several label variables
	// (CSVOptions.LabelColumns), holds one value per variable for each row:
	// Labels[i][v] in [0, VarClasses[v]).
	Labels [][]int32
	// VarClasses is the number of classes of each label variable.
	VarClasses []int
	// VarNames names each label variable (its column header or index).
	VarNames []string
	// VarClassNames[v], when variable v's labels were strings, names its
	// classes.
	VarClassNames [][]string
}

// Row returns row i of X (a slice of X, not a copy).
func (s *Set) Row(i int) []float32 { return s.X[i*s.D : (i+1)*s.D] }

// Validate checks that the fields agree with each other: sizes, shape,
// label ranges and finite features. Loaders return valid sets; Validate is
// for sets built or modified by hand.
func (s *Set) Validate() error {
	name := s.Name
	if name == "" {
		name = "data set"
	}
	if s.N < 0 || s.D < 0 {
		return fmt.Errorf("%s: negative size N=%d D=%d", name, s.N, s.D)
	}
	if s.N > 0 && s.D > math.MaxInt/s.N || len(s.X) != s.N*s.D {
		return fmt.Errorf("%s: len(X) = %d, want N*D = %d*%d", name, len(s.X), s.N, s.D)
	}
	if len(s.Shape) > 0 {
		p := 1
		for _, d := range s.Shape {
			if d <= 0 {
				return fmt.Errorf("%s: shape %v has a non-positive dimension", name, s.Shape)
			}
			p *= d
		}
		if p != s.D {
			return fmt.Errorf("%s: shape %v holds %d features, D = %d", name, s.Shape, p, s.D)
		}
	}
	for i, v := range s.X {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%s: feature %d of row %d is %v", name, i%s.D, i/s.D, v)
		}
	}
	if s.Y == nil && s.Labels == nil {
		return fmt.Errorf("%s: no labels (Y and Labels are both nil)", name)
	}
	if s.Y != nil {
		if len(s.Y) != s.N {
			return fmt.Errorf("%s: len(Y) = %d, want N = %d", name, len(s.Y), s.N)
		}
		if s.Classes < 1 {
			return fmt.Errorf("%s: Classes = %d, want at least 1", name, s.Classes)
		}
		if s.ClassNames != nil && len(s.ClassNames) > s.Classes {
			return fmt.Errorf("%s: %d class names for %d classes", name, len(s.ClassNames), s.Classes)
		}
		for i, y := range s.Y {
			if y < 0 || int(y) >= s.Classes {
				return fmt.Errorf("%s: label %d of row %d outside [0, %d)", name, y, i, s.Classes)
			}
		}
	}
	if s.Labels != nil {
		if len(s.Labels) != s.N {
			return fmt.Errorf("%s: len(Labels) = %d, want N = %d", name, len(s.Labels), s.N)
		}
		nv := len(s.VarClasses)
		if nv == 0 {
			return fmt.Errorf("%s: Labels set but VarClasses empty", name)
		}
		for i, row := range s.Labels {
			if len(row) != nv {
				return fmt.Errorf("%s: row %d has %d label values, want %d", name, i, len(row), nv)
			}
			for v, y := range row {
				if y < 0 || int(y) >= s.VarClasses[v] {
					return fmt.Errorf("%s: label variable %d of row %d is %d, outside [0, %d)", name, v, i, y, s.VarClasses[v])
				}
			}
		}
	}
	return nil
}

// Clone returns a deep copy.
func (s *Set) Clone() *Set {
	c := *s
	c.X = slices.Clone(s.X)
	c.Y = slices.Clone(s.Y)
	c.Shape = slices.Clone(s.Shape)
	c.ClassNames = slices.Clone(s.ClassNames)
	c.FeatureNames = slices.Clone(s.FeatureNames)
	c.LabelColumns = slices.Clone(s.LabelColumns)
	c.LabelNames = slices.Clone(s.LabelNames)
	c.VarClasses = slices.Clone(s.VarClasses)
	c.VarNames = slices.Clone(s.VarNames)
	if s.Labels != nil {
		c.Labels = make([][]int32, len(s.Labels))
		for i, r := range s.Labels {
			c.Labels[i] = slices.Clone(r)
		}
	}
	if s.VarClassNames != nil {
		c.VarClassNames = make([][]string, len(s.VarClassNames))
		for i, r := range s.VarClassNames {
			c.VarClassNames[i] = slices.Clone(r)
		}
	}
	return &c
}

// Subset returns a copy of the first n rows.
func (s *Set) Subset(n int) (*Set, error) {
	if n < 0 || n > s.N {
		return nil, fmt.Errorf("%s: subset of %d rows out of %d", s.Name, n, s.N)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return s.Select(idx)
}

// Select returns a copy holding rows idx[0], idx[1], ... in that order
// (indices may repeat).
func (s *Set) Select(idx []int) (*Set, error) {
	for j, i := range idx {
		if i < 0 || i >= s.N {
			return nil, fmt.Errorf("%s: index %d (position %d) outside [0, %d)", s.Name, i, j, s.N)
		}
	}
	c := *s
	c.N = len(idx)
	c.X = make([]float32, len(idx)*s.D)
	for j, i := range idx {
		copy(c.X[j*s.D:(j+1)*s.D], s.X[i*s.D:(i+1)*s.D])
	}
	if s.Y != nil {
		c.Y = make([]int32, len(idx))
		for j, i := range idx {
			c.Y[j] = s.Y[i]
		}
	}
	if s.Labels != nil {
		c.Labels = make([][]int32, len(idx))
		for j, i := range idx {
			c.Labels[j] = slices.Clone(s.Labels[i])
		}
	}
	c.Shape = slices.Clone(s.Shape)
	c.ClassNames = slices.Clone(s.ClassNames)
	c.FeatureNames = slices.Clone(s.FeatureNames)
	c.LabelColumns = slices.Clone(s.LabelColumns)
	c.LabelNames = slices.Clone(s.LabelNames)
	c.VarClasses = slices.Clone(s.VarClasses)
	c.VarNames = slices.Clone(s.VarNames)
	c.VarClassNames = slices.Clone(s.VarClassNames) // inner slices are read-only names
	return &c, nil
}

// Split shuffles the rows with a generator seeded by seed and returns the
// first round(frac*N) of them as a and the rest as b (e.g. frac 0.9 for a
// training/validation split). Both are copies.
func (s *Set) Split(frac float64, seed uint64) (a, b *Set, err error) {
	if !(frac >= 0 && frac <= 1) {
		return nil, nil, fmt.Errorf("%s: split fraction %v outside [0, 1]", s.Name, frac)
	}
	perm := Permutation(s.N, seed)
	na := int(math.Round(frac * float64(s.N)))
	if a, err = s.Select(perm[:na]); err != nil {
		return nil, nil, err
	}
	if b, err = s.Select(perm[na:]); err != nil {
		return nil, nil, err
	}
	return a, b, nil
}

// Permutation returns a random permutation of 0..n-1 determined by seed.
func Permutation(n int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	return rng.Perm(n)
}

// Histogram counts the rows of each class (len Classes). Labels outside
// [0, Classes) are not counted.
func (s *Set) Histogram() []int {
	h := make([]int, max(s.Classes, 0))
	for _, y := range s.Y {
		if y >= 0 && int(y) < len(h) {
			h[y]++
		}
	}
	return h
}
