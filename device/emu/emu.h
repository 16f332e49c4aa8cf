// emu.h: the CUDA emulation header of device/emu. The generated files
// gen_*.cpp include it, then one kernels/*.cu (or testdata/*.cu) file, so
// that g++ compiles the unmodified kernel sources for the CPU.
//
// CONTRACT WITH THE KERNEL WRITER (also in doc.go)
//
// Entry points: `extern "C" __global__ void name(...)`, every parameter a
// pointer (float*, const float*, int*, long long*, ...), a `long long` or a
// `double`: 8-byte values, built on the Go side with device.PtrArg, IntArg
// and FloatArg. Any other parameter type is a compile error here
// (static_assert in gt_emu::arg), as it would be a silent bug with cu.
//
// Supported:
//   threadIdx, blockIdx, blockDim, gridDim (.x/.y/.z), warpSize (32), dim3
//     (values, not lvalues, in a checked unit);
//   __syncthreads() (in a checked unit a macro that records its file:line);
//   __syncwarp() (full mask);
//   static __shared__ variables, in a kernel or in a __device__ function;
//   dynamic shared memory only through GT_DYNAMIC_SHARED(T, name), which
//     kernels/gputrain.cuh defines for nvcc (#ifndef GT_DYNAMIC_SHARED) and
//     this header defines first (a T* named name);
//   __shfl_sync, __shfl_xor_sync, __shfl_down_sync, __shfl_up_sync with
//     mask 0xffffffff, any 4- or 8-byte trivially copyable T, width a power
//     of two <= 32;
//   __device__, __host__, __forceinline__, __noinline__, __restrict__,
//     __launch_bounds__(...), __align__(n), #pragma unroll;
//   math: everything of <math.h> (expf, logf, log1pf, expm1f, sqrtf, fabsf,
//     fmaxf, fminf, tanhf, powf, ...), __expf, __logf, __powf, __fdividef,
//     rsqrtf, __saturatef, __int_as_float, __float_as_int, isnan, isinf,
//     isfinite, INFINITY, NAN, FLT_MAX, min/max for int, long long,
//     unsigned and float, __ldg;
//   atomicAdd (int, unsigned, unsigned long long, float, double),
//     atomicMax/atomicMin (int), atomicExch (int, float);
//   __threadfence(), __threadfence_block() (no-ops: one OS thread);
//   printf, assert;
//   the sm_80 instructions behind kernels/gputrain.cuh's gt_cp_async*,
//     gt_cvt_tf32, gt_pack_bf16x2 and gt_mma_* wrappers (cp.async with
//     groups, cvt to tf32/bf16x2, mma.sync m16n8k8 .tf32 and m16n8k16
//     .bf16): emu_tensor.h, included at the end of this header.
//
// Not supported (a compile error unless said otherwise):
//   __constant__ memory and textures (there is no symbol copy in Driver);
//   extern __shared__ written out (use GT_DYNAMIC_SHARED);
//   shuffles or __syncwarp with a partial mask (reported by Launch),
//     __ballot_sync, __any_sync, __all_sync, __activemask, cooperative
//     groups, clock(), half/bfloat16 types, CUDA headers (cuda_runtime.h,
//     cuda_fp16.h are not present in CI);
//   busy-waiting on memory written by another thread (a thread runs until
//     its next switch point, so such a spin never ends);
//   warp-synchronous code that relies on lanes running in lockstep without
//     __syncwarp or a shuffle (undefined since Volta; here each lane runs
//     alone until its next switch point; the checked build reports it as a
//     race where it goes through shared memory);
//   system headers beyond those included here (the checked build compiles a
//     source inside a namespace).
//
// Emulation model: every CUDA thread of a block is a fiber (own 64 KiB
// stack with a guard page; a stack overflow crashes the process); blocks
// run one after another on one OS thread, and all launches of all emulated
// devices are serialized, so a `static` variable is a valid stand-in for a
// __shared__ one. Before every block, the kernel's static __shared__
// variables and its dynamic shared memory are filled with 0xff bytes (NaN
// as float). A thread runs until a switch point: __syncthreads, a shuffle,
// __syncwarp, or, in permuted mode, possibly an atomic. A barrier releases
// when every thread of the block that has not exited waits at it (threads
// that returned early count as arrived, as on hardware). A shuffle releases
// when all 32 lanes of the warp have arrived; a lane that exited while its
// warp shuffles, a shuffle that reads a lane that does not exist, and a
// deadlock (threads waiting at a shuffle while their warp-mates wait at
// __syncthreads) are errors that Launch returns instead of hanging.
//
// The checked build (doc.go, "Checked mode"; check.cpp) also fails a launch
// on: a shared-memory race (two threads, one byte of static or dynamic
// shared memory, at least one write, no __syncthreads between them, nor
// __syncwarp or shuffle for lanes of one warp; atomics race only with plain
// accesses); a global access outside every live allocation, straddling one's
// end, or into freed memory; a dynamic shared access beyond the launch's
// bytes; divergent __syncthreads. It cannot see races through global
// memory, memory-model (fence, volatile, ordering) bugs, overflows that land
// inside another allocation or another __shared__ variable of the same
// source, local memory, or accesses by library calls and inline assembly.
#pragma once

