package device

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// Launch geometry shared with kernels/gputrain.cuh.
const (
	threads      = 256 // GT_THREADS: elementwise and GEMM blocks, the largest uncached row-reduction block
	colSumCols   = 32  // GT_CS_COLS: columns per column-sum block
	partFloats   = 4   // GT_PART_F: floats per energy-loss partial
	partInts     = 2   // GT_PART_I: ints per energy-loss partial
	maxGridX     = math.MaxInt32
	maxGridY     = 65535
	maxElemBlock = 1 << 16 // default grid cap of grid-stride kernels (Options.MaxBlocks)
	maxChunks    = 1024    // most chunks of one split energy-loss row (<= maxGridY)
)

// DefaultRowChunk is the chunk length of energy-loss rows too long for one
// block: those that fit neither shared memory (the cached plans) nor
// DefaultRowChunk answers are split into chunks of this many answers,
// reduced by separate blocks and merged in a fixed order.
const DefaultRowChunk = 8192

// Options tune a Backend. The zero value gives the defaults.
type Options struct {
	// RowChunk (> 0) splits every energy-loss row longer than RowChunk
	// answers into chunks of RowChunk, whatever fits shared memory. Tests
	// set it small to run the split-row path on small matrices. 0: split
	// only rows that fit no single-block plan, in chunks of DefaultRowChunk.
	RowChunk int
	// MaxBlocks caps the grid of the grid-stride kernels (elementwise, per
	// row, column sums); 0 means 65536. Tests set it small so that the
	// kernels' loops over more work than the grid covers are exercised.
	MaxBlocks int
	// GemmTile forces one GEMM tile shape; GemmTileAuto (0) picks it by
	// problem size. Tests force each shape at awkward sizes.
	GemmTile GemmTile
	// ScalarLoads turns off the 128-bit loads and stores (GEMM, energy
	// loss, argmin) even where alignment allows them, so that tests run the
	// scalar paths on interior tiles and whole rows too.
	ScalarLoads bool
	// RowPlan forces the plan of the energy-loss rows that are not split;
	// RowPlanAuto (0) picks it by row length and shared memory.
	RowPlan RowPlan
	// ColumnSplits (> 0) forces the number of row ranges ColumnSums sums
	// separately before its fixed-order merge (1: one pass, no merge); 0
	// picks it by shape.
	ColumnSplits int
	// ChainPlan forces the plan of the chain operations' recursion
	// (chain.go); ChainPlanAuto (0) picks it by the shared memory P needs.
	ChainPlan ChainPlan
	// HeadFilter (in [0, 1)) turns on the fused energy head's gradient
	// filtering: backward tiles whose probabilities are all below it, and
	// that hold no row's label or other answer, are skipped
	// (kernels/energyhead.cu). 0, the default, is exact.
	HeadFilter float64
	// TCTile forces the tile of the tensor-core GEMMs (tensorcore.go);
	// TCTileAuto (0) picks it by shape. NoTensorCores runs every precision
	// on the SIMT kernels, as on a GPU below sm_80.
	TCTile        TCTile
	NoTensorCores bool
}

// Backend is the model.Backend for GPUs: its matrices live in a Driver's
// device memory and every operation is a kernel of package kernels. Create it
// with New; it owns the driver and closes it in Close.
type Backend struct {
	drv       Driver
	opts      Options
	maxBlocks int64 // cap of grid-stride grids
	// sharedBudget is the dynamic shared memory one block may use: the
	// driver's limit (SharedMemoryLimiter, else 48 KiB) less what the
	// kernels declare statically.
	sharedBudget int64
	// sharedLimit is the driver's whole limit (the tensor-core kernels
	// declare no static shared memory), tensorCores whether the device is
	// sm_80 or newer (CapabilityReporter).
	sharedLimit int64
	tensorCores bool
	closed      bool
	// live holds every allocation not yet freed, so Close releases them all
	// and later use of any of them is an error.
	live map[any]struct{}

	// Scratch kept for the backend's life and grown on demand: the
	// split-row partials of EnergyLoss, the row-range partials of
	// ColumnSums, the variable table and doubles of the JointOps, and a
	// flag the index checks set.
	partF, partI       Ptr
	partFCap, partICap int64 // bytes
	colPart            Ptr
	colPartCap         int64 // bytes
	joint              Ptr
	jointCap           int64 // bytes
	flag               Ptr
	// chainMem holds the chain operations' messages and per-sequence
	// results (chain.go).
	chainMem    Ptr
	chainMemCap int64 // bytes
	// scratchGen counts reallocations of the scratch buffers: a captured
	// graph that names the old ones is stale (see Capture).
	scratchGen uint64
	// head is the fused energy head's scratch (energyhead.go).
	head headScratch
}

