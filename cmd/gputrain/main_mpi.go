//go:build mpi

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gputrain/gputrain/comm/mpi"
)

// runMain of the MPI build (make build-mpi: bin/gputrain-mpi). Started
// without an MPI launcher it is the plain program. Under mpirun with one
// rank it is too (no communicator: bitwise the plain binary's run). With N
// ranks, train runs data-parallel on every rank; any other command runs on
// rank 0 only. Rank 0 prints; the others' stdout is dropped and their
// stderr lines are prefixed with their rank. A rank that fails aborts the
// whole job (MPI_Abort): the others would otherwise wait for it forever in
// the next all-reduce.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if !mpi.Launched() {
		return run(ctx, args, stdout, stderr)
	}
	w, err := mpi.Init()
	if err != nil {
		fmt.Fprintf(stderr, "gputrain: %s\n", oneLine(err.Error()))
		return exitRuntime
	}
	rank, size := w.Rank(), w.Size()
	if onMPIStart != nil {
		onMPIStart(w)
	}
	if size > 1 {
		stderr = newRankWriter(stderr, rank, size)
		if commandOf(args) == "train" {
			world = w
		} else if rank != 0 {
			return finalize(w, 0, stderr)
		}
		if rank != 0 {
			stdout = io.Discard
		}
	}
	// mpirun passes SIGINT and SIGTERM on to every rank as SIGTERM (and
	// kills them odls_base_sigkill_timeout seconds later, 1 by default).
	// Every rank catches it, so that all stop after the same step and
	// rank 0 saves the checkpoint (checkpoint.go catches it there too).
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(sigCtx, args, stdout, stderr)
	if code != 0 && size > 1 && sigCtx.Err() != nil && world != nil {
		// Stopped by a signal: every rank stops after the same step,
		// nobody waits for anybody; no abort, so rank 0's save completes.
		if code != exitSIGINT && code != exitSIGTERM {
			fmt.Fprintf(stderr, "gputrain: interrupted; rank 0 saves the checkpoint\n")
			code = exitSIGTERM
		}
		return finalize(w, code, stderr)
	}
	if code != 0 && size > 1 {
		fmt.Fprintf(stderr, "gputrain: this rank failed (exit status %d): stopping all %d ranks (MPI_Abort)\n", code, size)
		w.Abort(code)
	}
	return finalize(w, code, stderr)
}

// onMPIStart, when set (main_mpi_cuda.go), runs once MPI is up and before
// the command: it gives each rank its own GPU.
var onMPIStart func(w *mpi.World)

// onMPIEnd, when set, runs before MPI_Finalize (closing NCCL).
var onMPIEnd func() error

func finalize(w *mpi.World, code int, stderr io.Writer) int {
	if onMPIEnd != nil {
		if err := onMPIEnd(); err != nil {
			fmt.Fprintf(stderr, "gputrain: %s\n", oneLine(err.Error()))
			if code == 0 {
				code = exitRuntime
			}
		}
	}
	if err := w.Finalize(); err != nil {
		fmt.Fprintf(stderr, "gputrain: %s\n", oneLine(err.Error()))
		if code == 0 {
			code = exitRuntime
		}
	}
	return code
}

// commandOf is the command args name (the first argument that is not a
// flag), "" when none.
func commandOf(args []string) string {
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return ""
}
