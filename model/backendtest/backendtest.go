package backendtest

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// TestBackend runs the whole conformance suite against the backends that
// newBackend returns: a fresh one per operation (per loss kind for
// EnergyLoss), which the suite closes itself, reporting Close's error, when
// that subtest ends. newBackend fails t if it cannot make one.
//
// Under -short the few large cases are skipped (see skipIfBig).
func TestBackend(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	TestBackendWith(t, newBackend, Options{})
}

// Options narrow what TestBackendWith runs, for a backend that the caller
// also runs under TestBackend in another configuration (an emulated device
// in a second thread order, say), where repeating the slowest cases adds
// time but no coverage.
type Options struct {
	// SkipHugeHeadPrecision narrows TestEnergyHeadPrecision to NLL and
	// skips its 65537-answer cases (as -short does):
	// TestEnergyHeadPrecisionSizes(huge = false).
	SkipHugeHeadPrecision bool
}

// TestBackendWith is TestBackend narrowed by o.
func TestBackendWith(t *testing.T, newBackend func(t *testing.T) model.Backend, o Options) {
	t.Run("UploadDownload", func(t *testing.T) { TestUploadDownload(t, newBackend) })
	t.Run("Gemm", func(t *testing.T) { TestGemm(t, newBackend) })
	t.Run("AddRowVector", func(t *testing.T) { TestAddRowVector(t, newBackend) })
	t.Run("ColumnSums", func(t *testing.T) { TestColumnSums(t, newBackend) })
	t.Run("Activation", func(t *testing.T) { TestActivation(t, newBackend) })
	t.Run("ArgminRows", func(t *testing.T) { TestArgminRows(t, newBackend) })
	t.Run("Gather", func(t *testing.T) { TestGather(t, newBackend) })
	t.Run("Optimizers", func(t *testing.T) { TestOptimizers(t, newBackend) })
	t.Run("EnergyLoss", func(t *testing.T) { TestEnergyLoss(t, newBackend) })
	t.Run("Errors", func(t *testing.T) { TestErrors(t, newBackend) })
	t.Run("JointOps", func(t *testing.T) { TestJointOps(t, newBackend) })
	t.Run("ChainOps", func(t *testing.T) { TestChainOps(t, newBackend) })
	t.Run("StepOps", func(t *testing.T) { TestStepOps(t, newBackend) })
	t.Run("EnergyHead", func(t *testing.T) { TestEnergyHead(t, newBackend) })
	t.Run("EnergyHeadPrecision", func(t *testing.T) {
		TestEnergyHeadPrecisionSizes(t, newBackend, !o.SkipHugeHeadPrecision)
	})
	t.Run("Embedding", func(t *testing.T) { TestEmbedding(t, newBackend) })
	t.Run("Sampled", func(t *testing.T) { TestSampled(t, newBackend) })
	t.Run("GemmPrecision", func(t *testing.T) { TestGemmPrecision(t, newBackend) })
	t.Run("DenseOps", func(t *testing.T) { TestDenseOps(t, newBackend) })
}

// open returns a backend from newBackend that is closed, with its error
// reported, when t ends.
func open(t *testing.T, newBackend func(t *testing.T) model.Backend) model.Backend {
	t.Helper()
	b := newBackend(t)
	if b == nil {
		t.Fatal("newBackend returned a nil backend")
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("%s: Close: %v", b.Name(), err)
		}
	})
	return b
}

// newRand returns a generator seeded from the test's name, so that every
// subtest has its own inputs, and the same ones run after run.
func newRand(t *testing.T) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	return rand.New(rand.NewPCG(0x6770757472616e, h.Sum64()))
}

// skipIfBig skips, under -short, one of the few large cases (B=257 x
// K=1000 energies, the 1000-row GEMM): on an emulated device they take most
// of the suite's time, and the smaller cases cover the same code paths.
func skipIfBig(t *testing.T, big bool) {
	t.Helper()
	if testing.Short() && big {
		t.Skip("-short: a large case; the smaller ones cover the same code paths")
	}
}

// poisonInt is what Ints outputs hold before a call: out of range for any
// index, so an element left unwritten shows.
const poisonInt = -999_999

// helper allocates backend data for one (sub)test, fails it on any error,
// and frees what it allocated when the test ends.
type helper struct {
	t   *testing.T
	b   model.Backend
	rng *rand.Rand
}

func newHelper(t *testing.T, b model.Backend) *helper {
	return &helper{t: t, b: b, rng: newRand(t)}
}

func (h *helper) track(x any) {
	h.t.Cleanup(func() {
		if err := h.b.Free(x); err != nil {
			h.t.Errorf("Free: %v", err)
		}
	})
}

