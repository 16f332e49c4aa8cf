package device

import (
	"fmt"
	"math"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// RowPlan is how EnergyLoss processes rows that are not split into chunks
// (see kernels/energyloss.cu). The zero value, RowPlanAuto, picks one by row
// length and the shared memory the driver allows.
type RowPlan int

const (
	RowPlanAuto RowPlan = iota
	// RowPlanWarp: gt_energy_loss_cached with a warp per row and several
	// rows per block; the row is cached in shared memory.
	RowPlanWarp
	// RowPlanBlock: gt_energy_loss_cached with a block of up to 1024
	// threads per row; the row is cached in shared memory.
	RowPlanBlock
	// RowPlanUncached: gt_energy_loss, a block per row that reads the row
	// twice (for rows that do not fit shared memory).
	RowPlanUncached
)

func (p RowPlan) String() string {
	switch p {
	case RowPlanAuto:
		return "auto"
	case RowPlanWarp:
		return "warp-per-row"
	case RowPlanBlock:
		return "block-per-row"
	case RowPlanUncached:
		return "uncached"
	}
	return fmt.Sprintf("RowPlan(%d)", int(p))
}

const (
	// warpRowMax is the longest row RowPlanAuto gives a warp: 32 answers
	// per lane at most, so a warp's load loop still has work in flight,
	// and 8 such rows (32 KiB) fit the 48 KiB every GPU allows.
	warpRowMax = 1024
	// warpRows is the number of rows (warps) per block of the warp plan.
	warpRows = 8
	// cachedMaxThreads is the largest block of the cached kernel
	// (__launch_bounds__(1024)); cachedPerThread is the number of answers
	// per thread the block plan aims for (two float4 loads), so a short
	// row does not get more threads than it can use.
	cachedMaxThreads = 1024
	cachedPerThread  = 8
)

// cachedShape is the launch shape of gt_energy_loss_cached for rows of k
// answers under plan (RowPlanWarp or RowPlanBlock), and its dynamic shared
// memory; ok is false when not even one row fits the shared budget.
func (b *Backend) cachedShape(plan RowPlan, rows, k int64) (grid, block Dim3, shared int64, ok bool) {
	rowBytes := 4 * ceilDiv(k, 4) * 4 // a row rounded up to whole float4
	if rowBytes > b.sharedBudget {
		return Dim3{}, Dim3{}, 0, false
	}
	t, r := int64(32), int64(1)
	if plan == RowPlanWarp {
		r = min(warpRows, b.sharedBudget/rowBytes, rows)
	} else {
		t = 64 // at least two warps, so the cross-warp stage always runs
		for t < cachedMaxThreads && t*cachedPerThread < k {
			t *= 2
		}
	}
	grid = Dim3{X: int(min(ceilDiv(rows, r), b.maxBlocks)), Y: 1, Z: 1}
	return grid, Dim3{X: int(t), Y: int(r), Z: 1}, r * rowBytes, true
}

// rowPlan picks how rows of k answers are processed; split means chunks
// reduced by separate blocks (gt_energy_loss_partial and _merge).
func (b *Backend) rowPlan(k int64) (plan RowPlan, split bool, err error) {
	if b.opts.RowChunk > 0 && k > int64(b.opts.RowChunk) {
		return RowPlanAuto, true, nil
	}
	fits := 16*ceilDiv(k, 4) <= b.sharedBudget
	switch plan := b.opts.RowPlan; {
	case plan == RowPlanUncached:
		return plan, false, nil
	case plan != RowPlanAuto:
		if !fits {
			return plan, false, fmt.Errorf("rows of %d answers (%d bytes) do not fit the %d bytes of shared memory the %s plan may use",
				k, 16*ceilDiv(k, 4), b.sharedBudget, plan)
		}
		return plan, false, nil
	case fits && k <= warpRowMax:
		return RowPlanWarp, false, nil
	case fits:
		return RowPlanBlock, false, nil
	case k <= DefaultRowChunk:
		return RowPlanUncached, false, nil
	}
	return RowPlanAuto, true, nil
}

// EnergyLoss is the fused energy-loss operation (see model.Backend). Rows
// that fit shared memory are read once and written once by
// gt_energy_loss_cached (a warp per row up to 1024 answers, a block per row
// beyond); rows that do not are reduced by gt_energy_loss if at most
// DefaultRowChunk long, else split into chunks reduced by separate blocks
// (gt_energy_loss_partial) and merged in a fixed order by
// gt_energy_loss_merge, which also writes the gradient. Options.RowChunk
// and RowPlan force a plan. Labels are checked before any kernel writes.
func (b *Backend) EnergyLoss(em model.Mat, labelv model.Ints, loss model.Loss, gradScale float32, statm model.Mat, argv model.Ints) error {
	return b.energyLoss("EnergyLoss", em, labelv, loss, gradScale, statm, argv, true)
}

var _ model.ForwardLoss = (*Backend)(nil)

// EnergyStats is EnergyLoss without the gradient (model.ForwardLoss): the
// same kernels and plan, with GT_LOSS_NO_GRADIENT in their kind argument,
// so the statistics and argmin are bitwise EnergyLoss's and e is not
// written.
func (b *Backend) EnergyStats(em model.Mat, labelv model.Ints, loss model.Loss, statm model.Mat, argv model.Ints) error {
	return b.energyLoss("EnergyStats", em, labelv, loss, 0, statm, argv, false)
}

// lossNoGradient is GT_LOSS_NO_GRADIENT of energyloss.cu, OR-ed into the
// kernels' kind argument.
const lossNoGradient = 0x100

func (b *Backend) energyLoss(op string, em model.Mat, labelv model.Ints, loss model.Loss, gradScale float32, statm model.Mat, argv model.Ints, grad bool) error {
	if err := b.open(); err != nil {
		return err
	}
	e, err := b.mat(em, op+" e")
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
	if err := loss.Validate(); err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	B, K := e.rows, e.cols
	if K > math.MaxInt32 {
		return fmt.Errorf("device: %s: energies %s have more answers than int32 labels can name", op, e.shape())
	}
	if err := backendcheck.EnergyLossShapes(e, labels, stats, amin); err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	bad, err := b.checkIndices(op, labels, K, true)
	if err != nil {
		return err
	}
	if bad != nil {
		return fmt.Errorf("device: %s: %w", op, backendcheck.LabelError(bad.pos, bad.value, K))
	}
	if B == 0 {
		return nil
	}
	plan, split, err := b.rowPlan(int64(K))
	if err != nil {
		return fmt.Errorf("device: %s: energies %s: %w", op, e.shape(), err)
	}
	amin.setUnknown()
	kind := int64(loss.Kind)
	if !grad {
		kind |= lossNoGradient
	}
	lossArgs := []uint64{IntArg(kind), FloatArg(loss.Beta), FloatArg(loss.Margin), FloatArg(loss.Gamma),
		FloatArg(loss.Delta), FloatArg(float64(gradScale))}
	if !split {
		args := append([]uint64{PtrArg(e.ptr), PtrArg(labels.ptr), IntArg(int64(B)), IntArg(int64(K))}, lossArgs...)
		args = append(args, PtrArg(stats.ptr), PtrArg(amin.ptr))
		if plan == RowPlanUncached {
			return b.launch(op, "gt_energy_loss", b.rowGrid(int64(B)), rowBlock(int64(K)), args...)
		}
		grid, block, shared, _ := b.cachedShape(plan, int64(B), int64(K))
		args = append(args, IntArg(int64(b2i(b.vec4(e)))))
		if err := b.drv.Launch("gt_energy_loss_cached", grid, block, int(shared), args...); err != nil {
			return fmt.Errorf("device: %s: kernel gt_energy_loss_cached (%s, %d bytes of shared memory): %w", op, plan, shared, err)
		}
		return nil
	}

	// Split rows: chunks of RowChunk (DefaultRowChunk) answers, or longer
	// ones so that a row has at most maxChunks: every merge block folds all
	// partials of its row, so their number must stay small.
	chunk := int64(DefaultRowChunk)
	if b.opts.RowChunk > 0 {
		chunk = int64(b.opts.RowChunk)
	}
	chunk = max(chunk, ceilDiv(int64(K), maxChunks))
	nChunks := ceilDiv(int64(K), chunk)
	parts := int64(B) * nChunks
	if err := b.growScratch(&b.partF, &b.partFCap, parts*partFloats*4); err != nil {
		return fmt.Errorf("device: %s: allocating %d row partials: %w", op, parts, err)
	}
	if err := b.growScratch(&b.partI, &b.partICap, parts*partInts*4); err != nil {
		return fmt.Errorf("device: %s: allocating %d row partials: %w", op, parts, err)
	}
	if B > maxGridX {
		return fmt.Errorf("device: %s: %d rows of %d answers exceed a grid's %d blocks", op, B, K, maxGridX)
	}
	grid := Dim3{X: B, Y: int(nChunks), Z: 1}
	if err := b.launch(op, "gt_energy_loss_partial", grid, rowBlock(chunk),
		PtrArg(e.ptr), PtrArg(labels.ptr), IntArg(int64(B)), IntArg(int64(K)), IntArg(chunk),
		FloatArg(loss.Beta), PtrArg(b.partF), PtrArg(b.partI)); err != nil {
		return err
	}
	args := append([]uint64{PtrArg(e.ptr), PtrArg(labels.ptr), IntArg(int64(B)), IntArg(int64(K)), IntArg(chunk)}, lossArgs...)
	args = append(args, PtrArg(b.partF), PtrArg(b.partI), PtrArg(stats.ptr), PtrArg(amin.ptr))
	return b.launch(op, "gt_energy_loss_merge", grid, rowBlock(max(chunk, nChunks)), args...)
}
