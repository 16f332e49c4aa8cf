package commtest

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/gputrain/gputrain/comm"
)

// Lengths are the all-reduce sizes Check uses: empty, tiny, not multiples of
// any small rank count, and one longer than a typical chunk.
var Lengths = []int{0, 1, 2, 3, 31, 33, 1000, 4099}

// Input is rank's buffer for the all-reduce number round of n floats. It is
// a pure function of its arguments, so every rank can compute every other
// rank's input and the expected sum. The values span many magnitudes and
// cancel across ranks (rank r adds about (-1)^r * 2^(24)), so the float32
// sum depends on the order of the additions: a reduction in another order
// than rank order gives different bits.
func Input(round, rank, n int) []float32 {
	rng := rand.New(rand.NewPCG(uint64(round)*1000003+uint64(n), uint64(rank)+7))
	v := make([]float32, n)
	for i := range v {
		x := float32(rng.NormFloat64()) * float32(math.Pow(2, float64(rng.IntN(20)-10)))
		if i%3 == 0 {
			s := float32(1 << 24)
			if rank%2 == 1 {
				s = -s
			}
			x += s
		}
		v[i] = x
	}
	return v
}

// Expected is the all-reduce of Input(round, r, n) over the size ranks.
func Expected(round, size, n int) []float32 {
	parts := make([][]float32, size)
	for r := range parts {
		parts[r] = Input(round, r, n)
	}
	out := make([]float32, n)
	comm.SumRanks(out, parts)
	return out
}

// Check runs the conformance collectives on c (one rank's communicator;
// every rank of the group must call it) and returns the first difference
// from the reference, naming the collective and the rank.
func Check(c comm.Comm) error {
	rank, size := c.Rank(), c.Size()
	if size < 1 || rank < 0 || rank >= size {
		return fmt.Errorf("rank %d of size %d", rank, size)
	}
	round := 0
	for rep := 0; rep < 2; rep++ {
		for _, n := range Lengths {
			buf := Input(round, rank, n)
			if err := c.AllReduceSum(buf); err != nil {
				return fmt.Errorf("rank %d: all-reduce of %d floats: %w", rank, n, err)
			}
			want := Expected(round, size, n)
			for i := range want {
				if math.Float32bits(buf[i]) != math.Float32bits(want[i]) {
					return fmt.Errorf("rank %d of %d: all-reduce of %d floats: element %d is %v (bits %08x), the rank-order sum is %v (bits %08x)",
						rank, size, n, i, buf[i], math.Float32bits(buf[i]), want[i], math.Float32bits(want[i]))
				}
			}
			round++
		}
	}
	for root := 0; root < size; root++ {
		for _, n := range []int{0, 1, 128, 1000} {
			want := make([]byte, n)
			for i := range want {
				want[i] = byte(i*7 + root*13 + n)
			}
			buf := make([]byte, n)
			if rank == root {
				copy(buf, want)
			} else {
				for i := range buf {
					buf[i] = 0xEE // poison: an unwritten byte shows
				}
			}
			if err := c.Broadcast(buf, root); err != nil {
				return fmt.Errorf("rank %d: broadcast of %d bytes from rank %d: %w", rank, n, root, err)
			}
			if !bytes.Equal(buf, want) {
				return fmt.Errorf("rank %d: broadcast of %d bytes from rank %d: got %x..., want %x...", rank, n, root, buf[:min(n, 8)], want[:min(n, 8)])
			}
		}
	}
	for i := 0; i < 3; i++ {
		if err := c.Barrier(); err != nil {
			return fmt.Errorf("rank %d: barrier: %w", rank, err)
		}
	}
	return nil
}

// FreeAddr returns a localhost TCP address nobody listened on a moment ago,
// for a TCP group's rank 0.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// CheckGroup runs Check on every communicator of an in-process group, one
// goroutine per rank, and returns the ranks' errors joined in rank order.
func CheckGroup(cs []comm.Comm) error {
	return RunGroup(cs, Check)
}

// RunGroup calls fn(c) for every communicator of an in-process group, each
// in its own goroutine, waits for all and returns their errors (nil ones
// dropped), in rank order.
func RunGroup(cs []comm.Comm, fn func(comm.Comm) error) error {
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() { errs[i] = fn(c) })
	}
	wg.Wait()
	errs = slices.DeleteFunc(errs, func(e error) bool { return e == nil })
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d ranks failed: %w", len(errs), len(cs), joinErrs(errs))
}

type joined []error

func (j joined) Error() string {
	var b bytes.Buffer
	for i, e := range j {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func (j joined) Unwrap() []error { return j }

func joinErrs(errs []error) error { return joined(errs) }
