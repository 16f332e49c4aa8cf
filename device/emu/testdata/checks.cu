// checks.cu: test kernels of device/emu's checked mode (not part of
// gputrain): shared-memory races the detector must report and their fixed
// forms it must pass, out-of-bounds accesses, and reads of shared memory
// a block never wrote.
#include "../../../kernels/gputrain.cuh"

#define EC_COLS 32 // columns per block: one warp wide
#define EC_ROWS 8  // warps per block, each a row lane

// ---- the issue's example: gt_cs_range's tree replaced by one racy phase ----

// emutest_rows_partial: lane ty of EC_ROWS sums rows ty, ty+8, ... of column
// tx of a rows x 32 src, in double, as gt_cs_range does.
__device__ inline double emutest_rows_partial(const float* src, long long rows, int tx, int ty) {
    double acc = 0.0;
    for (long long r = ty; r < rows; r += EC_ROWS) acc += src[r * EC_COLS + tx];
    return acc;
}

// emutest_racy_accumulate (racy, must be reported): the eight warps add
// their partial sums into sh[0][tx] with no barrier between them, the
// one-phase accumulation that replaces gt_cs_range's tree. A read-modify-
// write of one double by eight threads at once: on a GPU the sum loses
// terms; in the emulator's plain build each thread runs alone to the next
// barrier, so the result is right and only the checked build sees it.
__device__ void emutest_add_into(double (*sh)[EC_COLS], int tx, double acc) { sh[0][tx] += acc; }

extern "C" __global__ void emutest_racy_accumulate(const float* src, long long rows, double* out) {
    __shared__ double sh[EC_ROWS][EC_COLS];
    const int tx = threadIdx.x % EC_COLS, ty = threadIdx.x / EC_COLS;
    const double acc = emutest_rows_partial(src, rows, tx, ty);
    if (ty == 0) sh[0][tx] = 0.0;
    __syncthreads();
    emutest_add_into(sh, tx, acc);
    __syncthreads();
    if (ty == 0) out[tx] = sh[0][tx];
}

// emutest_tree_accumulate (fixed): each warp writes its own row, then a
// fixed tree with a barrier after every level, as gt_cs_range does.
extern "C" __global__ void emutest_tree_accumulate(const float* src, long long rows, double* out) {
    __shared__ double sh[EC_ROWS][EC_COLS];
    const int tx = threadIdx.x % EC_COLS, ty = threadIdx.x / EC_COLS;
    sh[ty][tx] = emutest_rows_partial(src, rows, tx, ty);
    __syncthreads();
    for (int off = EC_ROWS / 2; off > 0; off >>= 1) {
        if (ty < off) sh[ty][tx] += sh[ty + off][tx];
        __syncthreads();
    }
    if (ty == 0) out[tx] = sh[0][tx];
}

// ---- warp-level exchange ----

// emutest_warp_exchange: out[t] = x[t ^ 1] through shared memory within
// each warp. sync != 0 puts the __syncwarp between the write and the read
// that warp-synchronous code needs; sync == 0 is a race between the lanes
// of one warp.
extern "C" __global__ void emutest_warp_exchange(const float* x, float* out, long long sync) {
    __shared__ float s[1024];
    const int t = threadIdx.x;
    s[t] = x[t];
    if (sync) __syncwarp();
    out[t] = s[t ^ 1];
}

// emutest_barrier_exchange: out[t] = x[(t + 32) % n] through shared memory
// across warps, correctly separated by a barrier (no report).
extern "C" __global__ void emutest_barrier_exchange(const float* x, float* out) {
    __shared__ float s[1024];
    const int t = threadIdx.x, n = blockDim.x;
    s[t] = x[t];
    __syncthreads();
    out[t] = s[(t + 32) % n];
}

// emutest_own_slot: each thread writes, reads back, overwrites and reads
// its own slot with no barrier at all: one thread's program order, no race.
extern "C" __global__ void emutest_own_slot(const float* x, float* out) {
    __shared__ float s[1024];
    const int t = threadIdx.x;
    s[t] = x[t];
    const float a = s[t];
    s[t] = a * 2.0f;
    out[t] = s[t] + a;
}

// ---- atomics ----

// emutest_shared_atomics: every thread adds 1 to a shared counter with
// atomicAdd (atomics never race with each other), then after a barrier
// thread 0 writes it out. plain != 0 makes thread 0 also store to the
// counter with a plain write in the same phase: a race with the atomics.
extern "C" __global__ void emutest_shared_atomics(int* out, long long plain) {
    __shared__ int count;
    if (threadIdx.x == 0) count = 0;
    __syncthreads();
    atomicAdd(&count, 1);
    if (plain && threadIdx.x == blockDim.x - 1) count = -1;
    __syncthreads();
    if (threadIdx.x == 0) out[blockIdx.x] = count;
}

// ---- other widths and dynamic shared memory ----

