package device

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// The fused energy head (model.EnergyHeadOps) on the device: the kernels of
// kernels/energyhead.cu, which compute the energies in 64 x 64 tiles and
// never store them. This file decides the launch shapes: how many chunks
// the answers of the forward pass are split into (so that enough blocks
// run), and in how many groups the answers of dH's reduction are summed
// (each group's partial of dH is B x D, merged in a fixed order).

var (
	_ model.EnergyHeadOps          = (*Backend)(nil)
	_ model.EnergyHeadPrecisionOps = (*Backend)(nil)
)

// Shared with kernels/energyhead.cu.
const (
	headTile   = 64 // GT_EH_T
	headCoefF  = 5  // GT_EH_COEF_F
	headCoefI  = 2  // GT_EH_COEF_I
	headPartF  = 4  // GT_EH_PART_F
	headPartI  = 2  // GT_EH_PART_I
	headBlocks = 2 * 132
	// headMaxChunks bounds the forward's chunks per row (grid y) and dH's
	// groups, so partials stay small: B x 64 summaries, 64 partials of dH
	// at most (less where B x D is large: headPartialFloats).
	headMaxChunks = 64
	// headPartialFloats bounds dH's partials together (64 MiB).
	headPartialFloats = 1 << 24
)

// headScratch is the head's device scratch, grown on demand.
type headScratch struct {
	partF, partI, coefF, coefI, dh, counts                   Ptr
	partFCap, partICap, coefFCap, coefICap, dhCap, countsCap int64
	// embedCounts holds EmbedMeanGrad's per-row id counts.
	embedCounts    Ptr
	embedCountsCap int64
	// skipped and total are the backward tiles the last EnergyHeadGrad
	// skipped by filtering, and examined (HeadFilterStats).
	skipped, total int64
}

func (s *headScratch) ptrs() []*Ptr {
	return []*Ptr{&s.partF, &s.partI, &s.coefF, &s.coefI, &s.dh, &s.counts, &s.embedCounts}
}

// headChunks returns the forward's chunk length (a multiple of the tile)
// and count for B rows and K answers: enough (row block, chunk) blocks for
// about two waves of a large GPU, at most headMaxChunks per row.
func headChunks(B, K int64) (chunk, n int64) {
	tiles := ceilDiv(K, headTile)
	want := min(tiles, headMaxChunks, max(1, ceilDiv(headBlocks, ceilDiv(B, headTile))))
	chunk = ceilDiv(tiles, want) * headTile
	return chunk, ceilDiv(K, chunk)
}

// headGroups returns dH's answer groups (length a multiple of the tile,
// and count) likewise, with the partials (count x B x D floats) bounded.
func headGroups(B, D, K int64) (group, n int64) {
	tiles := ceilDiv(K, headTile)
	want := min(tiles, headMaxChunks, max(1, ceilDiv(headBlocks, ceilDiv(B, headTile))))
	if B*D > 0 {
		want = min(want, max(1, headPartialFloats/(B*D)))
	}
	group = ceilDiv(tiles, want) * headTile
	return group, ceilDiv(K, group)
}

// EnergyHead computes the statistics of the energies -(h w^T + bias)
// without storing them (see model.EnergyHeadOps).
func (b *Backend) EnergyHead(hm, wm, biasm model.Mat, labelv model.Ints, loss model.Loss, statm model.Mat, argv model.Ints) error {
	return b.energyHead("EnergyHead", model.FP32, hm, wm, biasm, labelv, loss, 0, statm, argv, nil, nil, nil, false)
}

// EnergyHeadGrad is EnergyHead plus the gradients of gradScale * sum_i L_i
// with respect to h (when dh is not nil), w and bias.
func (b *Backend) EnergyHeadGrad(hm, wm, biasm model.Mat, labelv model.Ints, loss model.Loss, gradScale float32, statm model.Mat, argv model.Ints, dhm, dwm, dbm model.Mat) error {
	return b.energyHead("EnergyHeadGrad", model.FP32, hm, wm, biasm, labelv, loss, gradScale, statm, argv, dhm, dwm, dbm, true)
}

// EnergyHeadPrecision is EnergyHead with the energies' products at
// precision p (model.EnergyHeadPrecisionOps): on a GPU of compute
// capability 8.0 or newer the tf32, 3xtf32 and bf16 tiles run on tensor
// cores (the gt_tc_eh_* kernels); elsewhere on the SIMT kernels with the
// operands rounded as the SIMT GEMMs round them (3xtf32 there is plain
// float32).
func (b *Backend) EnergyHeadPrecision(p model.Precision, hm, wm, biasm model.Mat, labelv model.Ints, loss model.Loss, statm model.Mat, argv model.Ints) error {
	return b.energyHead("EnergyHead", p, hm, wm, biasm, labelv, loss, 0, statm, argv, nil, nil, nil, false)
}

