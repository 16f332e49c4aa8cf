//go:build cgo

package nccl

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/gputrain/gputrain/comm"
)

// Comm is one rank of an NCCL communicator: a comm.Comm whose host
// operations go over the bootstrap communicator, plus AllReduceSumDevice on
// GPU memory. Like every comm.Comm it is used by one goroutine at a time.
type Comm struct {
	host    comm.Comm
	lib     *Library
	g       gpu
	h       *handle
	scratch uintptr // size slots of one chunk, grown on demand
	cap     int     // bytes
	broken  error   // a failed NCCL call leaves the communicator unusable
}

// Bootstrap makes this rank's NCCL communicator on GPU ordinal, over
// host (every rank of host must call it; one GPU per rank). open loads the
// library (Open; tests pass others). Every rank first opens NCCL and its
// GPU and the ranks agree that all did, so that a rank without NCCL makes
// all of them fail, naming it, instead of leaving the others waiting in
// ncclCommInitRank; then rank 0 draws the unique id and broadcasts it over
// host, and each rank joins.
func Bootstrap(host comm.Comm, open func() (*Library, error), ordinal int) (*Comm, error) {
	return bootstrap(host, open, func() (gpu, error) {
		g, err := openGPU(ordinal)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return g, nil
	})
}

func bootstrap(host comm.Comm, open func() (*Library, error), newGPU func() (gpu, error)) (*Comm, error) {
	rank, size := host.Rank(), host.Size()
	lib, err := open()
	var g gpu
	if err == nil {
		g, err = newGPU()
	}
	if err := agree(host, err, "opening NCCL and its GPU"); err != nil {
		if g != nil {
			g.close()
		}
		return nil, err
	}
	// [0]: rank 0 failed to draw an id; [1:]: the id.
	msg := make([]byte, 1+len(ID{}))
	var idErr error
	if rank == 0 {
		var id ID
		if id, idErr = lib.uniqueID(); idErr != nil {
			msg[0] = 1
		}
		copy(msg[1:], id[:])
	}
	if err := host.Broadcast(msg, 0); err != nil {
		g.close()
		return nil, fmt.Errorf("nccl: broadcasting the unique id: %w", err)
	}
	if msg[0] != 0 {
		g.close()
		if idErr != nil {
			return nil, fmt.Errorf("nccl: rank 0: %w", idErr)
		}
		return nil, errors.New("nccl: rank 0 could not draw the NCCL unique id (see its message)")
	}
	var id ID
	copy(id[:], msg[1:])
	leave, err := g.enter()
	var h *handle
	if err == nil {
		h, err = lib.initRank(id, rank, size)
		leave()
	}
	if err := agree(host, err, "joining the NCCL communicator"); err != nil {
		if h != nil {
			h.abort()
		}
		g.close()
		return nil, err
	}
	return &Comm{host: host, lib: lib, g: g, h: h}, nil
}

// agree returns, on every rank, an error if any rank's err is not nil.
func agree(host comm.Comm, err error, what string) error {
	if err != nil {
		err = fmt.Errorf("nccl: rank %d: %s: %w", host.Rank(), what, err)
	}
	bad, aerr := comm.Failed(host, err != nil)
	switch {
	case aerr != nil:
		return errors.Join(err, fmt.Errorf("nccl: %s: %w", what, aerr))
	case err != nil:
		return err
	case len(bad) > 0:
		return fmt.Errorf("nccl: rank %s failed %s (see its message)", comm.RankList(bad), what)
	}
	return nil
}

func (c *Comm) Rank() int                            { return c.host.Rank() }
func (c *Comm) Size() int                            { return c.host.Size() }
func (c *Comm) AllReduceSum(buf []float32) error     { return c.host.AllReduceSum(buf) }
func (c *Comm) Broadcast(buf []byte, root int) error { return c.host.Broadcast(buf, root) }
func (c *Comm) Barrier() error                       { return c.host.Barrier() }

// Describe names NCCL, the GPU and the bootstrap transport.
func (c *Comm) Describe() string {
	return fmt.Sprintf("NCCL %s (%s) with %s", c.lib.Version(), c.g.name(), c.host.Describe())
}

// Library is the NCCL library the communicator runs on.
func (c *Comm) Library() *Library { return c.lib }

func (c *Comm) usable() error {
	if c.h == nil {
		return fmt.Errorf("nccl: rank %d: used after Close: %w", c.Rank(), comm.ErrClosed)
	}
	return c.broken
}

func (c *Comm) fail(err error) error {
	c.broken = fmt.Errorf("nccl: rank %d of %d: %w", c.Rank(), c.Size(), err)
	return c.broken
}

