package device

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// The joint-model operations (model.JointOps) as kernels of
// kernels/joint.cu. Each call uploads the small variable table (3 int32 per
// variable) into the Backend's joint scratch, followed by its double
// intermediates: one buffer kept for the backend's life, grown when a call
// needs more and freed in Close, so that a training step (two calls per
// batch) costs no device allocation. Overwriting the table of the previous
// call is safe because copies and launches are issued in order (the cuda
// driver puts both on its one stream), so earlier kernels have read it.

var _ model.JointOps = (*Backend)(nil)

// jointScratch views the Backend's joint scratch: the variable table at
// the start, then 8-byte aligned doubles.
type jointScratch struct {
	base    Ptr
	doubles Ptr // 0 when none were asked for
}

// newJointScratch checks vars, uploads the table {K_i, stride_i, off_i}
// and reserves nDoubles doubles after it. It returns J, sumK and sumP too.
func (b *Backend) newJointScratch(op string, vars []int, nDoubles func(j, sumP int64) int64) (sc *jointScratch, j, sumK, sumP int64, err error) {
	offK, sk, _, sp, err := model.JointLayout(vars)
	if err != nil {
		return nil, 0, 0, 0, fmt.Errorf("device: %s: %w", op, err)
	}
	states, _ := model.JointStates(vars)
	j, sumK, sumP = int64(states), int64(sk), int64(sp)
	n := len(vars)
	table := make([]int32, 3*n)
	stride := int32(1)
	for i := n - 1; i >= 0; i-- {
		table[3*i], table[3*i+1], table[3*i+2] = int32(vars[i]), stride, int32(offK[i])
		stride *= int32(vars[i])
	}
	tableBytes := (int64(4*len(table)) + 7) &^ 7
	nd := nDoubles(j, sumP)
	if err := b.growScratch(&b.joint, &b.jointCap, tableBytes+8*nd); err != nil {
		return nil, 0, 0, 0, fmt.Errorf("device: %s: allocating %d bytes of scratch: %w", op, tableBytes+8*nd, err)
	}
	sc = &jointScratch{base: b.joint}
	if nd > 0 {
		sc.doubles = b.joint + Ptr(tableBytes)
	}
	if err := b.drv.CopyIn(sc.base, bytesOf(table)); err != nil {
		return nil, 0, 0, 0, fmt.Errorf("device: %s: uploading the variable table: %w", op, err)
	}
	return sc, j, sumK, sumP, nil
}

// JointEnergies sets E[b,y] = sum_i S[b, off_i + y_i] + q[y] (see
// model.JointOps): gt_joint_pair_table computes the pairwise energies q of
// the J answers once (in double), gt_joint_energies one thread per (b, y).
func (b *Backend) JointEnergies(sm, pm model.Mat, vars []int, em model.Mat) (err error) {
	const op = "JointEnergies"
	if err := b.open(); err != nil {
		return err
	}
	s, err := b.mat(sm, "JointEnergies s")
	if err != nil {
		return err
	}
	e, err := b.mat(em, "JointEnergies e")
	if err != nil {
		return err
	}
	var p *Matrix
	if pm != nil {
		if p, err = b.mat(pm, "JointEnergies p"); err != nil {
			return err
		}
	}
	if pm == nil {
		err = backendcheck.JointEnergiesShapes(sm, nil, vars, em)
	} else {
		err = backendcheck.JointEnergiesShapes(sm, pm, vars, em)
	}
	if err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	_, _, _, sp, _ := model.JointLayout(vars)
	if e.len() == 0 {
		return nil
	}
	usePairs := p != nil && sp > 0
	sc, j, sumK, _, err := b.newJointScratch(op, vars, func(j, _ int64) int64 {
		if usePairs {
			return j
		}
		return 0
	})
	if err != nil {
		return err
	}
	n := int64(len(vars))
	if usePairs {
		grid, block := b.elemShape(j)
		if err := b.launch(op, "gt_joint_pair_table", grid, block,
			PtrArg(sc.doubles), PtrArg(p.ptr), PtrArg(sc.base), IntArg(n), IntArg(j)); err != nil {
			return err
		}
	}
	grid, block := b.elemShape(e.len())
	return b.launch(op, "gt_joint_energies", grid, block,
		PtrArg(e.ptr), PtrArg(s.ptr), PtrArg(sc.doubles), PtrArg(sc.base), IntArg(n), IntArg(int64(e.rows)), IntArg(j), IntArg(sumK))
}

