package cpu

import (
	"fmt"
	"runtime/debug"
	"sync"
)

// workerPanics carries a panic from a worker goroutine of a fork-join
// back to the goroutine that forked: a panic on any other goroutine kills
// the process before the command's recover can turn it into one line and a
// crash report, and a bug in a kernel must not bypass that. The first
// worker's panic is kept with its stack; the forking goroutine re-panics
// with it after every worker has finished (none is left writing).
type workerPanics struct {
	once sync.Once
	err  *WorkerPanic
}

// WorkerPanic is the value re-panicked on the forking goroutine: the
// worker's panic value and its stack, which the crash report prints.
type WorkerPanic struct {
	Value any
	Stack []byte
}

func (w *WorkerPanic) Error() string {
	return fmt.Sprintf("%v (in a cpu worker goroutine)", w.Value)
}

// PanicStack is the worker's stack, for a crash report (the forking
// goroutine's own stack shows only where it re-panicked).
func (w *WorkerPanic) PanicStack() []byte { return w.Stack }

// catch is deferred by each worker goroutine.
func (p *workerPanics) catch() {
	if v := recover(); v != nil {
		p.once.Do(func() { p.err = &WorkerPanic{Value: v, Stack: debug.Stack()} })
	}
}

// rethrow is called by the forking goroutine after the join.
func (p *workerPanics) rethrow() {
	if p.err != nil {
		panic(p.err)
	}
}

// parallelRows runs f over [0, n) split into contiguous chunks, one goroutine
// per chunk. The split depends only on n, minChunk and the backend's thread
// count, never on timing, and every caller computes each output element
// inside exactly one chunk, so results are bitwise reproducible. Work of
// fewer than 2*minChunk items runs on the calling goroutine: starting a
// goroutine costs about a microsecond, more than small batches take.
func (b *Backend) parallelRows(n, minChunk int, f func(lo, hi int)) {
	chunks := b.threads
	if minChunk < 1 {
		minChunk = 1
	}
	if c := n / minChunk; c < chunks {
		chunks = c
	}
	if chunks <= 1 {
		f(0, n)
		return
	}
	forChunks(n, chunks, func(_, lo, hi int) { f(lo, hi) })
}

// forChunks splits [0, n) into `chunks` contiguous ranges (fewer when n is
// smaller) and runs f on each, chunk 0 on the calling goroutine: the one
// fork-join of the backend (parallelRows and the blocked GEMM use it), so
// that a worker's panic reaches the caller in one place.
func forChunks(n, chunks int, f func(chunk, lo, hi int)) {
	chunks = min(chunks, n)
	if chunks <= 1 {
		f(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	var panics workerPanics
	wg.Add(chunks - 1)
	for ch := 1; ch < chunks; ch++ {
		go func() {
			defer wg.Done()
			defer panics.catch()
			f(ch, ch*n/chunks, (ch+1)*n/chunks)
		}()
	}
	// The calling goroutine's own chunk: a panic here waits for the
	// workers too, so that none is still writing when it unwinds.
	func() {
		defer panics.catch()
		f(0, 0, n/chunks)
	}()
	wg.Wait()
	panics.rethrow()
}

// elemChunk is the smallest number of elements worth a goroutine of its own
// in an elementwise operation (a few microseconds of work).
const elemChunk = 1 << 14

// rowChunk converts elemChunk into rows for a matrix of cols columns.
func rowChunk(cols int) int {
	if cols < 1 {
		return elemChunk
	}
	return max(1, elemChunk/cols)
}
