package dataset

import (
	"fmt"
	"math/rand/v2"
)

// Blobs returns n points in d dimensions drawn from classes Gaussian
// clusters: each class has a centre whose coordinates are drawn from
// N(0, sep^2), and its points are the centre plus N(0, 1) noise in every
// coordinate. Larger sep separates the classes more (sep around 2 to 3 is
// easily learnable for small d); the same seed gives the same set. Labels
// are balanced (row i's class is a permutation of i mod classes) and the
// rows come in random order. For tests and benchmarks.
//
// Like make with a negative length, Blobs panics on arguments no caller
// could mean (n < 1, d < 1, classes < 2 or > MaxClasses, sep < 0): they are
// constants in the code that calls it, not runtime data.
func Blobs(n, d, classes int, sep float64, seed uint64) *Set {
	if n < 1 || d < 1 || classes < 2 || classes > MaxClasses || !(sep >= 0) {
		panic(fmt.Sprintf("dataset.Blobs: invalid arguments n=%d d=%d classes=%d sep=%v", n, d, classes, sep))
	}
	rng := rand.New(rand.NewPCG(seed, 0xb10b5))
	centres := make([]float64, classes*d)
	for i := range centres {
		centres[i] = sep * rng.NormFloat64()
	}
	s := &Set{
		Name:    fmt.Sprintf("blobs-n%d-d%d-k%d", n, d, classes),
		X:       make([]float32, n*d),
		Y:       make([]int32, n),
		N:       n,
		D:       d,
		Shape:   []int{d},
		Classes: classes,
	}
	perm := rng.Perm(n)
	for i := range n {
		c := perm[i] % classes
		s.Y[i] = int32(c)
		for j := range d {
			s.X[i*d+j] = float32(centres[c*d+j] + rng.NormFloat64())
		}
	}
	return s
}
