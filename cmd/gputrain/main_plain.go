//go:build !mpi

package main

import (
	"context"
	"io"
)

// runMain is run for a plain build (main_mpi.go: the MPI build).
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, args, stdout, stderr)
}
