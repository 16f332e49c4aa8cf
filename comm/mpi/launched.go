package mpi

import "os"

// Launched reports whether this process was started by an MPI launcher
// (mpirun/mpiexec of Open MPI, or a PMIx launcher such as srun --mpi=pmix),
// from the variables they set. A binary built with MPI initializes MPI only
// then: started alone it is the plain single-process program, and needs no
// MPI runtime at all.
func Launched() bool {
	for _, v := range []string{"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"} {
		if os.Getenv(v) != "" {
			return true
		}
	}
	return false
}
