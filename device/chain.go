package device

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// model.ChainOps as the kernels of kernels/chain.cu. Each operation runs
// the recursion of its semirings (forward, and for marginals backward on
// the transposed transitions), keeps every position's messages in the
// Backend's chain scratch (one buffer, grown on demand, freed in Close),
// then one kernel per output in a fixed order: per sequence (log Z,
// backtracking, the loss), per element (marginals, dL/dU), per factor
// entry (dP, dS, dF). Offsets and labels are checked on the host before
// any kernel runs: from the vectors' host copies when they have one (an
// upload, a gather of known vectors), else downloaded.

var _ model.ChainOps = (*Backend)(nil)

// ChainPlan is how the chain's recursion runs (kernels/chain.cu). The zero
// value, ChainPlanAuto, runs a block per sequence when the transitions fit
// shared memory and the tiled step otherwise.
type ChainPlan int

const (
	ChainPlanAuto ChainPlan = iota
	// ChainPlanBlock: a block per sequence walks its positions; P in
	// shared memory when it fits, else read from global memory.
	ChainPlanBlock
	// ChainPlanTiled: one launch per position index, tiles of 16
	// sequences x 64 states, P staged through shared memory.
	ChainPlanTiled
)

func (p ChainPlan) String() string {
	switch p {
	case ChainPlanAuto:
		return "auto"
	case ChainPlanBlock:
		return "block"
	case ChainPlanTiled:
		return "tiled"
	}
	return fmt.Sprintf("ChainPlan(%d)", int(p))
}

// Bytes of one message of each semiring (kernels/chain.cu's types).
const (
	chainLogBytes  = 4
	chainMinBytes  = 8
	chainTop2Bytes = 16
	chainTileB     = 16 // GT_CH_TB
	chainTileK     = 64 // GT_CH_TK
	chainBlockMax  = 256
)

// chainRun is a model.Chain resolved and checked.
type chainRun struct {
	u, p, s, f *Matrix
	off        *IntVector
	hostOff    []int32
	b, r, k    int64
	maxLen     int64
}

func (b *Backend) resolveChain(op string, c model.Chain) (*chainRun, error) {
	cr := &chainRun{}
	var err error
	for _, x := range []struct {
		m    model.Mat
		dst  **Matrix
		name string
	}{{c.U, &cr.u, "U"}, {c.P, &cr.p, "P"}, {c.Start, &cr.s, "Start"}, {c.Final, &cr.f, "Final"}} {
		if *x.dst, err = b.mat(x.m, op+" "+x.name); err != nil {
			return nil, err
		}
	}
	if cr.off, err = b.ints(c.Offsets, op+" Offsets"); err != nil {
		return nil, err
	}
	return cr, nil
}

// hostInts returns v's contents: its host copy, or a download.
func (b *Backend) hostInts(op string, v *IntVector) ([]int32, error) {
	if v.host != nil || v.n == 0 {
		return v.host, nil
	}
	xs := make([]int32, v.n)
	if err := b.drv.CopyOut(bytesOf(xs), v.ptr); err != nil {
		return nil, fmt.Errorf("device: %s: downloading indices to check them: %w", op, err)
	}
	return xs, nil
}

// load checks the offsets (shapes are checked) and sizes the run.
func (cr *chainRun) load(b *Backend, op string) error {
	var err error
	if cr.hostOff, err = b.hostInts(op, cr.off); err != nil {
		return err
	}
	cr.b, cr.r, cr.k = int64(cr.off.n-1), int64(cr.u.rows), int64(cr.u.cols)
	if err := backendcheck.ChainOffsets(cr.hostOff, int(cr.r)); err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	for i := int64(0); i < cr.b; i++ {
		cr.maxLen = max(cr.maxLen, int64(cr.hostOff[i+1]-cr.hostOff[i]))
	}
	return nil
}

// chainScratch lays out the chain scratch: take reserves bytes (aligned
// to 256) and returns their offset.
type chainScratch struct{ size int64 }

