// emu_tensor.h: the sm_80 instructions of the tensor-core kernels, for the
// emulator (emu.h includes this header). kernels/gputrain.cuh wraps each PTX
// instruction in a gt_* function: under nvcc inline PTX, here a call of the
// function of the same instruction below. Each implements what the PTX ISA
// documents, including what a kernel can get wrong:
//
// cp.async (PTX ISA 9.7.9.25, "Data Movement and Conversion Instructions:
// cp.async"): the copy is ASYNCHRONOUS. It is queued on the issuing thread,
// and its shared-memory destination is filled with 0xff bytes (NaN as
// float) at issue: until the thread has waited for it, the destination's
// contents are undefined, and reading it shows as NaN. Copies are grouped
// by cp.async.commit_group; cp.async.wait_group N performs (copies src-size
// bytes, zero-fills the rest of cp-size) every copy of this thread's
// committed groups except the N most recent, oldest first;
// cp.async.wait_all is commit_group + wait_group 0. Copies not yet
// committed are in no group, and wait_group does not wait for them. The
// wait makes the data visible to the waiting thread only: another thread
// that reads it before a __syncthreads (after the writer's wait) reads the
// poison, whatever the thread order. Checked (the launch fails naming the
// thread): cp-size 4, 8 or 16 (16 only for .cg), 0 <= src-size <= cp-size,
// both addresses aligned to cp-size (src only when src-size > 0), and a
// thread that starts copies while copies of an earlier block's thread of
// the same index are still pending (it returned without waiting). Not
// checked: that dst is shared and src global memory (the emulator has one
// address space); a pending copy of the last block of a launch is only
// found when a later block reuses the slot.
//
// cvt.rna.tf32.f32 (PTX ISA "cvt"): round to TF32, to nearest with ties
// away from zero; NaN gives the canonical NaN 0x7fffffff. cvt.rn.bf16x2.f32
// d, a, b: a to the upper half, b to the lower, each to nearest even; NaN
// gives 0x7fff.
//
// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 and
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (PTX ISA 9.7.13,
// "Matrix Fragments for mma.m16n8k8" / "mma.m16n8k16 with floating point
// type"; the layouts are spelled out in kernels/gputrain.cuh). The
// instruction is warp-collective: each lane posts its A, B and C fragment
// registers to its warp's exchange slots, __syncwarp, then computes its own
// four D elements from the lanes that hold the rows of A and the columns of
// B it needs, as the fragment layout says. Successive mma of a warp use
// two sets of slots in turn, so a lane that runs ahead cannot overwrite
// what another has yet to read. The runtime's __syncwarp checks
// that all 32 lanes arrive (none returned); a block whose size is not a
// multiple of 32 is refused. Numerics: .tf32 operands are read from the
// high 19 bits of each register (sign, exponent, 10 mantissa bits): an
// unconverted float32 is truncated, as the hardware does
// (triton-lang/triton#4574 matched torch only after adding cvt.rna, which
// is why the kernels convert first); .bf16 operands are the 16-bit halves.
// Products are exact (11- or 8-bit significands), and the emulator adds
// the 8 (16) products and C exactly in double and rounds once to float32;
// the hardware's internal accumulation order and rounding are not
// documented (they are known to truncate), so results may differ from a
// GPU's in the last bits of each 16x8xk step: tests compare with
// tolerances, never bits, across emulator and GPU.
#pragma once


namespace gt_emu {

// fail_thread ends the launch with an error naming the block and the
// calling thread (runtime.cpp); it does not return.
[[noreturn]] void fail_thread(const char* msg);

namespace tensor {

GT_EMU_FN_ALWAYS int linear_tid() {
    return (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}

// ---- cp.async ---------------------------------------------------------------

struct Copy {
    unsigned char* dst;
    const unsigned char* src;
    int size, src_size;
    unsigned long long group;  // the group it belongs to once committed
};

// Where the block that owns a thread slot ran: a slot whose copies were
// queued by another block's thread holds stale copies.
struct BlockTag {
    uint3 block;
    unsigned grid_x, grid_y, grid_z, threads;
};

static inline GT_EMU_NOCHECK bool same_tag(const BlockTag& a, const BlockTag& o) {
    return a.block.x == o.block.x && a.block.y == o.block.y && a.block.z == o.block.z && a.grid_x == o.grid_x &&
           a.grid_y == o.grid_y && a.grid_z == o.grid_z && a.threads == o.threads;
}

// kMaxPending is the most copies one thread may have pending: a 4-stage
// pipeline of 4-byte copies needs 4 x 32 in the 128 x 128 tile.
const int kMaxPending = 256;

// A thread's pending copies live in the emulator's own static memory (not
// a std::vector: the heap is "global memory" to the checked mode, and the
// library code that would touch it is instrumented).
struct CopyQueue {
    BlockTag tag;
    bool used;
    int n;                         // pending copies, in issue order
    unsigned long long committed;  // groups committed so far
    Copy pending[kMaxPending];
};

// One queue per thread slot of the running block (blocks run one at a time),
// shared by every unit that includes this header, as the runtime's state is.
inline CopyQueue g_queues[1024];  // external linkage: allowed (the emulator's own state, one copy)

static inline GT_EMU_NOCHECK BlockTag current_tag() {
    BlockTag t;
    t.block = blockIdx;
    t.grid_x = gridDim.x;
    t.grid_y = gridDim.y;
    t.grid_z = gridDim.z;
    t.threads = blockDim.x * blockDim.y * blockDim.z;
    return t;
}

// queue returns the calling thread's queue, failing if a thread of an
// earlier block left copies in it.
static inline GT_EMU_NOCHECK CopyQueue& queue() {
    CopyQueue& q = g_queues[linear_tid()];
    const BlockTag t = current_tag();
    if (!q.used || !same_tag(q.tag, t)) {
        if (q.used && q.n > 0) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "cp.async: %d copies issued by this thread slot in block (%u,%u,%u) were never waited for "
                     "(cp.async.wait_group/wait_all) before that thread returned",
                     q.n, q.tag.block.x, q.tag.block.y, q.tag.block.z);
            fail_thread(msg);
        }
        q.tag = t;
        q.used = true;
        q.n = 0;
        q.committed = 0;
    }
    return q;
}

}  // namespace tensor

// The cp.async functions are never instrumented (their queue lives in the
// emulator's own memory): in a checked unit they announce what the
// instruction does to the kernel's memory instead, so that the race
// detector and the bounds checks see it: at issue the read of src-size
// bytes of global memory and the write of the shared destination (its
// contents are undefined from then on), and when a wait performs the copy,
// the write again (the data lands then, visible to other threads only
// after a barrier).

// cp_async is cp.async.{ca,cg}.shared.global [dst], [src], size, src_size
// (.cg when size is 16).
static inline GT_EMU_NOCHECK void cp_async(void* dst, const void* src, int size, int src_size) {
    char msg[200];
    if (size != 4 && size != 8 && size != 16) {
        snprintf(msg, sizeof msg, "cp.async with cp-size %d: it must be 4, 8 or 16", size);
        fail_thread(msg);
    }
    if (src_size < 0 || src_size > size) {
        snprintf(msg, sizeof msg, "cp.async with src-size %d and cp-size %d: need 0 <= src-size <= cp-size",
                 src_size, size);
        fail_thread(msg);
    }
    if ((uintptr_t)dst % size != 0 || (src_size > 0 && (uintptr_t)src % size != 0)) {
        snprintf(msg, sizeof msg, "cp.async of %d bytes from %p to %p: both addresses must be %d-byte aligned", size,
                 src, dst, size);
        fail_thread(msg);
    }
    tensor::CopyQueue& q = tensor::queue();
    if (src_size > 0) GT_EMU_NOTE_READ(src, src_size);
    GT_EMU_NOTE_WRITE(dst, size);
    if (q.n == tensor::kMaxPending) {
        snprintf(msg, sizeof msg, "cp.async: more than %d copies pending in one thread (none waited for)",
                 tensor::kMaxPending);
        fail_thread(msg);
    }
    // Until the wait, the destination is undefined: poison it now.
    memset(dst, 0xff, (size_t)size);
    q.pending[q.n++] = tensor::Copy{static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), size,
                                    src_size, ~0ull};
}

