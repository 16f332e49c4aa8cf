# gputrain — the commands a developer and CI run. `make run` trains on the
# embedded MNIST on the CPU; `make test` runs every test (no GPU needed).
GO      ?= go
BIN     ?= bin
GOFILES := $(shell find . -name '*.go' -not -path './.git/*' -not -path './gpucheck/*')

.PHONY: all run build build-cuda test test-short lint fmt bench bench-cpu kernels check-kernels \
        check-cuda check-cuda-link gpu-check-build gpu-check losses generate ci crashloop \
        build-mpi build-mpi-cuda test-mpi

all: build

## run: train a linear energy model with NLL on the embedded MNIST (CPU)
run:
	$(GO) run ./cmd/gputrain train

## build: the gputrain binary (pure Go, CPU backend)
build:
	$(GO) build -o $(BIN)/gputrain ./cmd/gputrain

## build-cuda: the gputrain binary with the CUDA backend (needs CUDA headers: scripts/install-cuda.sh)
build-cuda:
	$(GO) build -tags cuda -o $(BIN)/gputrain-cuda ./cmd/gputrain

## build-mpi: bin/gputrain-mpi, data-parallel under mpirun (cgo, Open MPI: scripts/install-mpi.sh)
build-mpi:
	$(GO) build -tags mpi -o $(BIN)/gputrain-mpi ./cmd/gputrain

## build-mpi-cuda: bin/gputrain-mpi-cuda, MPI and the CUDA backend (NCCL loaded at run time)
build-mpi-cuda:
	$(GO) build -tags "mpi cuda" -o $(BIN)/gputrain-mpi-cuda ./cmd/gputrain

## test-mpi: comm/mpi under mpirun -np 1,2,3; MNIST on 1, 2, 3 ranks vs one process (docs/DISTRIBUTED.md)
test-mpi:
	bash scripts/test-mpi.sh

## test: vet, gofmt and every test (the emulator runs the CUDA kernels on the CPU;
## package device alone takes about 8 minutes on 2 cores, close to go test's
## default 10-minute limit once other packages run beside it, hence -timeout)
test: lint
	$(GO) test -count=1 -timeout 30m ./...

## test-short: the quick subset (skips the full MNIST accuracy targets)
test-short:
	$(GO) test -short -count=1 ./...

## lint: go vet (default and cuda builds) and a gofmt check
lint:
	$(GO) vet ./...
	@out="$$(gofmt -l $(GOFILES))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $(GOFILES)

## bench: CPU backend and training benchmarks (medians: see docs/PERFORMANCE.md)
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x -count 5 ./cpu ./model

## kernels: compile kernels/*.cu into kernels/gputrain.fatbin with nvcc, and write the
## ptxas resource table into docs/KERNELS.md
kernels:
	bash scripts/build-kernels.sh

## check-kernels: rebuild the fatbin and fail if the committed one differs; fail if the
## ptxas resource table of docs/KERNELS.md is stale, a hot kernel spills or a gt_tc_*
## kernel lacks HMMA (and show each of these checks failing on a broken input)
check-kernels:
	bash scripts/build-kernels.sh --check
	bash scripts/kernel-resources.sh selftest

## check-cuda: every -tags cuda package and test binary builds; the binary links only libcuda.so.1
check-cuda:
	$(GO) vet -tags cuda ./...
	$(GO) test -tags cuda -count=1 ./device/cuda ./cmd/gputrain
	bash scripts/check-cuda-link.sh

check-cuda-link:
	bash scripts/check-cuda-link.sh

## generate: regenerate the emulator's kernel registry
generate:
	$(GO) generate ./...

## gpu-check-build / gpu-check: build the GPU check here, run it on a GPU machine
gpu-check-build:
	bash scripts/gpu-check.sh build

gpu-check:
	bash scripts/gpu-check.sh run

## crashloop: kill -9 training at random moments for a minute, resume, compare bitwise with an uninterrupted run
crashloop:
	bash scripts/crashloop.sh 60

## losses: retrain the ten losses and print the table of docs/LOSSES.md
losses:
	$(GO) run ./cmd/gputrain losses

## ci: what .ci/run runs after installing the toolchain
ci: test crashloop check-kernels check-cuda gpu-check-build test-mpi