// SharedMemoryLimiter is an optional Driver capability: the most shared
// memory, static plus dynamic, one block may use once a kernel has opted in
// (227 KiB on an H100, 163 KiB on an A100). Backend checks for it by type
// assertion; a Driver without it is held to 48 KiB, the limit without
// opting in. A driver that reports more must allow launches up to it (the
// cuda driver raises a kernel's limit with cuFuncSetAttribute as needed).
type SharedMemoryLimiter interface {
	MaxDynamicSharedBytes() int
}

// defaultSharedLimit is the shared memory of a block that has not opted in.
const defaultSharedLimit = 48 << 10

// staticSharedReserve is subtracted from the shared-memory limit for the
// static __shared__ arrays of the kernels that also take dynamic shared
// memory (gt_energy_loss_cached declares about 1.5 KiB). The emulator
// counts static plus dynamic against its limit, so a kernel that outgrew
// this reserve fails its tests.
const staticSharedReserve = 2 << 10

var _ model.Backend = (*Backend)(nil)

// Matrix is a row-major float32 matrix in device memory, owned by a Backend.
type Matrix struct {
	owner      *Backend
	rows, cols int
	ptr        Ptr // 0 for an empty matrix: nothing is allocated
	freed      bool
}

// Rows returns the number of rows.
func (m *Matrix) Rows() int { return m.rows }

// Cols returns the number of columns.
func (m *Matrix) Cols() int { return m.cols }

func (m *Matrix) shape() string { return fmt.Sprintf("%dx%d", m.rows, m.cols) }
func (m *Matrix) len() int64    { return int64(m.rows) * int64(m.cols) }

// IntVector is an int32 vector in device memory, owned by a Backend.
type IntVector struct {
	owner *Backend
	n     int
	ptr   Ptr
	freed bool
	// host is a copy of the contents when they are known on the host
	// (uploaded, or gathered from known vectors), nil otherwise. Labels and
	// batch indices usually come from the host, so checking them costs no
	// device round trip; when host is nil a kernel checks them instead.
	host []int32
	// When bounded, every element lies in [lo, hi] even where host is nil:
	// gathered on the device from a vector of known range (the labels of
	// a training step, gathered by GatherStep). Index checks use it.
	bounded bool
	lo, hi  int32
}

// setKnown records that the contents are xs (a copy the vector keeps).
func (v *IntVector) setKnown(xs []int32) {
	v.host = xs
	v.bounded, v.lo, v.hi = true, 0, -1 // empty: no element, any check passes
	for i, x := range xs {
		if i == 0 || x < v.lo {
			v.lo = x
		}
		if i == 0 || x > v.hi {
			v.hi = x
		}
	}
}

// setUnknown records that a kernel has written contents the host does not know.
func (v *IntVector) setUnknown() { v.host, v.bounded = nil, false }

// setGathered records contents gathered on the device from src: unknown
// on the host, but within src's range when that is known.
func (v *IntVector) setGathered(src *IntVector) {
	v.host = nil
	v.bounded, v.lo, v.hi = src.bounded, src.lo, src.hi
}

// Len returns the number of elements.
func (v *IntVector) Len() int { return v.n }

// New returns a Backend on drv with the default Options. The Backend owns drv
// and closes it in Close.
func New(drv Driver) (*Backend, error) { return NewWithOptions(drv, Options{}) }