// cp_async_commit_group is cp.async.commit_group: the copies issued since
// the last commit become one group (possibly empty).
static inline GT_EMU_NOCHECK void cp_async_commit_group() {
    tensor::CopyQueue& q = tensor::queue();
    for (int i = 0; i < q.n; i++)
        if (q.pending[i].group == ~0ull) q.pending[i].group = q.committed;
    q.committed++;
}

// cp_async_wait_group is cp.async.wait_group n.
static inline GT_EMU_NOCHECK void cp_async_wait_group(int n) {
    tensor::CopyQueue& q = tensor::queue();
    if (n < 0) fail_thread("cp.async.wait_group with a negative count");
    // Groups [0, committed - n) must be complete.
    const unsigned long long done = q.committed > (unsigned long long)n ? q.committed - n : 0;
    int keep = 0;
    for (int i = 0; i < q.n; i++) {
        tensor::Copy& c = q.pending[i];
        if (c.group != ~0ull && c.group < done) {
            GT_EMU_NOTE_WRITE(c.dst, c.size);
            if (c.src_size > 0) memcpy(c.dst, c.src, (size_t)c.src_size);
            memset(c.dst + c.src_size, 0, (size_t)(c.size - c.src_size));
        } else {
            q.pending[keep++] = c;
        }
    }
    q.n = keep;
    asm volatile("" ::: "memory");
}

