#!/usr/bin/env python3
"""PyTorch baselines for scripts/gpu-check.sh, and the final report.

  gpu_bench_torch.py bench OUT.json          run the workloads in PyTorch
  gpu_bench_torch.py report GO.txt OUT.json  table: Go benchmarks vs PyTorch

The workloads are those of BenchmarkGPU in device/cuda/bench_test.go, with
the same keys, sizes and rate definitions (compulsory bytes for GB/s, GEMM
FLOPs for TFLOP/s), in eager fp32 with TF32 off. Times are wall clock over
back-to-back iterations ending in a synchronize, as in the Go benchmarks.
The ceilings are measured here too: device-to-device copy bandwidth and the
fp32 matmul rate at 8192^3 (TF32 off).
"""
import json
import re
import statistics
import sys
import time


def timeit(fn, iters, reps=5):
    import torch
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) / iters)
    return statistics.median(ts)


def bench(out_path):
    import torch
    import torch.nn.functional as F
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    dev = torch.device("cuda")
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "cuda": torch.version.cuda, "workloads": {}, "ceilings": {}}
    W = res["workloads"]

    def put(key, sec, gbs=None, tflops=None):
        W[key] = {"ms": sec * 1e3, "GB/s": gbs, "TFLOP/s": tflops}
        print(f"torch {key}: {sec*1e3:.3f} ms" + (f"  {gbs:.1f} GB/s" if gbs else "") +
              (f"  {tflops:.2f} TFLOP/s" if tflops else ""), flush=True)

    n = 1 << 30
    src = torch.empty(n, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    t = timeit(lambda: dst.copy_(src), 20)
    put("copy_1GiB", t, gbs=2 * n / t / 1e9)
    del src, dst

    B = 8192
    for K in (32768, 131072):
        E = (torch.rand(B, K, device=dev) * 8 - 4).requires_grad_(True)
        y = torch.randint(0, K, (B,), device=dev)

        def step():
            # NLL of energies: logits = -E; per-row loss and dL/dE.
            loss = F.cross_entropy(-E, y, reduction="none")
            (g,) = torch.autograd.grad(loss, E, grad_outputs=torch.full_like(loss, 1.0 / B))
            return g
        t = timeit(step, 10)
        put(f"energyloss_B8192_K{K}", t, gbs=2 * 4 * B * K / t / 1e9)
        del E, y

    n = 4096
    a = torch.rand(n, n, device=dev) * 2 - 1
    b = torch.rand(n, n, device=dev) * 2 - 1
    c = torch.empty(n, n, device=dev)
    t = timeit(lambda: torch.mm(a, b, out=c), 20)
    put("gemm_nn_4096", t, tflops=2 * n**3 / t / 1e12)
    t = timeit(lambda: torch.mm(a, b.t(), out=c), 20)
    put("gemm_nt_4096", t, tflops=2 * n**3 / t / 1e12)
    del a, b, c

    n = 8192
    a = torch.rand(n, n, device=dev)
    b = torch.rand(n, n, device=dev)
    c = torch.empty(n, n, device=dev)
    t = timeit(lambda: torch.mm(a, b, out=c), 5)
    res["ceilings"]["matmul_fp32_TFLOP/s"] = 2 * n**3 / t / 1e12
    del a, b, c

    B, D, K = 4096, 1024, 32768
    X = torch.randn(B, D, device=dev)
    Y = torch.randint(0, K, (B,), device=dev)
    lin = torch.nn.Linear(D, K, device=dev)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-3)
    perm = torch.arange(B, device=dev)

    def train_step():
        p = perm[torch.randperm(B, device=dev)]
        xb, yb = X[p], Y[p]
        loss = F.cross_entropy(lin(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()  # a sync per step, as the Go trainer downloads the loss
    t = timeit(train_step, 10)
    put("linear_step_B4096_D1024_K32768", t, tflops=4 * B * D * K / t / 1e12)

    res["ceilings"]["copy_GB/s"] = W["copy_1GiB"]["GB/s"]
    print(f"torch ceilings: copy {res['ceilings']['copy_GB/s']:.0f} GB/s, "
          f"fp32 matmul {res['ceilings']['matmul_fp32_TFLOP/s']:.1f} TFLOP/s", flush=True)
    with open(out_path, "w") as f:
        json.dump(res, f, indent=1)


BENCH_LINE = re.compile(r"^BenchmarkGPU/(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$")


def parse_go(path):
    """Go benchmark lines -> {key: {"ms": median, "GB/s": median, ...}}."""
    runs = {}
    with open(path) as f:
        for line in f:
            m = BENCH_LINE.match(line.strip())
            if not m:
                continue
            key, ns, rest = m.group(1), float(m.group(2)), m.group(3)
            r = runs.setdefault(key, {"ms": [], "GB/s": [], "TFLOP/s": []})
            r["ms"].append(ns / 1e6)
            for val, unit in re.findall(r"([\d.]+) (GB/s|TFLOP/s)", rest):
                r[unit].append(float(val))
    return {k: {u: (statistics.median(v) if v else None) for u, v in r.items()} for k, r in runs.items()}


def report(go_path, torch_path):
    go = parse_go(go_path)
    with open(torch_path) as f:
        th = json.load(f)
    # The copy ceiling is the better of the two measured device copies.
    copy_ceiling = max(go.get("copy_1GiB", {}).get("GB/s") or 0, th["ceilings"]["copy_GB/s"])
    mm_ceiling = th["ceilings"]["matmul_fp32_TFLOP/s"]
    print(f"\nGPU: {th['device']}   PyTorch {th['torch']} (CUDA {th['cuda']}), fp32, TF32 off")
    print(f"ceilings: device copy {copy_ceiling:.0f} GB/s (best of cuMemcpyDtoD and torch), "
          f"fp32 matmul 8192^3 {mm_ceiling:.1f} TFLOP/s (torch)")
    hdr = f"{'workload':34} {'gputrain ms':>11} {'rate':>14} {'of ceiling':>10} {'torch ms':>9} {'torch rate':>14} {'torch/ours':>10}"
    print(hdr)
    print("-" * len(hdr))
    missing = 0
    for key in ["copy_1GiB", "energyloss_B8192_K32768", "energyloss_B8192_K131072",
                "gemm_nn_4096", "gemm_nt_4096", "linear_step_B4096_D1024_K32768"]:
        g, t = go.get(key), th["workloads"].get(key)
        if g is None or t is None:
            print(f"{key:34} {'missing' if g is None else '':>11} {'':>14} {'':>10} {'missing' if t is None else '':>9}")
            missing += 1
            continue
        if g.get("TFLOP/s"):
            rate, trate, frac = f"{g['TFLOP/s']:.2f} TFLOP/s", f"{t['TFLOP/s']:.2f} TFLOP/s", g["TFLOP/s"] / mm_ceiling
        else:
            rate, trate, frac = f"{g['GB/s']:.0f} GB/s", f"{t['GB/s']:.0f} GB/s", g["GB/s"] / copy_ceiling
        print(f"{key:34} {g['ms']:11.3f} {rate:>14} {frac:10.2f} {t['ms']:9.3f} {trate:>14} {t['ms']/g['ms']:10.2f}")
    print("(torch/ours > 1: gputrain is faster. 'of ceiling': GB/s over the copy bandwidth, TFLOP/s over torch's fp32 matmul.)")
    return 1 if missing else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "bench":
        bench(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        sys.exit(report(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
