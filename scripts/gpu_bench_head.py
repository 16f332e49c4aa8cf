#!/usr/bin/env python3
"""PyTorch GPU baseline of the fused energy head, for scripts/gpu-check.sh.

cross_entropy(H @ W.T + b, y) forward and backward (gradients of H, W, b)
at B x D hidden rows and K answers, eager, fp32 with TF32 off and with
TF32 on (cuBLAS TF32 + PyTorch's cross_entropy: the issue's bar), seeded
normals as in gputrain bench --op energy-head. Prints one line per mode:
median milliseconds of 5 timed calls after 2 warm-ups, and the peak of
torch.cuda.max_memory_allocated during them (the tensors' memory, not the
process's), as "torch-head tf32=0|1 ms=... peak_mib=...".

    python3 scripts/gpu_bench_head.py [B D K]     default 4096 256 131072
"""
import statistics
import sys
import time


def main():
    import torch
    import torch.nn.functional as F
    B, D, K = (int(x) for x in (sys.argv[1:4] if len(sys.argv) >= 4 else (4096, 256, 131072)))
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(1)
    h = torch.randn(B, D, device=dev, generator=g).requires_grad_()
    w = (torch.randn(K, D, device=dev, generator=g) / D ** 0.5).requires_grad_()
    b = (0.1 * torch.randn(K, device=dev, generator=g)).requires_grad_()
    y = torch.randint(0, K, (B,), device=dev, generator=g)
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        ts = []
        torch.cuda.reset_peak_memory_stats()
        for rep in range(7):
            h.grad = w.grad = b.grad = None
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            F.cross_entropy(h @ w.t() + b, y).backward()
            torch.cuda.synchronize()
            if rep >= 2:
                ts.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated() / 2**20
        print(f"torch-head tf32={int(tf32)} B={B} D={D} K={K} ms={1e3 * statistics.median(ts):.3f} peak_mib={peak:.0f}", flush=True)


if __name__ == "__main__":
    main()
