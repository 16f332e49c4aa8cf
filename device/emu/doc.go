// Package emu is a device.Driver that runs the kernels of kernels/*.cu on
// the CPU: g++ compiles the unmodified sources through cgo with an
// emulation header (emu.h), so CI, which has no GPU and no CUDA toolkit,
// tests device.Backend and the kernels end to end with gcc alone.
//
// # Contract with the kernel writer
//
// Entry points are `extern "C" __global__ void name(...)` whose parameters
// are all pointers (float*, const float*, int*, long long*, ...), `long
// long` or `double`: the 8-byte values of device.PtrArg, IntArg and
// FloatArg. Another parameter type fails to compile here.
//
// Supported: threadIdx, blockIdx, blockDim, gridDim (.x/.y/.z), warpSize,
// dim3; __syncthreads; __syncwarp; static __shared__ variables in kernels
// and __device__ functions; dynamic shared memory only through
// GT_DYNAMIC_SHARED(T, name), which kernels/gputrain.cuh defines for nvcc
// under #ifndef GT_DYNAMIC_SHARED and emu.h defines first (a T* here);
// full-mask (0xffffffff) __shfl_sync, __shfl_xor_sync, __shfl_down_sync and
// __shfl_up_sync of 4- or 8-byte values with any power-of-two width;
// __device__, __host__, __forceinline__, __noinline__, __restrict__,
// __launch_bounds__, __align__, #pragma unroll; <math.h> (expf, logf,
// log1pf, expm1f, sqrtf, fabsf, fmaxf, fminf, ...), __expf, __logf,
// __powf, __fdividef, rsqrtf, __saturatef, __int_as_float, __float_as_int,
// isnan, isinf, INFINITY, FLT_MAX, min/max, __ldg; atomicAdd on int,
// unsigned, unsigned long long, float and double, atomicMax/atomicMin/
// atomicExch on int (and atomicExch on float); __threadfence; printf and
// assert; and the sm_80 instructions of the tensor-core kernels behind
// kernels/gputrain.cuh's wrappers (cp.async with commit/wait groups, cvt to
// tf32 and bf16x2, mma.sync m16n8k8 .tf32 and m16n8k16 .bf16), as the PTX
// ISA documents them (emu_tensor.h; the Driver reports compute capability
// 8.0). The macro GT_EMU is defined when the emulator compiles a source.
//
// Not supported: __constant__ memory, textures, `extern __shared__`
// written out, partial-mask warp operations (Launch reports them), vote
// functions (__ballot_sync, __any_sync, ...), cooperative groups, half
// types, CUDA headers, busy-waiting on another thread's writes (it never
// ends here), warp-synchronous code without __syncwarp or shuffles.
// Divergent __syncthreads (threads at different barriers) is not detected.
// Out-of-bounds accesses are not checked: they corrupt host memory or
// crash the process, as they would corrupt memory or fault on a GPU.
//
// # Emulation model
//
// Each CUDA thread of a block is a fiber with its own 64 KiB stack (a guard
// page below it; a kernel with more than about 60 KiB of locals per thread
// crashes). Blocks run one after another on the launching OS thread, and
// all launches of all emulated devices are serialized by one mutex, so
// `__shared__` becomes `static`: one copy per kernel, which keeps its value
// from block to block where CUDA's is merely uninitialized. Dynamic shared
// memory is refilled with 0xff bytes (NaN as float32) before every block,
// and Alloc fills new memory the same way, so reads of unwritten memory
// show.
//
// A thread runs until a switch point: __syncthreads, a shuffle, __syncwarp
// or (permuted mode only) an atomic. A barrier releases when every thread
// of the block that has not returned waits at it: threads that returned
// early count as arrived, as on hardware. A warp operation releases when
// all lanes of the warp have arrived. Launch returns an error, naming the
// block and the thread, instead of hanging or computing garbage when: a
// lane of a warp returned and its warp-mates then use a full-mask warp
// operation (or the reverse); a shuffle reads a lane that does not exist
// (the last warp of a block of, say, 48 threads has only 16 lanes); lanes
// of one warp wait at different warp operations; a mask is not full; or no
// thread can progress (lanes wait at a shuffle while their warp-mates wait
// at __syncthreads).
//
// In Deterministic mode the threads run in index order between switch
// points and the blocks in order. In Permuted mode the next thread to run
// is drawn at random (from Options.Seed, advancing with every launch), the
// blocks run along a random permutation, and an atomic may hand over to
// another thread first; a kernel that lacks a __syncthreads then computes
// a wrong result for almost every seed, while it may pass in index order.
// Warp lanes run one after another too, not in lockstep.
//
// Launch checks, before running anything, the kernel name, the argument
// count, the block (at most 1024 threads; x, y <= 1024, z <= 64) and grid
// (x < 2^31, y, z <= 65535) shapes, and the shared memory: dynamic plus
// static must stay within Options.SharedLimit (48 KiB by default, the
// limit of a kernel that has not opted in). The static size of a kernel is
// the sizeof of its __shared__ declarations, computed by the generator
// where their sizes use only macros and file-scope names (other
// declarations, and __shared__ variables of __device__ helpers, are not
// counted; the generated file says which).
//
// # Kernel registry
//
// `go generate ./device/emu` (internal/emugen) scans kernels/*.cu and the
// emulator's own test kernels in testdata/*.cu and writes gen_<dir>_<name>.cpp
// per source, which includes emu.h and the source and tabulates its kernels
// with a trampoline each that unpacks the uint64 arguments into the typed
// parameters, and gen_registry.cpp, which lists the tables. Each source is
// a translation unit of its own, as under nvcc. The generated files carry
// the SHA-256 of the sources and of kernels/*.cuh: cgo does not notice
// changes to files outside this directory, so the hashes make a changed
// kernel change a generated file, and TestGeneratedUpToDate fails until it
// is regenerated.
//
// Memory is host memory (256-byte aligned); Ptr is its address. Copies are
// bounds-checked against the allocation they fall in. Launches are
// synchronous, Synchronize returns nil, Time measures wall time.
package emu
