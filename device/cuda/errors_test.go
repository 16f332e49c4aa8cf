//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"gorgonia.org/cu"
)

func TestSuggestBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		batch := 1 + rng.IntN(100000)
		requested := 1 + rng.Int64N(1<<36)
		free := rng.Int64N(1 << 36)
		got := SuggestBatch(batch, requested, free)
		if got < 1 || got > batch {
			t.Fatalf("SuggestBatch(%d, %d, %d) = %d, outside [1, %d]", batch, requested, free, got, batch)
		}
		fits := float64(requested) <= headroom*float64(free)
		if fits && got != batch {
			t.Fatalf("SuggestBatch(%d, %d, %d) = %d: the allocation fits, want the batch unchanged", batch, requested, free, got)
		}
		if fits {
			continue
		}
		if got&(got-1) != 0 {
			t.Fatalf("SuggestBatch(%d, %d, %d) = %d, not a power of two", batch, requested, free, got)
		}
		// The suggested batch's share of the allocation fits in the
		// headroom, unless even batch 1 does not.
		if scaled := float64(requested) * float64(got) / float64(batch); got > 1 && scaled > headroom*float64(free) {
			t.Fatalf("SuggestBatch(%d, %d, %d) = %d needs %.0f bytes, more than %.0f", batch, requested, free, got, scaled, headroom*float64(free))
		}
		// And it is the largest such power of two.
		if next := float64(requested) * float64(2*got) / float64(batch); 2*got <= batch && next <= headroom*float64(free) {
			t.Fatalf("SuggestBatch(%d, %d, %d) = %d, but %d fits too", batch, requested, free, got, 2*got)
		}
	}
}

func TestOutOfMemoryError(t *testing.T) {
	e := &OutOfMemoryError{Requested: 3 << 30, Free: 1 << 30, Total: 80 << 30}
	err := fmt.Errorf("cuda: Alloc: %w", e)
	msg := err.Error()
	for _, want := range []string{"3.0 GiB", "1.0 GiB free", "80.0 GiB", "--batch"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if !errors.Is(err, cu.OutOfMemory) {
		t.Errorf("errors.Is(%v, cu.OutOfMemory) is false", err)
	}
	// The interface device.Backend can use without importing this package.
	var s interface{ SuggestBatch(int) int }
	if !errors.As(err, &s) {
		t.Fatal("errors.As to interface{ SuggestBatch(int) int } failed")
	}
	if got := s.SuggestBatch(4096); got != 1024 {
		t.Errorf("SuggestBatch(4096) for 3 GiB asked, 1 GiB free = %d, want 1024 (0.8*1/3*4096 = 1092 rounded down to a power of two)", got)
	}
}

func TestCuResultError(t *testing.T) {
	for _, want := range []error{cu.OutOfMemory, cu.NoDevice, cu.IllegalAddress, cu.NotFound} {
		code := reflectCode(want)
		got := cuResultError(code)
		if got != want || got.Error() != want.Error() {
			t.Errorf("cuResultError(%d) = %v, want %v", code, got, want)
		}
	}
	if err := cuResultError(0); err != nil {
		t.Errorf("cuResultError(0) = %v, want nil", err)
	}
}

func reflectCode(err error) int {
	var n int
	fmt.Sscan(fmt.Sprintf("%d", err), &n)
	return n
}

func TestFormatBytes(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {3 << 29, "1.5 GiB"}, {80 << 30, "80.0 GiB"}} {
		if got := FormatBytes(c.n); got != c.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
