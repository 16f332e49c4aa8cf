package cpu

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// Backend is the reference model.Backend. The zero value is not usable; call
// New or NewWithThreads.
type Backend struct {
	threads int
	closed  bool
	// live holds every allocation not yet freed, so Close can release them
	// all and later use of any of them is reported as an error.
	live map[any]struct{}

	// Packing buffers of the blocked GEMM, kept between calls: one for
	// op(B), one per goroutine for op(A).
	packB []float32
	packA [][]float32
	// headBuf is the energies tile of the fused energy head (energyhead.go).
	headBuf []float32
	// gonumGemm forces gonum's Sgemm even where the assembly kernel runs
	// (tests and benchmarks compare the two).
	gonumGemm bool
	// precBuf holds the rounded operands of GemmPrecision (precision.go).
	precBuf [4][]float32
}

var _ model.Backend = (*Backend)(nil)

// Matrix is a row-major float32 matrix owned by a Backend.
type Matrix struct {
	owner      *Backend
	rows, cols int
	data       []float32 // nil once freed
	freed      bool
}

// Rows returns the number of rows.
func (m *Matrix) Rows() int { return m.rows }

// Cols returns the number of columns.
func (m *Matrix) Cols() int { return m.cols }

func (m *Matrix) shape() string { return fmt.Sprintf("%dx%d", m.rows, m.cols) }

// IntVector is an int32 vector owned by a Backend.
type IntVector struct {
	owner *Backend
	data  []int32 // nil once freed
	freed bool
}

// Len returns the number of elements.
func (v *IntVector) Len() int { return len(v.data) }

// New returns a Backend that uses every core the Go runtime may use
// (GOMAXPROCS) for its row-parallel operations.
func New() *Backend { return NewWithThreads(runtime.GOMAXPROCS(0)) }

// NewWithThreads returns a Backend whose operations use at most n goroutines
// (n < 1 means 1). Results do not depend on n: each output element is
// computed whole by one goroutine, in the same order. (Where gonum's Sgemm is
// the GEMM, without AVX2+FMA, it sizes its own pool from GOMAXPROCS.)
func NewWithThreads(n int) *Backend {
	if n < 1 {
		n = 1
	}
	return &Backend{threads: n, live: make(map[any]struct{})}
}

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

var errClosed = errors.New("cpu: backend is closed")

func (b *Backend) open() error {
	if b == nil || b.live == nil {
		return errors.New("cpu: nil or uninitialised backend (use cpu.New)")
	}
	if b.closed {
		return errClosed
	}
	return nil
}

// Alloc returns a rows x cols matrix. Its contents are unspecified (in fact
// zero). A dimension of 0 is allowed (an empty matrix); negative ones are not.
func (b *Backend) Alloc(rows, cols int) (model.Mat, error) {
	if err := b.open(); err != nil {
		return nil, err
	}
	if err := backendcheck.AllocDims(rows, cols); err != nil {
		return nil, fmt.Errorf("cpu: Alloc(%d, %d): %w", rows, cols, err)
	}
	m := &Matrix{owner: b, rows: rows, cols: cols, data: make([]float32, rows*cols)}
	b.live[m] = struct{}{}
	return m, nil
}

// AllocInts returns an int32 vector of length n.
func (b *Backend) AllocInts(n int) (model.Ints, error) {
	if err := b.open(); err != nil {
		return nil, err
	}
	if err := backendcheck.AllocLen(n); err != nil {
		return nil, fmt.Errorf("cpu: AllocInts(%d): %w", n, err)
	}
	v := &IntVector{owner: b, data: make([]int32, n)}
	b.live[v] = struct{}{}
	return v, nil
}

