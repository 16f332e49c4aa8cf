// check.h: what runtime.cpp (the scheduler) and check.cpp (the checked
// mode: shared-memory race detector, bounds checks) share. Not included by
// kernel code.
#pragma once

#include "bridge.h"
#include "emu.h"

#include <stddef.h>
#include <stdint.h>

namespace gt_emu {

// Limits of a block, as in runtime.cpp.
const int kMaxThreads = 1024;
const int kMaxWarps = kMaxThreads / 32;
const size_t kStackBytes = 64 * 1024;

// g_warp_gen[w] counts the completed warp operations (__syncwarp and
// shuffles) of warp w in the running block; runtime.cpp advances it.
extern unsigned g_warp_gen[kMaxWarps];

// CheckState is the checked launch in progress; runtime.cpp sets the
// per-fiber fields at every resume, check.cpp reads them at every access.
struct CheckState {
    int on;                    // a checked launch runs (callbacks do nothing otherwise)
    int thread;                // linear index of the running thread in its block
    uintptr_t stack_lo;        // the running fiber's stack [stack_lo, stack_lo + kStackBytes)
    uint32_t phase;            // advanced at every block start and barrier release
    uintptr_t shm_lo, shm_len; // the kernel's unit's static __shared__ variables
    uintptr_t dyn_lo, dyn_len; // this launch's dynamic shared memory
    uintptr_t dyn_cap;         // bytes mapped at dyn_lo (accesses in [dyn_len, dyn_cap) are out of bounds)
};
extern CheckState g_chk;

// Hooks the scheduler calls (check.cpp). begin_launch returns false, with a
// message in err, when the checker cannot run (e.g. no memory for its
// shadow state).
// record: keep the code address of every shared access, to name both
// accesses' source lines in a report.
bool check_begin_launch(const gt_emu_kernel* k, int record, gt_emu_range unit_shm, const gt_emu_span* allocs,
                        int nallocs, unsigned char* dyn, long long dyn_len, long long dyn_cap, char* err,
                        int errlen);
void check_end_launch();
void check_wrap_phase();
inline GT_EMU_NOCHECK void check_next_phase() {
    if (++g_chk.phase == 0) check_wrap_phase();  // after 2^32 phases: forget every entry
}

// Services of the scheduler that the checker reports through (runtime.cpp).
// thread_coords gives the (x, y, z) of linear thread t of the block;
// check_fail formats "thread (x,y,z): msg" like fail, records the code
// addresses pc0 (the failing access) and pc1 (an earlier one it conflicts
// with; 0: none) and the static shared address addr for the report, and
// abandons the launch.
void thread_coords(int t, unsigned* x, unsigned* y, unsigned* z);
[[noreturn]] void check_fail(uint64_t pc0, uint64_t pc1, uint64_t addr, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));

}  // namespace gt_emu