#define GT_EMU 1

#include <assert.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <type_traits>
#include <utility>

// ---- plain and checked translation units --------------------------------
//
// Every kernel source is compiled twice (see doc.go, "Checked mode"): once
// plain (gen_<dir>_<name>.cpp) and once checked (gen_<dir>_<name>.checked.cpp,
// which defines GT_EMU_CHECKED before including this header and wraps the
// source in a namespace of its own). The package is compiled with
// -fsanitize=thread (flags.go; not under -race, whose runtime defines the
// same callbacks), which makes g++ call __tsan_read<n> / __tsan_write<n>
// (check.cpp; no sanitizer runtime is linked) before every memory access
// that survives optimization; GT_EMU_PLAIN switches that off for the
// functions of a plain unit (__global__, __device__ and this header's own),
// so a plain kernel compiles to the same code as without the flag.
//
// GT_EMU_FN starts the definition of every function of this header and of
// the headers it includes (the mma/cp.async emulation too): internal
// linkage, so that the plain and the checked copy of an inline helper never
// merge at link time (the linker would keep one of them for both), and the
// unit's instrumentation setting. GT_EMU_NOCHECK marks functions that must
// never be instrumented (the launch trampolines, argument unpacking).
#define GT_EMU_NOCHECK __attribute__((no_sanitize_thread))
#ifdef GT_EMU_CHECKED
#define GT_EMU_PLAIN
#else
#define GT_EMU_PLAIN GT_EMU_NOCHECK
#endif
#define GT_EMU_FN static inline GT_EMU_PLAIN
#define GT_EMU_FN_ALWAYS static inline __attribute__((always_inline)) GT_EMU_PLAIN
// For member functions (where static means something else): define the
// class in an unnamed namespace (internal linkage for its members too) and
// mark each member GT_EMU_PLAIN. TestEmuHeaderLinkage rejects an `inline`
// in a header of this directory that is neither.

// GT_EMU_NOTE_READ(p, n) / GT_EMU_NOTE_WRITE(p, n) announce, in a checked
// unit, an access of n bytes at p that the compiler cannot instrument: one
// made by a library call (memcpy or memset of a run-time size) or by inline
// assembly. An emulation header that moves memory so (a cp.async of a
// run-time size, say) must announce it, or the race detector and the
// bounds checks do not see it. Plain units: nothing.
extern "C" void __tsan_read_range(void* addr, unsigned long size);
extern "C" void __tsan_write_range(void* addr, unsigned long size);
#ifdef GT_EMU_CHECKED
#define GT_EMU_NOTE_READ(p, n) __tsan_read_range((void*)(p), (unsigned long)(n))
#define GT_EMU_NOTE_WRITE(p, n) __tsan_write_range((void*)(p), (unsigned long)(n))
#else
#define GT_EMU_NOTE_READ(p, n) ((void)0)
#define GT_EMU_NOTE_WRITE(p, n) ((void)0)
#endif

// GT_EMU_SHM_SECTION starts the ELF section names of the unit's static
// __shared__ variables (the generated file defines it: gt_emu_shm.p.<unit>
// or gt_emu_shm.c.<unit>); each declaration gets the section
// GT_EMU_SHM_SECTION.<line>. emu.go finds these sections in the running
// executable's section headers (which survive stripping), so that Launch
// poisons the kernel's unit's variables before every block, the checked
// mode recognizes their addresses, and a report names the declaration.
#ifndef GT_EMU_SHM_SECTION
#define GT_EMU_SHM_SECTION "gt_emu_shm.x.unknown"
#endif
#define GT_EMU_STR2(x) #x
#define GT_EMU_STR(x) GT_EMU_STR2(x)