// NewWithOptions returns a Backend on drv tuned by opts.
func NewWithOptions(drv Driver, opts Options) (*Backend, error) {
	if drv == nil {
		return nil, errors.New("device: New: nil driver")
	}
	if opts.RowChunk < 0 {
		return nil, fmt.Errorf("device: New: RowChunk = %d, want > 0 (or 0 for the default)", opts.RowChunk)
	}
	if opts.MaxBlocks < 0 {
		return nil, fmt.Errorf("device: New: MaxBlocks = %d, want > 0 (or 0 for the default)", opts.MaxBlocks)
	}
	if opts.GemmTile < GemmTileAuto || opts.GemmTile > GemmTile128x128 {
		return nil, fmt.Errorf("device: New: unknown GemmTile %d", int(opts.GemmTile))
	}
	if opts.RowPlan < RowPlanAuto || opts.RowPlan > RowPlanUncached {
		return nil, fmt.Errorf("device: New: unknown RowPlan %d", int(opts.RowPlan))
	}
	if opts.ColumnSplits < 0 {
		return nil, fmt.Errorf("device: New: ColumnSplits = %d, want > 0 (or 0 for automatic)", opts.ColumnSplits)
	}
	if opts.ChainPlan < ChainPlanAuto || opts.ChainPlan > ChainPlanTiled {
		return nil, fmt.Errorf("device: New: unknown ChainPlan %d", int(opts.ChainPlan))
	}
	if !(opts.HeadFilter >= 0 && opts.HeadFilter < 1) {
		return nil, fmt.Errorf("device: New: HeadFilter = %v, want a probability in [0, 1) (0: off)", opts.HeadFilter)
	}
	if opts.TCTile < TCTileAuto || opts.TCTile > TCTile128x128 {
		return nil, fmt.Errorf("device: New: unknown TCTile %d", int(opts.TCTile))
	}
	if opts.MaxBlocks == 0 {
		opts.MaxBlocks = maxElemBlock
	}
	limit := int64(defaultSharedLimit)
	if l, ok := drv.(SharedMemoryLimiter); ok {
		limit = int64(l.MaxDynamicSharedBytes())
	}
	flag, err := drv.Alloc(4)
	if err != nil {
		return nil, fmt.Errorf("device: New: allocating the check flag on %s: %w", drv.Name(), err)
	}
	return &Backend{drv: drv, opts: opts, maxBlocks: int64(opts.MaxBlocks), sharedBudget: max(0, limit-staticSharedReserve),
		sharedLimit: limit, tensorCores: tensorCores(drv), live: make(map[any]struct{}), flag: flag}, nil
}

// Name returns "device/" and the driver's name, e.g. "device/emu".
func (b *Backend) Name() string { return "device/" + b.drv.Name() }

// Driver returns the driver the backend runs on (for timing with Driver.Time).
func (b *Backend) Driver() Driver { return b.drv }

var errClosed = errors.New("device: backend is closed")

func (b *Backend) open() error {
	if b == nil || b.live == nil {
		return errors.New("device: nil or uninitialised backend (use device.New)")
	}
	if b.closed {
		return errClosed
	}
	return nil
}

// Alloc returns a rows x cols matrix with unspecified contents. A dimension of
// 0 gives an empty matrix (nothing is allocated).
func (b *Backend) Alloc(rows, cols int) (model.Mat, error) {
	if err := b.open(); err != nil {
		return nil, err
	}
	if err := backendcheck.AllocDims(rows, cols); err != nil {
		return nil, fmt.Errorf("device: Alloc(%d, %d): %w", rows, cols, err)
	}
	m := &Matrix{owner: b, rows: rows, cols: cols}
	if n := m.len(); n > 0 {
		p, err := b.drv.Alloc(4 * n)
		if err != nil {
			return nil, fmt.Errorf("device: Alloc(%d, %d): %w", rows, cols, err)
		}
		m.ptr = p
	}
	b.live[m] = struct{}{}
	return m, nil
}

// AllocInts returns an int32 vector of length n with unspecified contents.
func (b *Backend) AllocInts(n int) (model.Ints, error) {
	if err := b.open(); err != nil {
		return nil, err
	}
	if err := backendcheck.AllocLen(n); err != nil {
		return nil, fmt.Errorf("device: AllocInts(%d): %w", n, err)
	}
	v := &IntVector{owner: b, n: n}
	if n > 0 {
		p, err := b.drv.Alloc(4 * int64(n))
		if err != nil {
			return nil, fmt.Errorf("device: AllocInts(%d): %w", n, err)
		}
		v.ptr = p
	}
	b.live[v] = struct{}{}
	return v, nil
}

// mat resolves a model.Mat handle to this backend's matrix; what names the
// argument in error messages.
func (b *Backend) mat(x model.Mat, what string) (*Matrix, error) {
	m, ok := x.(*Matrix)
	switch {
	case x == nil || (ok && m == nil):
		return nil, fmt.Errorf("device: %s is nil", what)
	case !ok:
		return nil, fmt.Errorf("device: %s is a %T, not a matrix of the device backend", what, x)
	case m.owner != b:
		return nil, fmt.Errorf("device: %s belongs to another device backend", what)
	case m.freed:
		return nil, fmt.Errorf("device: %s (%s) has been freed", what, m.shape())
	}
	return m, nil
}

