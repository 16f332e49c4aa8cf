// check.cpp: the checked mode of device/emu (doc.go, "Checked mode").
//
// The package is compiled with -fsanitize=thread and no sanitizer runtime:
// g++ then calls __tsan_read<n>(addr) before every load and
// __tsan_write<n>(addr) before every store that survives optimization (and
// __tsan_read_range/__tsan_write_range for block copies such as the
// emulator's 16-byte vector accessors), in every function not marked
// no_sanitize_thread. (-fsanitize=kernel-address would give callbacks too,
// but g++ checks the address of a read-modify-write once, as a load, so
// `sh[0][tx] += acc` would show no write.) The plain
// units and the emulator's own code are so marked (GT_EMU_PLAIN,
// GT_EMU_NOCHECK), the checked units are not; this file implements the
// callbacks. They do nothing unless a checked launch runs (g_chk.on); then
// each access is classified by address:
//
//   static shared memory   the section of the kernel's checked unit, which
//                          holds every __shared__ variable of that unit
//   dynamic shared memory  the launch's GT_DYNAMIC_SHARED buffer
//   local memory           the running fiber's stack: not checked
//   the executable image   the emulator's own state (threadIdx, ...): not
//                          checked
//   global memory          anything else: must lie inside one live
//                          allocation of the launching driver
//
// Shared accesses go through a shadow entry per word (or byte) that records, for the
// current phase (the block's accesses between two __syncthreads), the last
// plain write and summaries of the plain reads and the atomics since then,
// each with its thread, the generation of that thread's warp (how many warp
// operations the warp has completed) and its code address. Two accesses of
// one byte conflict when they come from different threads, at least one is
// a write (an atomic counts as a write against plain accesses, not against
// other atomics), and nothing orders them: no barrier (phase) between them,
// and, for two lanes of one warp, no __syncwarp or shuffle (generation)
// either. The first conflict fails the launch with both accesses named.
//
// Why the summaries are exact: ordering is transitive here (a barrier
// orders everything before it against everything after; a warp operation
// does the same for the lanes of its warp), so a write that did not
// conflict with the reads before it makes them redundant, and only the
// last write matters. Among the reads (or atomics) since that write, an
// access by thread t of warp w conflicts with any from another warp, and
// with those of other lanes of w made at w's current generation. Keeping
// the warps that have such reads (a mask), the newest read, the newest by a
// thread other than the newest's, and the newest from a warp other than the
// newest's is enough to find one whenever one exists (generations of a
// warp only grow, so within one warp the newest reads are the ones at its
// current generation).

#include "check.h"

#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

