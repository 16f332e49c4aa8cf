package comm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"time"
)

// tcpMagic opens every connection, so that a stray client (or another
// program's port) is refused with a clear message.
const tcpMagic = "gputrain-comm/1"

// Message kinds of the TCP protocol.
const (
	opAllReduce byte = 1 + iota
	opBroadcast
	opBarrier
	opClose
)

// DialTCP joins the group of size ranks that meets at addr ("host:port"):
// rank 0 listens there, the others connect (retrying until timeout, so the
// ranks may start in any order). It is a star through rank 0: each
// collective sends every rank's data to rank 0, which sums in rank order (or
// relays a broadcast) and sends the result back. That is fine for what it is
// meant for, bootstrapping NCCL (the unique id) and the few floats of a
// step's loss; gradients of a real model belong on MPI or NCCL.
//
// job, when not empty, must be the same on every rank: it keeps two runs
// that were given the same address apart.
func DialTCP(addr string, rank, size int, job string, timeout time.Duration) (Comm, error) {
	if size < 1 || rank < 0 || rank >= size {
		return nil, fmt.Errorf("comm: rank %d of %d ranks", rank, size)
	}
	if size > math.MaxUint16 {
		return nil, fmt.Errorf("comm: %d ranks over TCP (at most %d)", size, math.MaxUint16)
	}
	c := &tcpComm{rank: rank, size: size, addr: addr}
	deadline := time.Now().Add(timeout)
	if size == 1 {
		return c, nil
	}
	if rank == 0 {
		return c, c.accept(job, deadline)
	}
	return c, c.dial(job, deadline)
}

type tcpComm struct {
	rank, size int
	addr       string
	peers      []*tcpPeer // rank 0: peers[r] for r >= 1; others: peers[0] is rank 0
	closed     bool
	broken     error // a failed collective leaves the stream out of step: every later one fails
}

type tcpPeer struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

func newPeer(conn net.Conn) *tcpPeer {
	return &tcpPeer{conn: conn, r: bufio.NewReaderSize(conn, 1<<16), w: bufio.NewWriterSize(conn, 1<<16)}
}

func (c *tcpComm) Rank() int        { return c.rank }
func (c *tcpComm) Size() int        { return c.size }
func (c *tcpComm) Describe() string { return fmt.Sprintf("TCP via rank 0 at %s", c.addr) }

// hello is what a rank sends when it connects: magic, rank, size, job.
func writeHello(w *bufio.Writer, rank, size int, job string) error {
	w.WriteString(tcpMagic)
	var b [6]byte
	binary.LittleEndian.PutUint16(b[0:], uint16(rank))
	binary.LittleEndian.PutUint16(b[2:], uint16(size))
	binary.LittleEndian.PutUint16(b[4:], uint16(len(job)))
	w.Write(b[:])
	w.WriteString(job)
	return w.Flush()
}

func readHello(r *bufio.Reader) (rank, size int, job string, err error) {
	magic := make([]byte, len(tcpMagic))
	if _, err := io.ReadFull(r, magic); err != nil {
		return 0, 0, "", err
	}
	if string(magic) != tcpMagic {
		return 0, 0, "", fmt.Errorf("not a gputrain rank (it sent %q)", magic)
	}
	var b [6]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, 0, "", err
	}
	j := make([]byte, binary.LittleEndian.Uint16(b[4:]))
	if _, err := io.ReadFull(r, j); err != nil {
		return 0, 0, "", err
	}
	return int(binary.LittleEndian.Uint16(b[0:])), int(binary.LittleEndian.Uint16(b[2:])), string(j), nil
}

// accept is rank 0's side of the rendezvous: every other rank connects once.
// A connection that is not a rank of this group is answered with the
// reason and dropped; rank 0 keeps waiting for the real ones.
func (c *tcpComm) accept(job string, deadline time.Time) error {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("comm: rank 0 listening on %s: %w", c.addr, err)
	}
	defer ln.Close()
	c.addr = ln.Addr().String()
	if tl, ok := ln.(*net.TCPListener); ok {
		_ = tl.SetDeadline(deadline)
	}
	c.peers = make([]*tcpPeer, c.size)
	for joined := 1; joined < c.size; {
		conn, err := ln.Accept()
		if err != nil {
			_ = c.Close()
			return fmt.Errorf("comm: rank 0 at %s: %d of %d ranks joined before the deadline: %w", c.addr, joined, c.size, err)
		}
		_ = conn.SetDeadline(deadline)
		p := newPeer(conn)
		rank, size, pjob, err := readHello(p.r)
		why := ""
		switch {
		case err != nil:
			why = err.Error()
		case size != c.size:
			why = fmt.Sprintf("it is rank %d of %d ranks, this group has %d", rank, size, c.size)
		case pjob != job:
			why = fmt.Sprintf("its job %q is not this group's %q", pjob, job)
		case rank < 1 || rank >= c.size:
			why = fmt.Sprintf("rank %d is outside 1..%d", rank, c.size-1)
		case c.peers[rank] != nil:
			why = fmt.Sprintf("rank %d has already joined", rank)
		}
		if why != "" {
			_ = writeStatus(p.w, errors.New(why))
			conn.Close()
			continue
		}
		if err := writeStatus(p.w, nil); err != nil {
			conn.Close()
			continue
		}
		_ = conn.SetDeadline(time.Time{})
		c.peers[rank] = p
		joined++
	}
	return nil
}

