#!/usr/bin/env bash
# Installs Open MPI from Debian (openmpi-bin: mpirun; libopenmpi-dev: mpi.h,
# libmpi.so and the ompi-c pkg-config file that comm/mpi's cgo uses), for
# `make build-mpi` and `make test-mpi`. Idempotent: does nothing when both
# are installed. About 1 minute on a fresh machine.
set -euo pipefail
if command -v mpirun >/dev/null 2>&1 && pkg-config --exists ompi-c 2>/dev/null; then
	echo "install-mpi: $(mpirun --version 2>/dev/null | head -1) and ompi-c $(pkg-config --modversion ompi-c) already installed"
	exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
	sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# apt holds a lock while another install runs: wait for it rather than fail.
for i in $(seq 1 30); do
	if $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends openmpi-bin libopenmpi-dev pkg-config >/dev/null; then
		break
	fi
	[ "$i" = 30 ] && { echo "install-mpi: apt-get failed 30 times" >&2; exit 1; }
	echo "install-mpi: apt-get failed (lock held?), retrying in 10 s" >&2
	sleep 10
done
echo "install-mpi: installed $(mpirun --version 2>/dev/null | head -1), ompi-c $(pkg-config --modversion ompi-c)"
