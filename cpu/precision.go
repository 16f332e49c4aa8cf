package cpu

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

var _ model.PrecisionOps = (*Backend)(nil)

// GemmPrecision is Gemm with the operands rounded as p says, exactly as the
// GPU kernels round them (model.RoundTF32 is cvt.rna.tf32.f32,
// model.RoundBF16 cvt.rn.bf16): rounded copies of A and B go through the
// float32 GEMM, whose products of rounded operands are exact, so the
// results differ from a GPU's only by the order of the float32 sums.
// TF32x3 is the same split as the tensor-core kernels, three GEMMs into C:
// A_lo B_hi, then A_hi B_lo, then A_hi B_hi.
func (b *Backend) GemmPrecision(p model.Precision, transA, transB bool, alpha float32, a, bm model.Mat, beta float32, c model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("cpu: Gemm: %w", err)
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
	b.gemmPrecision(p, transA, transB, m, n, k, alpha, A.data, B.data, beta, C.data)
	return nil
}

// gemmPrecision is the unchecked kernel of GemmPrecision.
func (b *Backend) gemmPrecision(p model.Precision, transA, transB bool, m, n, k int, alpha float32, a, bd []float32, beta float32, c []float32) {
	switch p {
	case model.TF32, model.BF16:
		b.gemm(transA, transB, m, n, k, alpha, roundAll(p, a), roundAll(p, bd), beta, c)
	case model.TF32x3:
		aHi, aLo := splitAll(a)
		bHi, bLo := splitAll(bd)
		b.gemm(transA, transB, m, n, k, alpha, aLo, bHi, beta, c)
		b.gemm(transA, transB, m, n, k, alpha, aHi, bLo, 1, c)
		b.gemm(transA, transB, m, n, k, alpha, aHi, bHi, 1, c)
	default:
		b.gemm(transA, transB, m, n, k, alpha, a, bd, beta, c)
	}
}

// roundAll returns a copy of x with every element rounded as p says.
func roundAll(p model.Precision, x []float32) []float32 {
	y := make([]float32, len(x))
	switch p {
	case model.TF32:
		for i, v := range x {
			y[i] = model.RoundTF32(v)
		}
	case model.BF16:
		for i, v := range x {
			y[i] = model.RoundBF16(v)
		}
	default:
		copy(y, x)
	}
	return y
}

// splitAll returns the 3xTF32 split of every element of x.
func splitAll(x []float32) (hi, lo []float32) {
	hi, lo = make([]float32, len(x)), make([]float32, len(x))
	for i, v := range x {
		hi[i], lo[i] = model.SplitTF32(v)
	}
	return hi, lo
}
