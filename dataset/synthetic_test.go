package dataset

import (
	"math"
	"slices"
	"testing"
)

// TestBlobsLearnable fits nearest class means on one half and checks they
// classify the other half well: the property tests and benches rely on.
func TestBlobsLearnable(t *testing.T) {
	for _, c := range []struct {
		n, d, k int
		sep     float64
		minAcc  float64
	}{{1000, 7, 3, 3, 0.95}, {1000, 31, 10, 2, 0.95}, {257, 2, 2, 4, 0.9}} {
		s := Blobs(c.n, c.d, c.k, c.sep, 42)
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		h := s.Histogram()
		if slices.Min(h) < c.n/c.k || slices.Max(h) > c.n/c.k+1 {
			t.Errorf("unbalanced classes %v", h)
		}
		train, test, err := s.Split(0.5, 1)
		if err != nil {
			t.Fatal(err)
		}
		means := make([]float64, c.k*c.d)
		cnt := make([]float64, c.k)
		for i := range train.N {
			y := int(train.Y[i])
			cnt[y]++
			for j, v := range train.Row(i) {
				means[y*c.d+j] += float64(v)
			}
		}
		for y := range c.k {
			for j := range c.d {
				means[y*c.d+j] /= max(cnt[y], 1)
			}
		}
		right := 0
		for i := range test.N {
			best, bestD := -1, math.Inf(1)
			for y := range c.k {
				dist := 0.0
				for j, v := range test.Row(i) {
					e := float64(v) - means[y*c.d+j]
					dist += e * e
				}
				if dist < bestD {
					best, bestD = y, dist
				}
			}
			if best == int(test.Y[i]) {
				right++
			}
		}
		if acc := float64(right) / float64(test.N); acc < c.minAcc {
			t.Errorf("%s: nearest-mean accuracy %.3f < %.2f", s.Name, acc, c.minAcc)
		}
	}
}

func TestBlobsSeeded(t *testing.T) {
	a, b, c := Blobs(31, 3, 4, 1, 5), Blobs(31, 3, 4, 1, 5), Blobs(31, 3, 4, 1, 6)
	if !slices.Equal(a.X, b.X) || !slices.Equal(a.Y, b.Y) {
		t.Error("same seed, different sets")
	}
	if slices.Equal(a.X, c.X) {
		t.Error("different seeds, same set")
	}
	defer func() {
		if recover() == nil {
			t.Error("Blobs(0, ...) did not panic")
		}
	}()
	Blobs(0, 3, 4, 1, 5)
}
