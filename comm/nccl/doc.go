// Package nccl all-reduces GPU buffers with NVIDIA's NCCL, loaded at run
// time: libnccl.so.2 is opened with dlopen (and the CUDA driver, which the
// all-reduce needs for one kernel and scratch memory, as libcuda.so.1 with
// dlopen too), so no binary links NCCL and the cuda binary still links only
// libcuda.so.1 (scripts/check-cuda-link.sh). Open finds the library in
// $GPUTRAIN_NCCL, then where the dynamic loader looks (LD_LIBRARY_PATH, the
// ld.so cache: Debian's libnccl2), then in the usual install places and the
// Python wheels PyTorch depends on (site-packages/nvidia/nccl/lib).
//
// One process (or goroutine) per GPU. The NCCL communicator is bootstrapped
// over a host comm.Comm (MPI or TCP): every rank opens NCCL and its GPU, the
// ranks agree that all succeeded, rank 0 draws the unique id and broadcasts
// it, and each rank calls ncclCommInitRank. Comm then is a comm.Comm whose
// host operations go over that bootstrap communicator, plus
// AllReduceSumDevice for device buffers and the model.DeviceAllReducer the
// trainer uses for the gradients of a device.Backend on CUDA.
//
// The sum is in rank order, like every comm.Comm (comm.SumRanks), not
// ncclAllReduce, whose order depends on the algorithm (ring, tree, NVLS),
// the protocol and the number of channels NCCL picks: a grouped
// ncclSend/ncclRecv all-to-all gives every rank all copies of the chunk it
// owns, the kernel gt_comm_sum_slots (sum.cu) folds them in rank order, and
// a second all-to-all returns the folded chunks. Each rank sends and
// receives 2(N-1)/N of the buffer, as a ring all-reduce does. It needs NCCL
// >= 2.7 (point-to-point).
//
// Tested without a GPU against a fake libnccl (testdata/fakenccl.c: the
// NCCL calls this package makes, on host memory, for ranks that are
// goroutines of one process), which runs the whole algorithm and the
// bootstrap; the loader's error paths against libraries that are missing,
// too old or lack a symbol. With a GPU (the cuda-tagged tests, run by
// scripts/gpu-check.sh): the kernel against the CPU fold, a one-rank NCCL
// communicator end to end, training through it, and N ranks when N GPUs are
// visible.
package nccl