// ---- types and built-in variables ----------------------------------------

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    GT_EMU_PLAIN dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
    GT_EMU_PLAIN dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

namespace gt_emu {

// FiberHead starts every fiber record: what kernel code reads of its thread.
struct FiberHead {
    uint3 tid;
};

// The state of the running launch and block. Plain globals: launches are
// serialized by the Go side, and every kernel runs on the one OS thread of
// that launch. g_cur is reloaded after every switch point because those are
// calls into runtime.cpp, which the compiler cannot see through.
extern FiberHead* g_cur;
extern uint3 g_block_idx;
extern dim3 g_block_dim;
extern dim3 g_grid_dim;
extern unsigned char* g_dynamic_shared;

// Switch points, implemented in runtime.cpp.
void syncthreads();
// syncthreads_at is __syncthreads in a checked unit: site ("file:line")
// identifies the barrier, so that threads released together from
// different barriers (divergent __syncthreads) are reported.
void syncthreads_at(const char* site);
void syncwarp(unsigned mask);
void maybe_preempt();

// check_atomic records an atomic access of n bytes at p (checked units
// only; check.cpp): atomics never race with each other, but do with plain
// accesses.
void check_atomic(const void* p, unsigned long n);

enum ShuffleKind { SHFL_IDX = 0, SHFL_UP = 1, SHFL_DOWN = 2, SHFL_XOR = 3 };
// shuffle posts this lane's 8-byte value, waits for the warp, and returns
// the bits of the source lane's value (or its own where CUDA says so).
uint64_t shuffle(int kind, unsigned mask, uint64_t bits, int operand, int width);

template <typename T>
GT_EMU_FN T shfl(int kind, unsigned mask, T var, int operand, int width) {
    static_assert(std::is_trivially_copyable<T>::value && (sizeof(T) == 4 || sizeof(T) == 8),
                  "warp shuffles move 4- or 8-byte trivially copyable values");
    uint64_t bits = 0;
    memcpy(&bits, &var, sizeof(T));
    asm volatile("" ::: "memory");
    bits = shuffle(kind, mask, bits, operand, width);
    asm volatile("" ::: "memory");
    T out;
    memcpy(&out, &bits, sizeof(T));
    return out;
}

}  // namespace gt_emu

#if defined(GT_EMU_CHECKED) && defined(__x86_64__)
namespace gt_emu {
// In a checked unit the built-in variables are read by inline asm, which
// the instrumentation does not see: otherwise every threadIdx or blockDim
// would call back into check.cpp to be classified as the emulator's own
// state (and, the callbacks being calls, be reloaded after each of them).
// The "m" operands tell the compiler which memory the asm reads.
GT_EMU_FN_ALWAYS uint3 load_uint3(const void* p) {
    uint3 t;
    asm("movl (%3), %0\n\tmovl 4(%3), %1\n\tmovl 8(%3), %2"
        : "=&r"(t.x), "=&r"(t.y), "=r"(t.z)
        : "r"(p), "m"(*static_cast<const char(*)[12]>(p)));
    return t;
}
GT_EMU_FN_ALWAYS uint3 thread_idx() {
    FiberHead* c;
    asm("movq %1, %0" : "=r"(c) : "m"(g_cur));
    return load_uint3(&c->tid);
}
}  // namespace gt_emu
#define threadIdx (::gt_emu::thread_idx())
#define blockIdx (::gt_emu::load_uint3(&::gt_emu::g_block_idx))
#define blockDim (dim3(::gt_emu::load_uint3(&::gt_emu::g_block_dim)))
#define gridDim (dim3(::gt_emu::load_uint3(&::gt_emu::g_grid_dim)))
#else
#define threadIdx (static_cast<const uint3&>(::gt_emu::g_cur->tid))
#define blockIdx (static_cast<const uint3&>(::gt_emu::g_block_idx))
#define blockDim (static_cast<const dim3&>(::gt_emu::g_block_dim))
#define gridDim (static_cast<const dim3&>(::gt_emu::g_grid_dim))
#endif
#define warpSize 32

// ---- qualifiers --------------------------------------------------------------

