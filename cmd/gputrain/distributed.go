package main

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/gputrain/gputrain/comm"
	"github.com/gputrain/gputrain/model"
)

// world is the communicator of a data-parallel train run: nil in a plain
// run, set by the MPI build's runMain (main_mpi.go) when mpirun started
// several ranks. Only train runs data-parallel; see docs/DISTRIBUTED.md.
var world comm.Comm

// worldFor returns the communicator a train run on be uses: world, or in
// the MPI+CUDA build an NCCL communicator bootstrapped over it when be is
// the cuda backend (main_mpi_cuda.go).
var worldFor = func(be model.Backend, stderr io.Writer) (comm.Comm, error) { return world, nil }

// isRoot reports whether this process is rank 0, the one that prints,
// writes checkpoints and metrics (always true in a plain run).
func isRoot() bool { return world == nil || world.Rank() == 0 }

// worldSize is the number of ranks training together.
func worldSize() int {
	if world == nil {
		return 1
	}
	return world.Size()
}

// rootOnly leaves checkpoints and the progress bar to rank 0: the other
// ranks hold bitwise the same weights, and one writer keeps the file
// atomic.
func rootOnly(o *runOptions) {
	if !isRoot() {
		o.save, o.best = "", ""
		o.quiet = true
	}
}

// distributedLine describes the data-parallel run for rank 0's header ("" alone).
func distributedLine(o runOptions) string {
	if world == nil {
		return ""
	}
	n, b := world.Size(), o.cfg.Batch
	rows := fmt.Sprint(b / n)
	if b%n != 0 {
		rows = fmt.Sprintf("%d-%d", b/n, b/n+1)
	}
	return fmt.Sprintf("# data parallel: %d ranks over %s; each takes %s rows of every global batch of %d; gradients summed in rank order",
		n, world.Describe(), rows, b)
}

// ranksNotice says how a resumed run's ranks differ from the checkpoint's.
func ranksNotice(o runOptions) string {
	if o.resume == nil {
		return ""
	}
	return o.resume.RanksNotice(worldSize())
}

// onTrained runs after a successful training run, trainer still open: each
// rank of a data-parallel run reports the digest of its final weights on
// stderr (equal on every rank: the trainer checks that after every epoch).
var onTrained = func(tr *model.Trainer, stderr io.Writer) error {
	if world == nil {
		return nil
	}
	d, err := tr.WeightsDigest()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "gputrain: final weights %s after %d optimizer steps\n", d, tr.Optimizer.Steps())
	return nil
}

// rankWriter prefixes every line written to w with "[rank r/n] ", so that
// the interleaved stderr of several ranks says which rank said what.
type rankWriter struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  []byte
	midline bool
}

func newRankWriter(w io.Writer, rank, size int) *rankWriter {
	return &rankWriter{w: w, prefix: fmt.Appendf(nil, "[rank %d/%d] ", rank, size)}
}

func (rw *rankWriter) Write(p []byte) (int, error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	var out []byte
	for rest := p; len(rest) > 0; {
		if !rw.midline {
			out = append(out, rw.prefix...)
		}
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			out = append(out, rest...)
			rw.midline = true
			break
		}
		out = append(out, rest[:i+1]...)
		rw.midline = false
		rest = rest[i+1:]
	}
	if _, err := rw.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