// mat resolves a model.Mat handle to this backend's matrix. what names the
// argument in error messages.
func (b *Backend) mat(x model.Mat, what string) (*Matrix, error) {
	m, ok := x.(*Matrix)
	switch {
	case x == nil || (ok && m == nil):
		return nil, fmt.Errorf("cpu: %s is nil", what)
	case !ok:
		return nil, fmt.Errorf("cpu: %s is a %T, not a matrix of the cpu backend", what, x)
	case m.owner != b:
		return nil, fmt.Errorf("cpu: %s belongs to another cpu backend", what)
	case m.freed:
		return nil, fmt.Errorf("cpu: %s (%s) has been freed", what, m.shape())
	}
	return m, nil
}

func (b *Backend) ints(x model.Ints, what string) (*IntVector, error) {
	v, ok := x.(*IntVector)
	switch {
	case x == nil || (ok && v == nil):
		return nil, fmt.Errorf("cpu: %s is nil", what)
	case !ok:
		return nil, fmt.Errorf("cpu: %s is a %T, not an int vector of the cpu backend", what, x)
	case v.owner != b:
		return nil, fmt.Errorf("cpu: %s belongs to another cpu backend", what)
	case v.freed:
		return nil, fmt.Errorf("cpu: %s has been freed", what)
	}
	return v, nil
}

// Upload copies src into dst.
func (b *Backend) Upload(dst model.Mat, src []float32) error {
	if err := b.open(); err != nil {
		return err
	}
	d, err := b.mat(dst, "Upload dst")
	if err != nil {
		return err
	}
	if err := backendcheck.MatLen("src", len(src), "dst", d); err != nil {
		return fmt.Errorf("cpu: Upload: %w", err)
	}
	copy(d.data, src)
	return nil
}

// Download copies src into dst.
func (b *Backend) Download(dst []float32, src model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	s, err := b.mat(src, "Download src")
	if err != nil {
		return err
	}
	if err := backendcheck.MatLen("dst", len(dst), "src", s); err != nil {
		return fmt.Errorf("cpu: Download: %w", err)
	}
	copy(dst, s.data)
	return nil
}

// UploadInts copies src into dst.
func (b *Backend) UploadInts(dst model.Ints, src []int32) error {
	if err := b.open(); err != nil {
		return err
	}
	d, err := b.ints(dst, "UploadInts dst")
	if err != nil {
		return err
	}
	if err := backendcheck.IntsLen("src", len(src), "dst", d); err != nil {
		return fmt.Errorf("cpu: UploadInts: %w", err)
	}
	copy(d.data, src)
	return nil
}

// DownloadInts copies src into dst.
func (b *Backend) DownloadInts(dst []int32, src model.Ints) error {
	if err := b.open(); err != nil {
		return err
	}
	s, err := b.ints(src, "DownloadInts src")
	if err != nil {
		return err
	}
	if err := backendcheck.IntsLen("dst", len(dst), "src", s); err != nil {
		return fmt.Errorf("cpu: DownloadInts: %w", err)
	}
	copy(dst, s.data)
	return nil
}

// Free releases a *Matrix or an *IntVector of this backend.
func (b *Backend) Free(x any) error {
	if err := b.open(); err != nil {
		return err
	}
	switch h := x.(type) {
	case *Matrix:
		m, err := b.mat(h, "Free argument")
		if err != nil {
			return err
		}
		m.freed, m.data = true, nil
		delete(b.live, m)
	case *IntVector:
		v, err := b.ints(h, "Free argument")
		if err != nil {
			return err
		}
		v.freed, v.data = true, nil
		delete(b.live, v)
	case nil:
		return errors.New("cpu: Free(nil)")
	default:
		return fmt.Errorf("cpu: Free: %T is not a handle of the cpu backend", x)
	}
	return nil
}

// Close frees every live allocation. Using the backend or any of its handles
// afterwards is an error; closing twice is not.
func (b *Backend) Close() error {
	if b == nil || b.live == nil {
		return errors.New("cpu: nil or uninitialised backend (use cpu.New)")
	}
	for h := range b.live {
		switch h := h.(type) {
		case *Matrix:
			h.freed, h.data = true, nil
		case *IntVector:
			h.freed, h.data = true, nil
		}
	}
	clear(b.live)
	b.closed = true
	return nil
}
