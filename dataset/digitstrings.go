package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// DigitStrings builds n strings of length MNIST digit images (from
// images, a Set of the 10 digit classes) whose labels follow a Markov
// source with strong transitions, "counting": the first digit is uniform,
// each next one is the previous plus one (mod 10) with probability p, else
// one of the other nine digits uniformly. Each position is a random image
// of its digit. A model that sees one image at a time can only guess from
// the pixels; one that scores whole strings also knows that "4" is very
// likely followed by "5". The same seed gives the same strings.
func DigitStrings(images *Set, n, length int, p float64, seed uint64) (*SequenceSet, error) {
	if images == nil || images.Classes != 10 || images.Y == nil {
		return nil, fmt.Errorf("DigitStrings: need a set of the 10 digit classes")
	}
	if n < 1 || length < 1 || !(p >= 0 && p <= 1) {
		return nil, fmt.Errorf("DigitStrings: need n >= 1, length >= 1 and p in [0, 1], got %d, %d, %v", n, length, p)
	}
	byClass := make([][]int, 10)
	for i, y := range images.Y {
		byClass[y] = append(byClass[y], i)
	}
	for c, ids := range byClass {
		if len(ids) == 0 {
			return nil, fmt.Errorf("DigitStrings: no image of digit %d", c)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x64696769))
	rows := make([]int, 0, n*length)
	labels := make([]int32, 0, n*length)
	off := []int{0}
	for range n {
		y := rng.IntN(10)
		for t := range length {
			if t > 0 {
				if rng.Float64() < p {
					y = (y + 1) % 10
				} else {
					y = (y + 1 + 1 + rng.IntN(9)) % 10 // one of the other nine
				}
			}
			ids := byClass[y]
			rows = append(rows, ids[rng.IntN(len(ids))])
			labels = append(labels, int32(y))
		}
		off = append(off, len(rows))
	}
	set, err := images.Select(rows)
	if err != nil {
		return nil, err
	}
	set.Name = fmt.Sprintf("%s strings of %d", images.Name, length)
	return &SequenceSet{Set: set, Offsets: off}, nil
}

// DigitStringEnergies returns the transition and start energies of the
// DigitStrings source (-log of its probabilities): what a chain model's
// P and S learn at best.
func DigitStringEnergies(p float64) (trans, start []float64) {
	trans, start = make([]float64, 100), make([]float64, 10)
	for j := range 10 {
		start[j] = math.Log(10)
		for k := range 10 {
			q := (1 - p) / 9
			if k == (j+1)%10 {
				q = p
			}
			trans[j*10+k] = -math.Log(q)
		}
	}
	return trans, start
}
