//go:build mpi

package mpi

/*
#cgo pkg-config: ompi-c
#include <mpi.h>
#include <stdlib.h>

// Open MPI's handles are macros over globals, which cgo cannot take: these
// wrappers name them.
static int gt_init(int *provided) {
	int done = 0;
	MPI_Initialized(&done);
	if (done) {
		return MPI_Query_thread(provided);
	}
	return MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
}
static int gt_errors_return(void) { return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN); }
static int gt_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int gt_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int gt_alltoall(float *send, float *recv, int chunk) {
	return MPI_Alltoall(send, chunk, MPI_FLOAT, recv, chunk, MPI_FLOAT, MPI_COMM_WORLD);
}
static int gt_allgather(float *send, float *recv, int chunk) {
	return MPI_Allgather(send, chunk, MPI_FLOAT, recv, chunk, MPI_FLOAT, MPI_COMM_WORLD);
}
static int gt_bcast(void *buf, int n, int root) { return MPI_Bcast(buf, n, MPI_BYTE, root, MPI_COMM_WORLD); }
static int gt_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static int gt_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static int gt_finalize(void) {
	int done = 0;
	MPI_Finalized(&done);
	return done ? MPI_SUCCESS : MPI_Finalize();
}
static int gt_error_string(int code, char *buf) {
	int n = 0;
	MPI_Error_string(code, buf, &n);
	return n;
}
static int gt_library(char *buf) {
	int n = 0;
	MPI_Get_library_version(buf, &n);
	return n;
}
*/
import "C"

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"unsafe"

	"github.com/gputrain/gputrain/comm"
)

// maxCount is the most floats one MPI call moves per rank (its counts are
// C ints); longer buffers are all-reduced in pieces.
const maxCount = math.MaxInt32

// World is the MPI world communicator. Init makes it once per process;
// Finalize ends MPI (no MPI call may follow).
type World struct {
	mu         sync.Mutex
	rank, size int
	library    string
	finalized  bool
	// Scratch of AllReduceSum, kept between calls (a step all-reduces
	// the same sizes every time).
	send, recv, chunk []float32
}

var (
	initOnce sync.Once
	world    *World
	initErr  error
)

// Init initializes MPI (once; later calls return the same World) with
// MPI_THREAD_SERIALIZED and makes errors return to the caller instead of
// aborting, so that they reach the user with the rank that failed.
func Init() (*World, error) {
	initOnce.Do(func() {
		var provided C.int
		if rc := C.gt_init(&provided); rc != C.MPI_SUCCESS {
			initErr = fmt.Errorf("mpi: MPI_Init_thread: %s", errorString(rc))
			return
		}
		if provided < C.MPI_THREAD_SERIALIZED {
			initErr = fmt.Errorf("mpi: the MPI library provides thread level %d, gputrain needs MPI_THREAD_SERIALIZED (%d): goroutines move between threads", int(provided), int(C.MPI_THREAD_SERIALIZED))
			return
		}
		w := &World{}
		if rc := C.gt_errors_return(); rc != C.MPI_SUCCESS {
			initErr = fmt.Errorf("mpi: MPI_Comm_set_errhandler: %s", errorString(rc))
			return
		}
		var r, s C.int
		if rc := C.gt_rank(&r); rc != C.MPI_SUCCESS {
			initErr = fmt.Errorf("mpi: MPI_Comm_rank: %s", errorString(rc))
			return
		}
		if rc := C.gt_size(&s); rc != C.MPI_SUCCESS {
			initErr = fmt.Errorf("mpi: MPI_Comm_size: %s", errorString(rc))
			return
		}
		w.rank, w.size = int(r), int(s)
		buf := (*C.char)(C.malloc(C.MPI_MAX_LIBRARY_VERSION_STRING))
		n := C.gt_library(buf)
		w.library = strings.TrimSpace(strings.SplitN(C.GoStringN(buf, n), ",", 2)[0])
		C.free(unsafe.Pointer(buf))
		world = w
	})
	return world, initErr
}

func errorString(rc C.int) string {
	buf := (*C.char)(C.malloc(C.MPI_MAX_ERROR_STRING))
	defer C.free(unsafe.Pointer(buf))
	n := C.gt_error_string(rc, buf)
	return fmt.Sprintf("%s (MPI error %d)", C.GoStringN(buf, n), int(rc))
}

