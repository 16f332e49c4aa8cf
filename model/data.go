package model

import (
	"errors"
	"fmt"
)

// Data is a labelled data set in host memory: N rows of D float32 features
// (row-major) and N labels in [0, Classes). It mirrors dataset.Set without
// importing it, so model/ stays below dataset/ in the layering.
type Data struct {
	X       []float32
	Y       []int32
	N, D    int
	Classes int
}

// Validate checks the shapes and that every label is in [0, Classes); the
// error names the first bad row.
func (d *Data) Validate() error {
	if d == nil {
		return errors.New("data: nil data set")
	}
	if d.N < 1 || d.D < 1 || d.Classes < 1 {
		return fmt.Errorf("data: need N, D, Classes >= 1, got N=%d D=%d Classes=%d", d.N, d.D, d.Classes)
	}
	if len(d.X) != d.N*d.D {
		return fmt.Errorf("data: len(X) = %d, want N*D = %d*%d = %d", len(d.X), d.N, d.D, d.N*d.D)
	}
	if len(d.Y) != d.N {
		return fmt.Errorf("data: len(Y) = %d, want N = %d", len(d.Y), d.N)
	}
	for i, y := range d.Y {
		if y < 0 || int(y) >= d.Classes {
			return fmt.Errorf("data: label %d of row %d is outside the %d classes [0, %d)", y, i, d.Classes, d.Classes)
		}
	}
	return nil
}

// Limit returns the first n rows of d (all of them when n <= 0 or n >= N),
// sharing storage with d.
func (d *Data) Limit(n int) *Data {
	if n <= 0 || n >= d.N {
		return d
	}
	return &Data{X: d.X[:n*d.D], Y: d.Y[:n], N: n, D: d.D, Classes: d.Classes}
}

// DeviceData is a Data set uploaded once to a Backend, so that batches are
// assembled there with GatherRows/GatherInts from an uploaded index vector
// and never copied through the host. It holds one extra padding row, at
// index N: all-zero features labelled IgnoreLabel. A short last batch is
// padded with it so every batch has the same shape (one set of buffers) and
// the padding contributes neither loss nor gradient.
//
// A data set that does not fit the backend's memory is streamed instead
// (Streamed is true, X and Y are nil): each batch is assembled on the host
// and uploaded, one batch at a time. Both modes give bitwise the same
// batches, so they train to the same weights.
type DeviceData struct {
	Host *Data
	X    Mat  // (N+1) x D; nil when Streamed
	Y    Ints // N+1; nil when Streamed
	// Streamed says the rows stay on the host; StreamReason says why.
	Streamed     bool
	StreamReason string
	b            Backend
}

// Pad is the index of the padding row.
func (dd *DeviceData) Pad() int32 { return int32(dd.Host.N) }

// Upload validates d and copies it to b. When b cannot allocate room for
// the whole set (a GPU smaller than the data), it returns a streamed
// DeviceData instead, whose batches are uploaded one at a time.
func Upload(b Backend, d *Data) (*DeviceData, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	x, err := b.Alloc(d.N+1, d.D)
	if err != nil {
		return streamed(b, d, fmt.Sprintf("the %dx%d data set does not fit: %v", d.N+1, d.D, err)), nil
	}
	y, err := b.AllocInts(d.N + 1)
	if err != nil {
		_ = b.Free(x)
		return streamed(b, d, fmt.Sprintf("the %d labels do not fit: %v", d.N+1, err)), nil
	}
	hx := make([]float32, (d.N+1)*d.D)
	copy(hx, d.X)
	hy := make([]int32, d.N+1)
	copy(hy, d.Y)
	hy[d.N] = IgnoreLabel
	if err := b.Upload(x, hx); err != nil {
		_ = freeAll(b, x, y)
		return nil, fmt.Errorf("uploading data: %w", err)
	}
	if err := b.UploadInts(y, hy); err != nil {
		_ = freeAll(b, x, y)
		return nil, fmt.Errorf("uploading labels: %w", err)
	}
	return &DeviceData{Host: d, X: x, Y: y, b: b}, nil
}

// UploadStreamed validates d and keeps it on the host: every batch is
// assembled there and uploaded. For data sets larger than the backend's
// memory (Upload falls back to it by itself) and for tests.
func UploadStreamed(b Backend, d *Data) (*DeviceData, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return streamed(b, d, "streaming requested"), nil
}

