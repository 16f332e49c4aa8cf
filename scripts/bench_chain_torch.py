#!/usr/bin/env python3
"""The PyTorch baseline of the chain's forward-backward (docs/PERFORMANCE.md).

The same workload as cpu.BenchmarkChainForwardBackward: B sequences of T
positions over K states, unary energies U (B x T x K), transitions P (K x K),
start and final energies S, F; log Z at beta = 1 by the forward recursion
written with torch.logsumexp over a (B, K, K) tensor per position, then
autograd's backward pass, which gives what gputrain's ChainMarginals
computes: d log Z / dU = -marginals, d log Z / dP = -summed pairwise
marginals. Prints the median seconds per iteration, sequences per second
and the process's peak RSS.

    /usr/bin/python3 scripts/bench_chain_torch.py --k 100 --t 50 --b 256 --threads 2
    /usr/bin/python3 scripts/bench_chain_torch.py --k 100 --device cuda    # on a GPU machine

Autograd keeps every position's (B, K, K) input of logsumexp: T * B * K^2
floats (51 GB at K = 1000, B = 256), so large K needs a smaller --b.
"""
import argparse
import resource
import statistics
import time

import torch


def log_z(U, P, S, F):
    # Scores are negated energies: the forward recursion in log space.
    a = -(S + U[:, 0])
    for t in range(1, U.shape[1]):
        a = torch.logsumexp(a.unsqueeze(2) - P.unsqueeze(0), dim=1) - U[:, t]
    return torch.logsumexp(a - F, dim=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--t", type=int, default=50)
    ap.add_argument("--b", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    dev = torch.device(a.device)
    U = torch.randn(a.b, a.t, a.k, device=dev, requires_grad=True)
    P = torch.randn(a.k, a.k, device=dev, requires_grad=True)
    S = torch.randn(a.k, device=dev, requires_grad=True)
    F = torch.randn(a.k, device=dev, requires_grad=True)

    def step():
        for x in (U, P, S, F):
            x.grad = None
        log_z(U, P, S, F).sum().backward()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up
    secs = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        step()
        secs.append(time.perf_counter() - t0)
    med = statistics.median(secs)
    # Sanity: -dlogZ/dU are marginals; each position's sum to 1.
    m = -U.grad
    err = (m.sum(dim=2) - 1).abs().max().item()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    extra = ""
    if dev.type == "cuda":
        extra = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    print(f"torch {torch.__version__} {a.device} threads {a.threads}: K={a.k} T={a.t} B={a.b}: "
          f"median {med:.4f} s/iter ({a.runs} runs), {a.b / med:.1f} seq/s, peak RSS {rss:.0f} MiB{extra}; "
          f"marginals sum to 1 within {err:.1e}")


if __name__ == "__main__":
    main()
