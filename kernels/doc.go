// Package kernels holds gputrain's CUDA kernels: the *.cu sources, their
// shared header gputrain.cuh, and gputrain.fatbin, the sources compiled by
// scripts/build-kernels.sh (PTX for compute_70 plus SASS for sm_80 and
// sm_90), which Fatbin embeds so a binary carries its kernels.
//
// The kernels are the operations of model.Backend as device.Backend launches
// them: GEMM in four transposes and three tile shapes (gt_gemm_nn, _nt,
// _tn, _tt with 64 x 64 tiles, and the same with suffix _128x64 and
// _128x128), the fused energy loss (gt_energy_loss_cached, which keeps a row
// in shared memory so E is read once; gt_energy_loss without the cache; or
// gt_energy_loss_partial + _merge for rows too long for one block), bias
// add, column sums (one pass, or gt_column_sums_partial + _merge), argmin
// per row, activations and their gradients, optimizer steps and gathers.
// docs/KERNELS.md describes each: launch shape, memory traffic, roofline
// estimate and why its result is deterministic. The same sources run on
// the CPU under device/emu, which is how they are tested without a GPU;
// ARCHITECTURE.md ("Kernel source rules") lists what they may use.
package kernels