func streamed(b Backend, d *Data, why string) *DeviceData {
	return &DeviceData{Host: d, Streamed: true, StreamReason: why, b: b}
}

// Free releases the uploaded copy.
func (dd *DeviceData) Free() error {
	if dd == nil || dd.X == nil {
		return nil
	}
	err := freeAll(dd.b, dd.X, dd.Y)
	dd.X, dd.Y = nil, nil
	return err
}

// batcher holds the buffers of one batch size: the index vector (the only
// per-batch upload), the gathered rows and labels, and EnergyLoss's outputs.
type batcher struct {
	b       Backend
	size    int
	hostIdx []int32
	hostX   []float32 // streamed batches only
	hostY   []int32   // streamed batches only
	idx     Ints
	x       Mat
	y       Ints
	stats   Mat // size x NumStats
	argmin  Ints
	sums    Mat // 1 x NumStats: column sums of stats, so a step downloads 4 floats
}

// rowsPerStep is the batch buffer size for batch on n rows: a batch of n
// rows or more is one step over all of them, so no buffer is larger than
// the data (a --batch of 2^63-1 rows must not reach make).
func rowsPerStep(batch, n int) int { return max(min(batch, n), 1) }

func newBatcher(b Backend, size, d int) (*batcher, error) {
	bt := &batcher{b: b, size: size, hostIdx: make([]int32, size)}
	var err error
	alloc := func(r, c int) Mat {
		if err != nil {
			return nil
		}
		var m Mat
		m, err = b.Alloc(r, c)
		return m
	}
	allocInts := func(n int) Ints {
		if err != nil {
			return nil
		}
		var v Ints
		v, err = b.AllocInts(n)
		return v
	}
	bt.idx = allocInts(size)
	bt.x = alloc(size, d)
	bt.y = allocInts(size)
	bt.stats = alloc(size, NumStats)
	bt.argmin = allocInts(size)
	bt.sums = alloc(1, NumStats)
	if err != nil {
		_ = bt.free()
		return nil, fmt.Errorf("allocating batch buffers (batch %d): %w", size, err)
	}
	return bt, nil
}

// load gathers rows rows[0:len(rows)] of dd into the batch, padding the rest.
func (bt *batcher) load(dd *DeviceData, rows []int32) error {
	if dd.Streamed {
		return bt.loadStreamed(dd, rows)
	}
	n := copy(bt.hostIdx, rows)
	for i := n; i < bt.size; i++ {
		bt.hostIdx[i] = dd.Pad()
	}
	if err := bt.b.UploadInts(bt.idx, bt.hostIdx); err != nil {
		return err
	}
	if err := bt.b.GatherRows(bt.x, dd.X, bt.idx); err != nil {
		return err
	}
	return bt.b.GatherInts(bt.y, dd.Y, bt.idx)
}

// loadStreamed assembles the batch on the host and uploads it: the same
// values GatherRows would produce (the padding row is zeros labelled
// IgnoreLabel), at the cost of one host-to-device copy per batch.
func (bt *batcher) loadStreamed(dd *DeviceData, rows []int32) error {
	d := dd.Host.D
	if bt.hostX == nil {
		bt.hostX = make([]float32, bt.size*d)
		bt.hostY = make([]int32, bt.size)
	}
	for i := 0; i < bt.size; i++ {
		dst := bt.hostX[i*d : (i+1)*d]
		if i < len(rows) {
			r := int(rows[i])
			copy(dst, dd.Host.X[r*d:(r+1)*d])
			bt.hostY[i] = dd.Host.Y[r]
		} else {
			clear(dst)
			bt.hostY[i] = IgnoreLabel
		}
	}
	if err := bt.b.Upload(bt.x, bt.hostX); err != nil {
		return err
	}
	return bt.b.UploadInts(bt.y, bt.hostY)
}

func (bt *batcher) free() error {
	var xs []any
	for _, m := range []Mat{bt.x, bt.stats, bt.sums} {
		if m != nil {
			xs = append(xs, m)
		}
	}
	for _, v := range []Ints{bt.idx, bt.y, bt.argmin} {
		if v != nil {
			xs = append(xs, v)
		}
	}
	return freeAll(bt.b, xs...)
}
