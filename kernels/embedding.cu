// embedding.cu: the CBOW input layer (model.EmbeddingOps). Ids arrive as
// float32 (a data set's features): an integer in [0, V) names a table row,
// anything else is padding (model.EmbedID).
//
//   gt_embed_mean    out[i] = mean of the table rows row i names: a block
//                    per row (grid-stride), threads over the E columns,
//                    the window in order, float32 sum divided by the count.
//   gt_embed_counts  n_i, the ids of row i that name a row.
//   gt_embed_grad    dtable: block b owns table rows [b R, b R + R) and,
//                    threads over the columns, scans every id in (row,
//                    position) order, adding dout[i] / n_i to the rows it
//                    owns; rows no id names become 0. One owner per output
//                    element and one order: no atomics, the same bits as
//                    the cpu backend.
#include "gputrain.cuh"

// GT_EMB_ROWS is R, the table rows of one gt_embed_grad block.
#define GT_EMB_ROWS 8

__device__ inline long long gt_embed_id(float x, long long V) {
    if (!(x >= 0.0f) || x >= (float)V || x != (float)(int)x) return -1;
    return (long long)x;
}

extern "C" __global__ void gt_embed_mean(const float* table, const float* ids, long long B, long long W,
                                         long long V, long long E, float* out) {
    for (long long i = blockIdx.x; i < B; i += gridDim.x) {
        for (long long d = threadIdx.x; d < E; d += blockDim.x) {
            float s = 0.0f;
            int n = 0;
            for (long long j = 0; j < W; j++) {
                const long long v = gt_embed_id(ids[i * W + j], V);
                if (v < 0) continue;
                s += table[v * E + d];
                n++;
            }
            out[i * E + d] = n > 1 ? s / (float)n : s;
        }
    }
}

extern "C" __global__ void gt_embed_counts(const float* ids, long long B, long long W, long long V, int* counts) {
    for (long long i = gt_global_id(); i < B; i += gt_global_stride()) {
        int n = 0;
        for (long long j = 0; j < W; j++) n += gt_embed_id(ids[i * W + j], V) >= 0;
        counts[i] = n;
    }
}

extern "C" __global__ void gt_embed_grad(const float* dout, const float* ids, const int* counts, long long B,
                                         long long W, long long V, long long E, float* dtable) {
    for (long long v0 = (long long)blockIdx.x * GT_EMB_ROWS; v0 < V; v0 += (long long)gridDim.x * GT_EMB_ROWS) {
        for (long long d = threadIdx.x; d < E; d += blockDim.x) {
            float acc[GT_EMB_ROWS];
#pragma unroll
            for (int r = 0; r < GT_EMB_ROWS; r++) acc[r] = 0.0f;
            for (long long i = 0; i < B; i++) {
                const int n = counts[i];
                if (n == 0) continue;
                const float g = dout[i * E + d];
                for (long long j = 0; j < W; j++) {
                    const long long v = gt_embed_id(ids[i * W + j], V) - v0;
                    if (v < 0 || v >= GT_EMB_ROWS) continue;
                    acc[v] += g / (float)n;
                }
            }
#pragma unroll
            for (int r = 0; r < GT_EMB_ROWS; r++)
                if (v0 + r < V) dtable[(v0 + r) * E + d] = acc[r];
        }
    }
}