func (l *chainScratch) take(bytes int64) int64 {
	off := l.size
	l.size += (bytes + 255) &^ 255
	return off
}

// chainBuffers grows the scratch to l and returns its base.
func (b *Backend) chainBuffers(op string, l *chainScratch) (Ptr, error) {
	if err := b.growScratch(&b.chainMem, &b.chainMemCap, max(l.size, 256)); err != nil {
		return 0, fmt.Errorf("device: %s: allocating %d bytes of chain scratch: %w", op, l.size, err)
	}
	return b.chainMem, nil
}

// chainPlan resolves the recursion's plan for k states and messages of
// vbytes: the plan, and whether P fits shared memory.
func (b *Backend) chainPlan(k, vbytes int64) (ChainPlan, bool) {
	fits := k*k*4+2*k*vbytes <= b.sharedBudget
	plan := b.opts.ChainPlan
	if plan == ChainPlanAuto {
		plan = ChainPlanTiled
		if fits {
			plan = ChainPlanBlock
		}
	}
	return plan, fits
}

// chainRecursion runs semiring sr ("log", "min", "top2", messages of
// vbytes) over the batch into msgs: forward with pj = P and first = S, or
// reverse with pj = P^T and first = F. beta is the log semiring's.
func (b *Backend) chainRecursion(op string, cr *chainRun, sr string, vbytes int64, msgs, pj, first Ptr, reverse bool, beta float64) error {
	if cr.b == 0 || cr.maxLen == 0 {
		return nil
	}
	plan, fits := b.chainPlan(cr.k, vbytes)
	rev := int64(b2i(reverse))
	tail := func(args ...uint64) []uint64 {
		if sr == "log" {
			args = append(args, FloatArg(beta))
		}
		return args
	}
	if plan == ChainPlanBlock {
		shared := 2 * cr.k * vbytes
		if fits {
			shared += cr.k * cr.k * 4
		}
		if shared > b.sharedBudget {
			return fmt.Errorf("device: %s: %d states need %d bytes of shared memory for the messages, more than the %d a block may use", op, cr.k, shared, b.sharedBudget)
		}
		threads := min(ceilDiv(cr.k, 32)*32, chainBlockMax)
		kernel := "gt_chain_block_" + sr
		args := tail(PtrArg(msgs), PtrArg(cr.u.ptr), PtrArg(pj), PtrArg(first), PtrArg(cr.off.ptr),
			IntArg(cr.b), IntArg(cr.k), IntArg(rev), IntArg(int64(b2i(fits))))
		if err := b.drv.Launch(kernel, b.rowGrid(cr.b), Dim3{X: int(threads), Y: 1, Z: 1}, int(shared), args...); err != nil {
			return fmt.Errorf("device: %s: kernel %s (%d bytes of shared memory): %w", op, kernel, shared, err)
		}
		return nil
	}
	grid := Dim3{X: int(ceilDiv(cr.b, chainTileB)), Y: int(ceilDiv(cr.k, chainTileK)), Z: 1}
	if int64(grid.Y) > maxGridY || int64(grid.X) > maxGridX {
		return fmt.Errorf("device: %s: %d sequences of %d states exceed the tiled step's grid", op, cr.b, cr.k)
	}
	for i := int64(0); i < cr.maxLen; i++ {
		args := tail(PtrArg(msgs), PtrArg(cr.u.ptr), PtrArg(pj), PtrArg(first), PtrArg(cr.off.ptr),
			IntArg(cr.b), IntArg(cr.k), IntArg(i), IntArg(rev))
		if err := b.launch(op, "gt_chain_step_"+sr, grid, Dim3{X: 16, Y: 16, Z: 1}, args...); err != nil {
			return err
		}
	}
	return nil
}

