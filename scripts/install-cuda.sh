#!/usr/bin/env bash
# Installs Debian's CUDA toolkit 11.8 (nvcc, headers, libcuda stubs) for building
# the kernels fatbin and the `cuda`-tagged packages. Idempotent; needs root.
# Debian ships the toolkit in the non-free component, so it is added to the
# Debian source first. No GPU is needed to build.
set -euo pipefail
# Building -tags cuda needs cuda.h and libcuda.so (the link-time name; the
# driver package provides it, a real driver or not: no GPU is needed).
have_libcuda() {
	[ -e /usr/lib/x86_64-linux-gnu/libcuda.so ] || [ -e /usr/local/cuda/lib64/libcuda.so ] ||
		ldconfig -p 2>/dev/null | grep -q 'libcuda\.so '
}
if command -v nvcc >/dev/null 2>&1 && [ -f /usr/include/cuda.h ] && have_libcuda; then
	echo "install-cuda: nvcc already present: $(nvcc --version | tail -1)"
	exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
changed=0
for f in /etc/apt/sources.list.d/*.sources; do
	[ -e "$f" ] || continue
	if grep -q '^Components:' "$f" && ! grep -q '^Components:.*non-free\b' "$f"; then
		$SUDO sed -i -E 's/^(Components:.*)$/\1 contrib non-free/' "$f"
		changed=1
	fi
done
if [ -f /etc/apt/sources.list ] && grep -qE '^deb .* main' /etc/apt/sources.list && ! grep -q 'non-free' /etc/apt/sources.list; then
	$SUDO sed -i -E '/^deb /s/ main( |$)/ main contrib non-free\1/' /etc/apt/sources.list
	changed=1
fi
echo "install-cuda: apt sources updated=$changed"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends nvidia-cuda-toolkit libcuda1 >/dev/null
nvcc --version | tail -1
have_libcuda || { echo "install-cuda: libcuda.so still missing after installing libcuda1" >&2; exit 1; }
