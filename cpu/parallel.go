package cpu

import "sync"

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
	var wg sync.WaitGroup
	wg.Add(chunks - 1)
	for c := 1; c < chunks; c++ {
		lo, hi := c*n/chunks, (c+1)*n/chunks
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	f(0, n/chunks)
	wg.Wait()
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
