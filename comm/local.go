package comm

import (
	"fmt"
	"sync"
)

// Local returns n communicators that form one group inside this process:
// ranks 0..n-1, each to be used by its own goroutine (a rank blocks in a
// collective until every rank has joined it). It exists so that the
// trainer's distributed logic is tested without MPI; its results are
// bitwise those of every other implementation (see SumRanks).
//
// Each collective checks that every rank called the same operation with the
// same length and root, and fails on every rank otherwise. Close on any rank
// fails the collectives the others are waiting in, and every later one, with
// an error wrapping ErrClosed: a rank that stops on an error makes the
// others stop too instead of hanging.
func Local(n int) []Comm {
	if n < 1 {
		panic(fmt.Sprintf("comm.Local: %d ranks", n))
	}
	g := &localGroup{n: n}
	g.cur = g.newRound()
	cs := make([]Comm, n)
	for r := range cs {
		cs[r] = &localComm{g: g, rank: r}
	}
	return cs
}

type localGroup struct {
	n      int
	mu     sync.Mutex
	cur    *round
	closed error // set by the first Close: every later collective fails
}

// round is one collective: each rank deposits its call, the last to arrive
// computes the result and closes done, and each rank then copies its share
// out. A new round is installed before done closes, so a fast rank that
// enters the next collective joins the next round.
type round struct {
	calls   []call
	arrived int
	done    chan struct{}
	sum     []float32
	bytes   []byte
	err     error
}

type call struct {
	op   string // "all-reduce", "broadcast", "barrier"
	f    []float32
	b    []byte
	root int
}

func (c call) String() string {
	switch c.op {
	case "all-reduce":
		return fmt.Sprintf("all-reduce of %d floats", len(c.f))
	case "broadcast":
		return fmt.Sprintf("broadcast of %d bytes from rank %d", len(c.b), c.root)
	}
	return c.op
}

func (g *localGroup) newRound() *round {
	return &round{calls: make([]call, g.n), done: make(chan struct{})}
}

type localComm struct {
	g      *localGroup
	rank   int
	closed bool
}

func (c *localComm) Rank() int        { return c.rank }
func (c *localComm) Size() int        { return c.g.n }
func (c *localComm) Describe() string { return fmt.Sprintf("in-process (%d goroutines)", c.g.n) }

func (c *localComm) AllReduceSum(buf []float32) error {
	r, err := c.join(call{op: "all-reduce", f: buf})
	if err != nil {
		return err
	}
	copy(buf, r.sum)
	return nil
}

func (c *localComm) Broadcast(buf []byte, root int) error {
	if root < 0 || root >= c.g.n {
		return fmt.Errorf("comm: broadcast from rank %d of %d", root, c.g.n)
	}
	r, err := c.join(call{op: "broadcast", b: buf, root: root})
	if err != nil {
		return err
	}
	if c.rank != root {
		copy(buf, r.bytes)
	}
	return nil
}

func (c *localComm) Barrier() error {
	_, err := c.join(call{op: "barrier"})
	return err
}

// join deposits this rank's call in the current round and waits for the
// round's result.
func (c *localComm) join(cl call) (*round, error) {
	g := c.g
	g.mu.Lock()
	if c.closed {
		g.mu.Unlock()
		return nil, fmt.Errorf("comm: rank %d: %s after Close: %w", c.rank, cl, ErrClosed)
	}
	if g.closed != nil {
		g.mu.Unlock()
		return nil, g.closed
	}
	r := g.cur
	r.calls[c.rank] = cl
	r.arrived++
	if r.arrived == g.n {
		r.finish()
		g.cur = g.newRound()
		close(r.done)
	}
	g.mu.Unlock()
	<-r.done
	return r, r.err
}

// finish computes the round's result once every rank has arrived (under
// the group's lock).
func (r *round) finish() {
	first := r.calls[0]
	for rank, cl := range r.calls[1:] {
		if cl.op != first.op || len(cl.f) != len(first.f) || len(cl.b) != len(first.b) || cl.root != first.root {
			r.err = fmt.Errorf("comm: the ranks disagree: rank 0 called %s, rank %d %s", first, rank+1, cl)
			return
		}
	}
	switch first.op {
	case "all-reduce":
		parts := make([][]float32, len(r.calls))
		for i, cl := range r.calls {
			parts[i] = cl.f
		}
		r.sum = make([]float32, len(first.f))
		SumRanks(r.sum, parts)
	case "broadcast":
		r.bytes = append([]byte(nil), r.calls[first.root].b...)
	}
}

// Close leaves the group: the collectives other ranks wait in, and all
// later ones, fail with an error naming this rank.
func (c *localComm) Close() error {
	g := c.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if g.closed == nil {
		g.closed = fmt.Errorf("comm: rank %d left the group: %w", c.rank, ErrClosed)
	}
	// Release whoever waits in the current round.
	r := g.cur
	if r.arrived > 0 {
		r.err = g.closed
		g.cur = g.newRound()
		close(r.done)
	}
	return nil
}