namespace gt_emu {

CheckState g_chk;

namespace {

const uint16_t kNone = 0xffff;
enum Kind { READ = 0, WRITE = 1, ATOMIC = 2 };

// Acc is one recorded access (its code address, where recorded, is kept
// apart in Cold).
struct Acc {
    uint16_t tid;   // linear thread index in the block; kNone: no access
    uint16_t size;  // bytes of the access (at most 0xffff)
    uint32_t gen;   // generation of the thread's warp at the access
};

// Set summarizes the plain reads, or the atomics, of one word or byte since
// its last plain write in the current phase (see the file comment).
struct Set {
    uint32_t mask;  // bit w: a thread of warp w made such an access
    Acc s[3];       // s[0] newest; s[1] newest whose thread is not s[0]'s;
                    // s[2] newest whose warp is not s[0]'s
};

// Entry is the shadow of one 4-byte word of shared memory, or of one byte,
// with what detection needs (48 bytes): a word is tracked as a whole until
// an access covers part of it in the current phase; from then on, for the
// rest of the phase, its four bytes are tracked apart (bytes_phase).
// Accesses of whole words, the common case, so touch a quarter of the
// entries.
struct Entry {
    uint32_t phase;        // g_chk.phase of the accesses below; another phase: none
    uint32_t bytes_phase;  // == phase: the word's bytes are tracked apart (words only)
    Acc w;                 // the last plain write
    Set r;                 // plain reads since w
    uint32_t amask;        // warps with atomics since w (0: none; else Cold::a holds them)
};

// Cold is the rest of an entry's state, in a parallel array touched only
// when code addresses are recorded (the executable has DWARF to name them)
// or an atomic hits the entry: atomics on shared memory are rare, and
// without DWARF the addresses could not be named anyway.
struct Cold {
    uint32_t wpc, rpc[3];  // code addresses (relative to g_img_lo) of w and r.s[]
    Set a;                 // atomics since w
    uint32_t apc[3];
};

struct Shadow {
    Entry* e;
    Cold* c;
    size_t cap;  // entries mapped
};
// The word and the byte shadows of static and of dynamic shared memory:
// word entry i covers bytes [4i, 4i+4) of the region, byte entry j byte j.
struct RegionShadow {
    Shadow words, bytes;
};
RegionShadow g_static, g_dynamic;

const gt_emu_kernel* g_kernel;
const gt_emu_span* g_allocs;
int g_nallocs;
int g_record;                   // record code addresses
uintptr_t g_hit_lo, g_hit_len;  // the live allocation the last global access hit
uintptr_t g_img_lo, g_img_len;  // the executable's loaded segments

GT_EMU_NOCHECK inline int warp_of(int t) { return t >> 5; }

GT_EMU_NOCHECK inline void clear(Set& s) {
    s.mask = 0;
    s.s[0].tid = s.s[1].tid = s.s[2].tid = kNone;
}

// add records access x (at code address pc) in s, and its pc in pcs (a
// parallel array; null: not recorded).
GT_EMU_NOCHECK inline void add(Set& s, const Acc& x, uint32_t* pcs, uint32_t pc) {
    s.mask |= 1u << warp_of(x.tid);
    if (s.s[0].tid == x.tid) {
        s.s[0] = x;
        if (pcs) pcs[0] = pc;
        return;
    }
    const Acc old = s.s[0];
    s.s[0] = x;
    if (old.tid != kNone) {
        s.s[1] = old;
        if (pcs) pcs[1] = pcs[0];
        if (warp_of(old.tid) != warp_of(x.tid)) {
            s.s[2] = old;
            if (pcs) pcs[2] = pcs[0];
        }
    }
    if (pcs) pcs[0] = pc;
}

// conflict returns the index in s.s of a member that nothing orders before
// access x, or -1.
GT_EMU_NOCHECK inline int conflict(const Set& s, const Acc& x) {
    const int w = warp_of(x.tid);
    if (s.mask & ~(1u << w)) return warp_of(s.s[0].tid) != w ? 0 : 2;
    if (s.mask == 0) return -1;
    if (s.s[0].tid != x.tid) return s.s[0].gen == x.gen ? 0 : -1;
    return s.s[1].tid != kNone && s.s[1].gen == x.gen ? 1 : -1;
}

GT_EMU_NOCHECK inline bool conflicts(const Acc& prev, const Acc& x) {
    return prev.tid != kNone && prev.tid != x.tid && (warp_of(prev.tid) != warp_of(x.tid) || prev.gen == x.gen);
}

GT_EMU_NOCHECK const char* kind_name(int k) { return k == READ ? "read" : k == WRITE ? "write" : "atomic"; }

GT_EMU_NOCHECK void coords(int t, char* buf, size_t n) {
    unsigned x, y, z;
    thread_coords(t, &x, &y, &z);
    snprintf(buf, n, "(%u,%u,%u)", x, y, z);
}

// where describes byte off of the shared region: "\x1f2+off" for static
// shared memory (emu.go names the variable at the address in the report),
// "dynamic shared memory, byte off" otherwise.
GT_EMU_NOCHECK void where(bool dynamic, uintptr_t addr, uintptr_t off, char* buf, size_t n) {
    if (dynamic)
        snprintf(buf, n, "dynamic shared memory byte %lu (address %#lx)", (unsigned long)off, (unsigned long)addr);
    else
        snprintf(buf, n, "static shared \x1f" "2 (address %#lx)", (unsigned long)addr);
}

// Conflict is the earlier access an access races with.
struct Conflict {
    Acc acc;
    int kind;
    uint32_t pc;  // 0: not recorded
};

[[noreturn]] GT_EMU_NOCHECK void report_race(bool dynamic, uintptr_t addr, uintptr_t off, int kind,
                                             const Acc& x, uint32_t pc, const Conflict& prev) {
    char at[128], me[32], other[32];
    where(dynamic, addr, off, at, sizeof at);
    coords(x.tid, me, sizeof me);
    coords(prev.acc.tid, other, sizeof other);
    const bool same_warp = warp_of(x.tid) == warp_of(prev.acc.tid);
    char rel[160];
    if (same_warp)
        snprintf(rel, sizeof rel,
                 "lanes %d and %d of warp %d, with no __syncwarp, shuffle or __syncthreads between them",
                 prev.acc.tid % 32, x.tid % 32, warp_of(x.tid));
    else
        snprintf(rel, sizeof rel, "warps %d and %d, with no __syncthreads between them", warp_of(prev.acc.tid),
                 warp_of(x.tid));
    check_fail(g_img_lo + pc, prev.pc ? g_img_lo + prev.pc : 0, dynamic ? 0 : addr,
               "shared-memory race on %s: %d-byte %s by thread %s\x1f" "1, then %d-byte %s by thread %s\x1f" "0 (%s)",
               at, prev.acc.size, kind_name(prev.kind), other, x.size, kind_name(kind), me, rel);
}

// step checks access x (of kind, at code address pc) against entry e (and
// its cold part c) and records it; true, with the earlier access in *out,
// on a conflict.
GT_EMU_NOCHECK inline bool step(Entry& e, Cold& c, const Acc& x, uint32_t pc, int kind, uint32_t phase,
                                Conflict* out) {
    if (e.phase != phase) {
        e.phase = phase;
        e.w.tid = kNone;
        clear(e.r);
        e.amask = 0;
    }
    if (conflicts(e.w, x)) {
        *out = {e.w, WRITE, g_record ? c.wpc : 0};
        return true;
    }
    int i;
    if (kind != ATOMIC && e.amask && (i = conflict(c.a, x)) >= 0) {
        *out = {c.a.s[i], ATOMIC, g_record ? c.apc[i] : 0};
        return true;
    }
    if (kind != READ && (i = conflict(e.r, x)) >= 0) {
        *out = {e.r.s[i], READ, g_record ? c.rpc[i] : 0};
        return true;
    }
    switch (kind) {
    case READ:
        add(e.r, x, g_record ? c.rpc : nullptr, pc);
        break;
    case WRITE:
        e.w = x;
        if (g_record) c.wpc = pc;
        clear(e.r);
        e.amask = 0;
        break;
    default:
        if (e.amask == 0) clear(c.a);
        add(c.a, x, g_record ? c.apc : nullptr, pc);
        e.amask = c.a.mask;
        break;
    }
    return false;
}

// shared_access checks and records an access of n bytes at byte off of a
// shared region whose shadow is sh.
GT_EMU_NOCHECK void shared_access(RegionShadow& sh, bool dynamic, uintptr_t addr, uintptr_t off, size_t n,
                                  int kind, uintptr_t pc_abs) {
    const int t = g_chk.thread;
    const Acc x = {(uint16_t)t, (uint16_t)(n > 0xffff ? 0xffff : n), g_warp_gen[warp_of(t)]};
    const uint32_t pc = (uint32_t)(pc_abs - g_img_lo);
    const uint32_t phase = g_chk.phase;
    Conflict prev;
    for (uintptr_t b = off, end = off + n; b < end;) {
        const uintptr_t wi = b / 4;
        Entry& w = sh.words.e[wi];
        if ((b & 3) == 0 && end - b >= 4 && w.bytes_phase != phase) {
            if (step(w, sh.words.c[wi], x, pc, kind, phase, &prev))
                report_race(dynamic, addr + (b - off), b, kind, x, pc, prev);
            b += 4;
            continue;
        }
        // Part of a word, or a word already split: its bytes apart.
        const uintptr_t b0 = b & ~uintptr_t(3);
        if (w.bytes_phase != phase) {
            for (int i = 0; i < 4; i++) {  // a stale w makes stale bytes
                sh.bytes.e[b0 + i] = w;
                sh.bytes.c[b0 + i] = sh.words.c[wi];
            }
            w.bytes_phase = phase;
        }
        for (uintptr_t stop = (b | 3) + 1 < end ? (b | 3) + 1 : end; b < stop; b++)
            if (step(sh.bytes.e[b], sh.bytes.c[b], x, pc, kind, phase, &prev))
                report_race(dynamic, addr + (b - off), b, kind, x, pc, prev);
    }
}

// describe_global explains why [a, a+n) is not inside a live allocation.
GT_EMU_NOCHECK void describe_global(uintptr_t a, size_t n, char* buf, size_t len) {
    if (g_nallocs == 0) {
        snprintf(buf, len, "the device has no allocations");
        return;
    }
    int lo = 0, hi = g_nallocs;  // first allocation starting after a
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (g_allocs[mid].start <= a) lo = mid + 1;
        else hi = mid;
    }
    const gt_emu_span* before = lo > 0 ? &g_allocs[lo - 1] : nullptr;
    const gt_emu_span* after = lo < g_nallocs ? &g_allocs[lo] : nullptr;
    if (before && a < before->start + before->size) {
        const unsigned long off = (unsigned long)(a - before->start);
        if (before->freed)
            snprintf(buf, len, "inside allocation %#lx (%lu bytes), which was freed before the launch; offset %lu",
                     (unsigned long)before->start, (unsigned long)before->size, off);
        else
            snprintf(buf, len, "runs %lu bytes past the end of allocation %#lx (%lu bytes); offset %lu",
                     (unsigned long)(a + n - before->start - before->size), (unsigned long)before->start,
                     (unsigned long)before->size, off);
        return;
    }
    const char* freed_b = before && before->freed ? ", freed" : "";
    const char* freed_a = after && after->freed ? ", freed" : "";
    const uint64_t past = before ? a - (before->start + before->size) : ~0ull;
    const uint64_t ahead = after ? after->start - a : ~0ull;
    if (past <= ahead)
        snprintf(buf, len,
                 "outside every allocation; nearest: %lu bytes past the end of allocation %#lx (%lu bytes%s), "
                 "offset %lu",
                 (unsigned long)past, (unsigned long)before->start, (unsigned long)before->size, freed_b,
                 (unsigned long)(a - before->start));
    else
        snprintf(buf, len,
                 "outside every allocation; nearest: %lu bytes before allocation %#lx (%lu bytes%s), offset -%lu",
                 (unsigned long)ahead, (unsigned long)after->start, (unsigned long)after->size, freed_a,
                 (unsigned long)ahead);
}

[[noreturn]] GT_EMU_NOCHECK void report_global(uintptr_t a, size_t n, int kind, uintptr_t pc) {
    char why[256];
    describe_global(a, n, why, sizeof why);
    check_fail(pc, 0, 0, "%lu-byte global %s of %#lx\x1f" "0: %s", (unsigned long)n, kind_name(kind), (unsigned long)a,
               why);
}

GT_EMU_NOCHECK void global_access(uintptr_t a, size_t n, int kind, uintptr_t pc) {
    if (a - g_hit_lo < g_hit_len && n <= g_hit_len - (a - g_hit_lo)) return;
    if (a - g_img_lo < g_img_len) return;  // the emulator's own state
    int lo = 0, hi = g_nallocs;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (g_allocs[mid].start <= a) lo = mid + 1;
        else hi = mid;
    }
    if (lo > 0) {
        const gt_emu_span& al = g_allocs[lo - 1];
        if (!al.freed && a + n <= al.start + al.size && a + n >= a) {
            g_hit_lo = al.start;
            g_hit_len = al.size;
            return;
        }
    }
    report_global(a, n, kind, pc);
}

