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
		ra, rb := b.scratch(0, len(a)), b.scratch(1, len(bd))
		b.roundInto(p, ra, a)
		b.roundInto(p, rb, bd)
		b.gemm(transA, transB, m, n, k, alpha, ra, rb, beta, c)
	case model.TF32x3:
		aHi, aLo := b.scratch(0, len(a)), b.scratch(2, len(a))
		bHi, bLo := b.scratch(1, len(bd)), b.scratch(3, len(bd))
		b.splitInto(aHi, aLo, a)
		b.splitInto(bHi, bLo, bd)
		b.gemm(transA, transB, m, n, k, alpha, aLo, bHi, beta, c)
		b.gemm(transA, transB, m, n, k, alpha, aHi, bLo, 1, c)
		b.gemm(transA, transB, m, n, k, alpha, aHi, bHi, 1, c)
	default:
		b.gemm(transA, transB, m, n, k, alpha, a, bd, beta, c)
	}
}

// scratch returns the backend's i-th rounding buffer, at least n long
// (kept between calls, like the GEMM's packing buffers).
func (b *Backend) scratch(i, n int) []float32 {
	if len(b.precBuf[i]) < n {
		b.precBuf[i] = make([]float32, n)
	}
	return b.precBuf[i][:n]
}

// roundInto sets dst to src rounded as p says, in parallel chunks.
func (b *Backend) roundInto(p model.Precision, dst, src []float32) {
	b.parallelRows(len(src), elemChunk, func(lo, hi int) {
		d, s := dst[lo:hi], src[lo:hi]
		if p == model.TF32 {
			for i, v := range s {
				d[i] = model.RoundTF32(v)
			}
		} else {
			for i, v := range s {
				d[i] = model.RoundBF16(v)
			}
		}
	})
}

// splitInto sets hi, lo to the 3xTF32 split of src, in parallel chunks.
func (b *Backend) splitInto(hi, lo, src []float32) {
	b.parallelRows(len(src), elemChunk, func(l, h int) {
		for i := l; i < h; i++ {
			hi[i], lo[i] = model.SplitTF32(src[i])
		}
	})
}