func (b *Backend) ints(x model.Ints, what string) (*IntVector, error) {
	v, ok := x.(*IntVector)
	switch {
	case x == nil || (ok && v == nil):
		return nil, fmt.Errorf("device: %s is nil", what)
	case !ok:
		return nil, fmt.Errorf("device: %s is a %T, not an int vector of the device backend", what, x)
	case v.owner != b:
		return nil, fmt.Errorf("device: %s belongs to another device backend", what)
	case v.freed:
		return nil, fmt.Errorf("device: %s has been freed", what)
	}
	return v, nil
}

// bytesOf views a float32 or int32 slice as bytes (GPUs are little-endian,
// like every platform Go runs this on) without copying.
func bytesOf[T float32 | int32](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s))
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
		return fmt.Errorf("device: Upload: %w", err)
	}
	if len(src) == 0 {
		return nil
	}
	if err := b.drv.CopyIn(d.ptr, bytesOf(src)); err != nil {
		return fmt.Errorf("device: Upload to %s: %w", d.shape(), err)
	}
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
		return fmt.Errorf("device: Download: %w", err)
	}
	if len(dst) == 0 {
		return nil
	}
	if err := b.drv.CopyOut(bytesOf(dst), s.ptr); err != nil {
		return fmt.Errorf("device: Download from %s: %w", s.shape(), err)
	}
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
		return fmt.Errorf("device: UploadInts: %w", err)
	}
	d.setUnknown() // until the copy has succeeded
	if len(src) > 0 {
		if err := b.drv.CopyIn(d.ptr, bytesOf(src)); err != nil {
			return fmt.Errorf("device: UploadInts of %d: %w", d.n, err)
		}
	}
	d.setKnown(append([]int32{}, src...))
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
		return fmt.Errorf("device: DownloadInts: %w", err)
	}
	if len(dst) == 0 {
		return nil
	}
	if err := b.drv.CopyOut(bytesOf(dst), s.ptr); err != nil {
		return fmt.Errorf("device: DownloadInts of %d: %w", s.n, err)
	}
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
		m.freed = true
		delete(b.live, m)
		if m.ptr != 0 {
			if err := b.drv.Free(m.ptr); err != nil {
				return fmt.Errorf("device: Free of a %s matrix: %w", m.shape(), err)
			}
		}
	case *IntVector:
		v, err := b.ints(h, "Free argument")
		if err != nil {
			return err
		}
		v.freed = true
		v.setUnknown()
		delete(b.live, v)
		if v.ptr != 0 {
			if err := b.drv.Free(v.ptr); err != nil {
				return fmt.Errorf("device: Free of an int vector of %d: %w", v.n, err)
			}
		}
	case nil:
		return errors.New("device: Free(nil)")
	default:
		return fmt.Errorf("device: Free: %T is not a handle of the device backend", x)
	}
	return nil
}

// Close frees every live allocation and the scratch buffers, then closes the
// driver. Using the backend or any of its handles afterwards is an error;
// closing twice is not.
func (b *Backend) Close() error {
	if b == nil || b.live == nil {
		return errors.New("device: nil or uninitialised backend (use device.New)")
	}
	if b.closed {
		return nil
	}
	var errs []error
	free := func(p Ptr) {
		if p != 0 {
			if err := b.drv.Free(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Graphs first: they name the memory freed below.
	for h := range b.live {
		if c, ok := h.(*capturedGraph); ok {
			errs = append(errs, c.release())
		}
	}
	for h := range b.live {
		switch h := h.(type) {
		case *Matrix:
			h.freed = true
			free(h.ptr)
		case *IntVector:
			h.freed = true
			h.setUnknown()
			free(h.ptr)
		}
	}
	for h := range b.live {
		if s, ok := h.(*stepState); ok {
			errs = append(errs, s.release())
		}
	}
	clear(b.live)
	free(b.partF)
	free(b.partI)
	free(b.colPart)
	free(b.joint)
	free(b.flag)
	for _, p := range b.head.ptrs() {
		free(*p)
		*p = 0
	}
	free(b.chainMem)
	b.partF, b.partI, b.colPart, b.joint, b.flag, b.chainMem = 0, 0, 0, 0, 0, 0
	b.closed = true
	if err := b.drv.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("device: Close: %w", err)
	}
	return nil
}