// emutest_vector_exchange: thread t stores float4 t / stride (so with
// stride 2 two threads store the same float4: a race) with gt_sts4, then,
// after a barrier if sync != 0, reads float4 (t + 1) % n with gt_lds4.
// Needs blockDim.x * 16 bytes of dynamic shared memory.
extern "C" __global__ void emutest_vector_exchange(float* out, long long stride, long long sync) {
    GT_DYNAMIC_SHARED(float, buf);
    const int t = threadIdx.x, n = blockDim.x;
    gt_f4 v;
    v.x = v.y = v.z = v.w = (float)t;
    gt_sts4(buf + 4 * (t / stride), v);
    if (sync) __syncthreads();
    const gt_f4 r = gt_lds4(buf + 4 * ((t + 1) % n));
    out[t] = r.x + r.y + r.z + r.w;
}

// emutest_bytes: thread t writes byte t + shift of a shared char array (with
// shift 0 neighbouring threads write neighbouring bytes of one word, which
// is no race on a GPU), then after a barrier reads it back. With same != 0
// threads 2k and 2k+1 write the same byte: a race.
extern "C" __global__ void emutest_bytes(int* out, long long same) {
    __shared__ unsigned char b[1024];
    const int t = threadIdx.x;
    const int i = same ? t / 2 : t;
    b[i] = (unsigned char)t;
    __syncthreads();
    out[t] = b[i];
}

// ---- bounds ----

// emutest_read_at: out[t] = x[t + off] for t < n: with off past the
// allocation's end or before its start, an out-of-bounds read.
extern "C" __global__ void emutest_read_at(const float* x, float* out, long long n, long long off) {
    const long long t = threadIdx.x;
    if (t < n) out[t] = x[t + off];
}

// emutest_write_at: x[t + off] = t for t < n.
extern "C" __global__ void emutest_write_at(float* x, long long n, long long off) {
    const long long t = threadIdx.x;
    if (t < n) x[t + off] = (float)t;
}

// emutest_load4_at: thread 0 loads the float4 at x + off (16-byte aligned
// when off is a multiple of 4) into out: with off = n - 2 it straddles the
// end of an n-float allocation.
extern "C" __global__ void emutest_load4_at(const float* x, float* out, long long off) {
    if (threadIdx.x == 0) {
        const gt_f4 v = gt_load4(x + off);
        out[0] = v.x + v.y + v.z + v.w;
    }
}

// emutest_dynamic_at: buf[t + off] = t in dynamic shared memory.
extern "C" __global__ void emutest_dynamic_at(float* out, long long off) {
    GT_DYNAMIC_SHARED(float, buf);
    const int t = threadIdx.x;
    buf[t + off] = (float)t;
    __syncthreads();
    out[t] = buf[t];
}

// ---- poisoned shared memory ----

// emutest_shared_leftover: blocks below `write` store their index + 1 in
// s[t] (static) and d[t] (dynamic); then, after a barrier, every block
// copies both to out. A block that does not write reads what the block
// start left there: 0xff bytes, never an earlier block's or launch's values.
extern "C" __global__ void emutest_shared_leftover(unsigned* out, long long write) {
    __shared__ unsigned s[256];
    GT_DYNAMIC_SHARED(unsigned, d);
    const int t = threadIdx.x;
    if (blockIdx.x < write) {
        s[t] = blockIdx.x + 1;
        d[t] = blockIdx.x + 1;
    }
    __syncthreads();
    out[2 * (blockIdx.x * blockDim.x + t)] = s[t];
    out[2 * (blockIdx.x * blockDim.x + t) + 1] = d[t];
}

// ---- barriers ----

// emutest_split_barrier: the threads below `split` wait at one
// __syncthreads, the others at another: divergent barriers, undefined in
// CUDA. With split == 0 (or >= blockDim.x) the branch is uniform and the
// kernel is correct: out[t] = x[(t + 1) % n].
extern "C" __global__ void emutest_split_barrier(const float* x, float* out, long long split) {
    __shared__ float s[1024];
    const int t = threadIdx.x, n = blockDim.x;
    s[t] = x[t];
    if (t < split) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[t] = s[(t + 1) % n];
}

// emutest_copy_note: thread t copies `bytes` bytes of src into s at byte
// offset t * stride with memcpy of a run-time size (a library call the
// compiler does not instrument), announcing it with GT_EMU_NOTE_WRITE;
// with stride < bytes neighbouring threads' copies overlap: a race.
extern "C" __global__ void emutest_copy_note(const float* src, float* out, long long bytes, long long stride) {
    __shared__ unsigned char s[4096];
    const int t = threadIdx.x;
    GT_EMU_NOTE_READ(src, bytes);
    GT_EMU_NOTE_WRITE(s + t * stride, bytes);
    memcpy(s + t * stride, src, (size_t)bytes);
    __syncthreads();
    float v;
    memcpy(&v, s + t * stride, sizeof v);
    out[t] = v;
}