// dial is the other ranks' side: connect to rank 0, retrying until it
// listens or the deadline passes.
func (c *tcpComm) dial(job string, deadline time.Time) error {
	var last error
	for {
		conn, err := net.DialTimeout("tcp", c.addr, time.Until(deadline))
		if err == nil {
			_ = conn.SetDeadline(deadline)
			p := newPeer(conn)
			if err = writeHello(p.w, c.rank, c.size, job); err == nil {
				if err = readStatus(p.r); err == nil {
					_ = conn.SetDeadline(time.Time{})
					c.peers = []*tcpPeer{p}
					return nil
				}
				conn.Close()
				return fmt.Errorf("comm: rank %d: rank 0 at %s refused: %w", c.rank, c.addr, err)
			}
			conn.Close()
		}
		last = err
		if time.Now().Add(50 * time.Millisecond).After(deadline) {
			return fmt.Errorf("comm: rank %d: no rank 0 at %s before the deadline: %w", c.rank, c.addr, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeStatus sends 0, or 1 (2 when it wraps ErrClosed) and the error's
// message.
func writeStatus(w *bufio.Writer, err error) error {
	if err == nil {
		w.WriteByte(0)
	} else {
		msg := strings.TrimPrefix(err.Error(), "comm: ")
		if errors.Is(err, ErrClosed) {
			w.WriteByte(2)
		} else {
			w.WriteByte(1)
		}
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(len(msg)))
		w.Write(b[:])
		w.WriteString(msg)
	}
	return w.Flush()
}

func readStatus(r *bufio.Reader) error {
	s, err := r.ReadByte()
	if err != nil {
		return err
	}
	if s == 0 {
		return nil
	}
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	msg := make([]byte, min(binary.LittleEndian.Uint32(b[:]), 1<<16))
	if _, err := io.ReadFull(r, msg); err != nil {
		return err
	}
	if s == 2 {
		return &remoteClosed{string(msg)}
	}
	return errors.New(string(msg))
}

// remoteClosed is a peer's ErrClosed as received: its message, and Is
// ErrClosed.
type remoteClosed struct{ msg string }

func (e *remoteClosed) Error() string        { return e.msg }
func (e *remoteClosed) Is(target error) bool { return target == ErrClosed }

// header of a collective: op, root, payload length in bytes.
type tcpHeader struct {
	op   byte
	root uint16
	n    uint64
}

func (h tcpHeader) String() string {
	switch h.op {
	case opAllReduce:
		return fmt.Sprintf("all-reduce of %d floats", h.n/4)
	case opBroadcast:
		return fmt.Sprintf("broadcast of %d bytes from rank %d", h.n, h.root)
	case opBarrier:
		return "barrier"
	case opClose:
		return "close"
	}
	return fmt.Sprintf("unknown message %d", h.op)
}

func writeHeader(w *bufio.Writer, h tcpHeader) {
	var b [11]byte
	b[0] = h.op
	binary.LittleEndian.PutUint16(b[1:], h.root)
	binary.LittleEndian.PutUint64(b[3:], h.n)
	w.Write(b[:])
}

func readHeader(r *bufio.Reader) (tcpHeader, error) {
	var b [11]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return tcpHeader{}, err
	}
	return tcpHeader{op: b[0], root: binary.LittleEndian.Uint16(b[1:]), n: binary.LittleEndian.Uint64(b[3:])}, nil
}

func floatBytes(f []float32) []byte {
	b := make([]byte, 4*len(f))
	for i, x := range f {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func bytesFloats(dst []float32, b []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// collective runs one collective: h describes this rank's call, payload is
// what it contributes (its buffer for an all-reduce, the data for the root
// of a broadcast). It returns the result bytes (the sum, the broadcast
// data; nil for a barrier).
func (c *tcpComm) collective(h tcpHeader, payload []byte) ([]byte, error) {
	if c.closed {
		return nil, fmt.Errorf("comm: rank %d: %v after Close: %w", c.rank, h, ErrClosed)
	}
	if c.broken != nil {
		return nil, c.broken
	}
	if c.size == 1 {
		return payload, nil
	}
	var res []byte
	var err error
	if c.rank == 0 {
		res, err = c.root(h, payload)
	} else {
		res, err = c.leaf(h, payload)
	}
	if err != nil {
		c.broken = err
	}
	return res, err
}

// leaf sends this rank's call to rank 0 and reads the result.
func (c *tcpComm) leaf(h tcpHeader, payload []byte) ([]byte, error) {
	p := c.peers[0]
	writeHeader(p.w, h)
	if h.op == opAllReduce || h.op == opBroadcast && int(h.root) == c.rank {
		p.w.Write(payload)
	}
	lost := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("comm: rank %d: rank 0 closed the connection during %v: %w", c.rank, h, ErrClosed)
		}
		return fmt.Errorf("comm: rank %d: %v with rank 0: %w", c.rank, h, err)
	}
	if err := p.w.Flush(); err != nil {
		return nil, lost(err)
	}
	if err := readStatus(p.r); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return nil, lost(err)
		}
		return nil, fmt.Errorf("comm: rank %d: %w", c.rank, err)
	}
	if h.op == opBarrier {
		return nil, nil
	}
	res := make([]byte, h.n)
	if _, err := io.ReadFull(p.r, res); err != nil {
		return nil, lost(err)
	}
	return res, nil
}

// root gathers every rank's call in rank order, checks they agree, computes
// the result and sends it to every rank (or the reason they disagree).
func (c *tcpComm) root(h tcpHeader, payload []byte) ([]byte, error) {
	var fail error
	parts := [][]byte{payload}
	for r := 1; r < c.size; r++ {
		p := c.peers[r]
		ph, err := readHeader(p.r)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("comm: rank %d closed the connection during %v: %w", r, h, ErrClosed)
			} else {
				err = fmt.Errorf("comm: rank 0: %v with rank %d: %w", h, r, err)
			}
			c.abortPeers(err)
			return nil, err
		}
		var data []byte
		if ph.op == opAllReduce || ph.op == opBroadcast && int(ph.root) == r {
			if ph.n > 1<<40 {
				err := fmt.Errorf("comm: rank %d sent a %d-byte message", r, ph.n)
				c.abortPeers(err)
				return nil, err
			}
			data = make([]byte, ph.n)
			if _, err := io.ReadFull(p.r, data); err != nil {
				err = fmt.Errorf("comm: rank 0: %v with rank %d: %w", h, r, err)
				c.abortPeers(err)
				return nil, err
			}
		}
		switch {
		case ph.op == opClose:
			fail = fmt.Errorf("comm: rank %d left the group during %v: %w", r, h, ErrClosed)
		case ph != h && fail == nil:
			fail = fmt.Errorf("comm: the ranks disagree: rank 0 called %v, rank %d %v", h, r, ph)
		}
		parts = append(parts, data)
	}
	var res []byte
	if fail == nil {
		switch h.op {
		case opAllReduce:
			n := int(h.n / 4)
			fs := make([][]float32, c.size)
			for r, b := range parts {
				fs[r] = make([]float32, n)
				bytesFloats(fs[r], b)
			}
			sum := make([]float32, n)
			SumRanks(sum, fs)
			res = floatBytes(sum)
		case opBroadcast:
			res = parts[h.root]
		}
	}
	for r := 1; r < c.size; r++ {
		p := c.peers[r]
		if err := writeStatus(p.w, fail); err == nil && fail == nil && h.op != opBarrier {
			p.w.Write(res)
		}
		if err := p.w.Flush(); err != nil && fail == nil {
			fail = fmt.Errorf("comm: rank 0: %v with rank %d: %w", h, r, err)
		}
	}
	return res, fail
}