#define __global__ GT_EMU_PLAIN
#define __device__ GT_EMU_PLAIN
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// One copy per kernel is enough: blocks and launches run one at a time. Each
// declaration gets a section of its own (see GT_EMU_SHM_SECTION).
#define __shared__ static __attribute__((section(GT_EMU_SHM_SECTION "." GT_EMU_STR(__LINE__))))
// g++ knows __restrict__ already.

// GT_DYNAMIC_SHARED(T, name) gives a T* to this block's dynamic shared
// memory (the Launch's sharedBytes, 16-byte aligned, refilled with 0xff
// bytes before every block).
#define GT_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::gt_emu::g_dynamic_shared)

// ---- synchronization -----------------------------------------------------

// GT_EMU_FENCE tells the compiler that other threads' writes to memory,
// __shared__ statics included, become visible at a switch point. The calls
// into runtime.cpp imply it already (the compiler cannot see through them);
// the fence keeps it true should the runtime ever be inlined (e.g. LTO).
#define GT_EMU_FENCE() asm volatile("" ::: "memory")

#ifdef GT_EMU_CHECKED
GT_EMU_FN void gt_emu_syncthreads_at(const char* site) {
    GT_EMU_FENCE();
    ::gt_emu::syncthreads_at(site);
    GT_EMU_FENCE();
}
#define __syncthreads() ::gt_emu_syncthreads_at(__FILE__ ":" GT_EMU_STR(__LINE__))
#else
GT_EMU_FN void __syncthreads() {
    GT_EMU_FENCE();
    ::gt_emu::syncthreads();
    GT_EMU_FENCE();
}
#endif
GT_EMU_FN void __syncwarp(unsigned mask = 0xffffffffu) {
    GT_EMU_FENCE();
    ::gt_emu::syncwarp(mask);
    GT_EMU_FENCE();
}
GT_EMU_FN void __threadfence() {}
GT_EMU_FN void __threadfence_block() {}

template <typename T>
GT_EMU_FN T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize) {
    return ::gt_emu::shfl(::gt_emu::SHFL_IDX, mask, var, srcLane, width);
}
template <typename T>
GT_EMU_FN T __shfl_up_sync(unsigned mask, T var, unsigned int delta, int width = warpSize) {
    return ::gt_emu::shfl(::gt_emu::SHFL_UP, mask, var, (int)delta, width);
}
template <typename T>
GT_EMU_FN T __shfl_down_sync(unsigned mask, T var, unsigned int delta, int width = warpSize) {
    return ::gt_emu::shfl(::gt_emu::SHFL_DOWN, mask, var, (int)delta, width);
}
template <typename T>
GT_EMU_FN T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize) {
    return ::gt_emu::shfl(::gt_emu::SHFL_XOR, mask, var, laneMask, width);
}

// ---- atomics: one OS thread runs the launch, so a plain read-modify-write
// is atomic; in permuted mode the thread may be preempted just before it,
// so that code relying on an order between atomics shows it. In a checked
// unit the read-modify-write is a separate uninstrumented function, and
// check_atomic (called from the kernel's code, so that a report names the
// kernel's line) records the access as atomic.

#ifdef GT_EMU_CHECKED
#define GT_EMU_ATOMIC(T, NAME, EXPR)                                                      \
    static __attribute__((noinline)) GT_EMU_NOCHECK T gt_emu_rmw_##NAME(T* address, T val) { \
        T old = *address;                                                                 \
        *address = (EXPR);                                                                \
        return old;                                                                       \
    }                                                                                     \
    GT_EMU_FN_ALWAYS T NAME(T* address, T val) {                                          \
        ::gt_emu::maybe_preempt();                                                        \
        GT_EMU_FENCE();                                                                   \
        ::gt_emu::check_atomic(address, sizeof(T));                                       \
        return gt_emu_rmw_##NAME(address, val);                                           \
    }
#else
#define GT_EMU_ATOMIC(T, NAME, EXPR)         \
    GT_EMU_FN T NAME(T* address, T val) {    \
        ::gt_emu::maybe_preempt();           \
        GT_EMU_FENCE();                      \
        T old = *address;                    \
        *address = (EXPR);                   \
        return old;                          \
    }