// access classifies and checks one access of n bytes at a (see the file
// comment).
GT_EMU_NOCHECK inline void access(uintptr_t a, size_t n, int kind, uintptr_t pc) {
    if (!g_chk.on) return;
    if (a - g_chk.shm_lo < g_chk.shm_len) {
        if (n > g_chk.shm_len - (a - g_chk.shm_lo))
            check_fail(pc, 0, 0,
                       "%lu-byte shared %s of %#lx\x1f" "0 runs past the end of the static __shared__ variables of "
                       "the kernel's source",
                       (unsigned long)n, kind_name(kind), (unsigned long)a);
        shared_access(g_static, false, a, a - g_chk.shm_lo, n, kind, pc);
        return;
    }
    if (a - g_chk.dyn_lo < g_chk.dyn_cap) {
        if (n > g_chk.dyn_len || a - g_chk.dyn_lo > g_chk.dyn_len - n)
            check_fail(pc, 0, 0,
                       "%lu-byte %s of dynamic shared memory (byte %lu)\x1f" "0: the launch has %lu bytes of "
                       "dynamic shared memory",
                       (unsigned long)n, kind_name(kind), (unsigned long)(a - g_chk.dyn_lo),
                       (unsigned long)g_chk.dyn_len);
        shared_access(g_dynamic, true, a, a - g_chk.dyn_lo, n, kind, pc);
        return;
    }
    if (a - g_chk.stack_lo < kStackBytes) return;
    global_access(a, n, kind, pc);
}

