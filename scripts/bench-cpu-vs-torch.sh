#!/usr/bin/env bash
# One epoch of MNIST (60000 rows, batch 128, Adam lr 1e-3) on the cpu backend
# and in PyTorch on the CPU, in one command on the same machine, for
# docs/PERFORMANCE.md. Needs Debian's python3-torch and libopenblas0-pthread
# (without OpenBLAS, Debian's torch falls back to the reference BLAS and is
# about 4x slower on the MLP).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-5}
go test -c -o /tmp/gputrain-model.test ./model
echo "## gputrain cpu backend (go test -bench Epoch, $count runs)"
(cd model && /tmp/gputrain-model.test -test.run '^$' -test.bench 'Epoch' -test.count "$count" -test.benchtime 1x) | grep -E '^Benchmark|^cpu:'
echo "## PyTorch, 2 threads ($((count + 1)) epochs each, the first is a warm-up)"
/usr/bin/python3 scripts/bench_torch_cpu.py --model linear --epochs $((count + 1)) --threads 2 | tail -1
/usr/bin/python3 scripts/bench_torch_cpu.py --model mlp:256 --epochs $((count + 1)) --threads 2 | tail -1