#endif
GT_EMU_ATOMIC(int, atomicAdd, old + val)
GT_EMU_ATOMIC(unsigned int, atomicAdd, old + val)
GT_EMU_ATOMIC(unsigned long long, atomicAdd, old + val)
GT_EMU_ATOMIC(float, atomicAdd, old + val)
GT_EMU_ATOMIC(double, atomicAdd, old + val)
GT_EMU_ATOMIC(int, atomicMax, old > val ? old : val)
GT_EMU_ATOMIC(int, atomicMin, old < val ? old : val)
GT_EMU_ATOMIC(int, atomicExch, val)
GT_EMU_ATOMIC(float, atomicExch, val)
#undef GT_EMU_ATOMIC

// ---- math ----------------------------------------------------------------

// The fast intrinsics are the accurate functions here: close enough for
// tests with tolerances, and deterministic.
// glibc declares __expf, __logf and __powf (extern), so these three keep
// external linkage; they touch no memory, so which unit's copy the linker
// keeps does not matter (external linkage: allowed).
inline GT_EMU_PLAIN float __expf(float x) { return expf(x); }              // external linkage: allowed
inline GT_EMU_PLAIN float __logf(float x) { return logf(x); }              // external linkage: allowed
inline GT_EMU_PLAIN float __powf(float x, float y) { return powf(x, y); }  // external linkage: allowed
GT_EMU_FN float __fdividef(float x, float y) { return x / y; }
GT_EMU_FN float rsqrtf(float x) { return 1.0f / sqrtf(x); }
GT_EMU_FN float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
GT_EMU_FN float __int_as_float(int x) {
    float f;
    memcpy(&f, &x, 4);
    return f;
}
GT_EMU_FN int __float_as_int(float x) {
    int i;
    memcpy(&i, &x, 4);
    return i;
}
GT_EMU_FN int min(int a, int b) { return a < b ? a : b; }
GT_EMU_FN int max(int a, int b) { return a > b ? a : b; }
GT_EMU_FN unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
GT_EMU_FN unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
GT_EMU_FN long long min(long long a, long long b) { return a < b ? a : b; }
GT_EMU_FN long long max(long long a, long long b) { return a > b ? a : b; }
GT_EMU_FN float min(float a, float b) { return fminf(a, b); }
GT_EMU_FN float max(float a, float b) { return fmaxf(a, b); }
template <typename T>
GT_EMU_FN T __ldg(const T* p) { return *p; }

// ---- argument unpacking for the generated trampolines ----------------------

namespace gt_emu {

// arg converts one 8-byte launch argument to the kernel's parameter type.
template <typename P>
static inline GT_EMU_NOCHECK P arg(uint64_t v) {
    if constexpr (std::is_pointer<P>::value) {
        return reinterpret_cast<P>(static_cast<uintptr_t>(v));
    } else if constexpr (std::is_same<typename std::remove_cv<P>::type, double>::value) {
        double d;
        memcpy(&d, &v, 8);
        return d;
    } else {
        static_assert(std::is_integral<P>::value && sizeof(P) == 8,
                      "kernel parameters must be pointers, long long or double (8 bytes each): "
                      "cu copies exactly 8 bytes per argument");
        return static_cast<P>(v);
    }
}

template <typename... P, size_t... I>
static inline GT_EMU_NOCHECK void invoke_impl(void (*k)(P...), const uint64_t* a, std::index_sequence<I...>) {
    k(arg<P>(a[I])...);
}

// invoke calls kernel k with the launch arguments a (one per parameter).
template <typename... P>
static inline GT_EMU_NOCHECK void invoke(void (*k)(P...), const uint64_t* a) {
    invoke_impl(k, a, std::index_sequence_for<P...>{});
}

template <typename... P>
constexpr int arity(void (*)(P...)) {
    return (int)sizeof...(P);
}

}  // namespace gt_emu

// A table entry of a generated file: name, parameter count, the plain and
// the checked trampoline, the bytes of static shared memory the generator
// could size (declarations it cannot size at file scope are left out; the
// generated file says which), the kernel's unit (the <unit> of its
// sections' names) and the unit's __shared__ declarations as the generator
// found them ("line", "file:line name", ..., null), for reports.
extern "C" {
struct gt_emu_kernel {
    const char* name;
    int nparams;
    void (*tramp)(const uint64_t* args);
    long long static_shared;
    void (*tramp_checked)(const uint64_t* args);
    const char* unit;
    const char* const* shm_decls;
    int body_first, body_last;
};
}

// sm_80 instructions of the tensor-core kernels: cp.async, cvt to TF32 and
// bfloat16, mma.sync (issue 9).
#include "emu_tensor.h"