// EnergyHeadGradPrecision is EnergyHeadGrad with the energies (forward and
// the backward's recomputed tiles) at precision p; the gradients' own
// products stay float32 (kernels/energyhead.cu says why).
func (b *Backend) EnergyHeadGradPrecision(p model.Precision, hm, wm, biasm model.Mat, labelv model.Ints, loss model.Loss, gradScale float32, statm model.Mat, argv model.Ints, dhm, dwm, dbm model.Mat) error {
	return b.energyHead("EnergyHeadGrad", p, hm, wm, biasm, labelv, loss, gradScale, statm, argv, dhm, dwm, dbm, true)
}

// headKernels returns the head's forward, dW and dH kernels for precision
// p and the flags argument they take: the tensor-core kernels where p is
// not fp32 and the device has tensor cores (the rule of the GEMMs,
// tensorCoreGemm), else the SIMT ones: for tf32 and bf16 their _rounded
// forms, which round the operands as the SIMT GEMMs do.
func (b *Backend) headKernels(p model.Precision) (fwd, gradW, gradH string, flags int64) {
	if b.tensorCoreGemm(p, false, true) {
		// (Prefixes ending in "_": scripts/gpu-check.sh checks that some
		// kernel of the fatbin completes each.)
		s := tcPrecisionName(p)
		return "gt_tc_eh_forward_" + s, "gt_tc_eh_grad_w_" + s, "gt_tc_eh_grad_h_" + s, 0
	}
	switch p {
	case model.TF32:
		flags = gemmRoundTF32
	case model.BF16:
		flags = gemmRoundBF16
	default:
		// fp32, and 3xtf32 without tensor cores (plain float32, as the SIMT
		// GEMMs run it): the kernels without rounding code.
		return "gt_eh_forward", "gt_eh_grad_w", "gt_eh_grad_h", 0
	}
	return "gt_eh_forward_rounded", "gt_eh_grad_w_rounded", "gt_eh_grad_h_rounded", flags
}

// HeadFilterStats returns how many backward tiles the last EnergyHeadGrad
// skipped by gradient filtering (Options.HeadFilter) and how many it
// examined, over its two backward kernels.
func (b *Backend) HeadFilterStats() (skipped, total int64) { return b.head.skipped, b.head.total }