// abortPeers tells every rank that the collective failed.
func (c *tcpComm) abortPeers(err error) {
	for _, p := range c.peers[1:] {
		if p != nil {
			_ = writeStatus(p.w, err)
		}
	}
}

func (c *tcpComm) AllReduceSum(buf []float32) error {
	res, err := c.collective(tcpHeader{op: opAllReduce, n: 4 * uint64(len(buf))}, floatBytes(buf))
	if err != nil {
		return err
	}
	bytesFloats(buf, res)
	return nil
}

func (c *tcpComm) Broadcast(buf []byte, root int) error {
	if root < 0 || root >= c.size {
		return fmt.Errorf("comm: broadcast from rank %d of %d", root, c.size)
	}
	res, err := c.collective(tcpHeader{op: opBroadcast, root: uint16(root), n: uint64(len(buf))}, slices.Clone(buf))
	if err != nil {
		return err
	}
	copy(buf, res)
	return nil
}

func (c *tcpComm) Barrier() error {
	_, err := c.collective(tcpHeader{op: opBarrier}, nil)
	return err
}

// Close leaves the group. A rank other than 0 tells rank 0 first, so that a
// collective rank 0 waits in fails with a message naming it; rank 0 closing
// ends every other rank's connection.
func (c *tcpComm) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	for _, p := range c.peers {
		if p == nil {
			continue
		}
		if c.rank != 0 {
			writeHeader(p.w, tcpHeader{op: opClose})
			_ = p.w.Flush()
		}
		if err := p.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
