// The one kernel of comm/nccl: the fixed-order fold of the all-reduce.
// Rank r of N receives every rank's copy of the chunk it owns into N slots
// (slot s at slots + s*stride) and folds them in rank order:
//
//     dst[i] = ((slots[0][i] + slots[1][i]) + slots[2][i]) + ...
//
// exactly comm.SumRanks, rounding after each addition (__fadd_rn is never
// contracted or reassociated), so NCCL's all-reduce gives the bits MPI's
// and the CPU reference give. Grid-stride, one thread per element: the
// kernel is memory bound, N loads and one store per element.
//
// Built into sum.ptx (compute_70; the driver JIT-compiles it for newer
// GPUs) by `go generate ./comm/nccl`; TestPTXIsFresh checks the committed
// file against this source where nvcc is installed.
extern "C" __global__ void gt_comm_sum_slots(float *dst, const float *slots, long long n, long long nslots, long long stride)
{
	long long step = (long long)gridDim.x * blockDim.x;
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
		float s = slots[i];
		for (long long r = 1; r < nslots; r++) {
			s = __fadd_rn(s, slots[r * stride + i]);
		}
		dst[i] = s;
	}
}
