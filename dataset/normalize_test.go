package dataset

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestNormalizer(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 7, 257} {
		for _, d := range []int{1, 31} {
			s := Blobs(n, d, 2, 3, rng.Uint64())
			// Feature 0 constant: must be centred, not blown up.
			for i := range n {
				s.X[i*d] = 4
				for j := 1; j < d; j++ {
					s.X[i*d+j] = s.X[i*d+j]*float32(j) + float32(10*j)
				}
			}
			orig := s.Clone()
			nm, err := FitNormalizer(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := nm.Apply(s); err != nil {
				t.Fatal(err)
			}
			for j := range d {
				var sum, sq float64
				for i := range n {
					sum += float64(s.X[i*d+j])
				}
				mean := sum / float64(n)
				for i := range n {
					t := float64(s.X[i*d+j]) - mean
					sq += t * t
				}
				sd := math.Sqrt(sq / float64(n))
				if math.Abs(mean) > 1e-4 {
					t.Errorf("n=%d d=%d feature %d: mean %v after normalizing", n, d, j, mean)
				}
				wantSD := 1.0
				if j == 0 || n == 1 {
					wantSD = 0 // constant features stay constant (at 0)
				}
				if math.Abs(sd-wantSD) > 1e-3 {
					t.Errorf("n=%d d=%d feature %d: sd %v, want %v", n, d, j, sd, wantSD)
				}
			}
			// A test row off the constant feature moves by its raw offset,
			// since the constant feature's Std is 1.
			test := orig.Clone()
			test.X[0] = 5
			if err := nm.Apply(test); err != nil {
				t.Fatal(err)
			}
			if test.X[0] != 1 {
				t.Errorf("constant feature off by 1 became %v, want 1", test.X[0])
			}
		}
	}
	if _, err := FitNormalizer(&Set{Name: "empty"}); err == nil {
		t.Error("FitNormalizer on an empty set succeeded")
	}
	if err := (Normalizer{Mean: []float32{0}, Std: []float32{1}}).Apply(Blobs(3, 2, 2, 1, 1)); err == nil {
		t.Error("Apply with the wrong width succeeded")
	}
	if err := (Normalizer{Mean: []float32{0}, Std: []float32{0}}).Apply(Blobs(3, 1, 2, 1, 1)); err == nil {
		t.Error("Apply with a zero deviation succeeded")
	}
}

func TestScale01(t *testing.T) {
	a, b := Blobs(33, 7, 3, 2, 1), Blobs(7, 7, 3, 2, 2)
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, v := range append(append([]float32{}, a.X...), b.X...) {
		lo, hi = min(lo, v), max(hi, v)
	}
	rb := b.Clone()
	if err := Scale01(a, b); err != nil {
		t.Fatal(err)
	}
	var glo, ghi float32 = 1, 0
	for _, s := range []*Set{a, b} {
		for _, v := range s.X {
			glo, ghi = min(glo, v), max(ghi, v)
		}
	}
	if glo != 0 || ghi != 1 {
		t.Errorf("joint range [%v, %v], want [0, 1]", glo, ghi)
	}
	// One affine map for both: relative position is kept.
	for i, v := range rb.X {
		want := (float64(v) - float64(lo)) / (float64(hi) - float64(lo))
		if math.Abs(float64(b.X[i])-want) > 1e-6 {
			t.Fatalf("b[%d] = %v, want %v", i, b.X[i], want)
		}
	}
	c := &Set{Name: "flat", X: []float32{3, 3, 3}, N: 3, D: 1}
	if err := Scale01(c); err != nil || c.X[0] != 0 || c.X[2] != 0 {
		t.Errorf("constant set: %v %v", c.X, err)
	}
	c.X[1] = float32(math.NaN())
	if err := Scale01(c); err == nil {
		t.Error("NaN accepted")
	}
}
