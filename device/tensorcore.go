package device

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
)

// CapabilityReporter is an optional Driver capability: the CUDA compute
// capability of the device (8.0 for an A100, 9.0 for an H100/H200).
// Backend runs its tensor-core kernels (gt_tc_*, sm_80 instructions) only
// on a driver that reports 8.0 or newer; a driver without the capability
// gets the SIMT kernels for every precision.
type CapabilityReporter interface {
	ComputeCapability() (major, minor int)
}

// TCTile is the tile of C one tensor-core GEMM block computes
// (kernels/gemm_tc.cu). The zero value, TCTileAuto, picks it by shape.
type TCTile int

const (
	TCTileAuto    TCTile = iota
	TCTile64x64          // 4 warps of 32 x 32, 34-48 KiB of shared memory
	TCTile128x128        // 4 warps of 64 x 64, 66-96 KiB (needs opt-in beyond 48 KiB)
)

func (t TCTile) String() string {
	switch t {
	case TCTileAuto:
		return "auto"
	case TCTile64x64:
		return "64x64"
	case TCTile128x128:
		return "128x128"
	}
	return fmt.Sprintf("TCTile(%d)", int(t))
}

func (t TCTile) dims() (bm, bn int64) {
	if t == TCTile128x128 {
		return 128, 128
	}
	return 64, 64
}

// threads is the block size of the tile's kernels: 4 warps for both.
func (t TCTile) threads() int { return 128 }

// The tensor-core kernels' pipeline: BK floats of k per stage, tcStages
// stages (GT_TC_RUN in gemm_tc.cu).
const (
	tcBK     = 16
	tcStages = 4
)

// tcSharedBytes is the dynamic shared memory of a tensor-core kernel, as
// GT_TC_SMEM_FLOATS in gemm_tc.cu computes it: per stage, each operand's
// tile, stored along k ([rows][BK + padK]) or along its rows
// ([BK][rows + padR]); the paddings keep the fragment loads free of bank
// conflicts and differ for bf16, which loads k-pairs.
func tcSharedBytes(p model.Precision, transA, transB bool, t TCTile) int64 {
	padK, padR := int64(4), int64(8)
	if p == model.BF16 {
		padK, padR = 8, 4
	}
	tile := func(alongK bool, rows int64) int64 {
		if alongK {
			return rows * (tcBK + padK)
		}
		return tcBK * (rows + padR)
	}
	bm, bn := t.dims()
	return tcStages * (tile(!transA, bm) + tile(transB, bn)) * 4
}

// tcPrecisionName is the precision part of a tensor-core kernel's name.
func tcPrecisionName(p model.Precision) string {
	switch p {
	case model.TF32x3:
		return "3xtf32"
	case model.BF16:
		return "bf16"
	}
	return "tf32"
}

// tensorCores reports whether the driver's device runs sm_80 instructions.
func tensorCores(drv Driver) bool {
	c, ok := drv.(CapabilityReporter)
	if !ok {
		return false
	}
	major, _ := c.ComputeCapability()
	return major >= 8
}

// tensorCoreGemm reports whether a product at precision p with these
// transpositions runs on a tensor-core kernel: fp32 never does (the SIMT
// kernels are the float32 reference), tt has no tensor-core kernel (no
// layer uses it), and the device must be sm_80 or newer.
func (b *Backend) tensorCoreGemm(p model.Precision, transA, transB bool) bool {
	return p != model.FP32 && !(transA && transB) && b.tensorCores && !b.opts.NoTensorCores
}

// tcTile picks the tensor-core tile for an m x n product: 128 x 128 when
// both sides are at least 128 and it still gives about a block per SM
// (gemmMinBlocks, as for the SIMT tiles) and its shared memory fits the
// device's limit; else 64 x 64, which fits the 48 KiB every device allows.
// Options.TCTile forces a tile (an error if the device cannot hold it).
func (b *Backend) tcTile(p model.Precision, transA, transB bool, m, n int64) (TCTile, error) {
	fits := func(t TCTile) bool { return tcSharedBytes(p, transA, transB, t) <= b.sharedLimit }
	if t := b.opts.TCTile; t != TCTileAuto {
		if !fits(t) {
			return 0, fmt.Errorf("forced tensor-core tile %s needs %d bytes of shared memory; the device allows %d", t, tcSharedBytes(p, transA, transB, t), b.sharedLimit)
		}
		return t, nil
	}
	if m >= 128 && n >= 128 && ceilDiv(m, 128)*ceilDiv(n, 128) >= gemmMinBlocks && fits(TCTile128x128) {
		return TCTile128x128, nil
	}
	if !fits(TCTile64x64) {
		return 0, fmt.Errorf("the %v tensor-core kernels need %d bytes of shared memory; the device allows %d", p, tcSharedBytes(p, transA, transB, TCTile64x64), b.sharedLimit)
	}
	return TCTile64x64, nil
}