func (w *World) Rank() int { return w.rank }
func (w *World) Size() int { return w.size }

// Describe names the MPI library: "MPI (Open MPI v4.1.4)".
func (w *World) Describe() string { return "MPI (" + w.library + ")" }

func (w *World) check(op string, rc C.int) error {
	if rc == C.MPI_SUCCESS {
		return nil
	}
	return fmt.Errorf("mpi: rank %d of %d: %s: %s", w.rank, w.size, op, errorString(rc))
}

func (w *World) usable(op string) error {
	if w.finalized {
		return fmt.Errorf("mpi: %s after Finalize: %w", op, comm.ErrClosed)
	}
	return nil
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// AllReduceSum sums buf over the ranks in rank order (see the package
// comment): MPI_Alltoall of the chunks, a fold in rank order, MPI_Allgather.
func (w *World) AllReduceSum(buf []float32) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable("all-reduce"); err != nil {
		return err
	}
	if w.size == 1 || len(buf) == 0 {
		return nil
	}
	piece := maxCount / w.size * w.size
	for len(buf) > 0 {
		n := min(len(buf), piece)
		if err := w.allReduce(buf[:n]); err != nil {
			return err
		}
		buf = buf[n:]
	}
	return nil
}

func (w *World) allReduce(buf []float32) error {
	n, size := len(buf), w.size
	c := comm.Chunk(n, size)
	// Every rank's chunks, padded to size*c (the padding is never summed
	// into anything kept).
	send := buf
	if n != c*size {
		w.send = grow(w.send, c*size)
		copy(w.send, buf)
		clear(w.send[n:])
		send = w.send
	}
	w.recv = grow(w.recv, c*size)
	if err := w.check(fmt.Sprintf("MPI_Alltoall of %d floats", c), C.gt_alltoall((*C.float)(unsafe.Pointer(&send[0])), (*C.float)(unsafe.Pointer(&w.recv[0])), C.int(c))); err != nil {
		return err
	}
	// recv holds rank r's copy of this rank's chunk at [r*c, (r+1)*c).
	w.chunk = grow(w.chunk, c)
	parts := make([][]float32, size)
	for r := range parts {
		parts[r] = w.recv[r*c : (r+1)*c]
	}
	comm.SumRanks(w.chunk, parts)
	out := w.recv // reused: the parts are folded into w.chunk
	if err := w.check(fmt.Sprintf("MPI_Allgather of %d floats", c), C.gt_allgather((*C.float)(unsafe.Pointer(&w.chunk[0])), (*C.float)(unsafe.Pointer(&out[0])), C.int(c))); err != nil {
		return err
	}
	copy(buf, out[:n])
	return nil
}

// Broadcast copies root's buf to every rank.
func (w *World) Broadcast(buf []byte, root int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable("broadcast"); err != nil {
		return err
	}
	if root < 0 || root >= w.size {
		return fmt.Errorf("mpi: broadcast from rank %d of %d", root, w.size)
	}
	for len(buf) > 0 {
		n := min(len(buf), maxCount)
		if err := w.check("MPI_Bcast", C.gt_bcast(unsafe.Pointer(&buf[0]), C.int(n), C.int(root))); err != nil {
			return err
		}
		buf = buf[n:]
	}
	return nil
}

func (w *World) Barrier() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable("barrier"); err != nil {
		return err
	}
	return w.check("MPI_Barrier", C.gt_barrier())
}

// Close is a no-op: the world lives as long as the process (Finalize ends it).
func (w *World) Close() error { return nil }

// Finalize ends MPI on this rank; every rank must call it before exiting
// normally.
func (w *World) Finalize() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finalized {
		return nil
	}
	w.finalized = true
	return w.check("MPI_Finalize", C.gt_finalize())
}

// Abort ends every rank of the job with the exit status code (MPI_Abort):
// what a rank does when it fails, so the others do not wait for it forever.
func (w *World) Abort(code int) {
	C.gt_abort(C.int(code))
}

var _ comm.Comm = (*World)(nil)