func (b *Backend) energyHead(op string, p model.Precision, hm, wm, biasm model.Mat, labelv model.Ints, loss model.Loss, gradScale float32,
	statm model.Mat, argv model.Ints, dhm, dwm, dbm model.Mat, grad bool) error {
	if err := b.open(); err != nil {
		return err
	}
	h, err := b.mat(hm, op+" h")
	if err != nil {
		return err
	}
	w, err := b.mat(wm, op+" w")
	if err != nil {
		return err
	}
	bias, err := b.mat(biasm, op+" bias")
	if err != nil {
		return err
	}
	labels, err := b.ints(labelv, op+" labels")
	if err != nil {
		return err
	}
	stats, err := b.mat(statm, op+" stats")
	if err != nil {
		return err
	}
	amin, err := b.ints(argv, op+" argmin")
	if err != nil {
		return err
	}
	var dh, dw, db *Matrix
	var dhAny, dwAny, dbAny model.Mat // nil interfaces unless given
	if grad {
		if dw, err = b.mat(dwm, op+" dw"); err != nil {
			return err
		}
		if db, err = b.mat(dbm, op+" db"); err != nil {
			return err
		}
		dwAny, dbAny = dw, db
		if dhm != nil {
			if dh, err = b.mat(dhm, op+" dh"); err != nil {
				return err
			}
			dhAny = dh
		}
	}
	if err := loss.Validate(); err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	if err := backendcheck.EnergyHeadShapes(h, w, bias, labels, stats, amin, dhAny, dwAny, dbAny, grad); err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	B, D, K := int64(h.rows), int64(h.cols), int64(w.rows)
	if K > math.MaxInt32 {
		return fmt.Errorf("device: %s: w %s has more answers than int32 labels can name", op, w.shape())
	}
	bad, err := b.checkIndices(op, labels, int(K), true)
	if err != nil {
		return err
	}
	if bad != nil {
		return fmt.Errorf("device: %s: %w", op, backendcheck.LabelError(bad.pos, bad.value, int(K)))
	}
	b.head.skipped, b.head.total = 0, 0
	if B == 0 {
		if grad {
			return b.zero(op, dw, db)
		}
		return nil
	}
	if ceilDiv(B, headTile) > maxGridX || ceilDiv(K, headTile) > maxGridX {
		return fmt.Errorf("device: %s: %d rows and %d answers exceed a grid", op, B, K)
	}
	chunk, nChunks := headChunks(B, K)
	s := &b.head
	grow := func(p *Ptr, capBytes *int64, bytes int64, what string) error {
		if err := b.growScratch(p, capBytes, bytes); err != nil {
			return fmt.Errorf("device: %s: allocating %s (%d bytes): %w", op, what, bytes, err)
		}
		return nil
	}
	for _, g := range []struct {
		p     *Ptr
		c     *int64
		bytes int64
		what  string
	}{
		{&s.partF, &s.partFCap, 4 * B * nChunks * headPartF, "row partials"},
		{&s.partI, &s.partICap, 4 * B * nChunks * headPartI, "row partials"},
		{&s.coefF, &s.coefFCap, 4 * B * headCoefF, "row coefficients"},
		{&s.coefI, &s.coefICap, 4 * B * headCoefI, "row coefficients"},
	} {
		if err := grow(g.p, g.c, g.bytes, g.what); err != nil {
			return err
		}
	}
	amin.host = nil
	fwdK, gradWK, gradHK, flags := b.headKernels(p)
	if err := b.launch(op, fwdK, Dim3{X: int(ceilDiv(B, headTile)), Y: int(nChunks), Z: 1}, Dim3{X: threads, Y: 1, Z: 1},
		PtrArg(h.ptr), PtrArg(w.ptr), PtrArg(bias.ptr), PtrArg(labels.ptr), IntArg(B), IntArg(D), IntArg(K), IntArg(chunk),
		FloatArg(loss.Beta), PtrArg(s.partF), PtrArg(s.partI), IntArg(flags)); err != nil {
		return err
	}
	grid, block := b.elemShape(B)
	if err := b.launch(op, "gt_eh_merge", grid, block,
		PtrArg(labels.ptr), IntArg(B), IntArg(nChunks), IntArg(chunk), IntArg(int64(loss.Kind)), FloatArg(loss.Beta),
		FloatArg(loss.Margin), FloatArg(loss.Gamma), FloatArg(loss.Delta), FloatArg(float64(gradScale)),
		PtrArg(s.partF), PtrArg(s.partI), PtrArg(stats.ptr), PtrArg(amin.ptr), PtrArg(s.coefF), PtrArg(s.coefI)); err != nil {
		return err
	}
	if !grad {
		return nil
	}

	dense := int64(b2i(loss.Kind.TouchesAll()))
	wBlocks := ceilDiv(K, headTile)
	group, nGroups := headGroups(B, D, K)
	hBlocks := ceilDiv(B, headTile) * nGroups
	if err := grow(&s.counts, &s.countsCap, 8*2*(wBlocks+hBlocks), "tile counts"); err != nil {
		return err
	}
	if err := b.launch(op, gradWK, Dim3{X: int(wBlocks), Y: 1, Z: 1}, Dim3{X: threads, Y: 1, Z: 1},
		PtrArg(h.ptr), PtrArg(w.ptr), PtrArg(bias.ptr), IntArg(B), IntArg(D), IntArg(K), FloatArg(loss.Beta), IntArg(dense),
		FloatArg(b.opts.HeadFilter), PtrArg(s.coefF), PtrArg(s.coefI), PtrArg(dw.ptr), PtrArg(db.ptr), PtrArg(s.counts), IntArg(flags)); err != nil {
		return err
	}
	if dh != nil && D > 0 {
		out := dh.ptr
		if nGroups > 1 {
			if err := grow(&s.dh, &s.dhCap, 4*nGroups*B*D, "partials of dh"); err != nil {
				return err
			}
			out = s.dh
		}
		countsH := s.counts + Ptr(8*2*wBlocks)
		if err := b.launch(op, gradHK, Dim3{X: int(ceilDiv(B, headTile)), Y: int(nGroups), Z: 1}, Dim3{X: threads, Y: 1, Z: 1},
			PtrArg(h.ptr), PtrArg(w.ptr), PtrArg(bias.ptr), IntArg(B), IntArg(D), IntArg(K), IntArg(group), FloatArg(loss.Beta),
			IntArg(dense), FloatArg(b.opts.HeadFilter), PtrArg(s.coefF), PtrArg(s.coefI), PtrArg(out), PtrArg(countsH), IntArg(flags)); err != nil {
			return err
		}
		if nGroups > 1 {
			grid, block := b.elemShape(B * D)
			if err := b.launch(op, "gt_eh_grad_h_merge", grid, block, PtrArg(dh.ptr), PtrArg(s.dh), IntArg(B*D), IntArg(nGroups)); err != nil {
				return err
			}
		}
	} else {
		hBlocks = 0
	}
	return b.headCounts(op, wBlocks+hBlocks)
}

// headCounts sums the backward kernels' (skipped, examined) tile counts
// when filtering is on (they cost a download, so only then).
func (b *Backend) headCounts(op string, blocks int64) error {
	if b.opts.HeadFilter == 0 {
		return nil
	}
	c := make([]int64, 2*blocks)
	if err := b.drv.CopyOut(unsafe.Slice((*byte)(unsafe.Pointer(&c[0])), 8*len(c)), b.head.counts); err != nil {
		return fmt.Errorf("device: %s: reading the filter's tile counts: %w", op, err)
	}
	for i := 0; i < len(c); i += 2 {
		b.head.skipped += c[i]
		b.head.total += c[i+1]
	}
	return nil
}

// zero sets the matrices to 0 (by copies: this is the rare B == 0 case).
func (b *Backend) zero(op string, ms ...*Matrix) error {
	for _, m := range ms {
		if m.len() == 0 {
			continue
		}
		if err := b.drv.CopyIn(m.ptr, make([]byte, 4*m.len())); err != nil {
			return fmt.Errorf("device: %s: zeroing %s: %w", op, m.shape(), err)
		}
	}
	return nil
}
