#!/usr/bin/env bash
# The GPU check, in two halves, because the machine with a GPU has no Go:
#
#   scripts/gpu-check.sh build   here (Go, CUDA headers; no GPU needed): builds
#                                into gpucheck/ the cuda gputrain binary and the
#                                test binary of every package with cuda-tagged
#                                tests (device/cuda's also holds BenchmarkGPU,
#                                the benchmarks: there is no separate binary)
#   scripts/gpu-check.sh run     on the GPU machine (needs nvidia-smi, a GPU,
#                                python3 with PyTorch): runs them and PyTorch
#
# run: 1) the test binaries: conformance suite, parity with the CPU backend,
#         bitwise determinism, MNIST cuda vs cpu (per-epoch loss and accuracy);
#      2) gputrain devices, and a short training with --backend cuda and cpu;
#      3) BenchmarkGPU (copy, fused energy loss B=8192 K=32768/131072, GEMM
#         4096^3, linear training step B=4096 D=1024 K=32768 NLL Adam);
#      4) the same workloads in PyTorch (scripts/gpu_bench_torch.py), then the
#         table: times, rates, fraction of the measured ceilings, ratios;
#      5) the fused energy head, B=4096 D=256 K=131072, gputrain (fused and
#         materializing) and PyTorch cross_entropy (scripts/gpu_bench_head.py).
# Logs go to $OUT if set, else gpucheck-out/; the table is printed last.
# Exit status: nonzero when a test fails or a step cannot run.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
dir=gpucheck

