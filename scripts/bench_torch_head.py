#!/usr/bin/env python3
"""PyTorch CPU baseline of the fused energy head (docs/PERFORMANCE.md, issue 10).

Times cross_entropy(H @ W.T + b, y) forward and backward (gradients of H, W
and b) at B x D hidden rows and K answers: the materializing path that
gputrain's fused head replaces. Inputs are seeded random normals (W scaled
by 1/sqrt(D) so the logits have unit scale), labels uniform. Prints one line
per repetition and the median; the peak memory of the whole process is what
/usr/bin/time -v reports around it (scripts/bench-head-vs-torch.sh).

    /usr/bin/python3 scripts/bench_torch_head.py --batch 4096 --dim 256 --answers 131072 --reps 3
"""
import argparse
import resource
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--answers", type=int, default=131072)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(1)
    h = torch.randn(a.batch, a.dim, generator=g).requires_grad_()
    w = (torch.randn(a.answers, a.dim, generator=g) / a.dim ** 0.5).requires_grad_()
    b = torch.zeros(a.answers).requires_grad_()
    y = torch.randint(0, a.answers, (a.batch,), generator=g)
    times = []
    for rep in range(a.warmup + a.reps):
        h.grad = w.grad = b.grad = None
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(h @ w.t() + b, y)
        loss.backward()
        dt = time.perf_counter() - t0
        if rep >= a.warmup:
            times.append(dt)
        print(f"rep {rep + 1}{' (warm-up)' if rep < a.warmup else ''}: {dt:.3f} s  loss {loss.item():.6f}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch {torch.__version__} threads={a.threads} B={a.batch} D={a.dim} K={a.answers}: "
          f"median {statistics.median(times):.3f} s (of {len(times)}), peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