// ensure1 maps at least n shadow entries (hot and cold).
GT_EMU_NOCHECK bool ensure1(Shadow& s, size_t n) {
    if (n <= s.cap) return true;
    size_t cap = s.cap ? s.cap : 4096;
    while (cap < n) cap *= 2;
    void* e = mmap(nullptr, cap * sizeof(Entry), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (e == MAP_FAILED) return false;
    void* c = mmap(nullptr, cap * sizeof(Cold), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c == MAP_FAILED) {
        munmap(e, cap * sizeof(Entry));
        return false;
    }
    if (s.e) {  // fresh zero entries: phase 0 is never current
        munmap(s.e, s.cap * sizeof(Entry));
        munmap(s.c, s.cap * sizeof(Cold));
    }
    s.e = static_cast<Entry*>(e);
    s.c = static_cast<Cold*>(c);
    s.cap = cap;
    return true;
}

// ensure maps the shadows of a region of n bytes.
GT_EMU_NOCHECK bool ensure(RegionShadow& s, size_t n) { return ensure1(s.words, (n + 3) / 4) && ensure1(s.bytes, (n + 3) & ~size_t(3)); }

GT_EMU_NOCHECK int find_image(struct dl_phdr_info* info, size_t, void* data) {
    const uintptr_t probe = reinterpret_cast<uintptr_t>(data);
    uintptr_t lo = ~uintptr_t(0), hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD) continue;
        const uintptr_t s = info->dlpi_addr + ph.p_vaddr;
        if (s < lo) lo = s;
        if (s + ph.p_memsz > hi) hi = s + ph.p_memsz;
    }
    if (lo <= probe && probe < hi) {
        g_img_lo = lo;
        g_img_len = hi - lo;
        return 1;
    }
    return 0;
}

}  // namespace

