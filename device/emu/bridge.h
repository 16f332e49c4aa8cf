// bridge.h: the C interface between emu.go and runtime.cpp.
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The registry of kernels compiled into the package (gen_registry.cpp).
int gt_emu_kernel_count(void);
const char* gt_emu_kernel_name(int i);
int gt_emu_kernel_nparams(int i);
long long gt_emu_kernel_static_shared(int i);

// The kernel's unit: <unit> of the sections gt_emu_shm.<p|c>.<unit>.<line>
// holding its source's static __shared__ variables; and string j of the
// unit's declarations table ("line", "file:line names", ...; null at the end).
const char* gt_emu_kernel_unit(int i);
const char* gt_emu_kernel_decl(int i, int j);
// The first and last line of kernel i's body in its source.
int gt_emu_kernel_body(int i, int last);

// gt_emu_input returns entry i of the generated units' inputs: path, SHA-256
// (hex), path, ...; null past the end.
const char* gt_emu_input(int i);

// gt_emu_anchor returns the run-time address of gt_emu_launch, from which
// emu.go finds the load bias of the executable to name source lines;
// gt_emu_load_bias the executable's load bias (run-time address minus
// link-time address: 0 unless it is position-independent).
uintptr_t gt_emu_anchor(void);
uintptr_t gt_emu_load_bias(void);

// A range of memory: the section of one static __shared__ declaration.
typedef struct {
    uint64_t start, size;
} gt_emu_range;

// A live or recently freed allocation of the launching driver, for the
// bounds checks of a checked launch; sorted by start, disjoint.
typedef struct {
    uint64_t start, size;
    int64_t freed; // nonzero: freed (kept unmapped from reuse by the driver's quarantine)
} gt_emu_span;

// Why a launch failed: msg, in which the bytes 0x1f '0' and 0x1f '1' stand
// for the source locations of pc[0] (the access that failed) and pc[1] (the
// earlier access it races with), and 0x1f '2' for the name of the static
// __shared__ variable at addr; emu.go replaces them (or drops them where a
// pc is 0 or cannot be named).
typedef struct {
    char msg[1536];
    uint64_t pc[2];
    uint64_t addr; // the static shared address that 0x1f '2' stands for
} gt_emu_report;

// gt_emu_launch runs kernel i over the whole grid. grid and block hold
// x, y, z; args one 8-byte value per parameter. shm are the sections of the
// kernel's static __shared__ variables (plain or checked build, as
// launched): each is filled with 0xff bytes before every block; unit_shm
// spans all those of its unit (the checked mode's static shared memory).
// rng is the permutation state, advanced in place. checked selects the
// instrumented kernels, which check shared-memory races and global accesses
// against allocs (2: and record the code address of every shared access,
// to name source lines in a report). It returns 0, or nonzero with the
// reason in rep.
int gt_emu_launch(int kernel, const long long* grid, const long long* block, long long shared_bytes,
                  const uint64_t* args, const gt_emu_range* shm, int nshm, gt_emu_range unit_shm,
                  int permuted, int checked,
                  const gt_emu_span* allocs, int nallocs, uint64_t* rng, gt_emu_report* rep);

#ifdef __cplusplus
}
#endif
