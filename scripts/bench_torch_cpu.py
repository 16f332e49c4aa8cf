#!/usr/bin/env python3
"""The PyTorch baseline of docs/PERFORMANCE.md: one epoch of MNIST on the CPU.

Same workload as model.BenchmarkEpoch*MNIST: 60000 rows of 784 pixels in
[0, 1], batch 128, Adam lr 1e-3, cross-entropy over 10 classes (= NLL of the
energy model E = -scores at beta 1), a seeded shuffle per epoch. Prints the
seconds of each epoch and the median. Debian's python3-torch (1.13, OpenBLAS)
is what the issue's baseline used:

    apt-get install --no-install-recommends python3-torch
    /usr/bin/python3 scripts/bench_torch_cpu.py --model linear --epochs 5 --threads 2
"""
import argparse
import gzip
import statistics
import struct
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="linear", help="linear or mlp:H")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    x = torch.from_numpy(idx(ROOT / "dataset/mnist/train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255)
    y = torch.from_numpy(idx(ROOT / "dataset/mnist/train-labels-idx1-ubyte.gz").astype(np.int64))
    if a.model == "linear":
        net = torch.nn.Linear(784, 10)
    else:
        h = int(a.model.split(":")[1])
        net = torch.nn.Sequential(torch.nn.Linear(784, h), torch.nn.ReLU(), torch.nn.Linear(h, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    lossf = torch.nn.CrossEntropyLoss()
    times = []
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], a.batch):
            idxs = perm[i : i + a.batch]
            opt.zero_grad()
            loss = lossf(net(x[idxs]), y[idxs])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
        print(f"epoch {epoch + 1}: {times[-1]:.3f} s  (last batch loss {loss.item():.4f})")
    timed = times[1:] if len(times) > 1 else times  # the first epoch warms up allocators and threads
    print(f"torch {torch.__version__} threads={a.threads} model={a.model}: median epoch {statistics.median(timed):.3f} s (of {len(timed)})")


if __name__ == "__main__":
    main()