GT_EMU_NOCHECK void check_wrap_phase() {
    for (Shadow* s : {&g_static.words, &g_static.bytes, &g_dynamic.words, &g_dynamic.bytes})
        if (s->e) {
            madvise(s->e, s->cap * sizeof(Entry), MADV_DONTNEED);
            madvise(s->c, s->cap * sizeof(Cold), MADV_DONTNEED);
        }
    g_chk.phase = 1;
}

GT_EMU_NOCHECK bool check_begin_launch(const gt_emu_kernel* k, int record, gt_emu_range unit_shm,
                                       const gt_emu_span* allocs, int nallocs, unsigned char* dyn,
                                       long long dyn_len, long long dyn_cap, char* err, int errlen) {
    if (g_img_len == 0) dl_iterate_phdr(find_image, reinterpret_cast<void*>(&g_chk));
    // The span of the unit's sections; emu.go has checked that nothing else
    // lies inside it.
    g_chk.shm_lo = (uintptr_t)unit_shm.start;
    g_chk.shm_len = (uintptr_t)unit_shm.size;
    g_chk.dyn_lo = reinterpret_cast<uintptr_t>(dyn);
    g_chk.dyn_len = (uintptr_t)dyn_len;
    g_chk.dyn_cap = dyn ? (uintptr_t)dyn_cap : 0;
    if (!ensure(g_static, g_chk.shm_len) || !ensure(g_dynamic, g_chk.dyn_cap)) {
        snprintf(err, errlen, "kernel %s: cannot map the shadow of %lu bytes of shared memory", k->name,
                 (unsigned long)(g_chk.shm_len + g_chk.dyn_cap));
        return false;
    }
    g_kernel = k;
    g_record = record;
    g_allocs = allocs;
    g_nallocs = nallocs;
    g_hit_lo = g_hit_len = 0;
    if (g_chk.phase == 0) g_chk.phase = 1;
    g_chk.on = 1;
    return true;
}