// chainPadding zeroes the rows of m (nil: none) outside every sequence and
// sets those of path (nil: none) to IgnoreLabel.
func (b *Backend) chainPadding(op string, cr *chainRun, m *Matrix, path *IntVector) error {
	for _, rg := range [][2]int64{{0, int64(cr.hostOff[0])}, {int64(cr.hostOff[cr.b]), cr.r}} {
		if rg[1] <= rg[0] {
			continue
		}
		var mp, pp Ptr
		if m != nil {
			mp = m.ptr
		}
		if path != nil {
			pp = path.ptr
		}
		grid, block := b.elemShape((rg[1] - rg[0]) * cr.k)
		if err := b.launch(op, "gt_chain_padding", grid, block, PtrArg(mp), PtrArg(pp), IntArg(rg[0]), IntArg(rg[1]), IntArg(cr.k)); err != nil {
			return err
		}
	}
	return nil
}

// ChainLoss is model.ChainOps.ChainLoss: the log-semiring forward pass and
// the 2-best forward pass, for NLL and MEE also the backward pass (on P^T);
// gt_chain_finish_loss per sequence; then dS and dF, dP and finally dL/dU
// over U (the gradient kernels read U's energies for the marginals first).
func (b *Backend) ChainLoss(c model.Chain, labelv model.Ints, loss model.Loss, gradScale float32, statm model.Mat, pathv model.Ints, g model.ChainGrads) error {
	const op = "ChainLoss"
	if err := b.open(); err != nil {
		return err
	}
	cr, err := b.resolveChain(op, c)
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
	path, err := b.ints(pathv, op+" path")
	if err != nil {
		return err
	}
	var gp, gs, gf *Matrix
	for _, x := range []struct {
		m    model.Mat
		dst  **Matrix
		name string
	}{{g.P, &gp, "dP"}, {g.Start, &gs, "dStart"}, {g.Final, &gf, "dFinal"}} {
		if x.m != nil {
			if *x.dst, err = b.mat(x.m, op+" "+x.name); err != nil {
				return err
			}
		}
	}
	if err := loss.Validate(); err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	if err := backendcheck.ChainLossShapes(c, labelv, statm, pathv, g); err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	if err := cr.load(b, op); err != nil {
		return err
	}
	hostLabels, err := b.hostInts(op, labels)
	if err != nil {
		return err
	}
	if err := backendcheck.ChainLabels(hostLabels, cr.hostOff, int(cr.k)); err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	path.host = nil
	k, rk := cr.k, cr.r*cr.k
	touchAll := loss.Kind.TouchesAll()
	var l chainScratch
	oPT, oAlpha, oT2 := l.take(4*k*k), l.take(4*rk), l.take(chainTop2Bytes*rk)
	oRev := oAlpha
	if touchAll {
		oRev = l.take(4 * rk)
	}
	oOther, oCoef := l.take(4*cr.r), l.take(32*cr.b)
	base, err := b.chainBuffers(op, &l)
	if err != nil {
		return err
	}
	pt, alpha, rev, t2, other, coef := base+Ptr(oPT), base+Ptr(oAlpha), base+Ptr(oRev), base+Ptr(oT2), base+Ptr(oOther), base+Ptr(oCoef)
	if cr.b > 0 && cr.maxLen > 0 {
		if err := b.chainRecursion(op, cr, "log", chainLogBytes, alpha, cr.p.ptr, cr.s.ptr, false, loss.Beta); err != nil {
			return err
		}
		if err := b.chainRecursion(op, cr, "top2", chainTop2Bytes, t2, cr.p.ptr, cr.s.ptr, false, 0); err != nil {
			return err
		}
		if touchAll {
			grid, block := b.elemShape(k * k)
			if err := b.launch(op, "gt_chain_transpose", grid, block, PtrArg(pt), PtrArg(cr.p.ptr), IntArg(k)); err != nil {
				return err
			}
			if err := b.chainRecursion(op, cr, "log", chainLogBytes, rev, pt, cr.f.ptr, true, loss.Beta); err != nil {
				return err
			}
		}
		grid, block := b.elemShape(cr.b)
		if err := b.launch(op, "gt_chain_finish_loss", grid, block, PtrArg(stats.ptr), PtrArg(path.ptr), PtrArg(other), PtrArg(coef),
			PtrArg(alpha), PtrArg(t2), PtrArg(cr.u.ptr), PtrArg(cr.p.ptr), PtrArg(cr.s.ptr), PtrArg(cr.f.ptr), PtrArg(cr.off.ptr),
			PtrArg(labels.ptr), IntArg(cr.b), IntArg(k), IntArg(int64(loss.Kind)), FloatArg(loss.Beta), FloatArg(loss.Margin),
			FloatArg(loss.Gamma), FloatArg(loss.Delta)); err != nil {
			return err
		}
	} else if cr.b > 0 {
		// Only empty sequences: zero statistics.
		if err := b.drv.CopyIn(stats.ptr, make([]byte, 4*cr.b*model.NumStats)); err != nil {
			return fmt.Errorf("device: %s: %w", op, err)
		}
	}
	scale := float64(gradScale)
	if gp != nil {
		grid, block := b.elemShape(k)
		if err := b.launch(op, "gt_chain_ends", grid, block, PtrArg(gs.ptr), PtrArg(gf.ptr), PtrArg(labels.ptr), PtrArg(other),
			PtrArg(coef), PtrArg(alpha), PtrArg(rev), PtrArg(cr.u.ptr), PtrArg(cr.off.ptr), IntArg(cr.b), IntArg(k),
			FloatArg(loss.Beta), FloatArg(scale)); err != nil {
			return err
		}
		grid, block = b.elemShape(k * k)
		if err := b.launch(op, "gt_chain_pair", grid, block, PtrArg(gp.ptr), PtrArg(labels.ptr), PtrArg(other), PtrArg(coef),
			PtrArg(alpha), PtrArg(rev), PtrArg(cr.p.ptr), PtrArg(cr.off.ptr), IntArg(cr.b), IntArg(k),
			FloatArg(loss.Beta), FloatArg(scale)); err != nil {
			return err
		}
	}
	if cr.b > 0 && cr.maxLen > 0 {
		if err := b.launch(op, "gt_chain_grad_u", b.rowGrid(cr.b), Dim3{X: threads, Y: 1, Z: 1}, PtrArg(cr.u.ptr), PtrArg(labels.ptr),
			PtrArg(other), PtrArg(coef), PtrArg(alpha), PtrArg(rev), PtrArg(cr.off.ptr), IntArg(cr.b), IntArg(k),
			FloatArg(loss.Beta), FloatArg(scale)); err != nil {
			return err
		}
	}
	return b.chainPadding(op, cr, cr.u, path)
}

