// Package commtest is the conformance check every comm.Comm passes, like
// gonum's blas/testblas: Check runs on each rank of a group (goroutines of
// comm.Local or TCP, processes of MPI) and compares every collective's
// result with the reference computed locally, bitwise.
package commtest
