package device

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// GemmTile is the shape of the tile of C one GEMM block computes (see
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

// Bits of the GEMM kernels' flags argument (GT_GEMM_VEC_* in gemm.cu).
const (
	gemmVecA = 1
	gemmVecB = 2
	gemmVecC = 4
)

// gemmTile picks the tile shape for an m x n product.
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

// Gemm computes C = alpha*op(A)*op(B) + beta*C with a register-blocked tiled
// kernel (kernels/gemm.cu) whose tile shape is chosen by problem size.
// beta == 0 never reads C; alpha == 0 never reads A and B.
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
		return fmt.Errorf("device: Gemm: %w", err)
	}
	if m == 0 || n == 0 {
		return nil
	}
	tile := b.gemmTile(int64(m), int64(n))
	bmRows, bnCols := tile.dims()
	gy := ceilDiv(int64(m), bmRows)
	if gy > maxGridY {
		return fmt.Errorf("device: Gemm: op(A) has %d rows; at most %d fit one launch with %s tiles", m, maxGridY*bmRows, tile)
	}
	grid := Dim3{X: int(ceilDiv(int64(n), bnCols)), Y: int(gy), Z: 1}
	// An empty A or B (k == 0) has no pointer; the kernel reads neither then.
	var flags int64
	if k > 0 && b.vec4(A) {
		flags |= gemmVecA
	}
	if k > 0 && b.vec4(B) {
		flags |= gemmVecB
	}
	if b.vec4(C) {
		flags |= gemmVecC
	}
	kernel := "gt_gemm_" + [2]string{"n", "t"}[b2i(transA)] + [2]string{"n", "t"}[b2i(transB)] + tile.suffix()
	return b.launch("Gemm", kernel, grid, Dim3{X: threads, Y: 1, Z: 1},
		IntArg(int64(m)), IntArg(int64(n)), IntArg(int64(k)), FloatArg(float64(alpha)),
		PtrArg(A.ptr), PtrArg(B.ptr), FloatArg(float64(beta)), PtrArg(C.ptr), IntArg(flags))
}
