package backendcheck

import (
	"errors"
	"fmt"
	"math"
	"reflect"

	"github.com/gputrain/gputrain/model"
)

// Every Backend checks the same shapes, lengths and aliasing before it does
// any work, and both backends must reject the same misuse with the same
// words, so the checks live here, once. They see operands only through
// model.Mat.Rows/Cols and model.Ints.Len (and interface identity for
// aliasing), so a backend first resolves its own handles (nil, foreign, freed) and then
// calls these with them. The errors carry no backend or operation prefix:
// the caller wraps them, e.g. fmt.Errorf("cpu: Gemm: %w", err). Arguments
// must not be nil interfaces.

// MaxElems bounds the elements of one allocation, so that rows*cols cannot
// overflow int and a typo in a size is an error rather than an attempt to
// take the whole machine.
const MaxElems = math.MaxInt32 * 4

// Shape formats a matrix's shape as "rows x cols" without spaces: "3x4".
func Shape(m model.Mat) string { return fmt.Sprintf("%dx%d", m.Rows(), m.Cols()) }

// AllocDims checks the dimensions of Backend.Alloc: none negative and
// at most MaxElems elements. A dimension of 0 (an empty matrix) is allowed.
func AllocDims(rows, cols int) error {
	if rows < 0 || cols < 0 {
		return errors.New("negative dimension")
	}
	if cols != 0 && rows > MaxElems/cols {
		return errors.New("too large")
	}
	return nil
}

// AllocLen checks the length of Backend.AllocInts: in [0, MaxElems].
func AllocLen(n int) error {
	if n < 0 || n > MaxElems {
		return errors.New("invalid length")
	}
	return nil
}

// MatLen checks that a host slice of n elements, named host, matches
// the elements of the matrix named dev (Upload, Download).
func MatLen(host string, n int, dev string, m model.Mat) error {
	if want := m.Rows() * m.Cols(); n != want {
		return fmt.Errorf("%s has %d elements, %s is %s (%d)", host, n, dev, Shape(m), want)
	}
	return nil
}

// IntsLen checks that a host slice of n elements, named host, matches
// the length of the vector named dev (UploadInts, DownloadInts).
func IntsLen(host string, n int, dev string, v model.Ints) error {
	if n != v.Len() {
		return fmt.Errorf("%s has %d elements, %s has %d", host, n, dev, v.Len())
	}
	return nil
}

// sameHandle reports whether two handles are the same object. Handles are
// compared as interface values; a handle of a type Go cannot compare (which
// would make == panic) is never the same as another.
func sameHandle(x, y any) bool {
	t := reflect.TypeOf(x)
	return t != nil && t == reflect.TypeOf(y) && t.Comparable() && x == y
}

// Distinct reports an error when two of ms are the same matrix. The
// operations read one operand while writing another, so aliasing would
// silently give wrong results.
func Distinct(ms ...model.Mat) error {
	for i := range ms {
		for j := i + 1; j < len(ms); j++ {
			if sameHandle(ms[i], ms[j]) {
				return fmt.Errorf("the same %s matrix is passed as two operands that must be distinct", Shape(ms[i]))
			}
		}
	}
	return nil
}

// SameShape checks that every matrix of ms has the shape of ms[0];
// names[i] names ms[i] in the error ("g is 2x3 but w is 3x3"). names must be
// as long as ms.
func SameShape(names []string, ms ...model.Mat) error {
	if len(names) != len(ms) {
		return fmt.Errorf("SameShape: %d names for %d matrices", len(names), len(ms))
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].Rows() != ms[0].Rows() || ms[i].Cols() != ms[0].Cols() {
			return fmt.Errorf("%s is %s but %s is %s", names[i], Shape(ms[i]), names[0], Shape(ms[0]))
		}
	}
	return nil
}

// RowVector checks that v (named vName) is a 1 x cols row vector
// matching the columns of m (named mName): the vector of AddRowVector, the
// destination of ColumnSums.
func RowVector(vName string, v model.Mat, mName string, m model.Mat) error {
	if v.Rows() != 1 || v.Cols() != m.Cols() {
		return fmt.Errorf("%s is %s, want 1x%d to match %s %s", vName, Shape(v), m.Cols(), mName, Shape(m))
	}
	return nil
}

