package device

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// GemmTile is the shape of the tile of C one SIMT GEMM block computes (see
// kernels/gemm.cu). The zero value, GemmTileAuto, picks it by problem size.
type GemmTile int

const (
	GemmTileAuto    GemmTile = iota
	GemmTile64x64            // 4 x 4 outputs per thread, BK = 16: small products
	GemmTile128x64           // 8 x 4 outputs per thread, BK = 16
	GemmTile128x128          // 8 x 8 outputs per thread, BK = 8: large products
)

func (t GemmTile) String() string {
	switch t {
	case GemmTileAuto:
		return "auto"
	case GemmTile64x64:
		return "64x64"
	case GemmTile128x64:
		return "128x64"
	case GemmTile128x128:
		return "128x128"
	}
	return fmt.Sprintf("GemmTile(%d)", int(t))
}

// dims returns the rows and columns of C of one tile.
func (t GemmTile) dims() (bm, bn int64) {
	switch t {
	case GemmTile128x64:
		return 128, 64
	case GemmTile128x128:
		return 128, 128
	}
	return 64, 64
}

// suffix completes a kernel name: gt_gemm_nn, gt_gemm_nn_128x64, ...
func (t GemmTile) suffix() string {
	switch t {
	case GemmTile128x64:
		return "_128x64"
	case GemmTile128x128:
		return "_128x128"
	}
	return ""
}

// gemmMinBlocks is the fewest blocks a large tile must give for Gemm to
// choose it: about one per SM of an H100 (132 SMs) or an A100 (108). With
// fewer, smaller tiles keep more SMs busy, which matters more than the
// larger tile's better ratio of FMAs to loads.
const gemmMinBlocks = 128

// Bits of the GEMM kernels' flags argument (kernels/gemm_epilogue.cuh).
const (
	gemmVecA      = 1
	gemmVecB      = 2
	gemmVecC      = 4
	gemmRoundTF32 = 8  // SIMT kernels: round operands to TF32 (cvt.rna)
	gemmRoundBF16 = 16 // SIMT kernels: round operands to bfloat16 (cvt.rn)
	epiBias       = 32
	epiReLU       = 64
	epiTanh       = 128
	epiDReLU      = 256
	epiDTanh      = 512
	epiColSum     = 1024
)

// gemmTile picks the SIMT tile shape for an m x n product.
func (b *Backend) gemmTile(m, n int64) GemmTile {
	if b.opts.GemmTile != GemmTileAuto {
		return b.opts.GemmTile
	}
	blocks := func(t GemmTile) int64 {
		bm, bn := t.dims()
		return ceilDiv(m, bm) * ceilDiv(n, bn)
	}
	switch {
	case m >= 128 && n >= 128 && blocks(GemmTile128x128) >= gemmMinBlocks:
		return GemmTile128x128
	case m >= 128 && n >= 64 && blocks(GemmTile128x64) >= gemmMinBlocks:
		return GemmTile128x64
	}
	return GemmTile64x64
}

// vec4 reports whether a matrix may be accessed 128 bits at a time: its base
// is 16-byte aligned and its row stride (cols) a multiple of 4 floats, so
// every group of 4 floats starting at a multiple of 4 within a row is
// aligned. Options.ScalarLoads turns all such accesses off.
func (b *Backend) vec4(m *Matrix) bool {
	return !b.opts.ScalarLoads && m.ptr%16 == 0 && m.cols%4 == 0
}

// epilogue is what a GEMM launch fuses after the product
// (kernels/gemm_epilogue.cuh): flags (epi* bits) and the vectors they use.
type epilogue struct {
	flags             int64
	bias, aux, colsum Ptr
}

// Gemm computes C = alpha*op(A)*op(B) + beta*C in float32 with the SIMT
// kernels (kernels/gemm.cu), the tile shape chosen by problem size.
// beta == 0 never reads C; alpha == 0 never reads A and B.
func (b *Backend) Gemm(transA, transB bool, alpha float32, a, bm model.Mat, beta float32, c model.Mat) error {
	return b.GemmPrecision(model.FP32, transA, transB, alpha, a, bm, beta, c)
}