// cp_async_wait_all is cp.async.wait_all.
static inline GT_EMU_NOCHECK void cp_async_wait_all() {
    cp_async_commit_group();
    cp_async_wait_group(0);
}

// ---- conversions ---------------------------------------------------------------

GT_EMU_FN uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}
GT_EMU_FN float bits_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

// cvt_rna_tf32 is cvt.rna.tf32.f32.
GT_EMU_FN uint32_t cvt_rna_tf32(float x) {
    if (x != x) return 0x7fffffffu;
    const uint32_t u = f32_bits(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return u;  // infinities
    return (u + 0x1000u) & ~0x1fffu;
}

GT_EMU_FN uint32_t bf16_rn(float x) {
    if (x != x) return 0x7fffu;
    const uint32_t u = f32_bits(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return u >> 16;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

// cvt_rn_bf16x2 is cvt.rn.bf16x2.f32 d, a, b: a in the upper half.
GT_EMU_FN uint32_t cvt_rn_bf16x2(float a, float b) { return (bf16_rn(a) << 16) | bf16_rn(b); }

// ---- mma.sync -------------------------------------------------------------------

namespace tensor {

// The fragment registers a lane posts for one mma.
struct Frag {
    uint32_t a[4], b[2];
};
// Exchange slots [parity][warp][lane]: a warp's successive mma alternate
// between two sets, so one __syncwarp per mma suffices: a lane can write
// the set of mma g+2 only after every lane has arrived at mma g+1's
// __syncwarp, that is, after every lane has read mma g's set.
inline Frag g_frags[2][32][32];  // external linkage: allowed (the emulator's own state, one copy)
// Per thread slot: the mma count (its parity picks the set) and the block
// the count belongs to (a new block starts again at 0, as all its lanes do).
inline unsigned long long g_mma_count[1024];  // external linkage: allowed (as g_frags)
inline BlockTag g_mma_tag[1024];              // external linkage: allowed (as g_frags)
inline bool g_mma_used[1024];                 // external linkage: allowed (as g_frags)

// tf32_value is what the tensor core reads of a .tf32 register: the high
// 19 bits (NaN stays NaN).
static inline GT_EMU_NOCHECK double tf32_value(uint32_t r) {
    const float x = bits_f32(r);
    if (x != x) return (double)x;
    return (double)bits_f32(r & 0xffffe000u);
}
static inline GT_EMU_NOCHECK double bf16_value(uint32_t r, int half) { return (double)bits_f32(((r >> (16 * half)) & 0xffffu) << 16); }

// post publishes this lane's fragments and waits for the warp; it returns
// the warp's slots of this mma.
// The mma functions are never instrumented: the exchange slots stand for
// registers moving between lanes, not for memory a kernel can race on.
static inline GT_EMU_NOCHECK Frag* post(const uint32_t* a, const uint32_t* b) {
    const int tid = linear_tid();
    if ((blockDim.x * blockDim.y * blockDim.z) % 32 != 0)
        fail_thread("mma.sync in a block whose size is not a multiple of 32: its last warp is partial");
    const BlockTag tag = current_tag();
    if (!g_mma_used[tid] || !same_tag(g_mma_tag[tid], tag)) {
        g_mma_used[tid] = true;
        g_mma_tag[tid] = tag;
        g_mma_count[tid] = 0;
    }
    Frag* w = g_frags[g_mma_count[tid]++ & 1][tid / 32];
    Frag& mine = w[tid % 32];
    memcpy(mine.a, a, sizeof mine.a);
    memcpy(mine.b, b, sizeof mine.b);
    __syncwarp();
    return w;
}

}  // namespace tensor

// mma_m16n8k8_tf32 is mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32
// {d}, {a}, {b}, {c}. Fragments as in kernels/gputrain.cuh.
static inline GT_EMU_NOCHECK void mma_m16n8k8_tf32(float* d, const uint32_t* a, const uint32_t* b, const float* c) {
    tensor::Frag* w = tensor::post(a, b);
    const int lane = tensor::linear_tid() % 32, g = lane / 4, t = lane % 4;
    float out[4];
    for (int v = 0; v < 4; v++) {
        const int row = g + 8 * (v / 2), col = 2 * t + v % 2;
        double s = (double)c[v];
        for (int k = 0; k < 8; k++) {
            // A[row][k]: lane 4 (row % 8) + k % 4, register (row >= 8) + 2 (k >= 4).
            const double x = tensor::tf32_value(w[4 * (row % 8) + k % 4].a[(row >= 8) + 2 * (k >= 4)]);
            // B[k][col]: lane 4 col + k % 4, register (k >= 4).
            const double y = tensor::tf32_value(w[4 * col + k % 4].b[k >= 4]);
            s += x * y;
        }
        out[v] = (float)s;
    }
    memcpy(d, out, sizeof out);
}

// mma_m16n8k16_bf16 is mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32.
static inline GT_EMU_NOCHECK void mma_m16n8k16_bf16(float* d, const uint32_t* a, const uint32_t* b, const float* c) {
    tensor::Frag* w = tensor::post(a, b);
    const int lane = tensor::linear_tid() % 32, g = lane / 4, t = lane % 4;
    float out[4];
    for (int v = 0; v < 4; v++) {
        const int row = g + 8 * (v / 2), col = 2 * t + v % 2;
        double s = (double)c[v];
        for (int k = 0; k < 16; k++) {
            // A[row][k]: lane 4 (row % 8) + (k % 8) / 2, register
            // (row >= 8) + 2 (k >= 8), half k % 2.
            const double x =
                tensor::bf16_value(w[4 * (row % 8) + (k % 8) / 2].a[(row >= 8) + 2 * (k >= 8)], k % 2);
            // B[k][col]: lane 4 col + (k % 8) / 2, register (k >= 8), half k % 2.
            const double y = tensor::bf16_value(w[4 * col + (k % 8) / 2].b[k >= 8], k % 2);
            s += x * y;
        }
        out[v] = (float)s;
    }
    memcpy(d, out, sizeof out);
}

}  // namespace gt_emu
