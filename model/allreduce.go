package model

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"unsafe"

	"github.com/gputrain/gputrain/comm"
)

// Data-parallel training (docs/DISTRIBUTED.md). With a communicator of N
// ranks, every rank holds the same data, draws the same shuffle and so the
// same global batch of Config.Batch rows; it trains on its shard of the
// batch (comm.Shard: contiguous, sizes differing by at most one row), scales
// its gradient by 1/(rows of the global batch) under Mean, and the hook
// below sums the ranks' gradients before the optimizer step. The sum is the
// one-process gradient of the global batch up to float rounding, and every
// rank takes bitwise the same step (comm.Comm's rank-order sum).
//
// One collective per step carries the gradients, the shard's loss sum and
// each rank's stop request: the ranks agree on the loss (one divergence
// check, one reported loss) and on when to stop (a signal that reaches one
// rank stops all of them after the same step).

// DeviceAllReducer is implemented by a communicator that sums backend
// matrices where they live (NCCL on GPU memory) instead of through host
// buffers. The trainer uses it for the gradients when Handles(backend) is
// true; the step's few host floats still go through AllReduceSum.
type DeviceAllReducer interface {
	Handles(b Backend) bool
	// AllReduceMats replaces every matrix with its sum over the ranks, in
	// rank order, in place.
	AllReduceMats(b Backend, ms []Mat) error
}

// distributed is a Trainer's data-parallel state; nil without a communicator.
type distributed struct {
	c   comm.Comm
	dev DeviceAllReducer // nil: gradients go through buf
	// buf holds the flattened gradients (host path only), then the shard's
	// loss sum, then one stop flag per rank.
	buf  []float32
	ctx  context.Context // the ctx of the running epoch, read at each step
	stop error           // the ranks agreed to stop after the last step
}

// NewDistributedTrainer is NewTrainer for one rank of a data-parallel run
// over c (nil: a plain single-process trainer, as NewTrainer). Every rank
// must call it with the same configuration, data and kind of backend: it
// checks that with its first collective and fails on every rank, naming
// what differs, if they do not agree.
func NewDistributedTrainer(b Backend, cfg Config, c comm.Comm, train, eval *Data) (*Trainer, error) {
	if cfg.Chain {
		return nil, errors.New("NewDistributedTrainer: a chain model trains on sequences (NewSequenceTrainer), on one rank")
	}
	if c != nil && cfg.Batch < c.Size() {
		return nil, fmt.Errorf("batch %d is smaller than the %d ranks: every step, %d ranks would have no rows (use --batch >= %d)", cfg.Batch, c.Size(), c.Size()-cfg.Batch, c.Size())
	}
	return newTrainer(b, cfg, c, train, eval)
}

// setComm makes t a rank of c (before the batcher is sized).
func (t *Trainer) setComm(c comm.Comm) {
	if c == nil {
		return
	}
	t.dist = &distributed{c: c}
	if dr, ok := c.(DeviceAllReducer); ok && dr.Handles(t.b) {
		t.dist.dev = dr
	}
}

// Comm returns the trainer's communicator (comm.Single() without one).
func (t *Trainer) Comm() comm.Comm {
	if t.dist == nil {
		return comm.Single()
	}
	return t.dist.c
}

// Ranks is the number of ranks training together (1 without a communicator).
func (t *Trainer) Ranks() int { return t.Comm().Size() }

// localBatch is the capacity of this rank's batch buffers: the largest
// shard of a global batch.
func (t *Trainer) localBatch() int {
	if t.dist == nil {
		return t.cfg.Batch
	}
	return comm.MaxShard(t.cfg.Batch, t.dist.c.Size())
}

// shard returns this rank's rows of the global batch rows.
func (t *Trainer) shard(rows []int32) []int32 {
	if t.dist == nil {
		return rows
	}
	return comm.Shard(rows, t.dist.c.Size(), t.dist.c.Rank())
}

