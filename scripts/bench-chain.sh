#!/usr/bin/env bash
# The chain's forward-backward (log Z, marginals and summed pairwise
# marginals of B = 256 sequences of T = 50 positions) on the cpu backend and
# in PyTorch (a torch.logsumexp recursion differentiated by autograd), in one
# command on the same machine, K = 10, 100, 1000, for docs/PERFORMANCE.md.
# Each run is its own process, so that its peak RSS (/usr/bin/time) is its
# memory. PyTorch at K = 1000 runs with B = 16: autograd would keep 51 GB of
# (B, K, K) tensors at B = 256.
# PyTorch runs with 1 and 2 threads (TORCH_THREADS): on a loaded machine its
# OpenMP threads spin and lose their cores, and 2 threads can be far slower.
#   KS="10 100" COUNT=3 scripts/bench-chain.sh
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-3}
bin=$(mktemp -d)/gputrain-cpu.test
go test -c -o "$bin" ./cpu
for k in ${KS:-10 100 1000}; do
	case $k in
	10) iters=20 tb=256 ;;
	100) iters=3 tb=256 ;;
	*) iters=1 tb=16 ;;
	esac
	echo "## K=$k: gputrain cpu backend (go test -bench ChainForwardBackward/K=$k, $count runs of ${iters}x)"
	(cd cpu && /usr/bin/time -f "peak RSS %M KB" "$bin" -test.run '^$' -test.bench "ChainForwardBackward/K=$k\$" \
		-test.benchtime "${iters}x" -test.count "$count") 2>&1 | grep -E '^Benchmark|peak RSS'
	for th in ${TORCH_THREADS:-1 2}; do
		echo "## K=$k: PyTorch, $th thread(s), B=$tb"
		/usr/bin/python3 scripts/bench_chain_torch.py --k "$k" --b "$tb" --runs "$count" --threads "$th"
	done
done
