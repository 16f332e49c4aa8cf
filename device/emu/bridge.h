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

// gt_emu_launch runs kernel i over the whole grid. grid and block hold
// x, y, z; args one 8-byte value per parameter. rng is the permutation
// state, advanced in place. It returns 0, or nonzero with a message in err.
int gt_emu_launch(int kernel, const long long* grid, const long long* block,
                  long long shared_bytes, const uint64_t* args, int permuted, uint64_t* rng,
                  char* err, int errlen);

#ifdef __cplusplus
}
#endif
