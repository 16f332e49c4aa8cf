// Command gputrain trains energy-based models (LeCun et al., "A Tutorial on
// Energy-Based Learning") on a Backend: the pure-Go cpu reference, or
// backends that register themselves when built in: cuda (build tag cuda) and
// emu, the same CUDA kernels run by a CPU emulator (needs cgo; slow, for
// checking kernels without a GPU; --backend auto never picks it).
//
//	gputrain train                      # linear model, NLL loss, embedded MNIST, cpu
//	gputrain train --model mlp:256 --loss hinge --margin 2 --epochs 3 --save hinge.safetensors
//	gputrain train --data iris.csv --save iris.safetensors         # scikit-learn's CSV layout, small-data defaults
//	gputrain train --data d.csv.gz --val-split 0.2 --early-stop 5 --lr-schedule warmup:2e,cosine
//	gputrain train --backend emu --limit 300 --epochs 1 --save ''  # the CUDA kernels, on the CPU
//	gputrain eval; gputrain predict --input images-idx3-ubyte.gz  # the saved gputrain.safetensors
//	gputrain train --data r.csv --labels left,right --save j.safetensors  # one joint model over two label columns
//	gputrain losses --epochs 5 > docs/LOSSES.md
//	gputrain train --epochs 3 --metrics run.jsonl --plot run.png --save ''  # one JSON line and a redrawn figure per epoch
//	gputrain bench --backend cpu --json                            # time each backend operation and a training step
//
// Every error is printed as one line on stderr (exit.go): status 2 for a
// wrong command line, 1 for a failure while working (a panic too: one line
// and a report file), 130 and 143 after SIGINT and SIGTERM. Invalid flag
// values are refused before any data is loaded, and nothing is printed
// before the backend is open, so a backend that cannot start (no GPU) is
// the only output. train writes only its own files (outputs.go), reads
// inputs without ever blocking on a FIFO, and checks every size against
// the memory available (memory.go).
package main