build() {
	set -e
	GO=${GO:-go}
	command -v "$GO" >/dev/null || { echo "gpu-check build: go not found" >&2; exit 1; }
	[ -f /usr/include/cuda.h ] || [ -f /usr/local/cuda/include/cuda.h ] ||
		{ echo "gpu-check build: cuda.h not found (run scripts/install-cuda.sh)" >&2; exit 1; }
	rm -rf "$dir"
	mkdir -p "$dir"
	echo "gpu-check build: gputrain (-tags cuda)"
	bash scripts/check-cuda-link.sh "$dir/gputrain"
	# Every kernel name device/ launches must be in the fatbin the binaries
	# embed (a missing one would only fail at launch, on the GPU).
	if command -v cuobjdump >/dev/null; then
		local launched inbin missing k
		# Names in device/'s sources (tests excluded); one ending in "_" is a
		# prefix completed at run time (gt_gemm_ + nn/nt/... + tile suffix),
		# and is satisfied by any kernel that starts with it.
		launched=$(grep -oh '"gt_[a-z0-9_]*"' $(ls device/*.go | grep -v '_test\.go$') | tr -d '"' | sort -u)
		inbin=$(cuobjdump -symbols kernels/gputrain.fatbin | grep -o 'gt_[a-z0-9_]*' | sort -u)
		# (Every kernel defined in kernels/*.cu is checked by kernels' TestFatbin.)
		missing=""
		for k in $launched; do
			case "$k" in
			*_) echo "$inbin" | grep -q "^$k" || missing="$missing $k" ;;
			*) echo "$inbin" | grep -qx "$k" || missing="$missing $k" ;;
			esac
		done
		if [ -n "$missing" ]; then
			echo "gpu-check build: kernels launched by device/ but missing from kernels/gputrain.fatbin: $(echo $missing)" >&2
			exit 1
		fi
		echo "gpu-check build: all $(echo "$launched" | wc -l) kernel names device/ launches are in the fatbin"
	fi
	# Every package whose tests carry the cuda tag gets a test binary.
	local pkgs
	pkgs=$("$GO" list -tags cuda -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./... |
		while read -r path pdir files; do
			for f in $files; do
				if head -5 "$pdir/$f" | grep -q '^//go:build.*cuda'; then echo "$path"; break; fi
			done
		done)
	for p in $pkgs; do
		name=$(echo "${p#github.com/gputrain/gputrain/}" | tr / _)
		echo "gpu-check build: go test -tags cuda -c $p -> $dir/$name.test"
		"$GO" test -tags cuda -c -o "$dir/$name.test" "$p"
	done
	{
		echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
		echo "go: $("$GO" version)"
		echo "commit: $(git rev-parse --verify -q HEAD || echo none); $(git status --porcelain 2>/dev/null | wc -l) uncommitted paths"
		(cd "$dir" && sha256sum gputrain ./*.test)
	} >"$dir/MANIFEST"
	echo "gpu-check build: done; copy the tree with $dir/ to the GPU machine and run: scripts/gpu-check.sh run"
}

run() {
	if ! command -v nvidia-smi >/dev/null 2>&1; then
		echo "gpu-check run: refusing: nvidia-smi not found, so no NVIDIA driver here. Run 'scripts/gpu-check.sh build' here and 'run' on a GPU machine." >&2
		exit 2
	fi
	if [ ! -e /dev/nvidia0 ] || ! nvidia-smi -L >/dev/null 2>&1; then
		echo "gpu-check run: refusing: no GPU visible (/dev/nvidia0 missing or nvidia-smi -L fails)." >&2
		exit 2
	fi
	if [ ! -x "$dir/gputrain" ] || ! ls "$dir"/*.test >/dev/null 2>&1; then
		echo "gpu-check run: refusing: $dir/ has no binaries; run 'scripts/gpu-check.sh build' first (on a machine with Go)." >&2
		exit 2
	fi
	local out=${OUT:-gpucheck-out}
	mkdir -p "$out"
	local fail=0 summary=()
	note() { summary+=("$1"); echo "gpu-check: $1"; }
	nvidia-smi | tee "$out/nvidia-smi.txt"
	cat "$dir/MANIFEST" | tee "$out/manifest.txt"
	# comm/nccl's one-rank NCCL check loads libnccl.so.2 at run time; the GPU
	# machine has PyTorch's copy (scripts/find-nccl.sh, docs/DISTRIBUTED.md).
	export GPUTRAIN_NCCL=${GPUTRAIN_NCCL:-$(bash scripts/find-nccl.sh)}
	note "NCCL for comm/nccl: ${GPUTRAIN_NCCL:-none found (its NCCL tests skip)}"

	# 1) Tests (conformance, parity, determinism, MNIST cuda vs cpu).
	for t in "$dir"/*.test; do
		local name log
		name=$(basename "$t" .test)
		log="$out/test-$name.log"
		echo "gpu-check: running $t (log: $log)"
		if "$t" -test.v -test.count=1 -test.timeout=30m >"$log" 2>&1; then
			note "tests $name: PASS ($(grep -c -- '^--- PASS' "$log") passed, $(grep -c -- '--- SKIP' "$log") skipped)"
		else
			fail=1
			note "tests $name: FAIL: $(grep -- '--- FAIL' "$log" | head -5 | tr '\n' ' ')"
		fi
		grep -E -- '--- SKIP' "$log" | head -3 | sed 's/^/    /'
		# On a GPU machine a test that skips for want of a GPU is a failure.
		if grep -q 'needs a GPU' "$log"; then
			fail=1
			note "tests $name: FAIL: tests skipped for want of a GPU on a GPU machine"
		fi
		grep -E 'epoch [0-9]+: loss cuda' "$log" | sed 's/^ */    /'
	done

	# 2) The CLI on the GPU.
	"$dir/gputrain" devices 2>&1 | tee "$out/devices.txt"
	for be in cuda cpu; do
		if "$dir/gputrain" train --backend "$be" --epochs 2 --seed 7 -q >"$out/train-$be.txt" 2>&1; then
			note "gputrain train --backend $be: $(tail -1 "$out/train-$be.txt")"
		else
			fail=1
			note "gputrain train --backend $be: FAIL: $(tail -1 "$out/train-$be.txt")"
		fi
	done

	# 3) Benchmarks (3 runs each; the report takes medians).
	local bench=$dir/device_cuda.test
	echo "gpu-check: benchmarks (log: $out/bench-go.txt)"
	if ! "$bench" -test.run '^$' -test.bench 'BenchmarkGPU' -test.benchtime 20x -test.count 3 >"$out/bench-go.txt" 2>&1; then
		fail=1
		note "Go benchmarks: FAIL: $(tail -3 "$out/bench-go.txt" | tr '\n' ' ')"
	fi

	# 4) PyTorch, same workloads, then the table.
	echo "gpu-check: PyTorch baselines (log: $out/bench-torch.log)"
	if ! python3 scripts/gpu_bench_torch.py bench "$out/bench-torch.json" >"$out/bench-torch.log" 2>&1; then
		fail=1
		note "PyTorch baselines: FAIL: $(tail -3 "$out/bench-torch.log" | tr '\n' ' ')"
	fi

	# 5) The fused energy head (issue 10): gputrain's head and its
	#    materializing path against PyTorch's cross_entropy (fp32, TF32).
	local hb="--batch 4096 --dim 256 --answers 131072 --reps 5 --warmup 1 --json"
	for op in energy-head energy-head-materializing; do
		if "$dir/gputrain" bench --backend cuda --op $op $hb >"$out/bench-$op.json" 2>&1; then
			note "gputrain bench --op $op: $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.3f ms, device memory in use %s MiB" % (1e3*r["median_s"], r.get("device_used_bytes",0)//2**20))' "$out/bench-$op.json")"
		else
			fail=1
			note "gputrain bench --op $op: FAIL: $(tail -2 "$out/bench-$op.json" | tr '\n' ' ')"
		fi
	done
	if python3 scripts/gpu_bench_head.py >"$out/bench-head-torch.txt" 2>&1; then
		while read -r l; do note "$l"; done <"$out/bench-head-torch.txt"
	else
		fail=1
		note "PyTorch head baseline: FAIL: $(tail -2 "$out/bench-head-torch.txt" | tr '\n' ' ')"
	fi

	echo
	echo "=== gpu-check summary ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)) ==="
	printf '%s\n' "${summary[@]}"
	if [ -f "$out/bench-torch.json" ]; then
		python3 scripts/gpu_bench_torch.py report "$out/bench-go.txt" "$out/bench-torch.json" | tee "$out/table.txt" || fail=1
	fi
	echo "logs: $out/"
	exit $fail
}

case "$mode" in
build) build ;;
run) run ;;
*)
	echo "usage: scripts/gpu-check.sh build|run (see the comment at the top)" >&2
	exit 2
	;;
esac
