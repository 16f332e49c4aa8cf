//go:build !unix

package atomicfile

import "math"

// Available is unknown here: it reports no limit.
var Available = func(dir string) (int64, error) { return math.MaxInt64, nil }