// GemmPrecision is Gemm with the operands rounded as p says
// (model.PrecisionOps): on a GPU of compute capability 8.0 or newer the
// tf32, 3xtf32 and bf16 products run on tensor cores (kernels/gemm_tc.cu)
// unless both operands are transposed; otherwise, and on older GPUs, on the
// SIMT kernels, which round the operands the same way on their way into
// shared memory (3xtf32 there is plain float32, at least as accurate).
func (b *Backend) GemmPrecision(p model.Precision, transA, transB bool, alpha float32, a, bm model.Mat, beta float32, c model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("device: Gemm: %w", err)
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
		return fmt.Errorf("device: Gemm: %w", err)
	}
	return b.gemm("Gemm", p, transA, transB, int64(m), int64(n), int64(k), alpha, A, B, beta, C, epilogue{})
}

// gemm launches one GEMM kernel for checked operands: a tensor-core kernel
// where p and the device allow, else a SIMT one. op names the operation in
// errors.
func (b *Backend) gemm(op string, p model.Precision, transA, transB bool, m, n, k int64, alpha float32, A, B *Matrix, beta float32, C *Matrix, epi epilogue) error {
	if m == 0 || n == 0 {
		return nil
	}
	// An empty A or B (k == 0) has no pointer; the kernels read neither then.
	flags := epi.flags
	if k > 0 && b.vec4(A) {
		flags |= gemmVecA
	}
	if k > 0 && b.vec4(B) {
		flags |= gemmVecB
	}
	if b.vec4(C) {
		flags |= gemmVecC
	}
	args := func() []uint64 {
		return []uint64{IntArg(m), IntArg(n), IntArg(k), FloatArg(float64(alpha)), PtrArg(A.ptr), PtrArg(B.ptr),
			FloatArg(float64(beta)), PtrArg(C.ptr), IntArg(flags), PtrArg(epi.bias), PtrArg(epi.aux), PtrArg(epi.colsum)}
	}
	trans := [2]string{"n", "t"}[b2i(transA)] + [2]string{"n", "t"}[b2i(transB)]
	if b.tensorCoreGemm(p, transA, transB) {
		t, err := b.tcTile(p, transA, transB, m, n)
		if err != nil {
			return fmt.Errorf("device: %s: %w", op, err)
		}
		bm, bn := t.dims()
		blocks := ceilDiv(m, bm) * ceilDiv(n, bn)
		if blocks > maxGridX {
			return fmt.Errorf("device: %s: a %d x %d product needs %d blocks of %s; at most %d fit one launch", op, m, n, blocks, t, int64(maxGridX))
		}
		kernel := "gt_tc_gemm_" + trans + "_" + tcPrecisionName(p) + "_" + t.String()
		shared := tcSharedBytes(p, transA, transB, t)
		if err := b.drv.Launch(kernel, Dim3{X: int(blocks), Y: 1, Z: 1}, Dim3{X: t.threads(), Y: 1, Z: 1}, int(shared), args()...); err != nil {
			return fmt.Errorf("device: %s: kernel %s: %w", op, kernel, err)
		}
		return nil
	}
	switch p {
	case model.TF32:
		flags |= gemmRoundTF32
	case model.BF16:
		flags |= gemmRoundBF16
	}
	tile := b.gemmTile(m, n)
	bmRows, bnCols := tile.dims()
	gy := ceilDiv(m, bmRows)
	if gy > maxGridY {
		return fmt.Errorf("device: %s: op(A) has %d rows; at most %d fit one launch with %s tiles", op, m, maxGridY*bmRows, tile)
	}
	grid := Dim3{X: int(ceilDiv(n, bnCols)), Y: int(gy), Z: 1}
	return b.launch(op, "gt_gemm_"+trans+tile.suffix(), grid, Dim3{X: threads, Y: 1, Z: 1}, args()...)
}

// roundsOnSIMT reports whether a product at precision p runs on the SIMT
// kernels with operand rounding: those round in shared memory, where the
// fused column sums (which must see unrounded values) read, so callers do
// not fuse column sums into such a launch.
func (b *Backend) roundsOnSIMT(p model.Precision, transA, transB bool) bool {
	return (p == model.TF32 || p == model.BF16) && !b.tensorCoreGemm(p, transA, transB)
}
