package dataset

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestSetValidate(t *testing.T) {
	good := func() *Set { return Blobs(7, 3, 3, 2, 1) }
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		edit func(s *Set)
		want string
	}{
		{func(s *Set) { s.X = s.X[:20] }, "len(X) = 20"},
		{func(s *Set) { s.Y = s.Y[:6] }, "len(Y) = 6"},
		{func(s *Set) { s.Y[4] = 3 }, "label 3 of row 4 outside [0, 3)"},
		{func(s *Set) { s.Y[0] = -1 }, "label -1 of row 0"},
		{func(s *Set) { s.X[5] = float32(math.NaN()) }, "feature 2 of row 1 is NaN"},
		{func(s *Set) { s.Shape = []int{2, 2} }, "shape [2 2] holds 4 features"},
		{func(s *Set) { s.Classes = 0; s.Y = make([]int32, 7) }, "Classes = 0"},
		{func(s *Set) { s.Y = nil }, "no labels"},
		{func(s *Set) { s.Labels = [][]int32{{0}}; s.VarClasses = []int{2} }, "len(Labels) = 1"},
		{func(s *Set) { s.N = -1 }, "negative size"},
	}
	for _, c := range cases {
		s := good()
		c.edit(s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), s.Name) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

func TestSetSubsetSelectSplit(t *testing.T) {
	s := Blobs(33, 5, 4, 1, 9)
	sub, err := s.Subset(7)
	if err != nil {
		t.Fatal(err)
	}
	if sub.N != 7 || !slices.Equal(sub.X, s.X[:35]) || !slices.Equal(sub.Y, s.Y[:7]) {
		t.Errorf("Subset(7): N=%d", sub.N)
	}
	sub.X[0] = 1e9 // a copy, not a view
	if s.X[0] == 1e9 {
		t.Error("Subset shares X")
	}
	for _, n := range []int{-1, 34} {
		if _, err := s.Subset(n); err == nil {
			t.Errorf("Subset(%d) succeeded", n)
		}
	}
	if _, err := s.Select([]int{0, 33}); err == nil || !strings.Contains(err.Error(), "index 33 (position 1)") {
		t.Errorf("Select out of range: %v", err)
	}
	sel, err := s.Select([]int{4, 4, 0})
	if err != nil || !slices.Equal(sel.Row(0), s.Row(4)) || !slices.Equal(sel.Row(1), s.Row(4)) || !slices.Equal(sel.Row(2), s.Row(0)) || sel.Y[2] != s.Y[0] {
		t.Errorf("Select: %v", err)
	}

	a, b, err := s.Split(0.7, 3)
	if err != nil {
		t.Fatal(err)
	}
	if a.N != 23 || b.N != 10 || a.Validate() != nil || b.Validate() != nil {
		t.Fatalf("Split sizes %d %d", a.N, b.N)
	}
	// Together the parts are a permutation of the rows: match by row content.
	seen := map[[5]float32]int{}
	for i := range s.N {
		seen[[5]float32(s.Row(i))]++
	}
	for _, p := range []*Set{a, b} {
		for i := range p.N {
			k := [5]float32(p.Row(i))
			if seen[k] == 0 {
				t.Fatalf("row %v not in the original", k)
			}
			seen[k]--
		}
	}
	a2, _, _ := s.Split(0.7, 3)
	a3, _, _ := s.Split(0.7, 4)
	if !slices.Equal(a.X, a2.X) || slices.Equal(a.X, a3.X) {
		t.Error("Split is not determined by its seed")
	}
	for _, f := range []float64{-0.1, 1.5, math.NaN()} {
		if _, _, err := s.Split(f, 1); err == nil {
			t.Errorf("Split(%v) succeeded", f)
		}
	}
	c := s.Clone()
	c.X[0], c.Shape[0] = -5, 99
	if s.X[0] == -5 || s.Shape[0] == 99 {
		t.Error("Clone shares storage")
	}
}
