#!/usr/bin/env bash
# Crash loop (issue 13): train, kill -9 at random moments (during steps,
# evaluation, checkpoint and metrics writes), resume from whatever the
# killed run left, and repeat until a run finishes; then the checkpoint must
# be byte-for-byte the one an uninterrupted run writes, the metrics file
# must hold every epoch once with the uninterrupted run's losses, and no
# temporary or lock file may be left. Repeats for SECONDS (default 60).
#
#   bash scripts/crashloop.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/gputrain" ./cmd/gputrain
bin=$work/gputrain
epochs=150
flags=(--data dataset/testdata/sklearn/digits.csv.gz --label last --model mlp:24 --batch 16 --lr 0.01 --quiet)

"$bin" train "${flags[@]}" --epochs "$epochs" --save "$work/ref.safetensors" --metrics "$work/ref.jsonl" > /dev/null
# The losses each epoch must show, in the uninterrupted run's JSON spelling.
losses() { grep -o '"epoch":[0-9]*' "$1" | tr '\n' ' '; echo; grep -o '"train_loss":[^,]*' "$1" | tr '\n' ' '; }
want=$(losses "$work/ref.jsonl")

rounds=0 kills=0 deadline=$((SECONDS + seconds))
while ((SECONDS < deadline)); do
	rounds=$((rounds + 1))
	run=$work/round$rounds
	mkdir "$run"
	killedLast=0
	for ((try = 1; ; try++)); do
		if ((try > 1000)); then
			echo "crashloop: round $rounds: no run finished in 1000 tries" >&2
			exit 1
		fi
		if [[ -e $run/ck.safetensors ]]; then
			args=(train --resume "$run/ck.safetensors" --epochs "$epochs" --metrics "$run/m.jsonl" --quiet)
		else
			# Nothing saved yet: start afresh (the metrics file may hold a
			# line the killed run wrote before its first checkpoint).
			args=(train "${flags[@]}" --epochs "$epochs" --save "$run/ck.safetensors" --metrics "$run/m.jsonl" --overwrite)
		fi
		"$bin" "${args[@]}" > "$run/out" 2> "$run/err" &
		pid=$!
		pids=("$pid")
		# A random moment: the run takes about a second, some 10 ms an
		# epoch, so kills land in steps, evaluations and saves alike.
		sleep "0.$(printf %03d $((RANDOM % 900 + 10)))"
		if kill -9 "$pid" 2>/dev/null; then
			kills=$((kills + 1))
			wait "$pid" 2>/dev/null || true
			continue
		fi
		if ! wait "$pid"; then
			if grep -q "has completed $epochs of $epochs epochs" "$run/err"; then
				killedLast=1 # killed after its last save, before it could exit
				break
			fi
			echo "crashloop: round $rounds: gputrain ${args[*]} failed:" >&2
			cat "$run/err" >&2
			exit 1
		fi
		break
	done
	if ! cmp -s "$run/ck.safetensors" "$work/ref.safetensors"; then
		echo "crashloop: round $rounds: the checkpoint differs from the uninterrupted run's" >&2
		exit 1
	fi
	if [[ $(losses "$run/m.jsonl") != "$want" ]]; then
		echo "crashloop: round $rounds: the metrics differ from the uninterrupted run's:" >&2
		losses "$run/m.jsonl" >&2
		echo "want:" >&2
		echo "$want" >&2
		exit 1
	fi
	# Temporary files never survive the next run; a lock file is left only
	# by a writer killed after its last save, with no run after it.
	left=$(find "$run" -name '.*' -type f ! -name '.ck.safetensors.lock' ! -name '.m.jsonl.lock')
	if ((!killedLast)); then
		left=$(find "$run" -name '.*' -type f)
	fi
	if [[ -n $left ]]; then
		echo "crashloop: round $rounds: files left behind: $left" >&2
		exit 1
	fi
	rm -rf "$run"
done
echo "crashloop: $rounds rounds, $kills kill -9s: every resumed run bitwise equal to the uninterrupted one, metrics whole, nothing left behind"
