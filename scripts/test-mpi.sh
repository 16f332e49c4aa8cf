#!/usr/bin/env bash
# The MPI checks (make test-mpi; CI runs them): Open MPI on localhost,
# oversubscribed (CI has 2 cores), about a minute.
#   1. comm/mpi's conformance tests under mpirun -np 1, 2, 3 (the rank-order
#      all-reduce bitwise against the reference, broadcasts, barriers);
#   2. MNIST linear, one epoch: the plain binary, then bin/gputrain-mpi under
#      mpirun -np 1 (the checkpoint must be bitwise the plain binary's), -np 2
#      and -np 3 (twice: bitwise the same weights run after run): every rank
#      reports the digest of its final weights, all must be equal, and the
#      test accuracy must be within 0.5 points of the one-process run;
#   3. ranks started with different flags (mpirun MPMD) must all stop, with a
#      message naming the rank that differs, and a nonzero status.
# Needs Open MPI (scripts/install-mpi.sh). Logs go to ${OUT:-out/test-mpi}/.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
out=${OUT:-out/test-mpi}
rm -rf "$out"
mkdir -p "$out"
command -v mpirun >/dev/null || { echo "test-mpi: mpirun not found (run scripts/install-mpi.sh)" >&2; exit 1; }
# Open MPI refuses to run as root unless told; CI runs as root.
if [ "$(id -u)" = 0 ]; then
	export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# Localhost only: no probing of other network interfaces, no warnings
# about missing high-speed transports.
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
mpirun=(mpirun --oversubscribe --bind-to none)
fail() { echo "test-mpi: FAIL: $*" >&2; exit 1; }

start=$(date +%s)
# The MPI builds are vetted here (make lint vets the default and cuda
# builds): mpi, and mpi with cuda (make build-mpi-cuda, whose files only
# that combination compiles).
"$GO" vet -tags mpi ./comm/... ./cmd/gputrain
"$GO" vet -tags "mpi cuda" ./cmd/gputrain
"$GO" build -o bin/gputrain ./cmd/gputrain
"$GO" build -tags mpi -o bin/gputrain-mpi ./cmd/gputrain
"$GO" test -tags mpi -c -o "$out/comm-mpi.test" ./comm/mpi

for np in 1 2 3; do
	log=$out/comm-mpi-np$np.log
	"${mpirun[@]}" -np "$np" "$out/comm-mpi.test" -test.v -test.count=1 >"$log" 2>&1 || { cat "$log"; fail "comm/mpi tests on $np ranks (log: $log)"; }
	passed=$(grep -c -- '^--- PASS' "$log" || true)
	[ "$passed" = $((3 * np)) ] || { cat "$log"; fail "comm/mpi on $np ranks: $passed tests passed, want $((3 * np)) (3 per rank)"; }
	echo "test-mpi: comm/mpi conformance on $np ranks: PASS ($passed = 3 tests x $np ranks)"
done

args=(train --model linear --epochs 1 --seed 3 --quiet)
acc() { sed -n 's/^epoch *1[/ ].*test acc \([0-9.]*\).*/\1/p' "$1"; }
bin/gputrain "${args[@]}" --save "$out/plain.safetensors" >"$out/plain.txt" 2>&1 || { cat "$out/plain.txt"; fail "plain run"; }
base=$(acc "$out/plain.txt")
[ -n "$base" ] || fail "no test accuracy in $out/plain.txt"
echo "test-mpi: one process (bin/gputrain): test acc $base"

"${mpirun[@]}" -np 1 bin/gputrain-mpi "${args[@]}" --save "$out/np1.safetensors" >"$out/np1.txt" 2>&1 || { cat "$out/np1.txt"; fail "mpirun -np 1"; }
a=$(sha256sum <"$out/plain.safetensors" | cut -c1-64)
b=$(sha256sum <"$out/np1.safetensors" | cut -c1-64)
[ "$a" = "$b" ] || fail "mpirun -np 1 bin/gputrain-mpi saved $b, the plain binary $a: not bitwise equal"
echo "test-mpi: mpirun -np 1 bin/gputrain-mpi: checkpoint bitwise the plain binary's (sha256 ${a:0:16})"

declare -A digest
for run in np2 np3 np3-again; do
	np=${run:2:1}
	t0=$(date +%s.%N)
	"${mpirun[@]}" -np "$np" bin/gputrain-mpi "${args[@]}" --save "$out/$run.safetensors" >"$out/$run.txt" 2>&1 || { cat "$out/$run.txt"; fail "mpirun -np $np"; }
	t1=$(date +%s.%N)
	mapfile -t ds < <(sed -n 's/.*\[rank \([0-9]*\)\/'"$np"'\] gputrain: final weights \(sha256:[0-9a-f]*\).*/\1 \2/p' "$out/$run.txt" | sort -n)
	[ "${#ds[@]}" = "$np" ] || { cat "$out/$run.txt"; fail "$run: ${#ds[@]} ranks reported their final weights, want $np"; }
	uniq=$(printf '%s\n' "${ds[@]}" | cut -d' ' -f2 | sort -u)
	[ "$(echo "$uniq" | wc -l)" = 1 ] || { printf '%s\n' "${ds[@]}"; fail "$run: the ranks' final weights differ"; }
	digest[$run]=$uniq
	got=$(acc "$out/$run.txt")
	[ -n "$got" ] || { cat "$out/$run.txt"; fail "$run: no test accuracy"; }
	awk -v a="$got" -v b="$base" 'BEGIN { d = (a - b) * 100; if (d < 0) d = -d; exit !(d <= 0.5) }' ||
		fail "$run: test acc $got is more than 0.5 points from one process's $base"
	printf 'test-mpi: mpirun -np %s: all %s ranks end with weights %s; test acc %s (one process %s); %s s\n' "$np" "$np" "${uniq:0:23}" "$got" "$base" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
done
[ "${digest[np3]}" = "${digest[np3-again]}" ] || fail "two 3-rank runs gave different weights: ${digest[np3]} vs ${digest[np3-again]}"
echo "test-mpi: two 3-rank runs: bitwise the same weights"

# Ranks that disagree (rank 2 has another learning rate) all stop.
if "${mpirun[@]}" -np 2 bin/gputrain-mpi "${args[@]}" --save "" : -np 1 bin/gputrain-mpi "${args[@]}" --save "" --lr 0.002 >"$out/mismatch.txt" 2>&1; then
	fail "ranks with different flags trained (see $out/mismatch.txt)"
fi
grep -q "\[rank 2/3\] gputrain: rank 2's configuration differs from rank 0's" "$out/mismatch.txt" ||
	{ cat "$out/mismatch.txt"; fail "the mismatch message does not name rank 2"; }
grep -q "epoch *1[/ ]" "$out/mismatch.txt" && fail "ranks with different flags trained an epoch"
echo "test-mpi: ranks with different flags: all stopped, rank 2 named"
echo "test-mpi: OK ($(($(date +%s) - start)) s)"