// ChainMarginals is model.ChainOps.ChainMarginals: forward and backward
// log-semiring passes, log Z per sequence, the marginals per element and,
// when pair is not nil, the pairwise sums per entry.
func (b *Backend) ChainMarginals(c model.Chain, beta float64, logZm, margm, pairm model.Mat) error {
	const op = "ChainMarginals"
	if err := b.open(); err != nil {
		return err
	}
	cr, err := b.resolveChain(op, c)
	if err != nil {
		return err
	}
	logZ, err := b.mat(logZm, op+" logZ")
	if err != nil {
		return err
	}
	marg, err := b.mat(margm, op+" marg")
	if err != nil {
		return err
	}
	var pair *Matrix
	if pairm != nil {
		if pair, err = b.mat(pairm, op+" pair"); err != nil {
			return err
		}
		err = backendcheck.ChainMarginalsShapes(c, beta, logZm, margm, pairm)
	} else {
		err = backendcheck.ChainMarginalsShapes(c, beta, logZm, margm, nil)
	}
	if err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	if err := cr.load(b, op); err != nil {
		return err
	}
	k, rk := cr.k, cr.r*cr.k
	var l chainScratch
	oPT, oAlpha, oRev, oCoef := l.take(4*k*k), l.take(4*rk), l.take(4*rk), l.take(32*cr.b)
	base, err := b.chainBuffers(op, &l)
	if err != nil {
		return err
	}
	pt, alpha, rev, coef := base+Ptr(oPT), base+Ptr(oAlpha), base+Ptr(oRev), base+Ptr(oCoef)
	if cr.b > 0 {
		grid, block := b.elemShape(k * k)
		if err := b.launch(op, "gt_chain_transpose", grid, block, PtrArg(pt), PtrArg(cr.p.ptr), IntArg(k)); err != nil {
			return err
		}
		if err := b.chainRecursion(op, cr, "log", chainLogBytes, alpha, cr.p.ptr, cr.s.ptr, false, beta); err != nil {
			return err
		}
		if err := b.chainRecursion(op, cr, "log", chainLogBytes, rev, pt, cr.f.ptr, true, beta); err != nil {
			return err
		}
		grid, block = b.elemShape(cr.b)
		if err := b.launch(op, "gt_chain_logz", grid, block, PtrArg(logZ.ptr), PtrArg(coef), PtrArg(alpha), PtrArg(cr.f.ptr),
			PtrArg(cr.off.ptr), IntArg(cr.b), IntArg(k), FloatArg(beta)); err != nil {
			return err
		}
		if err := b.launch(op, "gt_chain_marginals", b.rowGrid(cr.b), Dim3{X: threads, Y: 1, Z: 1}, PtrArg(marg.ptr), PtrArg(alpha),
			PtrArg(rev), PtrArg(cr.u.ptr), PtrArg(coef), PtrArg(cr.off.ptr), IntArg(cr.b), IntArg(k), FloatArg(beta)); err != nil {
			return err
		}
	}
	if pair != nil {
		grid, block := b.elemShape(k * k)
		if err := b.launch(op, "gt_chain_pair", grid, block, PtrArg(pair.ptr), PtrArg(0), PtrArg(0), PtrArg(coef),
			PtrArg(alpha), PtrArg(rev), PtrArg(cr.p.ptr), PtrArg(cr.off.ptr), IntArg(cr.b), IntArg(k),
			FloatArg(beta), FloatArg(1)); err != nil {
			return err
		}
	}
	return b.chainPadding(op, cr, marg, nil)
}

