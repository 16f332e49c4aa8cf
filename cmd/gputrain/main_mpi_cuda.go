//go:build mpi && cuda

package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/gputrain/gputrain/comm"
	"github.com/gputrain/gputrain/comm/mpi"
	"github.com/gputrain/gputrain/comm/nccl"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/cuda"
	"github.com/gputrain/gputrain/model"
)

// The MPI+CUDA build (make build-mpi-cuda): one rank per GPU, each on the
// GPU its local rank (the rank within its machine) names, modulo the GPUs
// it sees; the gradients of the cuda backend are all-reduced by NCCL, on
// the GPUs, bootstrapped over MPI. GPUTRAIN_ALLREDUCE chooses:
//
//	auto (default)  NCCL when every rank can load it, else MPI through host
//	                memory (rank 0 says so)
//	nccl            NCCL or fail
//	mpi             MPI through host memory, never NCCL
const envAllReduce = "GPUTRAIN_ALLREDUCE"

// gpuOrdinal is this rank's GPU (0 without MPI).
var gpuOrdinal int

// ncclComm is the NCCL communicator, made on the first cuda train run.
var ncclComm *nccl.Comm

// localRank is this process's rank among those on its machine.
func localRank() int {
	for _, v := range []string{"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "PMIX_LOCAL_RANK"} {
		if n, err := strconv.Atoi(os.Getenv(v)); err == nil && n >= 0 {
			return n
		}
	}
	return 0
}

func init() {
	onMPIStart = func(w *mpi.World) {
		if w.Size() < 2 {
			return
		}
		if infos, err := cuda.Devices(); err == nil && len(infos) > 0 {
			gpuOrdinal = localRank() % len(infos)
		}
		registerDeviceBackend("cuda", func() (device.Driver, error) { return cuda.New(gpuOrdinal) })
	}
	onMPIEnd = func() error {
		if ncclComm == nil {
			return nil
		}
		err := ncclComm.Close()
		ncclComm = nil
		return err
	}
	worldFor = func(be model.Backend, stderr io.Writer) (comm.Comm, error) {
		if world == nil {
			return nil, nil
		}
		mode := os.Getenv(envAllReduce)
		switch mode {
		case "", "auto", "nccl":
		case "mpi":
			return world, nil
		default:
			return nil, fmt.Errorf("%s=%q: valid values are auto, nccl, mpi", envAllReduce, mode)
		}
		db, ok := be.(*device.Backend)
		if !ok || db.Driver().Name() != "cuda" {
			if mode == "nccl" {
				return nil, fmt.Errorf("%s=nccl needs --backend cuda (this run uses %s)", envAllReduce, be.Name())
			}
			return world, nil
		}
		if ncclComm != nil {
			return ncclComm, nil
		}
		c, err := nccl.Bootstrap(world, nccl.Open, gpuOrdinal)
		if err != nil {
			if mode == "nccl" {
				return nil, err
			}
			if isRoot() {
				fmt.Fprintf(stderr, "gputrain: no NCCL on every rank (%s); the gradients go over %s through host memory (set %s to libnccl.so.2, or %s=mpi to silence this)\n",
					oneLine(err.Error()), world.Describe(), nccl.EnvLibrary, envAllReduce)
			}
			return world, nil
		}
		ncclComm = c
		if isRoot() {
			fmt.Fprintf(stderr, "gputrain: gradients all-reduced on the GPUs by %s\n", c.Describe())
		}
		return c, nil
	}
}
