#!/usr/bin/env bash
# Data-parallel scaling on this machine (docs/PERFORMANCE.md): MNIST, one
# epoch of training, the same global batch, on 1 and 2 ranks with one core
# each (GOMAXPROCS=1), and on 1 rank with both cores; runs interleaved, the
# median of REPS (default 5) train_seconds (the --metrics file: training
# only, no evaluation). Then the rank-order all-reduce alone (BenchmarkAllReduce)
# on 2 ranks. Usage: scripts/bench-mpi.sh [MODEL...] (default: linear mlp:256).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
reps=${REPS:-5}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(linear mlp:256)
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
out=${OUT:-out/bench-mpi}
mkdir -p "$out"
"$GO" build -tags mpi -o bin/gputrain-mpi ./cmd/gputrain
"$GO" test -tags mpi -c -o "$out/comm-mpi.test" ./comm/mpi
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
secs() { sed -n 's/.*"train_seconds":\([0-9.e+-]*\).*/\1/p' "$1"; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for m in "${models[@]}"; do
	for cfg in "1 1" "2 1" "1 2"; do
		set -- $cfg
		: >"$out/$m-np$1-p$2.txt"
	done
	for rep in $(seq "$reps"); do
		for cfg in "1 1" "2 1" "1 2"; do
			set -- $cfg
			f=$out/metrics-$rep.jsonl
			rm -f "$f"
			mpirun --oversubscribe --bind-to none -np "$1" -x GOMAXPROCS="$2" bin/gputrain-mpi train --model "$m" --epochs 1 --seed 1 -q --save "" --metrics "$f" >/dev/null 2>&1
			secs "$f" >>"$out/$m-np$1-p$2.txt"
		done
	done
	t11=$(median <"$out/$m-np1-p1.txt")
	t21=$(median <"$out/$m-np2-p1.txt")
	t12=$(median <"$out/$m-np1-p2.txt")
	awk -v m="$m" -v a="$t11" -v b="$t21" -v c="$t12" -v r="$reps" 'BEGIN {
		printf "%-8s median of %d epochs: 1 rank x 1 core %.2f s | 2 ranks x 1 core %.2f s (speedup %.2f, efficiency %.0f%%) | 1 rank x 2 cores %.2f s (speedup %.2f)\n",
			m, r, a, b, a / b, 100 * a / (2 * b), c, a / c }'
done
echo "all-reduce alone, 2 ranks x 1 core (rank 0's figures):"
rm -rf "$out/allreduce"
mpirun --oversubscribe --bind-to none --output-filename "$out/allreduce" -np 2 -x GOMAXPROCS=1 "$out/comm-mpi.test" -test.run '^$' -test.bench AllReduce -test.benchtime 20x -test.count 5 >/dev/null 2>&1
for b in $(grep -h '^Benchmark' "$out"/allreduce/1/rank.0/stdout | awk '{print $1}' | sort -u); do
	ns=$(grep -h "^$b " "$out"/allreduce/1/rank.0/stdout | awk '{print $3}')
	printf '  %-40s median %s ms of %s runs (ns/op: %s)\n' "$b" "$(echo "$ns" | median | awk '{printf "%.3g", $1 / 1e6}')" "$(echo "$ns" | wc -l)" "$(echo $ns)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
