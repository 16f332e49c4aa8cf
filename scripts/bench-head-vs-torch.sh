#!/usr/bin/env bash
# The fused energy head on the cpu backend against PyTorch CPU doing
# cross_entropy(H @ W.T + b, y) forward and backward, in one command on the
# same machine, for docs/PERFORMANCE.md (issue 10):
#
#   scripts/bench-head-vs-torch.sh [B D K [RUNS]]    default 4096 256 131072 3
#   K2=1048576 scripts/bench-head-vs-torch.sh        also the head alone at K2 answers
#
# Each run is a fresh process under /usr/bin/time -v (peak resident memory
# of the whole process), gputrain and PyTorch alternating so that both see
# the same machine load; each process times 3 forward+backward calls after
# one warm-up and prints its median. The load average is printed before and
# after. Needs Debian's python3-torch and libopenblas0-pthread.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-4096}
D=${2:-256}
K=${3:-131072}
runs=${4:-3}
reps=${REPS:-3}
bin=${GPUTRAIN:-/tmp/gputrain-bench-head}
go build -o "$bin" ./cmd/gputrain
timed() { # label, command...: prints "label seconds peak_MiB"
	local label=$1 out
	shift
	out=$( { /usr/bin/time -v "$@" >/tmp/bench-head.out; } 2>&1 )
	local rss
	rss=$(echo "$out" | awk -F: '/Maximum resident set size/ {print int($2/1024)}')
	local med
	case "$label" in
	gputrain*) med=$(awk '/^energy-head/ {print $(NF-5), $(NF-4)}' /tmp/bench-head.out) ;;
	torch*) med=$(sed -n 's/.*median \([0-9.]*\) s.*/\1 s/p' /tmp/bench-head.out) ;;
	esac
	echo "$label  median ${med}  peak RSS ${rss} MiB"
}
echo "# B=$B D=$D K=$K, $runs runs each, $reps timed calls per run; $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$runs"); do
	timed "gputrain cpu (fused head)" "$bin" bench --backend cpu --op energy-head --batch "$B" --dim "$D" --answers "$K" --reps "$reps" --warmup 1
	timed "torch cross_entropy      " /usr/bin/python3 scripts/bench_torch_head.py --batch "$B" --dim "$D" --answers "$K" --reps "$reps" --warmup 1
done
if [ -n "${K2:-}" ]; then
	timed "gputrain cpu K=$K2" "$bin" bench --backend cpu --op energy-head --batch "$B" --dim "$D" --answers "$K2" --reps 1 --warmup 0
fi
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
