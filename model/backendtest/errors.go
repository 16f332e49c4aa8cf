package backendtest

import (
	"fmt"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// foreignMat and foreignInts are handles no backend allocated.
type foreignMat struct{ r, c int }

func (m foreignMat) Rows() int { return m.r }
func (m foreignMat) Cols() int { return m.c }

type foreignInts struct{ n int }

func (v foreignInts) Len() int { return v.n }

// TestErrors checks that misuse is reported as an error, not a panic and
// not silently accepted: shape mismatches of every operation, handles the
// backend did not allocate, use after Free, invalid parameters, and labels
// outside [0, K) other than IgnoreLabel, for which EnergyLoss must also
// leave E, the statistics and the argmin untouched.
func TestErrors(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	t.Run("shapes", func(t *testing.T) { testShapeErrors(t, b) })
	t.Run("foreign", func(t *testing.T) { testForeignHandles(t, b) })
	t.Run("use-after-free", func(t *testing.T) { testUseAfterFree(t, b) })
	for _, kind := range model.LossKinds() {
		t.Run("bad-label/"+kind.String(), func(t *testing.T) { testBadLabels(t, b, kind) })
	}
}

// wantErr requires f to return an error without panicking.
func wantErr(t *testing.T, what string, f func() error) {
	t.Helper()
	if err := call(t, what, f); err == nil {
		t.Errorf("%s: got no error", what)
	}
}

func testShapeErrors(t *testing.T, b model.Backend) {
	h := newHelper(t, b)
	m := func(r, c int) model.Mat { return h.mat(r, c, h.uniform(r*c, -1, 1)) }
	a34, b45, b54, c35, c53 := m(3, 4), m(4, 5), m(5, 4), m(3, 5), m(5, 3)
	v4, r2x5 := m(1, 4), m(2, 5)

	wantErr(t, "Alloc(-1, 3)", func() error { _, err := b.Alloc(-1, 3); return err })
	wantErr(t, "Alloc(3, -1)", func() error { _, err := b.Alloc(3, -1); return err })
	wantErr(t, "AllocInts(-1)", func() error { _, err := b.AllocInts(-1); return err })
	wantErr(t, "Upload of 11 values to 3x4", func() error { return b.Upload(a34, make([]float32, 11)) })
	wantErr(t, "Upload of 13 values to 3x4", func() error { return b.Upload(a34, make([]float32, 13)) })
	wantErr(t, "Download of 3x4 into 11", func() error { return b.Download(make([]float32, 11), a34) })
	ints5 := h.ints(make([]int32, 5))
	wantErr(t, "UploadInts of 4 to 5", func() error { return b.UploadInts(ints5, make([]int32, 4)) })
	wantErr(t, "DownloadInts of 5 into 6", func() error { return b.DownloadInts(make([]int32, 6), ints5) })

	// Gemm: a 3x4 times 4x5 into 3x5 is right; each of these is not.
	must(t, "Gemm (valid shapes)", func() error { return b.Gemm(false, false, 1, a34, b45, 0, c35) })
	wantErr(t, "Gemm inner mismatch 3x4 * 5x4", func() error { return b.Gemm(false, false, 1, a34, b54, 0, c35) })
	wantErr(t, "Gemm transA inner mismatch (3x4)^T * 4x5", func() error { return b.Gemm(true, false, 1, a34, b45, 0, c35) })
	wantErr(t, "Gemm transB inner mismatch 3x4 * (4x5)^T", func() error { return b.Gemm(false, true, 1, a34, b45, 0, c35) })
	wantErr(t, "Gemm C 5x3 for a 3x5 product", func() error { return b.Gemm(false, false, 1, a34, b45, 0, c53) })
	wantErr(t, "Gemm C 3x4 for a 3x5 product", func() error { return b.Gemm(false, false, 1, a34, b45, 1, a34) })

	wantErr(t, "AddRowVector 1x4 onto 3x5", func() error { return b.AddRowVector(c35, 1, v4) })
	wantErr(t, "AddRowVector 2x5 onto 3x5", func() error { return b.AddRowVector(c35, 1, r2x5) })
	wantErr(t, "ColumnSums into 1x4 of 3x5", func() error { return b.ColumnSums(v4, 1, c35, 0) })
	wantErr(t, "ColumnSums into 2x5 of 3x5", func() error { return b.ColumnSums(r2x5, 1, c35, 0) })
	wantErr(t, "Activate with Activation(7)", func() error { return b.Activate(model.Activation(7), c35) })
	wantErr(t, "ActivationGrad with Activation(7)", func() error { return b.ActivationGrad(model.Activation(7), c35, c35) })
	wantErr(t, "ActivationGrad 3x5 grad, 5x3 out", func() error { return b.ActivationGrad(model.Tanh, c35, c53) })

	ints3 := h.ints([]int32{0, 1, 2})
	wantErr(t, "ArgminRows of 3x5 into 5", func() error { return b.ArgminRows(c35, ints5) })
	wantErr(t, "GatherRows 3 indices into 5x4", func() error { return b.GatherRows(b54, a34, ints3) })
	wantErr(t, "GatherRows 3x5 rows from 3x4", func() error { return b.GatherRows(c35, a34, ints3) })
	wantErr(t, "GatherInts 3 indices into 5", func() error { return b.GatherInts(ints5, ints5, ints3) })

	wantErr(t, "SGDStep 3x4 w, 3x5 g", func() error { return b.SGDStep(a34, c35, 0.1, 0) })
	wantErr(t, "MomentumStep 3x5 w, 3x5 g, 5x3 v", func() error { return b.MomentumStep(c35, c35, c53, 0.1, 0.9, 0) })
	wantErr(t, "AdamStep 3x5 w and g, 5x3 m", func() error { return b.AdamStep(c35, c35, c53, c35, 0.1, 0.9, 0.999, 1e-8, 0, 1) })
	wantErr(t, "AdamStep 3x5 w, g, m, 3x4 v", func() error { return b.AdamStep(c35, c35, c35, a34, 0.1, 0.9, 0.999, 1e-8, 0, 1) })
	wantErr(t, "AdamStep at t = 0", func() error { return b.AdamStep(c35, c35, m(3, 5), m(3, 5), 0.1, 0.9, 0.999, 1e-8, 0, 0) })

	// EnergyLoss on 3x5 energies: labels, stats and argmin of wrong sizes,
	// and invalid loss parameters.
	e := c35
	l := model.DefaultLoss(model.NLL)
	st := m(3, model.NumStats)
	wantErr(t, "EnergyLoss with 5 labels for 3 rows", func() error { return b.EnergyLoss(e, ints5, l, 1, st, ints3) })
	wantErr(t, "EnergyLoss with 5 argmin slots for 3 rows", func() error { return b.EnergyLoss(e, ints3, l, 1, st, ints5) })
	wantErr(t, "EnergyLoss with 3x(NumStats-1) stats", func() error { return b.EnergyLoss(e, ints3, l, 1, m(3, model.NumStats-1), ints3) })
	wantErr(t, "EnergyLoss with 5xNumStats stats", func() error { return b.EnergyLoss(e, ints3, l, 1, m(5, model.NumStats), ints3) })
	bad := l
	bad.Beta = 0
	wantErr(t, "EnergyLoss with beta = 0", func() error { return b.EnergyLoss(e, ints3, bad, 1, st, ints3) })
	bad = l
	bad.Kind = model.LossKind(99)
	wantErr(t, "EnergyLoss with LossKind(99)", func() error { return b.EnergyLoss(e, ints3, bad, 1, st, ints3) })
}

func testForeignHandles(t *testing.T, b model.Backend) {
	h := newHelper(t, b)
	fm, fi := foreignMat{3, 5}, foreignInts{3}
	good := h.mat(3, 5, h.uniform(15, -1, 1))
	goodI := h.ints([]int32{0, 1, 2})
	st := h.poisoned(3, model.NumStats)
	wantErr(t, "Upload to a foreign Mat", func() error { return b.Upload(fm, make([]float32, 15)) })
	wantErr(t, "Download from a foreign Mat", func() error { return b.Download(make([]float32, 15), fm) })
	wantErr(t, "UploadInts to foreign Ints", func() error { return b.UploadInts(fi, make([]int32, 3)) })
	wantErr(t, "Gemm with a foreign A", func() error { return b.Gemm(false, true, 1, fm, good, 0, h.poisoned(3, 3)) })
	wantErr(t, "Gemm with a foreign C", func() error { return b.Gemm(false, true, 1, good, good, 0, foreignMat{3, 3}) })
	wantErr(t, "ArgminRows into foreign Ints", func() error { return b.ArgminRows(good, fi) })
	wantErr(t, "EnergyLoss with foreign labels", func() error {
		return b.EnergyLoss(good, fi, model.DefaultLoss(model.NLL), 1, st, goodI)
	})
	wantErr(t, "SGDStep with a foreign gradient", func() error { return b.SGDStep(good, fm, 0.1, 0) })
	wantErr(t, "Free of a foreign Mat", func() error { return b.Free(fm) })
	wantErr(t, "Free of foreign Ints", func() error { return b.Free(fi) })
	wantErr(t, "Free of an int", func() error { return b.Free(42) })
	wantErr(t, "Free of a []float32", func() error { return b.Free([]float32{1}) })
}

func testUseAfterFree(t *testing.T, b model.Backend) {
	h := newHelper(t, b)
	// Allocated outside the helper, which would free them again.
	x, err := b.Alloc(3, 5)
	if err != nil {
		t.Fatalf("Alloc: %v", err)
	}
	v, err := b.AllocInts(3)
	if err != nil {
		t.Fatalf("AllocInts: %v", err)
	}
	must(t, "Free of a Mat", func() error { return b.Free(x) })
	must(t, "Free of Ints", func() error { return b.Free(v) })
	good := h.mat(3, 5, h.uniform(15, -1, 1))
	goodI := h.ints([]int32{0, 1, 2})
	wantErr(t, "Upload after Free", func() error { return b.Upload(x, make([]float32, 15)) })
	wantErr(t, "Download after Free", func() error { return b.Download(make([]float32, 15), x) })
	wantErr(t, "UploadInts after Free", func() error { return b.UploadInts(v, make([]int32, 3)) })
	wantErr(t, "DownloadInts after Free", func() error { return b.DownloadInts(make([]int32, 3), v) })
	wantErr(t, "Gemm with a freed B", func() error { return b.Gemm(false, true, 1, good, x, 0, h.poisoned(3, 3)) })
	wantErr(t, "Activate of a freed Mat", func() error { return b.Activate(model.ReLU, x) })
	wantErr(t, "ArgminRows into freed Ints", func() error { return b.ArgminRows(good, v) })
	wantErr(t, "EnergyLoss with freed labels", func() error {
		return b.EnergyLoss(good, v, model.DefaultLoss(model.NLL), 1, h.poisoned(3, model.NumStats), goodI)
	})
	wantErr(t, "GatherRows with freed indices", func() error { return b.GatherRows(h.poisoned(3, 5), good, v) })
	wantErr(t, "AdamStep with a freed moment", func() error { return b.AdamStep(good, good, x, good, 0.1, 0.9, 0.999, 1e-8, 0, 1) })
	wantErr(t, "second Free of a Mat", func() error { return b.Free(x) })
	wantErr(t, "second Free of Ints", func() error { return b.Free(v) })
}

// testBadLabels gives EnergyLoss one out-of-range label, in the last row
// (so that a backend that checks while it writes has already written the
// other rows), and requires an error and E, stats and argmin untouched.
func testBadLabels(t *testing.T, b model.Backend, kind model.LossKind) {
	const rows, k = 33, 7
	for _, bad := range []int32{k, k + 100, -2, -1000} {
		t.Run(fmt.Sprint("label=", bad), func(t *testing.T) {
			h := newHelper(t, b)
			e, labels := randomEnergies(h, rows, k, 0.2, false)
			labels[rows-1] = bad
			me := h.mat(rows, k, e)
			ml := h.ints(labels)
			st := h.poisoned(rows, model.NumStats)
			am := h.poisonedInts(rows)
			wantErr(t, fmt.Sprintf("EnergyLoss(%v) with label %d of K=%d", kind, bad, k), func() error {
				return b.EnergyLoss(me, ml, model.DefaultLoss(kind), 1, st, am)
			})
			mm := newMismatches(t, "EnergyLoss(%v) with label %d must write nothing", kind, bad)
			mm.checkBits("E", h.get(me), e, k)
			mm.checkBits("stats", h.get(st), nans(rows*model.NumStats), model.NumStats)
			poison := make([]int32, rows)
			for i := range poison {
				poison[i] = poisonInt
			}
			mm.checkInts("argmin", h.getInts(am), poison)
			mm.report()
		})
	}
}
