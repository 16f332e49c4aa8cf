package cpu

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

// A panic in a worker goroutine of a fork-join reaches the goroutine that
// forked (where the command's recover turns it into a crash report), after
// every worker has finished, with the worker's stack; it does not kill the
// process from a goroutine nobody recovers on.
func TestWorkerPanicReachesCaller(t *testing.T) {
	for name, fork := range map[string]func(n int, f func(lo, hi int)){
		"parallelRows": func(n int, f func(lo, hi int)) { NewWithThreads(4).parallelRows(n, 1, f) },
		"forChunks":    func(n int, f func(lo, hi int)) { forChunks(n, 4, func(_, lo, hi int) { f(lo, hi) }) },
	} {
		for _, victim := range []int{0, 3} { // the caller's own chunk, a worker's
			var finished atomic.Int32
			got := func() (v any) {
				defer func() { v = recover() }()
				fork(400, func(lo, hi int) {
					if lo == victim*100 {
						panic(errors.New("boom in chunk"))
					}
					finished.Add(1)
				})
				return nil
			}()
			wp, ok := got.(*WorkerPanic)
			if !ok {
				t.Fatalf("%s, chunk %d panics: the caller recovered %#v, want a *WorkerPanic", name, victim, got)
			}
			if finished.Load() != 3 {
				t.Errorf("%s: %d other chunks had finished when the panic reached the caller, want 3", name, finished.Load())
			}
			if !strings.Contains(wp.Error(), "boom in chunk") || !strings.Contains(string(wp.PanicStack()), "parallel_panic_test.go") {
				t.Errorf("%s: %q, stack without the panicking function:\n%s", name, wp.Error(), wp.PanicStack())
			}
		}
	}
}