// JointGradients reduces dE onto dS and, when dp is not nil, dP (see
// model.JointOps). dS: gt_joint_unary_grad, one block per (row, column).
// dP: two fixed-order stages, no atomics: gt_column_sums_partial (reduce.cu)
// sums row ranges of dE into double partials, then gt_joint_pair_grad adds,
// for each table entry, the partials of its answers in order.
func (b *Backend) JointGradients(dem model.Mat, vars []int, dsm, dpm model.Mat) (err error) {
	const op = "JointGradients"
	if err := b.open(); err != nil {
		return err
	}
	de, err := b.mat(dem, "JointGradients de")
	if err != nil {
		return err
	}
	ds, err := b.mat(dsm, "JointGradients ds")
	if err != nil {
		return err
	}
	var dp *Matrix
	if dpm != nil {
		if dp, err = b.mat(dpm, "JointGradients dp"); err != nil {
			return err
		}
	}
	if dpm == nil {
		err = backendcheck.JointGradientsShapes(dem, vars, dsm, nil)
	} else {
		err = backendcheck.JointGradientsShapes(dem, vars, dsm, dpm)
	}
	if err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	_, _, _, sp, _ := model.JointLayout(vars)
	states, _ := model.JointStates(vars)
	rows := int64(de.rows)
	pairs := dp != nil && sp > 0
	splits := int64(1)
	if pairs {
		splits = jointSplits(rows, int64(states))
	}
	span := max(1, ceilDiv(rows, splits))
	if rows > 0 {
		splits = ceilDiv(rows, span)
	}
	sc, j, sumK, sumP, err := b.newJointScratch(op, vars, func(j, _ int64) int64 {
		if pairs {
			return splits * j
		}
		return 0
	})
	if err != nil {
		return err
	}
	n := int64(len(vars))
	if ds.len() > 0 {
		// Blocks sized by the longest sum, J / min_i K_i.
		kmin := int64(vars[0])
		for _, k := range vars {
			kmin = min(kmin, int64(k))
		}
		if err := b.launch(op, "gt_joint_unary_grad", b.rowGrid(ds.len()), rowBlock(j/kmin),
			PtrArg(ds.ptr), PtrArg(de.ptr), PtrArg(sc.base), IntArg(n), IntArg(rows), IntArg(j), IntArg(sumK)); err != nil {
			return err
		}
	}
	if !pairs {
		return nil
	}
	if rows > 0 {
		colBlocks := min(ceilDiv(j, colSumCols), b.maxBlocks)
		if err := b.launch(op, "gt_column_sums_partial", Dim3{X: int(colBlocks), Y: int(splits), Z: 1},
			Dim3{X: threads, Y: 1, Z: 1}, PtrArg(sc.doubles), PtrArg(de.ptr), IntArg(rows), IntArg(j), IntArg(span)); err != nil {
			return err
		}
	}
	// Every table entry sums J / (K_i K_j) answers; the block is sized by
	// the largest such count.
	longest := int64(1)
	for a := range vars {
		for c := a + 1; c < len(vars); c++ {
			longest = max(longest, j/(int64(vars[a])*int64(vars[c])))
		}
	}
	if rows == 0 {
		splits = 0 // no partials: every sum is 0
	}
	return b.launch(op, "gt_joint_pair_grad", b.rowGrid(sumP), rowBlock(longest),
		PtrArg(dp.ptr), PtrArg(sc.doubles), IntArg(splits), PtrArg(sc.base), IntArg(n), IntArg(j), IntArg(sumP))
}

// jointSplits is the number of row ranges the first stage of the pairwise
// gradient sums separately: like ColumnSums, enough column-sum blocks to
// fill a GPU (about 1024) with ranges of at least 64 rows.
func jointSplits(rows, cols int64) int64 {
	want := ceilDiv(1024, ceilDiv(cols, colSumCols))
	return max(1, min(want, rows/64, maxGridY))
}
