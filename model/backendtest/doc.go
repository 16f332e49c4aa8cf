// Package backendtest is the conformance suite every model.Backend must pass,
// in the style of gonum's blas/testblas: an exported test helper that a
// backend's own tests call with a constructor,
//
//	func TestConformance(t *testing.T) {
//		backendtest.TestBackend(t, func(t *testing.T) model.Backend {
//			b, err := mybackend.New()
//			if err != nil {
//				t.Fatal(err)
//			}
//			return b
//		})
//	}
//
// The suite owns every backend it gets: it closes it (and reports the error
// of Close) when the subtest that asked for it ends, so the constructor must
// not close it too.
//
// Every operation is compared with a naive float64 reference written in this
// package independently of any backend (plain loops, a two-pass log-sum-exp,
// the formulas of model/loss.go), on fresh seeded random inputs of awkward
// sizes, with outputs poisoned with NaN before the call so that elements a
// backend forgets to write show up. Tolerances are derived from float32's
// unit roundoff and the length of the reduction behind each output (see
// tolerance.go); where the float64 reference is outside float32's range the
// expected value is float32(reference), e.g. +Inf.
//
// The package imports no backend, so that cpu, device+emu and device+cuda
// all run the same, unchanged suite.
package backendtest