// GemmDims checks the operands of Backend.Gemm and returns the dimensions of
// the product: op(A) is m x k, op(B) is k x n and C must be m x n, and C
// must be neither A nor B.
func GemmDims(transA, transB bool, a, b, c model.Mat) (m, n, k int, err error) {
	m, k = a.Rows(), a.Cols()
	if transA {
		m, k = k, m
	}
	kb, n := b.Rows(), b.Cols()
	if transB {
		kb, n = n, kb
	}
	if k != kb || c.Rows() != m || c.Cols() != n {
		return 0, 0, 0, fmt.Errorf("shapes do not match: op(A) %dx%d (A %s, transA=%v) * op(B) %dx%d (B %s, transB=%v) -> C %s",
			m, k, Shape(a), transA, kb, n, Shape(b), transB, Shape(c))
	}
	if sameHandle(c, a) || sameHandle(c, b) {
		return 0, 0, 0, fmt.Errorf("C (%s) must not be the same matrix as A or B", Shape(c))
	}
	return m, n, k, nil
}

// ArgminShapes checks the operands of Backend.ArgminRows: out has one
// element per row of e, and e has columns unless it has no rows.
func ArgminShapes(e model.Mat, out model.Ints) error {
	if out.Len() != e.Rows() {
		return fmt.Errorf("out has length %d, want %d (the rows of e %s)", out.Len(), e.Rows(), Shape(e))
	}
	if e.Cols() == 0 && e.Rows() > 0 {
		return fmt.Errorf("e %s has no columns", Shape(e))
	}
	return nil
}

// EnergyLossShapes checks the operands of Backend.EnergyLoss for
// energies e (B x K): K > 0 unless B == 0, labels and argmin of length B and
// different vectors, stats B x model.NumStats and not e itself. The labels' values
// are checked separately (FirstBadIndex, LabelError), since a backend may
// hold them on the host or only on the device.
func EnergyLossShapes(e model.Mat, labels model.Ints, stats model.Mat, argmin model.Ints) error {
	B, K := e.Rows(), e.Cols()
	switch {
	case K == 0 && B > 0:
		return fmt.Errorf("energies %s have no answers (K = 0)", Shape(e))
	case labels.Len() != B:
		return fmt.Errorf("labels have length %d, want %d (the rows of e %s)", labels.Len(), B, Shape(e))
	case stats.Rows() != B || stats.Cols() != model.NumStats:
		return fmt.Errorf("stats is %s, want %dx%d", Shape(stats), B, model.NumStats)
	case argmin.Len() != B:
		return fmt.Errorf("argmin has length %d, want %d (the rows of e %s)", argmin.Len(), B, Shape(e))
	case sameHandle(labels, argmin):
		return errors.New("labels and argmin must be different vectors")
	}
	return Distinct(e, stats)
}

// GatherRowsShapes checks the operands of Backend.GatherRows: dst is
// len(idx) x the columns of src, and not src itself. The indices' values are
// checked separately (FirstBadIndex, RowIndexError).
func GatherRowsShapes(dst, src model.Mat, idx model.Ints) error {
	if dst.Rows() != idx.Len() || dst.Cols() != src.Cols() {
		return fmt.Errorf("dst is %s, want %dx%d (len(idx) x the columns of src %s)", Shape(dst), idx.Len(), src.Cols(), Shape(src))
	}
	return Distinct(dst, src)
}

// GatherIntsShapes checks the operands of Backend.GatherInts: dst as
// long as idx and neither src nor idx. The indices' values are checked
// separately (FirstBadIndex, IntIndexError).
func GatherIntsShapes(dst, src, idx model.Ints) error {
	if dst.Len() != idx.Len() {
		return fmt.Errorf("dst has length %d, idx has %d", dst.Len(), idx.Len())
	}
	if sameHandle(dst, src) || sameHandle(dst, idx) {
		return errors.New("dst must not be the same vector as src or idx")
	}
	return nil
}

