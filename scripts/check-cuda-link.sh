#!/usr/bin/env bash
# Builds gputrain with the CUDA backend (-tags cuda) and checks what it links:
# libcuda.so.1 (the driver API) and nothing else from CUDA — no cudart, no
# cuBLAS, no NVRTC. Why: libcuda.so.1's symbols are unversioned, so such a
# binary runs on any newer driver (CUDA 12, 13, ...); the toolkit libraries
# are versioned per major release and would tie the binary to CUDA 11.
#
# Usage: scripts/check-cuda-link.sh [OUTPUT]        build to OUTPUT (default: a temp file)
#        scripts/check-cuda-link.sh --binary FILE   check FILE, build nothing
# Needs the CUDA headers and libcuda (scripts/install-cuda.sh); no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
if [ "${1:-}" = "--binary" ]; then
	out=${2:?--binary needs a file}
	[ -f "$out" ] || { echo "check-cuda-link: $out: no such file" >&2; exit 1; }
else
	out=${1:-}
	if [ -z "$out" ]; then
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		out=$tmp/gputrain-cuda
	fi
	echo "check-cuda-link: go build -tags cuda -o $out ./cmd/gputrain"
	"$GO" build -tags cuda -o "$out" ./cmd/gputrain
fi

fail=0
needed=$(readelf -d "$out" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
echo "check-cuda-link: NEEDED: $(echo $needed)"
if ! grep -qx 'libcuda.so.1' <<<"$needed"; then
	echo "check-cuda-link: FAIL: the binary does not link libcuda.so.1 (was the cuda tag honoured?)"
	fail=1
fi
# Anything CUDA-ish besides the driver: cudart, cublas(Lt), nvrtc, curand, cudnn, nvidia-ml, ...
bad=$(grep -iE 'cuda|cublas|nvrtc|curand|cufft|cusparse|cusolver|cudnn|nvidia|nvjpeg|npp' <<<"$needed" | grep -vx 'libcuda.so.1' || true)
if [ -n "$bad" ]; then
	echo "check-cuda-link: FAIL: links CUDA libraries other than libcuda.so.1: $(echo $bad)"
	fail=1
fi
# The driver symbols must be unversioned (a versioned reference would pin a
# driver release).
versioned=$(nm -D --undefined-only "$out" | awk '$2 ~ /^cu[A-Z]/ && $2 ~ /@/ {print $2}')
if [ -n "$versioned" ]; then
	echo "check-cuda-link: FAIL: versioned CUDA driver symbols: $(echo $versioned)"
	fail=1
fi
ncu=$(nm -D --undefined-only "$out" | awk '$2 ~ /^cu[A-Z]/' | wc -l)
echo "check-cuda-link: $ncu unversioned CUDA driver API symbols referenced (bound lazily)"
# Informational: where the loader finds libcuda.so.1 here (on a build machine
# without a GPU that is the toolkit's or the driver package's copy).
if command -v ldd >/dev/null 2>&1; then
	ldd "$out" | grep -E 'libcuda|not found' | sed 's/^/check-cuda-link: ldd: /' || true
fi
if [ "$fail" != 0 ]; then
	exit 1
fi
echo "check-cuda-link: OK: only libcuda.so.1 from CUDA"