GT_EMU_NOCHECK void check_end_launch() {
    g_chk.on = 0;
    g_allocs = nullptr;
    g_nallocs = 0;
}

GT_EMU_NOCHECK void check_atomic(const void* p, unsigned long n) {
    access(reinterpret_cast<uintptr_t>(p), n, ATOMIC, reinterpret_cast<uintptr_t>(__builtin_return_address(0)));
}

}  // namespace gt_emu

// ---- the callbacks of -fsanitize=thread ---------------------------------------
//
// Not in a -race build (flags_race.go): Go's race runtime defines them.
#if GT_EMU_CHECKS
//
// pc is the return address: the instruction after the call, inside the
// access's source line (emu.go looks up pc - 1).

#define GT_EMU_PC reinterpret_cast<uintptr_t>(__builtin_return_address(0))
#define GT_EMU_CALLBACK(NAME, N, KIND) \
    extern "C" GT_EMU_NOCHECK void NAME(void* a) { gt_emu::access(reinterpret_cast<uintptr_t>(a), N, KIND, GT_EMU_PC); }
#define GT_EMU_CALLBACKS(PREFIX)                                  \
    GT_EMU_CALLBACK(PREFIX##read2, 2, gt_emu::READ)              \
    GT_EMU_CALLBACK(PREFIX##read4, 4, gt_emu::READ)              \
    GT_EMU_CALLBACK(PREFIX##read8, 8, gt_emu::READ)              \
    GT_EMU_CALLBACK(PREFIX##read16, 16, gt_emu::READ)            \
    GT_EMU_CALLBACK(PREFIX##write2, 2, gt_emu::WRITE)            \
    GT_EMU_CALLBACK(PREFIX##write4, 4, gt_emu::WRITE)            \
    GT_EMU_CALLBACK(PREFIX##write8, 8, gt_emu::WRITE)            \
    GT_EMU_CALLBACK(PREFIX##write16, 16, gt_emu::WRITE)

GT_EMU_CALLBACK(__tsan_read1, 1, gt_emu::READ)
GT_EMU_CALLBACK(__tsan_write1, 1, gt_emu::WRITE)
GT_EMU_CALLBACKS(__tsan_)
GT_EMU_CALLBACKS(__tsan_unaligned_)

extern "C" GT_EMU_NOCHECK void __tsan_read_range(void* a, unsigned long n) {
    gt_emu::access(reinterpret_cast<uintptr_t>(a), n, gt_emu::READ, GT_EMU_PC);
}
extern "C" GT_EMU_NOCHECK void __tsan_write_range(void* a, unsigned long n) {
    gt_emu::access(reinterpret_cast<uintptr_t>(a), n, gt_emu::WRITE, GT_EMU_PC);
}

// Function entry and exit (the sanitizer runtime keeps a shadow call stack
// with them) and its initialization: nothing to do here.
extern "C" GT_EMU_NOCHECK void __tsan_func_entry(void*) {}
extern "C" GT_EMU_NOCHECK void __tsan_func_exit() {}
extern "C" GT_EMU_NOCHECK void __tsan_init() {}
#endif  // GT_EMU_CHECKS
