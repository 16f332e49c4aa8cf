// runtime.cpp: fibers and the block scheduler of device/emu (see emu.h for
// the model and doc.go for the contract). Everything here runs inside one
// cgo call per launch, on that call's OS thread; the Go side serializes
// launches with a process-wide mutex, so plain globals are safe.

#include "bridge.h"
#include "check.h"
#include "emu.h"

#include <link.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(__x86_64__) || defined(GT_EMU_UCONTEXT)
#define GT_EMU_USE_UCONTEXT 1
#include <ucontext.h>
#endif

extern "C" const gt_emu_kernel* const gt_emu_tables[];  // gen_registry.cpp

// Every function here carries GT_EMU_NOCHECK: the package is compiled with
// -fsanitize=thread for the checked kernels (check.cpp), and the
// scheduler's own memory accesses are neither checked nor slowed down.

namespace gt_emu {

FiberHead* g_cur;
uint3 g_block_idx;
dim3 g_block_dim;
dim3 g_grid_dim;
unsigned char* g_dynamic_shared;
unsigned g_warp_gen[kMaxWarps];

namespace {

// ---- context switch ------------------------------------------------------

#ifndef GT_EMU_USE_UCONTEXT
// gt_emu_switch saves the callee-saved registers of the System V ABI on the
// current stack, stores the stack pointer in *save, loads `to` and restores
// the registers saved there. A fresh fiber's stack is laid out so that the
// final ret enters fiber_entry. MXCSR and the x87 control word are not
// saved: nothing here changes them.
extern "C" void gt_emu_switch(void** save, void* to);
asm(R"(
    .text
    .p2align 4
    .type gt_emu_switch, @function
gt_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size gt_emu_switch, .-gt_emu_switch
)");
#endif

enum State { RUNNABLE, AT_BARRIER, AT_WARP, DONE, FAILED };
enum { WARP_SYNC = 4 };  // kind of __syncwarp among the shuffle kinds

struct Fiber {
    FiberHead head;  // first: g_cur points here
    int linear;      // linear thread index in the block
    int state;
    // The warp operation this lane waits at (a ShuffleKind or WARP_SYNC),
    // its operand and width, and the generation whose buffer holds the
    // values.
    int op_kind, op_operand, op_width;
    unsigned op_gen;
    const char* barrier_site;  // the __syncthreads it waits at (checked units; else null)
    unsigned char* stack;  // lowest usable byte (a guard page lies below)
#ifdef GT_EMU_USE_UCONTEXT
    ucontext_t ctx;
#else
    void* sp;
#endif
};

struct Warp {
    int lanes;    // lanes that exist (the last warp of a block may be partial)
    int live;     // lanes that have not exited
    int exited;   // lanes that returned
    int arrived;  // lanes waiting at the current warp operation
    // The number of completed warp operations is g_warp_gen[warp].
    // Double buffer by generation parity: a lane reads generation g's
    // values after release, and nobody can write g+2's before every lane
    // has arrived at g+1, that is, after every lane has read g.
    uint64_t vals[2][32];
};

Fiber g_fibers[kMaxThreads];
size_t g_fibers_ready;  // fibers [0, g_fibers_ready) have stacks
Warp g_warps[kMaxWarps];

#ifdef GT_EMU_USE_UCONTEXT
ucontext_t g_sched_ctx;
#else
void* g_sched_sp;
#endif

// The launch in progress.
struct Launch {
    const gt_emu_kernel* kernel;
    const uint64_t* args;
    int permuted;
    int checked;
    void (*tramp)(const uint64_t*);  // the kernel's plain or checked trampoline
    uint64_t rng;
    int nthreads, nwarps;
    int live, at_barrier;
    int failed;
    gt_emu_report* rep;
    char* err;  // rep->msg
    int errlen;
    // Run queue: a ring of thread indices; each thread is in it at most once.
    int rq[kMaxThreads];
    int rq_head, rq_len;
    long long shared_bytes;
    const gt_emu_range* shm;  // the unit's static __shared__ sections
    int nshm;
} L;

GT_EMU_NOCHECK uint64_t next_rand() {  // splitmix64
    uint64_t z = (L.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

GT_EMU_NOCHECK Fiber* cur() { return reinterpret_cast<Fiber*>(g_cur); }

GT_EMU_NOCHECK void rq_push(int t) {
    L.rq[(L.rq_head + L.rq_len) % kMaxThreads] = t;
    L.rq_len++;
}

// rq_pop takes the oldest entry in deterministic mode and a random one in
// permuted mode.
GT_EMU_NOCHECK int rq_pop() {
    if (L.permuted && L.rq_len > 1) {
        int k = (int)(next_rand() % (uint64_t)L.rq_len);
        int a = L.rq_head, b = (L.rq_head + k) % kMaxThreads;
        int tmp = L.rq[a];
        L.rq[a] = L.rq[b];
        L.rq[b] = tmp;
    }
    int t = L.rq[L.rq_head];
    L.rq_head = (L.rq_head + 1) % kMaxThreads;
    L.rq_len--;
    return t;
}

GT_EMU_NOCHECK void errorf(const char* fmt, ...) {
    if (L.failed) return;
    L.failed = 1;
    int n = snprintf(L.err, L.errlen, "kernel %s: block (%u,%u,%u): ", L.kernel->name,
                     g_block_idx.x, g_block_idx.y, g_block_idx.z);
    if (n < 0 || n >= L.errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L.err + n, L.errlen - n, fmt, ap);
    va_end(ap);
}

// to_scheduler suspends the current fiber; it returns when the scheduler
// resumes it.
GT_EMU_NOCHECK void to_scheduler() {
    Fiber* f = cur();
#ifdef GT_EMU_USE_UCONTEXT
    swapcontext(&f->ctx, &g_sched_ctx);
#else
    gt_emu_switch(&f->sp, g_sched_sp);
#endif
}

// fail reports an error found by a thread and never returns: the launch is
// abandoned and the fiber's stack is simply reused by the next block.
[[noreturn]] GT_EMU_NOCHECK void fail(const char* fmt, ...) {
    Fiber* f = cur();
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    errorf("thread (%u,%u,%u): %s", f->head.tid.x, f->head.tid.y, f->head.tid.z, msg);
    f->state = FAILED;
    to_scheduler();
    abort();  // unreachable: a failed fiber is never resumed
}

GT_EMU_NOCHECK void fiber_entry() {
    L.tramp(L.args);
    cur()->state = DONE;
    to_scheduler();
    abort();  // unreachable: a finished fiber is never resumed
}

#ifdef GT_EMU_USE_UCONTEXT
GT_EMU_NOCHECK void fiber_entry_uc() { fiber_entry(); }
#endif

// ensure_fibers gives fibers [0, n) a stack: mmap'd once, with a guard page
// below so that an overflow faults instead of corrupting a neighbour, and
// kept for the life of the process (launches reuse them).
GT_EMU_NOCHECK bool ensure_fibers(size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (; g_fibers_ready < n; g_fibers_ready++) {
        void* m = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return false;
        if (mprotect(m, page, PROT_NONE) != 0) {
            munmap(m, kStackBytes + page);
            return false;
        }
        g_fibers[g_fibers_ready].stack = static_cast<unsigned char*>(m) + page;
    }
    return true;
}

// init_fiber makes f start at fiber_entry when next resumed.
GT_EMU_NOCHECK void init_fiber(Fiber* f) {
#ifdef GT_EMU_USE_UCONTEXT
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = kStackBytes;
    f->ctx.uc_link = nullptr;
    makecontext(&f->ctx, fiber_entry_uc, 0);
#else
    // Top of stack, 16-byte aligned: [fake return address][fiber_entry]
    // [six zeroed callee-saved registers]. After the pops and the ret, rsp
    // is 8 mod 16, as at the entry of any function.
    // The tops are staggered by a few cache lines: stacks lie 68 KiB apart,
    // a multiple of 4 KiB, so unstaggered tops would all fall into the same
    // L1 cache set and evict each other at every switch.
    uintptr_t top = (reinterpret_cast<uintptr_t>(f->stack) + kStackBytes - (f->linear % 32) * 128) &
                    ~uintptr_t(15);
    void** sp = reinterpret_cast<void**>(top);
    *--sp = nullptr;
    *--sp = reinterpret_cast<void*>(&fiber_entry);
    for (int i = 0; i < 6; i++) *--sp = nullptr;
    f->sp = sp;
#endif
}

GT_EMU_NOCHECK void resume(Fiber* f) {
    g_cur = &f->head;
    if (L.checked) {
        g_chk.thread = f->linear;
        g_chk.stack_lo = reinterpret_cast<uintptr_t>(f->stack);
    }
#ifdef GT_EMU_USE_UCONTEXT
    swapcontext(&g_sched_ctx, &f->ctx);
#else
    gt_emu_switch(&g_sched_sp, f->sp);
#endif
}

// site_name shortens a barrier site ("../../kernels/x.cu:12" as the
// generated unit includes it) to its path from the module root.
GT_EMU_NOCHECK const char* site_name(const char* s) {
    while (strncmp(s, "../", 3) == 0) s += 3;
    return s;
}

GT_EMU_NOCHECK const char* op_name(int kind) {
    switch (kind) {
    case SHFL_IDX: return "__shfl_sync";
    case SHFL_UP: return "__shfl_up_sync";
    case SHFL_DOWN: return "__shfl_down_sync";
    case SHFL_XOR: return "__shfl_xor_sync";
    case WARP_SYNC: return "__syncwarp";
    }
    return "?";
}

// warp_op is the common part of shuffles and __syncwarp: post the value,
// wait for every lane of the warp, and return the generation to read.
GT_EMU_NOCHECK unsigned warp_op(int kind, unsigned mask, uint64_t bits, int operand, int width) {
    Fiber* f = cur();
    if (mask != 0xffffffffu)
        fail("%s with mask 0x%08x: only the full mask 0xffffffff is supported", op_name(kind), mask);
    if (width < 1 || width > 32 || (width & (width - 1)) != 0)
        fail("%s with width %d: the width must be a power of two <= 32", op_name(kind), width);
    int lane = f->linear % 32;
    Warp* w = &g_warps[f->linear / 32];
    if (w->exited > 0)
        fail("%s with the full mask after %d lane(s) of warp %d returned (a full mask names them)",
             op_name(kind), w->exited, f->linear / 32);
    unsigned& wgen = g_warp_gen[f->linear / 32];
    unsigned gen = wgen;
    w->vals[gen & 1][lane] = bits;
    f->op_kind = kind;
    f->op_operand = operand;
    f->op_width = width;
    f->op_gen = gen;
    if (++w->arrived < w->live) {
        f->state = AT_WARP;
        to_scheduler();
        return gen;
    }
    // The last lane to arrive checks that the warp agrees, then releases it.
    Fiber* lanes = &g_fibers[(f->linear / 32) * 32];
    for (int i = 0; i < w->lanes; i++) {
        if (lanes[i].op_kind != kind)
            fail("warp %d diverged: lane %d is at %s while lane %d is at %s", f->linear / 32, i,
                 op_name(lanes[i].op_kind), lane, op_name(kind));
    }
    w->arrived = 0;
    wgen++;
    for (int i = 0; i < w->lanes; i++) {
        if (&lanes[i] != f) {
            lanes[i].state = RUNNABLE;
            rq_push(lanes[i].linear);
        }
    }
    if (L.permuted) {  // let a released lane, not necessarily this one, go on
        f->state = RUNNABLE;
        rq_push(f->linear);
        to_scheduler();
    }
    return gen;
}

// run_block runs every thread of the current block to completion; false on
// error (L.err says why).
GT_EMU_NOCHECK bool run_block() {
    const int n = L.nthreads;
    const unsigned bx = g_block_dim.x, by = g_block_dim.y;
    for (int i = 0; i < n; i++) {
        Fiber* f = &g_fibers[i];
        f->head.tid.x = i % bx;
        f->head.tid.y = (i / bx) % by;
        f->head.tid.z = i / (bx * by);
        f->linear = i;
        f->state = RUNNABLE;
        f->op_kind = -1;
        f->barrier_site = nullptr;
        init_fiber(f);
    }
    for (int w = 0; w < L.nwarps; w++) {
        Warp* wp = &g_warps[w];
        wp->lanes = (n - 32 * w) < 32 ? n - 32 * w : 32;
        wp->live = wp->lanes;
        wp->exited = 0;
        wp->arrived = 0;
        g_warp_gen[w] = 0;
    }
    // A block starts with its shared memory poisoned (0xff bytes, NaN as
    // float), static and dynamic, so that a read of what it never wrote
    // shows; in a checked launch it also starts a phase of its own.
    for (int i = 0; i < L.nshm; i++) memset(reinterpret_cast<void*>(L.shm[i].start), 0xff, (size_t)L.shm[i].size);
    if (L.shared_bytes > 0) memset(g_dynamic_shared, 0xff, (size_t)L.shared_bytes);
    if (L.checked) check_next_phase();
    L.live = n;
    L.at_barrier = 0;
    L.rq_head = 0;
    L.rq_len = 0;
    for (int i = 0; i < n; i++) rq_push(i);

    for (;;) {
        while (L.rq_len > 0) {
            Fiber* f = &g_fibers[rq_pop()];
            resume(f);
            switch (f->state) {
            case FAILED:
                return false;
            case DONE: {
                L.live--;
                Warp* w = &g_warps[f->linear / 32];
                w->live--;
                w->exited++;
                if (w->arrived > 0) {
                    errorf("thread (%u,%u,%u) returned while %d lane(s) of its warp wait at a "
                           "full-mask warp operation",
                           f->head.tid.x, f->head.tid.y, f->head.tid.z, w->arrived);
                    return false;
                }
                break;
            }
            case AT_BARRIER:
                L.at_barrier++;
                break;
            default:  // AT_WARP waits for its warp; RUNNABLE re-queued itself
                break;
            }
        }
        if (L.live == 0) return true;
        if (L.at_barrier == L.live) {
            // Every thread that has not returned waits at __syncthreads:
            // release them, in index order. A checked unit says where each
            // waits: all must wait at the same barrier.
            if (L.checked) {
                const Fiber* first = nullptr;
                for (int i = 0; i < n; i++) {
                    const Fiber* f = &g_fibers[i];
                    if (f->state != AT_BARRIER || !f->barrier_site) continue;
                    if (!first) {
                        first = f;
                    } else if (f->barrier_site != first->barrier_site &&
                               strcmp(f->barrier_site, first->barrier_site) != 0) {
                        errorf("divergent __syncthreads: thread (%u,%u,%u) waits at %s, thread (%u,%u,%u) at %s "
                               "(all threads of a block that have not returned must reach the same barrier)",
                               first->head.tid.x, first->head.tid.y, first->head.tid.z,
                               site_name(first->barrier_site), f->head.tid.x, f->head.tid.y, f->head.tid.z,
                               site_name(f->barrier_site));
                        return false;
                    }
                }
            }
            L.at_barrier = 0;
            if (L.checked) check_next_phase();
            for (int i = 0; i < n; i++) {
                if (g_fibers[i].state == AT_BARRIER) {
                    g_fibers[i].state = RUNNABLE;
                    rq_push(i);
                }
            }
            continue;
        }
        // Nothing can run: some lanes wait at a warp operation for lanes
        // that wait at __syncthreads. On a GPU this hangs.
        for (int i = 0; i < n; i++) {
            Fiber* f = &g_fibers[i];
            if (f->state != AT_WARP) continue;
            int base = (i / 32) * 32;
            for (int j = base; j < base + g_warps[i / 32].lanes; j++) {
                if (g_fibers[j].state == AT_BARRIER) {
                    errorf("deadlock: thread (%u,%u,%u) waits at %s while thread (%u,%u,%u) of "
                           "its warp waits at __syncthreads",
                           f->head.tid.x, f->head.tid.y, f->head.tid.z, op_name(f->op_kind),
                           g_fibers[j].head.tid.x, g_fibers[j].head.tid.y, g_fibers[j].head.tid.z);
                    return false;
                }
            }
        }
        errorf("deadlock: %d thread(s) can make no progress", L.live);
        return false;
    }
}

GT_EMU_NOCHECK uint64_t gcd(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

}  // namespace

// ---- services for check.cpp --------------------------------------------------

GT_EMU_NOCHECK void thread_coords(int t, unsigned* x, unsigned* y, unsigned* z) {
    const unsigned bx = g_block_dim.x, by = g_block_dim.y;
    *x = t % bx;
    *y = (t / bx) % by;
    *z = t / (bx * by);
}

[[noreturn]] GT_EMU_NOCHECK void check_fail(uint64_t pc0, uint64_t pc1, uint64_t addr, const char* fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!L.failed) {
        L.rep->pc[0] = pc0;
        L.rep->pc[1] = pc1;
        L.rep->addr = addr;
    }
    fail("%s", msg);
}

// ---- switch points called from kernel code ---------------------------------

GT_EMU_NOCHECK void syncthreads() {
    Fiber* f = cur();
    f->barrier_site = nullptr;
    f->state = AT_BARRIER;
    to_scheduler();
}

GT_EMU_NOCHECK void syncthreads_at(const char* site) {
    Fiber* f = cur();
    f->barrier_site = site;
    f->state = AT_BARRIER;
    to_scheduler();
}

GT_EMU_NOCHECK void syncwarp(unsigned mask) { warp_op(WARP_SYNC, mask, 0, 0, 32); }

// fail_thread lets the emulation headers (emu_tensor.h) end the launch
// with an error naming the calling thread, as the runtime's own checks do.
GT_EMU_NOCHECK void fail_thread(const char* msg) { fail("%s", msg); }

GT_EMU_NOCHECK void maybe_preempt() {
    if (L.permuted && (next_rand() & 1)) {
        Fiber* f = cur();
        f->state = RUNNABLE;
        rq_push(f->linear);
        to_scheduler();
    }
}

GT_EMU_NOCHECK uint64_t shuffle(int kind, unsigned mask, uint64_t bits, int operand, int width) {
    unsigned gen = warp_op(kind, mask, bits, operand, width);
    Fiber* f = cur();
    const int lane = f->linear % 32;
    const int seg = lane & ~(width - 1);  // first lane of this lane's width segment
    int src;
    switch (kind) {
    case SHFL_IDX:
        src = seg + (operand & (width - 1));
        break;
    case SHFL_UP:
        src = (lane - seg) < operand ? lane : lane - operand;
        break;
    case SHFL_DOWN:
        src = (lane - seg) + operand >= width ? lane : lane + operand;
        break;
    default:  // SHFL_XOR: lanes of later segments are out of reach
        src = lane ^ (operand & 31);
        if (src >= seg + width) src = lane;
        break;
    }
    const Warp* w = &g_warps[f->linear / 32];
    if (src >= w->lanes)
        fail("%s reads lane %d, which does not exist (the block has %d threads)", op_name(kind), src,
             L.nthreads);
    return w->vals[gen & 1][src];
}

}  // namespace gt_emu

using namespace gt_emu;

// ---- the C interface of bridge.h ---------------------------------------------

namespace {
const gt_emu_kernel** g_kernels;
int g_nkernels = -1;

GT_EMU_NOCHECK void collect_kernels() {
    if (g_nkernels >= 0) return;
    int n = 0;
    for (int t = 0; gt_emu_tables[t]; t++)
        for (const gt_emu_kernel* k = gt_emu_tables[t]; k->name; k++) n++;
    g_kernels = static_cast<const gt_emu_kernel**>(malloc(sizeof(gt_emu_kernel*) * (n + 1)));
    n = 0;
    for (int t = 0; gt_emu_tables[t]; t++)
        for (const gt_emu_kernel* k = gt_emu_tables[t]; k->name; k++) g_kernels[n++] = k;
    g_nkernels = n;
}

unsigned char* g_shared_buf;
long long g_shared_cap;
}  // namespace

extern "C" GT_EMU_NOCHECK int gt_emu_kernel_count(void) {
    collect_kernels();
    return g_nkernels;
}

extern "C" GT_EMU_NOCHECK const char* gt_emu_kernel_name(int i) { return g_kernels[i]->name; }
extern "C" GT_EMU_NOCHECK int gt_emu_kernel_nparams(int i) { return g_kernels[i]->nparams; }
extern "C" GT_EMU_NOCHECK long long gt_emu_kernel_static_shared(int i) { return g_kernels[i]->static_shared; }

extern "C" GT_EMU_NOCHECK const char* gt_emu_input(int i) {
    extern const char* const gt_emu_inputs[];  // gen_registry.cpp
    for (int j = 0; j <= i; j++)
        if (!gt_emu_inputs[j]) return nullptr;
    return gt_emu_inputs[i];
}

extern "C" GT_EMU_NOCHECK uintptr_t gt_emu_anchor(void) { return reinterpret_cast<uintptr_t>(&gt_emu_launch); }

extern "C" GT_EMU_NOCHECK const char* gt_emu_kernel_unit(int i) { return g_kernels[i]->unit; }

extern "C" GT_EMU_NOCHECK int gt_emu_kernel_body(int i, int last) {
    return last ? g_kernels[i]->body_last : g_kernels[i]->body_first;
}

extern "C" GT_EMU_NOCHECK const char* gt_emu_kernel_decl(int i, int j) {
    const char* const* d = g_kernels[i]->shm_decls;
    for (int k = 0; k <= j; k++)
        if (!d[k]) return nullptr;
    return d[j];
}

namespace {
GT_EMU_NOCHECK int find_bias(struct dl_phdr_info* info, size_t, void* data) {
    const uintptr_t probe = reinterpret_cast<uintptr_t>(&gt_emu_launch);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        const uintptr_t s = info->dlpi_addr + ph.p_vaddr;
        if (ph.p_type == PT_LOAD && s <= probe && probe < s + ph.p_memsz) {
            *static_cast<uintptr_t*>(data) = info->dlpi_addr;
            return 1;
        }
    }
    return 0;
}
}  // namespace

extern "C" GT_EMU_NOCHECK uintptr_t gt_emu_load_bias(void) {
    uintptr_t bias = 0;
    dl_iterate_phdr(find_bias, &bias);
    return bias;
}

extern "C" GT_EMU_NOCHECK int gt_emu_launch(int kernel, const long long* grid, const long long* block,
                                            long long shared_bytes, const uint64_t* args,
                                            const gt_emu_range* shm, int nshm, gt_emu_range unit_shm,
                                            int permuted, int checked,
                                            const gt_emu_span* allocs, int nallocs, uint64_t* rng,
                                            gt_emu_report* rep) {
    collect_kernels();
    L.kernel = g_kernels[kernel];
    L.args = args;
    L.permuted = permuted;
    L.checked = checked;
    L.tramp = checked ? L.kernel->tramp_checked : L.kernel->tramp;
    L.rng = *rng;
    L.failed = 0;
    L.rep = rep;
    L.err = rep->msg;
    L.errlen = (int)sizeof rep->msg;
    L.shared_bytes = shared_bytes;
    L.shm = shm;
    L.nshm = nshm;
    char* err = L.err;
    const int errlen = L.errlen;
    err[0] = 0;
    rep->pc[0] = rep->pc[1] = rep->addr = 0;
    const long long nthreads = block[0] * block[1] * block[2];
    L.nthreads = (int)nthreads;
    L.nwarps = (int)((nthreads + 31) / 32);
    if (!ensure_fibers((size_t)nthreads)) {
        snprintf(err, errlen, "kernel %s: cannot map fiber stacks for %lld threads", L.kernel->name,
                 nthreads);
        return 1;
    }
    // A checked launch always has a buffer, so that an access through
    // GT_DYNAMIC_SHARED beyond the launch's bytes (even with none) is
    // recognized as one.
    const long long want = checked && shared_bytes < 256 ? 256 : shared_bytes;
    if (want > g_shared_cap) {
        free(g_shared_buf);
        g_shared_buf = static_cast<unsigned char*>(aligned_alloc(256, (want + 255) & ~255ll));
        g_shared_cap = g_shared_buf ? (want + 255) & ~255ll : 0;
        if (!g_shared_buf) {
            snprintf(err, errlen, "kernel %s: cannot allocate %lld bytes of dynamic shared memory",
                     L.kernel->name, want);
            return 1;
        }
    }
    g_dynamic_shared = shared_bytes > 0 || checked ? g_shared_buf : nullptr;
    g_block_dim = dim3((unsigned)block[0], (unsigned)block[1], (unsigned)block[2]);
    g_grid_dim = dim3((unsigned)grid[0], (unsigned)grid[1], (unsigned)grid[2]);
    if (checked && !check_begin_launch(L.kernel, checked > 1, unit_shm, allocs, nallocs, g_dynamic_shared, shared_bytes,
                                       g_shared_cap, err, errlen))
        return 1;

    // Blocks in order (x fastest), or in permuted mode along a random
    // stride coprime to their number: a permutation without allocation.
    const uint64_t nblocks = (uint64_t)grid[0] * grid[1] * grid[2];
    uint64_t start = 0, stride = 1;
    if (permuted && nblocks > 1) {
        start = next_rand() % nblocks;
        stride = 1 + next_rand() % (nblocks - 1);
        while (gcd(stride, nblocks) != 1) stride = stride % (nblocks - 1) + 1;
    }
    int rc = 0;
    uint64_t b = start;
    for (uint64_t k = 0; k < nblocks; k++, b = (b + stride) % nblocks) {  // nblocks < 2^63
        g_block_idx.x = (unsigned)(b % grid[0]);
        g_block_idx.y = (unsigned)((b / grid[0]) % grid[1]);
        g_block_idx.z = (unsigned)(b / (grid[0] * grid[1]));
        if (!run_block()) {
            rc = 1;
            break;
        }
    }
    if (checked) check_end_launch();
    *rng = L.rng;
    g_cur = nullptr;
    return rc;
}
