package cpu

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// Gemm computes C = alpha*op(A)*op(B) + beta*C. With beta == 0, C is only
// written, never read, so NaNs in C do not propagate: the blocked kernel
// stores alpha*AB over the first k block, gonum's Sgemm zeroes C before
// accumulating, and the alpha == 0 or k == 0 cases (no product to compute)
// zero C here. C must not be A or B.
func (b *Backend) Gemm(transA, transB bool, alpha float32, a, bm model.Mat, beta float32, c model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	A, err := b.mat(a, "Gemm A")
	if err != nil {
		return err
	}
	B, err := b.mat(bm, "Gemm B")
	if err != nil {
		return err
	}
	C, err := b.mat(c, "Gemm C")
	if err != nil {
		return err
	}
	m, n, k, err := backendcheck.GemmDims(transA, transB, A, B, C)
	if err != nil {
		return fmt.Errorf("cpu: Gemm: %w", err)
	}
	if m == 0 || n == 0 {
		return nil
	}
	b.gemm(transA, transB, m, n, k, alpha, A.data, B.data, beta, C.data)
	return nil
}

// gemm is the unchecked kernel on dense row-major slices: C (m x n) =
// alpha*op(A)*op(B) + beta*C, with op(A) m x k and op(B) k x n.
func (b *Backend) gemm(transA, transB bool, m, n, k int, alpha float32, a, bd []float32, beta float32, c []float32) {
	if alpha == 0 || k == 0 {
		scale(beta, c)
		return
	}
	if haveKernel && !b.gonumGemm {
		b.gemmBlocked(transA, transB, m, n, k, alpha, a, bd, beta, c)
		return
	}
	tA, lda := blas.NoTrans, k
	if transA {
		tA, lda = blas.Trans, m
	}
	tB, ldb := blas.NoTrans, n
	if transB {
		tB, ldb = blas.Trans, k
	}
	gonum.Implementation{}.Sgemm(tA, tB, m, n, k, alpha, a, lda, bd, ldb, beta, c, n)
}

// scale sets c = beta*c, where beta == 0 writes zeros without reading c.
func scale(beta float32, c []float32) {
	switch beta {
	case 1:
	case 0:
		clear(c)
	default:
		for i := range c {
			c[i] *= beta
		}
	}
}