// mat allocates a rows x cols matrix holding data.
func (h *helper) mat(rows, cols int, data []float32) model.Mat {
	h.t.Helper()
	m, err := h.b.Alloc(rows, cols)
	if err != nil {
		h.t.Fatalf("Alloc(%d, %d): %v", rows, cols, err)
	}
	h.track(m)
	if m.Rows() != rows || m.Cols() != cols {
		h.t.Fatalf("Alloc(%d, %d) returned a %dx%d matrix", rows, cols, m.Rows(), m.Cols())
	}
	if err := h.b.Upload(m, data); err != nil {
		h.t.Fatalf("Upload to %dx%d: %v", rows, cols, err)
	}
	return m
}

// poisoned allocates a rows x cols matrix full of NaN.
func (h *helper) poisoned(rows, cols int) model.Mat {
	h.t.Helper()
	return h.mat(rows, cols, nans(rows*cols))
}

// get downloads m.
func (h *helper) get(m model.Mat) []float32 {
	h.t.Helper()
	out := make([]float32, m.Rows()*m.Cols())
	if err := h.b.Download(out, m); err != nil {
		h.t.Fatalf("Download of %dx%d: %v", m.Rows(), m.Cols(), err)
	}
	return out
}

// ints allocates an int vector holding data.
func (h *helper) ints(data []int32) model.Ints {
	h.t.Helper()
	v, err := h.b.AllocInts(len(data))
	if err != nil {
		h.t.Fatalf("AllocInts(%d): %v", len(data), err)
	}
	h.track(v)
	if v.Len() != len(data) {
		h.t.Fatalf("AllocInts(%d) returned length %d", len(data), v.Len())
	}
	if err := h.b.UploadInts(v, data); err != nil {
		h.t.Fatalf("UploadInts of %d: %v", len(data), err)
	}
	return v
}

// poisonedInts allocates n ints holding poisonInt.
func (h *helper) poisonedInts(n int) model.Ints {
	h.t.Helper()
	p := make([]int32, n)
	for i := range p {
		p[i] = poisonInt
	}
	return h.ints(p)
}

func (h *helper) getInts(v model.Ints) []int32 {
	h.t.Helper()
	out := make([]int32, v.Len())
	if err := h.b.DownloadInts(out, v); err != nil {
		h.t.Fatalf("DownloadInts of %d: %v", v.Len(), err)
	}
	return out
}

// uniform returns n float32s uniform in [lo, hi).
func (h *helper) uniform(n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*h.rng.Float64())
	}
	return x
}

func nans(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	return x
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// mismatches collects the elements that differ from the reference and
// reports the first few, so that one broken kernel does not print a
// million lines.
type mismatches struct {
	t     *testing.T
	what  string
	n     int
	lines []string
}

const maxReported = 6

func newMismatches(t *testing.T, format string, args ...any) *mismatches {
	return &mismatches{t: t, what: fmt.Sprintf(format, args...)}
}

func (m *mismatches) add(format string, args ...any) {
	m.n++
	if len(m.lines) < maxReported {
		m.lines = append(m.lines, fmt.Sprintf(format, args...))
	}
}

// check compares got[i] with want[i] within tol[i] (tol may be nil for
// exact comparisons); cols > 0 reports indices as [row,col].
func (m *mismatches) check(name string, got []float32, want, tol []float64, cols int) {
	for i := range want {
		tl := 0.0
		if tol != nil {
			tl = tol[i]
		}
		if math.IsNaN(tl) || tl < 0 {
			m.add("%s%s: the suite's own tolerance is %v (a bug in backendtest)", name, index(i, cols), tl)
			continue
		}
		if !close32(got[i], want[i], tl) {
			m.add("%s%s = %v, want %v (float32 %v) within %.3g", name, index(i, cols), got[i], want[i], float32(want[i]), tl)
		}
	}
}

// checkBits requires got and want to be bitwise identical.
func (m *mismatches) checkBits(name string, got, want []float32, cols int) {
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			m.add("%s%s = %v (%#08x), want %v (%#08x)", name, index(i, cols), got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

func (m *mismatches) checkInts(name string, got, want []int32) {
	for i := range want {
		if got[i] != want[i] {
			m.add("%s[%d] = %d, want %d", name, i, got[i], want[i])
		}
	}
}

// report fails the test if anything was added.
func (m *mismatches) report() {
	m.t.Helper()
	if m.n == 0 {
		return
	}
	more := ""
	if m.n > len(m.lines) {
		more = fmt.Sprintf("\n\t... and %d more", m.n-len(m.lines))
	}
	m.t.Errorf("%s: %d mismatches:\n\t%s%s", m.what, m.n, strings.Join(m.lines, "\n\t"), more)
}

func index(i, cols int) string {
	if cols <= 0 {
		return fmt.Sprintf("[%d]", i)
	}
	return fmt.Sprintf("[%d,%d]", i/cols, i%cols)
}

// call runs f, turning a panic into a test failure that says which call
// panicked, so that one panicking operation does not hide the rest of the
// suite. It returns f's error.
func call(t *testing.T, what string, f func() error) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("%s panicked: %v", what, p)
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f()
}

// must runs f through call and fails the test now on an error.
func must(t *testing.T, what string, f func() error) {
	t.Helper()
	if err := call(t, what, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