// FirstBadIndex returns the position of the first element of xs outside
// [0, hi), model.IgnoreLabel excepted when allowIgnore, and whether there is one.
func FirstBadIndex(xs []int32, hi int, allowIgnore bool) (pos int, found bool) {
	for i, x := range xs {
		if (x < 0 || int(x) >= hi) && !(allowIgnore && x == model.IgnoreLabel) {
			return i, true
		}
	}
	return 0, false
}

// RowIndexError reports idx[pos] = value outside the rows of src (GatherRows).
func RowIndexError(pos int, value int32, src model.Mat) error {
	return fmt.Errorf("idx[%d] = %d is outside [0, %d) (the rows of src %s)", pos, value, src.Rows(), Shape(src))
}

// IntIndexError reports idx[pos] = value outside a src vector of length n
// (GatherInts).
func IntIndexError(pos int, value int32, n int) error {
	return fmt.Errorf("idx[%d] = %d is outside [0, %d) (the length of src)", pos, value, n)
}

// LabelError reports label value of row pos outside [0, k) and not
// model.IgnoreLabel (EnergyLoss over k answers).
func LabelError(pos int, value int32, k int) error {
	return fmt.Errorf("label %d of row %d is outside [0, %d) and is not model.IgnoreLabel (%d)", value, pos, k, model.IgnoreLabel)
}

// AdamParams checks the scalars of Backend.AdamStep: step t >= 1,
// beta1 and beta2 in [0, 1) and eps >= 0 (NaN fails every test).
func AdamParams(beta1, beta2, eps float32, t int) error {
	switch {
	case t < 1:
		return fmt.Errorf("step t = %d, want t >= 1", t)
	case !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1):
		return fmt.Errorf("beta1 = %v and beta2 = %v must be in [0, 1)", beta1, beta2)
	case !(eps >= 0):
		return fmt.Errorf("eps = %v, want eps >= 0", eps)
	}
	return nil
}

// JointEnergiesShapes checks the operands of JointOps.JointEnergies
// for vars: s is B x sumK, e B x J, p (nil allowed) 1 x sumP, and e is
// neither s nor p. Like the other checks its error has no backend
// prefix; operands are resolved handles (p a nil interface when absent).
func JointEnergiesShapes(s, p model.Mat, vars []int, e model.Mat) error {
	_, sumK, _, sumP, err := model.JointLayout(vars)
	if err != nil {
		return err
	}
	j, _ := model.JointStates(vars)
	if s.Cols() != sumK || e.Rows() != s.Rows() || e.Cols() != j {
		return fmt.Errorf("s is %s and e %s, want Bx%d and Bx%d for vars %v", Shape(s), Shape(e), sumK, j, vars)
	}
	if p == nil {
		return Distinct(s, e)
	}
	if p.Rows() != 1 || p.Cols() != sumP {
		return fmt.Errorf("p is %s, want 1x%d for vars %v", Shape(p), sumP, vars)
	}
	return Distinct(s, e, p)
}

// JointGradientsShapes checks the operands of JointOps.JointGradients
// for vars: de is B x J, ds B x sumK, dp (nil allowed) 1 x sumP, all
// distinct.
func JointGradientsShapes(de model.Mat, vars []int, ds, dp model.Mat) error {
	_, sumK, _, sumP, err := model.JointLayout(vars)
	if err != nil {
		return err
	}
	j, _ := model.JointStates(vars)
	if de.Cols() != j || ds.Rows() != de.Rows() || ds.Cols() != sumK {
		return fmt.Errorf("de is %s and ds %s, want Bx%d and Bx%d for vars %v", Shape(de), Shape(ds), j, sumK, vars)
	}
	if dp == nil {
		return Distinct(de, ds)
	}
	if dp.Rows() != 1 || dp.Cols() != sumP {
		return fmt.Errorf("dp is %s, want 1x%d for vars %v", Shape(dp), sumP, vars)
	}
	return Distinct(de, ds, dp)
}