// AllReduceSumDevice replaces the n floats at ptr (device memory of this
// rank's GPU) with their sum over the ranks in rank order, bitwise
// comm.SumRanks, and returns when the result is in place. Work queued on
// the GPU's blocking streams before the call is ordered before it (the
// legacy default stream waits for them).
func (c *Comm) AllReduceSumDevice(ptr uintptr, n int) error {
	if err := c.usable(); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	rank, size := c.Rank(), c.Size()
	chunk := comm.Chunk(n, size)
	if need := 4 * size * chunk; need > c.cap {
		if c.scratch != 0 {
			if err := c.g.free(c.scratch); err != nil {
				return c.fail(err)
			}
			c.scratch, c.cap = 0, 0
		}
		p, err := c.g.alloc(need)
		if err != nil {
			return c.fail(err)
		}
		c.scratch, c.cap = p, need
	}
	leave, err := c.g.enter()
	if err != nil {
		return c.fail(err)
	}
	defer leave()
	at := func(i int) uintptr { return ptr + uintptr(4*i) }
	slot := func(r int) uintptr { return c.scratch + uintptr(4*r*chunk) }
	lo, hi := comm.Span(n, size, rank)
	own := hi - lo
	st := c.g.stream()
	if own > 0 {
		if err := c.g.copy(slot(rank), at(lo), 4*own); err != nil {
			return c.fail(err)
		}
	}
	// Phase 1: every rank's copy of this rank's chunk into its slot.
	if err := c.exchange(func(q int) error {
		if qlo, qhi := comm.Span(n, size, q); qhi > qlo {
			if err := c.h.send(at(qlo), qhi-qlo, q, st); err != nil {
				return err
			}
		}
		if own > 0 {
			return c.h.recv(slot(q), own, q, st)
		}
		return nil
	}); err != nil {
		return c.fail(err)
	}
	if own > 0 {
		if err := c.g.sumSlots(at(lo), c.scratch, own, size, chunk); err != nil {
			return c.fail(err)
		}
	}
	// Phase 2: every rank's folded chunk to everyone.
	if err := c.exchange(func(q int) error {
		if own > 0 {
			if err := c.h.send(at(lo), own, q, st); err != nil {
				return err
			}
		}
		if qlo, qhi := comm.Span(n, size, q); qhi > qlo {
			return c.h.recv(at(qlo), qhi-qlo, q, st)
		}
		return nil
	}); err != nil {
		return c.fail(err)
	}
	if err := c.g.sync(); err != nil {
		return c.fail(err)
	}
	return nil
}

// exchange runs op for every other rank inside one NCCL group, so that all
// the sends and receives proceed together (NCCL would deadlock on blocking
// pairs otherwise).
func (c *Comm) exchange(op func(peer int) error) error {
	if c.Size() == 1 {
		return nil
	}
	// NCCL's group state is per thread: the goroutine must not move
	// between ncclGroupStart and ncclGroupEnd.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := c.h.groupStart(); err != nil {
		return err
	}
	var first error
	for q := 0; q < c.Size(); q++ {
		if q != c.Rank() && first == nil {
			first = op(q)
		}
	}
	if err := c.h.groupEnd(); err != nil && first == nil {
		first = err
	}
	return first
}

// BroadcastDevice copies root's bytes at src to dst on every rank
// (ncclBroadcast; src and dst may be equal), and returns when done.
func (c *Comm) BroadcastDevice(src, dst uintptr, bytes, root int) error {
	if err := c.usable(); err != nil {
		return err
	}
	leave, err := c.g.enter()
	if err != nil {
		return c.fail(err)
	}
	defer leave()
	if err := c.h.broadcast(src, dst, bytes, root, c.g.stream()); err != nil {
		return c.fail(err)
	}
	if err := c.g.sync(); err != nil {
		return c.fail(err)
	}
	return nil
}

// Close destroys the NCCL communicator (aborts it when a call failed) and
// releases the GPU; the bootstrap communicator stays open.
func (c *Comm) Close() error {
	if c.h == nil {
		return nil
	}
	var errs []error
	leave, err := c.g.enter()
	if err == nil {
		if c.scratch != 0 {
			errs = append(errs, c.g.free(c.scratch))
		}
		if c.broken != nil {
			errs = append(errs, c.h.abort())
		} else {
			errs = append(errs, c.h.destroy())
		}
		leave()
	}
	errs = append(errs, err, c.g.close())
	c.h, c.scratch, c.cap = nil, 0, 0
	return errors.Join(errs...)
}

var _ comm.Comm = (*Comm)(nil)
