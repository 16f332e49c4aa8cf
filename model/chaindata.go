package model

import (
	"errors"
	"fmt"
	"slices"
)

// Sequences is a labelled set of sequences in host memory: the positions
// of all sequences, one after another, are the rows of Data (N positions
// of D features, a label in [0, Classes) each), and Offsets says where
// each sequence starts: sequence s is the rows Offsets[s] ..
// Offsets[s+1]-1. Offsets[0] = 0, every sequence has at least one
// position, and the last offset is N.
type Sequences struct {
	Data
	Offsets []int
}

// Len returns the number of sequences.
func (s *Sequences) Len() int { return len(s.Offsets) - 1 }

// SeqLen returns the length of sequence i.
func (s *Sequences) SeqLen(i int) int { return s.Offsets[i+1] - s.Offsets[i] }

// Validate checks the positions (Data.Validate) and the offsets; the
// error names the first bad sequence.
func (s *Sequences) Validate() error {
	if s == nil {
		return errors.New("sequences: nil data set")
	}
	if err := s.Data.Validate(); err != nil {
		return err
	}
	if len(s.Offsets) < 2 || s.Offsets[0] != 0 {
		return fmt.Errorf("sequences: offsets %v must start at 0 and hold at least one sequence", head(s.Offsets))
	}
	for i := 0; i < s.Len(); i++ {
		if s.Offsets[i+1] <= s.Offsets[i] {
			return fmt.Errorf("sequences: sequence %d has %d positions (offsets %d..%d); every sequence needs at least one", i, s.Offsets[i+1]-s.Offsets[i], s.Offsets[i], s.Offsets[i+1])
		}
	}
	if last := s.Offsets[len(s.Offsets)-1]; last != s.N {
		return fmt.Errorf("sequences: the last offset is %d, but there are %d positions", last, s.N)
	}
	return nil
}

func head(x []int) []int { return x[:min(len(x), 5)] }

// Limit returns the first n sequences (all of them when n <= 0 or n >=
// Len), sharing storage with s.
func (s *Sequences) Limit(n int) *Sequences {
	if n <= 0 || n >= s.Len() {
		return s
	}
	rows := s.Offsets[n]
	return &Sequences{Data: *s.Data.Limit(rows), Offsets: s.Offsets[:n+1]}
}

// longestSum returns the number of positions of the n longest sequences
// of the sets: the most rows a batch of n sequences can need.
func longestSum(n int, sets ...*Sequences) int {
	best := 0
	for _, s := range sets {
		if s == nil {
			continue
		}
		lens := make([]int, s.Len())
		for i := range lens {
			lens[i] = s.SeqLen(i)
		}
		slices.Sort(lens)
		sum := 0
		for i := len(lens) - 1; i >= 0 && i >= len(lens)-n; i-- {
			sum += lens[i]
		}
		best = max(best, sum)
	}
	return best
}

// seqBuffers are the backend buffers of batches of up to size sequences
// packed into rows positions: the gathered positions (a batcher of rows),
// the offsets, ChainLoss's statistics and path, and their column sums.
type seqBuffers struct {
	b       Backend
	size    int
	bt      *batcher
	offsets Ints
	stats   Mat
	path    Ints
	sums    Mat
	hostIdx []int32
	hostOff []int32
}

func newSeqBuffers(b Backend, size, rows, d int) (*seqBuffers, error) {
	bt, err := newBatcher(b, rows, d)
	if err != nil {
		return nil, err
	}
	s := &seqBuffers{b: b, size: size, bt: bt, hostIdx: make([]int32, 0, rows), hostOff: make([]int32, size+1)}
	s.offsets, err = b.AllocInts(size + 1)
	if err == nil {
		s.stats, err = b.Alloc(size, NumStats)
	}
	if err == nil {
		s.path, err = b.AllocInts(rows)
	}
	if err == nil {
		s.sums, err = b.Alloc(1, NumStats)
	}
	if err != nil {
		_ = s.free()
		return nil, fmt.Errorf("allocating sequence batch buffers (%d sequences, %d positions): %w", size, rows, err)
	}
	return s, nil
}

func (s *seqBuffers) free() error {
	if s == nil {
		return nil
	}
	return errors.Join(s.freeOwn(), s.bt.free())
}

// freeOwn frees everything but the batcher (a Trainer's bt, freed by
// Trainer.Close).
func (s *seqBuffers) freeOwn() error {
	var xs []any
	for _, m := range []Mat{s.stats, s.sums} {
		if m != nil {
			xs = append(xs, m)
		}
	}
	for _, v := range []Ints{s.offsets, s.path} {
		if v != nil {
			xs = append(xs, v)
		}
	}
	return freeAll(s.b, xs...)
}

// load gathers the sequences ids of seqs (whose positions dd holds) into
// the batch: their positions packed in order, the offsets, padding rows
// and empty sequences after them. It returns the packed row of each
// sequence's first position, as ChainLoss sees them.
func (s *seqBuffers) load(dd *DeviceData, seqs *Sequences, ids []int32) error {
	if len(ids) > s.size {
		return fmt.Errorf("sequence batch: %d sequences, room for %d", len(ids), s.size)
	}
	s.hostIdx = s.hostIdx[:0]
	s.hostOff[0] = 0
	for i := range s.size {
		if i < len(ids) {
			lo, hi := seqs.Offsets[ids[i]], seqs.Offsets[ids[i]+1]
			for r := lo; r < hi; r++ {
				s.hostIdx = append(s.hostIdx, int32(r))
			}
		}
		s.hostOff[i+1] = int32(len(s.hostIdx))
	}
	if len(s.hostIdx) > s.bt.size {
		return fmt.Errorf("sequence batch: %d positions, room for %d", len(s.hostIdx), s.bt.size)
	}
	if err := s.bt.load(dd, s.hostIdx); err != nil {
		return err
	}
	return s.b.UploadInts(s.offsets, s.hostOff)
}
