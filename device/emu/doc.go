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
// types, CUDA headers, system headers other than emu.h's (the checked build
// compiles a source inside a namespace), busy-waiting on another thread's
// writes (it never ends here), warp-synchronous code without __syncwarp or
// shuffles (the checked build reports it as a race where it goes through
// shared memory). Out-of-bounds accesses corrupt host memory or crash the
// process in the plain build, as they would corrupt memory or fault on a
// GPU; the checked build reports those to global and shared memory.
//
// # Emulation model
//
// Each CUDA thread of a block is a fiber with its own 64 KiB stack (a guard
// page below it; a kernel with more than about 60 KiB of locals per thread
// crashes). Blocks run one after another on the launching OS thread, and
// all launches of all emulated devices are serialized by one mutex, so
// `__shared__` becomes `static` (one copy per kernel), in an ELF section of
// its own per declaration. Before every block, Launch fills the kernel's
// static __shared__ variables and its dynamic shared memory with 0xff bytes
// (NaN as float32), in both builds, and Alloc fills new memory the same
// way, so a read of memory never written shows instead of seeing zeros or
// what an earlier block left.
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
// # Checked mode
//
// Every kernel is compiled twice: a plain build, which `gputrain --backend
// emu` runs, and a checked build, in which every memory access of kernel
// code (in __device__ functions too, inlined or not, of any width from 1
// to 16 bytes, the gt_lds4/gt_sts4 vector accessors included) first calls
// into the emulator. Options.Checks selects one; the default, ChecksAuto,
// runs the checked build in test binaries (testing.Testing) and the plain
// one otherwise, and GPUTRAIN_EMU_CHECKS=1 or =0 overrides it. A -race build
// has no checked kernels (Go's race runtime defines the callbacks they need;
// ChecksAvailable reports it). The checked build is slower: about 1.6x for the device package's tests, 10-20x for a
// kernel whose inner loop reads shared memory.
//
// The checked build fails the launch, naming the kernel, the block, both
// threads, the address and the kinds of access, when:
//
//   - two threads of a block access one byte of shared memory (a static
//     __shared__ variable, named with the file and line of its declaration,
//     or GT_DYNAMIC_SHARED memory, by offset), at least one access a write,
//     and no __syncthreads lies between them; for two lanes of one warp, no
//     __syncwarp or shuffle either. Atomics race with plain accesses, not
//     with each other. Detection follows the barriers, not the order in
//     which the emulator happened to run the threads, so it does not depend
//     on Mode or Seed: a one-phase race is reported in deterministic mode,
//     where the plain build computes the right result;
//   - a global access (load, store or atomic) lies outside every live
//     allocation of the launching driver, straddles an allocation's end, or
//     falls into freed memory (Free keeps the last 1024 frees, up to 64
//     MiB, from reuse, so that a stale pointer still lands in a freed
//     range); the message names the nearest allocation and the offset;
//   - an access of dynamic shared memory lies beyond the launch's bytes
//     (also when it has none), or one of static shared memory beyond the
//     variables of the kernel's source;
//   - threads of a block are released together from different
//     __syncthreads (divergent barriers).
//
// A report reads, for instance,
//
//	emu: kernel gt_column_sums: block (0,0,0): thread (32,0,0): shared-memory
//	race on static shared sh + 0 (kernels/reduce.cu:43) (address 0x13daa40):
//	8-byte write by thread (0,0,0), then 8-byte read by thread (32,0,0)
//	(warps 0 and 1, with no __syncthreads between them)
//
// and names the source line of each access (" at kernels/reduce.cu:27")
// where the executable has DWARF: go test strips its binaries unless run
// with -ldflags='-s=false -w=false'.
//
// What the checked build cannot see: races through global memory, between
// blocks (they run one after another; permuted mode varies their order) or
// between the threads of one block; the memory model (a missing
// __threadfence, volatile or acquire/release ordering, __ldg of data the
// kernel writes; a shuffle counts as a warp synchronization here, though
// strictly only __syncwarp orders memory); an out-of-bounds access that
// lands inside another live allocation, or in freed memory reused after the
// quarantine; an overflow from one static __shared__ variable into another
// of the same source; local (per-thread) memory; accesses made by library
// calls (memcpy or memset of a run-time size) or inline assembly, unless the
// code announces them with GT_EMU_NOTE_READ/GT_EMU_NOTE_WRITE (emu.h); reads
// of memory never written (they show as 0xff bytes, not as errors).
//
// How: the package is compiled with -fsanitize=thread but without the
// sanitizer runtime, so g++ inserts calls to __tsan_read<n>/__tsan_write<n>
// before every memory access that survives optimization, and check.cpp
// implements them (-fsanitize=kernel-address would call back too, but g++
// checks a read-modify-write like `sh[0][tx] += acc` once, as a load). The
// plain units and the emulator's own code carry no_sanitize_thread
// (GT_EMU_PLAIN, GT_EMU_NOCHECK in emu.h), so they compile as without the
// flag. The checked unit of a source wraps it in a namespace of its own, so
// that none of its inline functions merges with the plain unit's at link
// time, and renames its kernels. A shadow entry per 4-byte word (per byte
// where an access covers part of a word) records the last write and
// summaries of the reads and of the atomics since, each with its thread and
// its warp's count of completed warp operations; check.cpp explains why the
// summaries find a conflict whenever there is one. Static __shared__
// variables are found through the section headers of the running
// executable (gt_emu_shm.<p|c>.<unit>.<line>), which survive stripping.
//
// # Kernel registry
//
// `go generate ./device/emu` (internal/emugen) scans kernels/*.cu and the
// emulator's own test kernels in testdata/*.cu and writes, per source,
// gen_<dir>_<name>.cpp (the plain unit: emu.h, the source, a trampoline per
// kernel that unpacks the uint64 arguments into the typed parameters, the
// source's table) and gen_<dir>_<name>.checked.cpp (the checked unit), and
// gen_registry.cpp, which lists the tables. Each source is a translation
// unit of its own, as under nvcc. A new source is picked up by the next go
// generate; nothing lists sources by hand.
//
// No stale kernels: the go command rebuilds cgo code when a file of the
// package directory changes, not when a file it #includes from elsewhere
// does (kernels/*.cu, kernels/*.cuh, testdata/*.cu; verified: a test then
// silently runs the old kernel). So the generated units carry the SHA-256
// of their source, of every header of kernels/ and of every file the source
// includes, and a changed input changes its generated files and with them
// the build; gen_registry.cpp lists the hashes, and New, in a test binary,
// compares them with the files on disk and fails, naming the files and
// `go generate ./device/emu`, when one changed, is new or is gone.
// TestGeneratedUpToDate also compares the committed generated files with a
// fresh generation.
//
// Memory is host memory (256-byte aligned); Ptr is its address. Copies are
// bounds-checked against the allocation they fall in. Launches are
// synchronous, Synchronize returns nil, Time measures wall time.
package emu
