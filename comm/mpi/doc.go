// Package mpi is comm.Comm over MPI: the world communicator of a program
// started by mpirun (Open MPI 4.1 from Debian: openmpi-bin, libopenmpi-dev;
// scripts/install-mpi.sh). It is cgo behind the build tag `mpi`, so a
// default build of gputrain stays pure Go; `make build-mpi` builds
// bin/gputrain-mpi.
//
// AllReduceSum does not call MPI_Allreduce, whose order of additions is the
// library's choice (it varies with the message size, the number of ranks
// and the algorithm tuning), but moves data with MPI and adds in Go, in
// rank order: an MPI_Alltoall sends each rank the chunk of every buffer it
// owns (comm.Span), each rank folds its chunk over the ranks in rank order,
// and an MPI_Allgather returns the folded chunks to everyone. That is the
// reduce-scatter/all-gather pattern of a bandwidth-optimal all-reduce (each
// rank sends and receives 2(N-1)/N of the buffer), with a fixed order, so
// the result is bitwise comm.SumRanks on every rank and in every run.
//
// Calls are serialized by a mutex and MPI is initialized with
// MPI_THREAD_SERIALIZED, since goroutines move between OS threads.
package mpi
