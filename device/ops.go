package device

import (
	"fmt"
	"math"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// launch runs one kernel and wraps a driver error with the operation.
func (b *Backend) launch(op, kernel string, grid, block Dim3, args ...uint64) error {
	if err := b.drv.Launch(kernel, grid, block, 0, args...); err != nil {
		return fmt.Errorf("device: %s: kernel %s: %w", op, kernel, err)
	}
	return nil
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// elemShape is the launch shape of the grid-stride elementwise kernels over
// n elements: enough blocks for one element per thread, capped (the loops
// cover the rest; more blocks than the GPU holds at once buy nothing).
func (b *Backend) elemShape(n int64) (grid, block Dim3) {
	return Dim3{X: int(min(ceilDiv(n, threads), b.maxBlocks)), Y: 1, Z: 1}, Dim3{X: threads, Y: 1, Z: 1}
}

// rowBlock is the block of a per-row reduction over k elements: a power of
// two (the kernels reduce with a halving tree), at least a warp, at most
// threads, and no wider than the row needs.
func rowBlock(k int64) Dim3 {
	t := int64(32)
	for t < k && t < threads {
		t *= 2
	}
	return Dim3{X: int(t), Y: 1, Z: 1}
}

// rowGrid is one block per row, capped; the kernels loop over the rest.
func (b *Backend) rowGrid(rows int64) Dim3 { return Dim3{X: int(min(rows, b.maxBlocks)), Y: 1, Z: 1} }

func b2i(x bool) int {
	if x {
		return 1
	}
	return 0
}

// AddRowVector sets m[i,j] += alpha*v[j].
func (b *Backend) AddRowVector(mm model.Mat, alpha float32, vm model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	m, err := b.mat(mm, "AddRowVector m")
	if err != nil {
		return err
	}
	v, err := b.mat(vm, "AddRowVector v")
	if err != nil {
		return err
	}
	if err := backendcheck.RowVector("v", v, "m", m); err != nil {
		return fmt.Errorf("device: AddRowVector: %w", err)
	}
	if err := backendcheck.Distinct(m, v); err != nil {
		return fmt.Errorf("device: AddRowVector: %w", err)
	}
	if m.len() == 0 {
		return nil
	}
	grid, block := b.elemShape(m.len())
	return b.launch("AddRowVector", "gt_add_row_vector", grid, block,
		PtrArg(m.ptr), IntArg(int64(m.rows)), IntArg(int64(m.cols)), FloatArg(float64(alpha)), PtrArg(v.ptr))
}

// ColumnSums sets dst[0,j] = alpha*sum_i src[i,j] + beta*dst[0,j], each sum
// in a fixed order (deterministic). beta == 0 never reads dst. Many columns
// take one pass (gt_column_sums); few columns over many rows take two
// (gt_column_sums_partial over row ranges, then gt_column_sums_merge), so
// that enough blocks run.
func (b *Backend) ColumnSums(dm model.Mat, alpha float32, sm model.Mat, beta float32) error {
	if err := b.open(); err != nil {
		return err
	}
	dst, err := b.mat(dm, "ColumnSums dst")
	if err != nil {
		return err
	}
	src, err := b.mat(sm, "ColumnSums src")
	if err != nil {
		return err
	}
	if err := backendcheck.RowVector("dst", dst, "src", src); err != nil {
		return fmt.Errorf("device: ColumnSums: %w", err)
	}
	if err := backendcheck.Distinct(dst, src); err != nil {
		return fmt.Errorf("device: ColumnSums: %w", err)
	}
	if src.cols == 0 {
		return nil
	}
	rows, cols := int64(src.rows), int64(src.cols)
	colBlocks := min(ceilDiv(cols, colSumCols), b.maxBlocks)
	splits := b.columnSplits(rows, cols)
	if splits <= 1 {
		return b.launch("ColumnSums", "gt_column_sums", Dim3{X: int(colBlocks), Y: 1, Z: 1}, Dim3{X: threads, Y: 1, Z: 1},
			PtrArg(dst.ptr), FloatArg(float64(alpha)), PtrArg(src.ptr), IntArg(rows), IntArg(cols),
			FloatArg(float64(beta)))
	}
	// Two stages: row ranges of span rows summed by separate blocks into
	// double partials, then added per column in a fixed order.
	span := ceilDiv(rows, splits)
	splits = ceilDiv(rows, span)
	if err := b.growScratch(&b.colPart, &b.colPartCap, 8*splits*cols); err != nil {
		return fmt.Errorf("device: ColumnSums: allocating %d x %d partial sums: %w", splits, cols, err)
	}
	if err := b.launch("ColumnSums", "gt_column_sums_partial", Dim3{X: int(colBlocks), Y: int(splits), Z: 1},
		Dim3{X: threads, Y: 1, Z: 1}, PtrArg(b.colPart), PtrArg(src.ptr), IntArg(rows), IntArg(cols), IntArg(span)); err != nil {
		return err
	}
	grid, block := b.elemShape(cols)
	return b.launch("ColumnSums", "gt_column_sums_merge", grid, block,
		PtrArg(dst.ptr), FloatArg(float64(alpha)), PtrArg(b.colPart), IntArg(splits), IntArg(cols), FloatArg(float64(beta)))
}

const (
	// colSumBlocks is the number of column-sum blocks worth having in
	// flight: about 8 per SM of an H100 (132 SMs), each of 256 threads.
	colSumBlocks = 1024
	// colSumMinSpan is the fewest rows a split sums: 8 per row lane, so
	// the first stage does real work per partial it writes.
	colSumMinSpan = 64
)

// columnSplits is the number of row ranges ColumnSums sums separately: 1
// (one pass) when the columns alone give colSumBlocks blocks, else enough
// ranges of at least colSumMinSpan rows to get there. B = 4096 rows of K =
// 32768 answers take one pass (1024 column blocks); 4096 x 1024 takes 32
// ranges of 128 rows.
func (b *Backend) columnSplits(rows, cols int64) int64 {
	if n := int64(b.opts.ColumnSplits); n > 0 {
		return max(1, min(n, rows, maxGridY))
	}
	colBlocks := ceilDiv(cols, colSumCols)
	want := ceilDiv(colSumBlocks, colBlocks)
	return max(1, min(want, rows/colSumMinSpan, maxGridY))
}

// Activate applies act to m in place (ReLU keeps NaN as NaN).
func (b *Backend) Activate(act model.Activation, mm model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	m, err := b.mat(mm, "Activate m")
	if err != nil {
		return err
	}
	var kernel string
	switch act {
	case model.ReLU:
		kernel = "gt_relu"
	case model.Tanh:
		kernel = "gt_tanh"
	default:
		return fmt.Errorf("device: Activate: unknown activation %v", act)
	}
	if m.len() == 0 {
		return nil
	}
	grid, block := b.elemShape(m.len())
	return b.launch("Activate", kernel, grid, block, PtrArg(m.ptr), IntArg(m.len()))
}

// ActivationGrad multiplies grad in place by act' computed from the output
// out: 1[out > 0] for ReLU (a select, so an infinite gradient of an inactive
// unit gives 0), 1 - out^2 for tanh.
func (b *Backend) ActivationGrad(act model.Activation, gm, om model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	g, err := b.mat(gm, "ActivationGrad grad")
	if err != nil {
		return err
	}
	o, err := b.mat(om, "ActivationGrad out")
	if err != nil {
		return err
	}
	if err := backendcheck.SameShape([]string{"out", "grad"}, o, g); err != nil {
		return fmt.Errorf("device: ActivationGrad: %w", err)
	}
	if err := backendcheck.Distinct(g, o); err != nil {
		return fmt.Errorf("device: ActivationGrad: %w", err)
	}
	var kernel string
	switch act {
	case model.ReLU:
		kernel = "gt_relu_grad"
	case model.Tanh:
		kernel = "gt_tanh_grad"
	default:
		return fmt.Errorf("device: ActivationGrad: unknown activation %v", act)
	}
	if g.len() == 0 {
		return nil
	}
	grid, block := b.elemShape(g.len())
	return b.launch("ActivationGrad", kernel, grid, block, PtrArg(g.ptr), PtrArg(o.ptr), IntArg(g.len()))
}

// badIndex is the first element of an index vector outside its range.
type badIndex struct {
	pos   int
	value int32
}

// checkIndices finds the first v[i] outside [0, hi) (IgnoreLabel allowed when
// allowIgnore). From the host copy when there is one; otherwise a kernel
// flags an offender on the device, and only then is v downloaded to name it.
func (b *Backend) checkIndices(op string, v *IntVector, hi int, allowIgnore bool) (*badIndex, error) {
	scan := func(xs []int32) *badIndex {
		if i, found := backendcheck.FirstBadIndex(xs, hi, allowIgnore); found {
			return &badIndex{i, xs[i]}
		}
		return nil
	}
	if v.host != nil || v.n == 0 {
		return scan(v.host), nil
	}
	// A known range within the valid one needs no look at the elements.
	if v.bounded && v.hi < int32(min(hi, math.MaxInt32)) && (v.lo >= 0 || (allowIgnore && v.lo >= model.IgnoreLabel)) {
		return nil, nil
	}
	var flag [1]int32
	if err := b.drv.CopyIn(b.flag, bytesOf(flag[:])); err != nil {
		return nil, fmt.Errorf("device: %s: clearing the index-check flag: %w", op, err)
	}
	grid, block := b.elemShape(int64(v.n))
	if err := b.launch(op, "gt_check_labels", grid, block,
		PtrArg(v.ptr), IntArg(int64(v.n)), IntArg(int64(hi)), IntArg(int64(b2i(allowIgnore))), PtrArg(b.flag)); err != nil {
		return nil, err
	}
	if err := b.drv.CopyOut(bytesOf(flag[:]), b.flag); err != nil {
		return nil, fmt.Errorf("device: %s: reading the index-check flag: %w", op, err)
	}
	if flag[0] == 0 {
		return nil, nil
	}
	xs := make([]int32, v.n)
	if err := b.drv.CopyOut(bytesOf(xs), v.ptr); err != nil {
		return nil, fmt.Errorf("device: %s: downloading indices to report a bad one: %w", op, err)
	}
	if r := scan(xs); r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("device: %s: the index check kernel flagged an index the host does not find", op)
}

// growScratch makes *p hold at least bytes, reallocating (without copying)
// when it is smaller.
func (b *Backend) growScratch(p *Ptr, capBytes *int64, bytes int64) error {
	if *capBytes >= bytes {
		return nil
	}
	if *p != 0 {
		if err := b.drv.Free(*p); err != nil {
			return err
		}
		*p, *capBytes = 0, 0
	}
	b.scratchGen++
	q, err := b.drv.Alloc(bytes)
	if err != nil {
		return err
	}
	*p, *capBytes = q, bytes
	return nil
}

// ArgminRows writes the index of the smallest entry of each row of e (ties
// to the lowest index; NaN never wins, an all-NaN row gives 0).
func (b *Backend) ArgminRows(em model.Mat, outv model.Ints) error {
	if err := b.open(); err != nil {
		return err
	}
	e, err := b.mat(em, "ArgminRows e")
	if err != nil {
		return err
	}
	out, err := b.ints(outv, "ArgminRows out")
	if err != nil {
		return err
	}
	if err := backendcheck.ArgminShapes(e, out); err != nil {
		return fmt.Errorf("device: ArgminRows: %w", err)
	}
	if e.cols > math.MaxInt32 {
		return fmt.Errorf("device: ArgminRows: e %s has more columns than an int32 index can name", e.shape())
	}
	if e.rows == 0 {
		return nil
	}
	out.setUnknown()
	return b.launch("ArgminRows", "gt_argmin_rows", b.rowGrid(int64(e.rows)), rowBlock(int64(e.cols)),
		PtrArg(e.ptr), IntArg(int64(e.rows)), IntArg(int64(e.cols)), PtrArg(out.ptr), IntArg(int64(b2i(b.vec4(e)))))
}

// GatherRows sets dst row r to src row idx[r]: a shuffled batch assembled
// from a dataset that stays on the device.
func (b *Backend) GatherRows(dm, sm model.Mat, iv model.Ints) error {
	if err := b.open(); err != nil {
		return err
	}
	dst, err := b.mat(dm, "GatherRows dst")
	if err != nil {
		return err
	}
	src, err := b.mat(sm, "GatherRows src")
	if err != nil {
		return err
	}
	idx, err := b.ints(iv, "GatherRows idx")
	if err != nil {
		return err
	}
	if err := backendcheck.GatherRowsShapes(dst, src, idx); err != nil {
		return fmt.Errorf("device: GatherRows: %w", err)
	}
	bad, err := b.checkIndices("GatherRows", idx, src.rows, false)
	if err != nil {
		return err
	}
	if bad != nil {
		return fmt.Errorf("device: GatherRows: %w", backendcheck.RowIndexError(bad.pos, bad.value, src))
	}
	if dst.len() == 0 {
		return nil
	}
	grid, block := b.elemShape(dst.len())
	return b.launch("GatherRows", "gt_gather_rows", grid, block,
		PtrArg(dst.ptr), PtrArg(src.ptr), PtrArg(idx.ptr), IntArg(int64(idx.n)), IntArg(int64(src.cols)), IntArg(int64(src.rows)))
}

// GatherInts sets dst[r] = src[idx[r]]. When src and idx are known on the
// host, so is dst afterwards (labels gathered from uploaded ones need no
// device check in EnergyLoss).
func (b *Backend) GatherInts(dv, sv, iv model.Ints) error {
	if err := b.open(); err != nil {
		return err
	}
	dst, err := b.ints(dv, "GatherInts dst")
	if err != nil {
		return err
	}
	src, err := b.ints(sv, "GatherInts src")
	if err != nil {
		return err
	}
	idx, err := b.ints(iv, "GatherInts idx")
	if err != nil {
		return err
	}
	if err := backendcheck.GatherIntsShapes(dst, src, idx); err != nil {
		return fmt.Errorf("device: GatherInts: %w", err)
	}
	bad, err := b.checkIndices("GatherInts", idx, src.n, false)
	if err != nil {
		return err
	}
	if bad != nil {
		return fmt.Errorf("device: GatherInts: %w", backendcheck.IntIndexError(bad.pos, bad.value, src.n))
	}
	dst.setGathered(src)
	if dst.n == 0 {
		dst.setKnown([]int32{})
		return nil
	}
	grid, block := b.elemShape(int64(dst.n))
	if err := b.launch("GatherInts", "gt_gather_ints", grid, block,
		PtrArg(dst.ptr), PtrArg(src.ptr), PtrArg(idx.ptr), IntArg(int64(dst.n)), IntArg(int64(src.n))); err != nil {
		return err
	}
	if src.host != nil && idx.host != nil {
		h := make([]int32, dst.n)
		for r, i := range idx.host {
			h[r] = src.host[i]
		}
		dst.setKnown(h)
	}
	return nil
}

// optArgs resolves the operands of an optimizer step: all the same shape and
// all different matrices.
func (b *Backend) optArgs(op string, hs []model.Mat, names []string) ([]*Matrix, error) {
	if err := b.open(); err != nil {
		return nil, err
	}
	ms := make([]*Matrix, len(hs))
	for i, h := range hs {
		m, err := b.mat(h, op+" "+names[i])
		if err != nil {
			return nil, err
		}
		ms[i] = m
	}
	if err := backendcheck.SameShape(names, hs...); err != nil {
		return nil, fmt.Errorf("device: %s: %w", op, err)
	}
	if err := backendcheck.Distinct(hs...); err != nil {
		return nil, fmt.Errorf("device: %s: %w", op, err)
	}
	return ms, nil
}

// SGDStep sets w -= lr*weightDecay*w + lr*g.
func (b *Backend) SGDStep(wm, gm model.Mat, lr, weightDecay float32) error {
	ms, err := b.optArgs("SGDStep", []model.Mat{wm, gm}, []string{"w", "g"})
	if err != nil {
		return err
	}
	n := ms[0].len()
	if n == 0 {
		return nil
	}
	grid, block := b.elemShape(n)
	return b.launch("SGDStep", "gt_sgd_step", grid, block,
		PtrArg(ms[0].ptr), PtrArg(ms[1].ptr), IntArg(n), FloatArg(float64(lr)), FloatArg(float64(weightDecay)))
}

// MomentumStep sets v = mu*v + g, then w -= lr*weightDecay*w + lr*v.
func (b *Backend) MomentumStep(wm, gm, vm model.Mat, lr, mu, weightDecay float32) error {
	ms, err := b.optArgs("MomentumStep", []model.Mat{wm, gm, vm}, []string{"w", "g", "v"})
	if err != nil {
		return err
	}
	n := ms[0].len()
	if n == 0 {
		return nil
	}
	grid, block := b.elemShape(n)
	return b.launch("MomentumStep", "gt_momentum_step", grid, block,
		PtrArg(ms[0].ptr), PtrArg(ms[1].ptr), PtrArg(ms[2].ptr), IntArg(n),
		FloatArg(float64(lr)), FloatArg(float64(mu)), FloatArg(float64(weightDecay)))
}

// AdamStep sets m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2, then
// w -= lr*weightDecay*w + lr*(m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps), with the
// bias corrections computed once here in float64.
func (b *Backend) AdamStep(wm, gm, mm, vm model.Mat, lr, beta1, beta2, eps, weightDecay float32, t int) error {
	ms, err := b.optArgs("AdamStep", []model.Mat{wm, gm, mm, vm}, []string{"w", "g", "m", "v"})
	if err != nil {
		return err
	}
	if err := backendcheck.AdamParams(beta1, beta2, eps, t); err != nil {
		return fmt.Errorf("device: AdamStep: %w", err)
	}
	n := ms[0].len()
	if n == 0 {
		return nil
	}
	// Rounded to float32 here, as the kernel uses them.
	c1 := float32(1 - math.Pow(float64(beta1), float64(t)))
	c2 := float32(1 - math.Pow(float64(beta2), float64(t)))
	grid, block := b.elemShape(n)
	return b.launch("AdamStep", "gt_adam_step", grid, block,
		PtrArg(ms[0].ptr), PtrArg(ms[1].ptr), PtrArg(ms[2].ptr), PtrArg(ms[3].ptr), IntArg(n),
		FloatArg(float64(lr)), FloatArg(float64(beta1)), FloatArg(float64(beta2)), FloatArg(float64(eps)),
		FloatArg(float64(weightDecay)), FloatArg(float64(c1)), FloatArg(float64(c2)))
}
