#!/usr/bin/env bash
# Word prediction on GCIDE (Debian's dict-gcide): a CBOW model trained with
# the exact NLL (the fused energy head, log Z over every word) and with the
# sampled shortcuts (sampled softmax, NCE) for the same wall-clock budget
# each, then the exact held-out perplexity of each and the log Z audit of
# the sampled ones (docs/ENERGYHEAD.md, issue 10):
#
#   scripts/text-exact-vs-sampled.sh [BUDGET [MODEL]]    default 6m cbow:64
#
# Runs one after the other (each alone on the machine's cores); the load
# average is printed, since the machine may be shared.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-6m}
model=${2:-cbow:64}
data=${DATA:-/usr/share/dictd/gcide.dict.dz}
samples=${SAMPLES:-1024}
batch=${BATCH:-256}
bin=${GPUTRAIN:-/tmp/gputrain-text}
out=${OUT:-/tmp/text-exact-vs-sampled}
mkdir -p "$out"
go build -o "$bin" ./cmd/gputrain
common=(train --data "text:$data" --model "$model" --batch "$batch" --lr 3e-3 --epochs 100 --time-budget "$budget" --backend cpu -q)
for run in exact softmax nce; do
	extra=()
	[ "$run" != exact ] && extra=(--sampled "$run" --samples "$samples")
	echo "## $run: $(cut -d' ' -f1-3 /proc/loadavg) load before"
	/usr/bin/time -v "$bin" "${common[@]}" "${extra[@]}" --save "$out/$run.safetensors" >"$out/$run.txt" 2>"$out/$run.err" || { cat "$out/$run.err"; exit 1; }
	grep -E '^#|^epoch|perplexity|audit' "$out/$run.txt"
	grep -E 'budget|Maximum resident' "$out/$run.err"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