// ChainViterbi is model.ChainOps.ChainViterbi: the min semiring forward,
// then per sequence its total and backtracking.
func (b *Backend) ChainViterbi(c model.Chain, pathv model.Ints, energym model.Mat) error {
	const op = "ChainViterbi"
	if err := b.open(); err != nil {
		return err
	}
	cr, err := b.resolveChain(op, c)
	if err != nil {
		return err
	}
	path, err := b.ints(pathv, op+" path")
	if err != nil {
		return err
	}
	energy, err := b.mat(energym, op+" energy")
	if err != nil {
		return err
	}
	if err := backendcheck.ChainViterbiShapes(c, pathv, energym); err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	if err := cr.load(b, op); err != nil {
		return err
	}
	path.host = nil
	var l chainScratch
	oMsgs := l.take(chainMinBytes * cr.r * cr.k)
	base, err := b.chainBuffers(op, &l)
	if err != nil {
		return err
	}
	msgs := base + Ptr(oMsgs)
	if cr.b > 0 {
		if err := b.chainRecursion(op, cr, "min", chainMinBytes, msgs, cr.p.ptr, cr.s.ptr, false, 0); err != nil {
			return err
		}
		grid, block := b.elemShape(cr.b)
		if err := b.launch(op, "gt_chain_finish_viterbi", grid, block, PtrArg(path.ptr), PtrArg(energy.ptr), PtrArg(msgs),
			PtrArg(cr.f.ptr), PtrArg(cr.off.ptr), IntArg(cr.b), IntArg(cr.k)); err != nil {
			return err
		}
	}
	return b.chainPadding(op, cr, nil, path)
}
