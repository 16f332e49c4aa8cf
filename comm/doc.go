// Package comm is the communicator of data-parallel training: a fixed group
// of Size ranks, numbered 0..Size-1, that all-reduce float32 buffers,
// broadcast bytes and meet at barriers. model.Trainer uses one to split each
// global batch across the ranks and to sum their gradients, so that every
// rank takes the same optimizer step.
//
// Implementations:
//
//   - Single: one rank, every operation a no-op (the plain binary).
//   - Local: n ranks in one process, one goroutine each, meeting over
//     channels; for tests of the trainer's distributed logic without MPI.
//   - TCP (DialTCP): n processes meeting at rank 0's address; a bootstrap
//     channel (for NCCL's unique id) that is also a complete Comm.
//   - comm/mpi: MPI (OpenMPI), cgo behind the build tag `mpi`.
//   - comm/nccl: NCCL on GPU buffers, loaded at run time with dlopen; its
//     host-side operations go over a bootstrap Comm (MPI or TCP).
//
// Reproducibility is part of the contract: AllReduceSum forms every element's
// sum in rank order, ((x_0 + x_1) + x_2) + ... + x_{n-1}, rounding to float32
// after each addition, whichever implementation and transport carry it (see
// SumRanks, the reference). So a fixed number of ranks gives bitwise the same
// result run after run, every rank receives bitwise the same result, and two
// implementations agree bitwise on the same inputs. MPI_Allreduce's own order
// is implementation-defined (it depends on the algorithm the library picks
// for the message size and the topology), so comm/mpi moves data with MPI
// and adds in Go; comm/nccl does the same with NCCL's send/recv and one
// fixed-order kernel.
//
// A Comm is used by one goroutine at a time, and every rank must issue the
// same collectives in the same order with the same lengths (as with MPI);
// Local and TCP detect a mismatch and report it, MPI may not.
package comm