// stopRequested is checked before each step. Alone, a trainer stops when
// ctx is done. A rank of a group cannot: the others would wait for it in
// the step's all-reduce. It takes the step, announcing its wish in that
// all-reduce (allReduceStep), and every rank stops before the next one.
func (t *Trainer) stopRequested(ctx context.Context) error {
	if t.dist == nil {
		return ctx.Err()
	}
	d := t.dist
	d.ctx = ctx
	err := d.stop
	d.stop = nil
	return err
}

// allReduceStep is the hook between backward and the optimizer step: it
// sums the gradients over the ranks (in place) and returns the loss sum of
// the global batch, given this rank's shard's.
func (t *Trainer) allReduceStep(shardLoss float64) (float64, error) {
	if t.dist == nil {
		return shardLoss, nil
	}
	d, c := t.dist, t.dist.c
	params := t.Model.Params()
	grads := 0
	if d.dev == nil {
		for _, p := range params {
			grads += p.Size()
		}
	}
	tail := 1 + c.Size()
	if cap(d.buf) < grads+tail {
		d.buf = make([]float32, grads+tail)
	}
	buf := d.buf[:grads+tail]
	if d.dev != nil {
		gs := make([]Mat, len(params))
		for i, p := range params {
			gs[i] = p.Grad
		}
		if err := d.dev.AllReduceMats(t.b, gs); err != nil {
			return 0, fmt.Errorf("all-reducing the gradients: %w", err)
		}
	} else {
		off := 0
		for _, p := range params {
			if err := t.b.Download(buf[off:off+p.Size()], p.Grad); err != nil {
				return 0, fmt.Errorf("downloading the gradient of %s: %w", p.Name, err)
			}
			off += p.Size()
		}
	}
	clear(buf[grads:])
	buf[grads] = float32(shardLoss)
	if d.ctx != nil && d.ctx.Err() != nil {
		buf[grads+1+c.Rank()] = 1
	}
	if err := c.AllReduceSum(buf); err != nil {
		return 0, fmt.Errorf("all-reducing the gradients: %w", err)
	}
	if d.dev == nil {
		off := 0
		for _, p := range params {
			if err := t.b.Upload(p.Grad, buf[off:off+p.Size()]); err != nil {
				return 0, fmt.Errorf("uploading the summed gradient of %s: %w", p.Name, err)
			}
			off += p.Size()
		}
	}
	var stopped []int
	for r, f := range buf[grads+1:] {
		if f != 0 {
			stopped = append(stopped, r)
		}
	}
	if len(stopped) > 0 {
		if d.ctx != nil && d.ctx.Err() != nil {
			d.stop = d.ctx.Err()
		} else {
			d.stop = fmt.Errorf("rank %s stopped the run: %w", comm.RankList(stopped), context.Canceled)
		}
	}
	return float64(buf[grads]), nil
}

// fingerprint names what must agree on every rank and a digest of each.
type fingerprint struct {
	names   [4]string
	digests [4][sha256.Size]byte
}

func dataDigest(d *Data) [sha256.Size]byte {
	if d == nil {
		return sha256.Sum256([]byte("no data"))
	}
	// CRC-32C runs at memory speed (SSE4.2); the digest only has to tell
	// different data sets apart, not resist an adversary.
	tab := crc32.MakeTable(crc32.Castagnoli)
	x := crc32.Checksum(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d.X))), 4*len(d.X)), tab)
	y := crc32.Checksum(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d.Y))), 4*len(d.Y)), tab)
	return sha256.Sum256(fmt.Appendf(nil, "%d %d %d %08x %08x", d.N, d.D, d.Classes, x, y))
}

