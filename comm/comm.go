package comm

import (
	"errors"
	"fmt"
)

// Comm is a group of ranks that run the same program on their share of the
// work. Every collective (AllReduceSum, Broadcast, Barrier) must be called by
// every rank, in the same order, with buffers of the same length.
type Comm interface {
	// Rank is this process's (or goroutine's) number, in [0, Size).
	Rank() int
	// Size is the number of ranks, >= 1.
	Size() int
	// AllReduceSum replaces buf on every rank with the elementwise sum of
	// every rank's buf, added in rank order (SumRanks): bitwise the same
	// on every rank and run after run.
	AllReduceSum(buf []float32) error
	// Broadcast copies root's buf into every other rank's buf.
	Broadcast(buf []byte, root int) error
	// Barrier returns once every rank has called it.
	Barrier() error
	// Describe names the transport for messages ("local", "MPI (Open MPI
	// v4.1.4)", ...).
	Describe() string
	// Close releases the communicator. Ranks still waiting in a collective
	// of an in-process or TCP group get an error instead of hanging.
	Close() error
}

// SumRanks is the reference of AllReduceSum: dst[i] = ((parts[0][i] +
// parts[1][i]) + parts[2][i]) + ..., in float32. Every part must be as long
// as dst; dst may be parts[0].
func SumRanks(dst []float32, parts [][]float32) {
	if len(parts) == 0 {
		clear(dst)
		return
	}
	copy(dst, parts[0])
	for _, p := range parts[1:] {
		p = p[:len(dst)]
		for i, x := range p {
			dst[i] += x
		}
	}
}

// Chunk is the share of an n-element buffer that each of size ranks owns in
// a reduce-scatter: rank r owns [r*Chunk, min((r+1)*Chunk, n)), which may be
// empty for the last ranks when n < size.
func Chunk(n, size int) int {
	if size < 1 {
		return n
	}
	return (n + size - 1) / size
}

// Span is the half-open range [lo, hi) of the n-element buffer that rank r
// of size owns (see Chunk).
func Span(n, size, r int) (lo, hi int) {
	c := Chunk(n, size)
	lo = min(r*c, n)
	return lo, min(lo+c, n)
}

// Shard returns the rows of a global batch that rank r of size takes: the
// contiguous slice [r*b/size, (r+1)*b/size) of the b = len(batch) rows.
// The shares differ by at most one row, the larger ones on the higher
// ranks, and are empty when b < size for some ranks (they then contribute
// padding only). The union over the ranks, in rank order, is the batch.
func Shard[T any](batch []T, size, r int) []T {
	b := len(batch)
	return batch[r*b/size : (r+1)*b/size]
}

// MaxShard is the most rows Shard gives any rank of a batch of b rows.
func MaxShard(b, size int) int { return (b + size - 1) / size }

// ErrClosed is wrapped by the errors of a collective on a closed
// communicator, or of one that another rank's Close interrupted.
var ErrClosed = errors.New("communicator closed")

// RankError is the error of a rank that failed, as the others see it.
type RankError struct {
	Rank int
	Err  error
}

func (e *RankError) Error() string { return fmt.Sprintf("rank %d: %v", e.Rank, e.Err) }
func (e *RankError) Unwrap() error { return e.Err }

// Single is the communicator of one process alone: rank 0 of 1, every
// collective a no-op.
func Single() Comm { return single{} }

type single struct{}

func (single) Rank() int                        { return 0 }
func (single) Size() int                        { return 1 }
func (single) AllReduceSum(buf []float32) error { return nil }
func (single) Barrier() error                   { return nil }
func (single) Describe() string                 { return "single process" }
func (single) Close() error                     { return nil }
func (single) Broadcast(buf []byte, root int) error {
	if root != 0 {
		return fmt.Errorf("comm: broadcast from rank %d of a single process", root)
	}
	return nil
}
