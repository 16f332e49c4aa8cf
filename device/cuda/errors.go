//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"reflect"

	"gorgonia.org/cu"
)

// cuResultType is cu's unexported CUresult type; its constants (cu.NoDevice,
// cu.OutOfMemory, ...) are exported and print as names.
var cuResultType = reflect.TypeOf(cu.Success)

// cuResultError turns a raw CUresult from this package's own C calls into
// the same error value cu returns, so that errors.Is(err, cu.OutOfMemory)
// holds for both and both print the same way. Success is nil.
func cuResultError(code int) error {
	if code == 0 {
		return nil
	}
	v := reflect.New(cuResultType).Elem()
	v.SetInt(int64(code))
	return v.Interface().(error)
}

// OutOfMemoryError is returned (wrapped) when an allocation does not fit in
// device memory. It records what was asked for and what was free, so a
// caller that knows its batch size can propose one that fits
// (SuggestBatch). Code that must not import this package (device.Backend is
// built without the cuda tag) finds it with
//
//	var oom interface{ SuggestBatch(batch int) int }
//	if errors.As(err, &oom) { ... oom.SuggestBatch(batch) ... }
type OutOfMemoryError struct {
	Requested int64 // bytes asked for
	Free      int64 // bytes free on the device just after the failure
	Total     int64 // bytes of device memory
}

func (e *OutOfMemoryError) Error() string {
	s := fmt.Sprintf("out of GPU memory: asked for %s with %s free of %s",
		FormatBytes(e.Requested), FormatBytes(e.Free), FormatBytes(e.Total))
	if e.Requested > 0 && e.Free < e.Requested {
		// The driver does not know the batch size; say how much smaller
		// batch-sized buffers would have to be, which the user can apply.
		s += fmt.Sprintf("; buffers that grow with the batch fit at about %.2gx the current batch size (reduce --batch)",
			fitFraction(e.Requested, e.Free))
	}
	return s
}

// Unwrap lets errors.Is(err, cu.OutOfMemory) hold.
func (e *OutOfMemoryError) Unwrap() error { return cu.OutOfMemory }

// SuggestBatch returns a batch size that would let this allocation fit when
// it was made for the given batch (see the package function SuggestBatch).
func (e *OutOfMemoryError) SuggestBatch(batch int) int {
	return SuggestBatch(batch, e.Requested, e.Free)
}

// headroom is the fraction of free memory a suggested batch may use: the
// failed allocation is rarely the last one of a step, and the driver needs
// some memory of its own.
const headroom = 0.8

func fitFraction(requested, free int64) float64 {
	if requested <= 0 {
		return 1
	}
	f := headroom * float64(max(free, 0)) / float64(requested)
	return min(f, 1)
}

// SuggestBatch returns a batch size for which an allocation that asked for
// requested bytes at batch size batch would fit in free bytes, assuming its
// size grows in proportion to the batch and leaving 20% of the free memory
// unused. The result is a power of two (batch sizes usually are, and it
// keeps the kernels' tiles full), at least 1 and at most batch. A batch that
// already fits is returned unchanged.
func SuggestBatch(batch int, requested, free int64) int {
	if batch <= 1 || requested <= 0 || float64(requested) <= headroom*float64(free) {
		return max(batch, 1)
	}
	target := int(float64(batch) * fitFraction(requested, free))
	p := 1
	for p*2 <= target {
		p *= 2
	}
	return p
}

// FormatBytes prints a byte count in binary units (KiB, MiB, GiB).
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		if v < unit && v > -unit || u == "TiB" {
			return fmt.Sprintf("%.1f %s", v, u)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// isOOM reports whether err is the driver's out-of-memory result.
func isOOM(err error) bool { return errors.Is(err, cu.OutOfMemory) }