// checkAgreement is the first collective of a data-parallel trainer: every
// rank compares its configuration, backend and data with rank 0's, and all
// ranks fail if any differs (the one that differs says what).
func (t *Trainer) checkAgreement(train, eval *Data) error {
	if t.dist == nil {
		return nil
	}
	c := t.dist.c
	var fp fingerprint
	fp.names = [4]string{"configuration", "backend", "training data", "held-out data"}
	fp.digests[0] = sha256.Sum256(fmt.Appendf(nil, "%#v", t.cfg))
	fp.digests[1] = sha256.Sum256([]byte(t.b.Name()))
	fp.digests[2] = dataDigest(train)
	fp.digests[3] = dataDigest(eval)
	root := make([]byte, 0, 4*sha256.Size)
	for _, d := range fp.digests {
		root = append(root, d[:]...)
	}
	if err := c.Broadcast(root, 0); err != nil {
		return fmt.Errorf("comparing the ranks' settings: %w", err)
	}
	var mine error
	for i, d := range fp.digests {
		if string(d[:]) != string(root[i*sha256.Size:(i+1)*sha256.Size]) {
			what := fp.names[i]
			if i == 1 {
				what = fmt.Sprintf("backend (%s)", t.b.Name())
			}
			mine = fmt.Errorf("rank %d's %s differs from rank 0's: every rank must run the same command on the same data", c.Rank(), what)
			break
		}
	}
	return t.agree(mine, "the configuration, backend or data")
}

// agree makes every rank fail if any rank's err is not nil: this rank with
// its own error, the others naming the ranks that failed.
func (t *Trainer) agree(err error, what string) error {
	bad, aerr := comm.Failed(t.dist.c, err != nil)
	if aerr != nil {
		return errors.Join(err, aerr)
	}
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("rank %s disagreed with rank 0 on %s (see its message)", comm.RankList(bad), what)
	}
	return nil
}

// WeightsDigest is the SHA-256 of the model's parameters (their float32
// bytes, little-endian, in Params order), as "sha256:<hex>": equal digests
// mean bitwise equal weights.
func (t *Trainer) WeightsDigest() (string, error) {
	if t.bt == nil {
		return "", errors.New("trainer: used after Close")
	}
	h := sha256.New()
	var v []float32
	for _, p := range t.Model.Params() {
		if cap(v) < p.Size() {
			v = make([]float32, p.Size())
		}
		v = v[:p.Size()]
		if err := t.b.Download(v, p.Value); err != nil {
			return "", fmt.Errorf("downloading %s: %w", p.Name, err)
		}
		b := make([]byte, 4*len(v))
		for i, x := range v {
			u := math.Float32bits(x)
			b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
		}
		h.Write(b)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// checkReplicas runs after every epoch of a data-parallel run: the ranks
// compare their weights' digests with rank 0's and all fail if any differs.
// Equal inputs and a rank-order sum make them equal; a difference means a
// rank computes differently (another backend build, a hardware fault) and
// the run is no longer one model.
func (t *Trainer) checkReplicas(epoch int) error {
	if t.dist == nil {
		return nil
	}
	c := t.dist.c
	mine, err := t.WeightsDigest()
	if err != nil {
		return err
	}
	root := []byte(mine)
	if err := c.Broadcast(root, 0); err != nil {
		return fmt.Errorf("comparing the ranks' weights: %w", err)
	}
	var diff error
	if string(root) != mine {
		diff = fmt.Errorf("after epoch %d the weights of rank %d (%s) differ from rank 0's (%s)", epoch, c.Rank(), mine[:19], string(root)[:19])
	}
	return t.agree(diff, fmt.Sprintf("the weights after epoch %d", epoch))
}

// RanksNotice says how resuming c on ranks ranks differs from the run that
// saved it ("" when the numbers agree). The state is the same whatever the
// number of ranks (weights, optimizer, shuffle, position in the epoch), so
// the run continues the same global batches; only the summation order of
// each gradient changes, and with it the last bits of the weights.
func (c *Checkpoint) RanksNotice(ranks int) string {
	if c.Ranks == ranks {
		return ""
	}
	return fmt.Sprintf("# note: the checkpoint %s was trained on %d ranks, this run has %d: it continues the same global batches of %d rows, "+
		"but the gradients are summed in another order, so the weights will agree with an uninterrupted %d-rank run to float rounding, not bitwise",
		c.Path, c.Ranks, ranks, c.Config.Batch, c.Ranks)
}
