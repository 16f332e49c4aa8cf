package cpu

import (
	"fmt"
	"math"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// The fused energy head (model.EnergyHeadOps) on the CPU.
//
// The answers are taken in tiles of kt (headTile): for each tile the
// blocked GEMM computes E_tile = -(h w_tile^T) into a B x kt buffer, the
// bias is added as AddRowVector adds it, and each row folds the tile into
// its online state (headRow: running minimum and argmin, running E_I, E_C,
// and the sum at beta relative to the running minimum, rescaled when the
// minimum drops). Memory: the tile (at most headTileFloats floats) and a
// few values per row; the B x K energies never exist.
//
// EnergyHeadGrad then finishes every row (log Z, the loss and the
// coefficients of its gradient, lossCoef) and, for the losses whose
// gradient touches every answer (NLL, MEE), sweeps the tiles again:
// recompute E_tile, overwrite it with dE = gradScale * dL/dE (one vector
// exp per answer), then dw_tile = -dE^T h and db_tile = -colsums(dE)
// (complete in the tile: their sums run over the B rows) and dh += -dE
// w_tile (accumulated over the tiles in order). The other losses touch two
// answers per row, so their gradients are gathered and scattered from the
// rows' two coefficients without a second sweep.
//
// Determinism: every output element is computed whole by one goroutine in
// a fixed order (the GEMM's own rule; rows split for the row work, answers
// split for the scatter), and the tile width depends on B and K only, so
// the bits depend neither on the thread count nor on timing. A single tile
// (B*K <= headTileFloats) is not recomputed: that is the materializing
// path, at no extra cost for small answer spaces such as MNIST's.
//
// Precision (EnergyHeadPrecision): the energies' products round h and w as
// GemmPrecision does (a rounded copy of h once per call, of each tile of w
// as it is used; TF32x3 the three GEMMs lo*hi, hi*lo, hi*hi into the
// tile), the bias unrounded, and the backward recomputes the tiles the
// same way; the gradients' products (dE^T h, dE w) are float32 on the
// unrounded h and w, as on the GPU (kernels/energyhead.cu says why).

var (
	_ model.EnergyHeadOps          = (*Backend)(nil)
	_ model.EnergyHeadPrecisionOps = (*Backend)(nil)
)

// headTileFloats bounds the energies tile, B x kt floats (16 MiB).
const headTileFloats = 1 << 22

// headTile returns the answers per tile for B rows and K answers: all of
// them when B x K fits headTileFloats, else a multiple of the GEMM's k
// block (so that dh's accumulation over tiles meets the k blocks of the
// materializing dE w), at least one k block.
func headTile(B, K int) int {
	if B*K <= headTileFloats {
		return K
	}
	kt := max(kcBlock, headTileFloats/B/kcBlock*kcBlock)
	return min(kt, K)
}

// headRow is one row's online state while the tiles go by.
type headRow struct {
	m  float32 // smallest energy so far (+Inf before the first)
	am int     // its index, the first on ties (-1 before the first)
	mi float32 // smallest energy off the label so far
	ai int     // its index (-1: none yet)
	ec float32 // E_C, once the label's tile has passed
	s  float64 // sum exp(-beta (E_y - m)) over the answers so far
}

func newHeadRow() headRow {
	inf := float32(math.Inf(1))
	return headRow{m: inf, am: -1, mi: inf, ai: -1}
}

// fold adds the energies x of answers k0, k0+1, ... of a row with the given
// label. Comparisons are float32 and strict, so ties keep the lowest index
// (earlier tiles hold lower indices) and NaN never wins.
func (st *headRow) fold(x []float32, k0, label int, beta float64) {
	tm, ta := float32(math.Inf(1)), -1
	for j, v := range x {
		if v < tm {
			tm, ta = v, j
		}
	}
	if j := label - k0; j >= 0 && j < len(x) {
		st.ec = x[j]
		// The label is in this tile: E_I's candidate is the minimum of
		// the others.
		im, ia := float32(math.Inf(1)), -1
		for jj, v := range x {
			if jj != j && v < im {
				im, ia = v, jj
			}
		}
		if ia >= 0 && im < st.mi {
			st.mi, st.ai = im, k0+ia
		}
	} else if ta >= 0 && tm < st.mi {
		st.mi, st.ai = tm, k0+ta
	}
	if ta >= 0 && tm < st.m {
		// A new minimum: move the sum onto it. An infinite old minimum
		// had nothing summed (see below).
		if !math.IsInf(float64(st.m), 1) {
			st.s *= math.Exp(-beta * (float64(st.m) - float64(tm)))
		}
		st.m, st.am = tm, k0+ta
	}
	if math.IsInf(float64(st.m), 1) {
		// Every energy so far is +Inf (or NaN): each contributes 0
		// relative to any finite minimum to come, and an all-+Inf row has
		// log Z = -Inf whatever s is.
		if ta < 0 {
			for _, v := range x {
				if v != v {
					st.s = math.NaN()
				}
			}
		}
		return
	}
	st.s += expSumShifted(x, st.m, float32(-beta))
}

// finish turns the state into the row's reduction. k is the number of
// answers.
func (st *headRow) finish(k, label int) rowStats {
	r := rowStats{eMin: float64(st.m), am: st.am, eI: float64(st.mi), off: st.ai, s: st.s}
	if r.am < 0 {
		r.am = 0 // no energy below +Inf: answer 0, as EnergyLoss does
	}
	if label >= 0 {
		r.eC = float64(st.ec)
	}
	if r.off < 0 {
		r.eI = math.Inf(1)
		if k > 1 {
			// Every incorrect energy is +Inf (or NaN): the lowest incorrect index.
			r.off = 0
			if label == 0 {
				r.off = 1
			}
		}
	}
	return r
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
// precision p (model.EnergyHeadPrecisionOps).
func (b *Backend) EnergyHeadPrecision(p model.Precision, hm, wm, biasm model.Mat, labelv model.Ints, loss model.Loss, statm model.Mat, argv model.Ints) error {
	return b.energyHead("EnergyHead", p, hm, wm, biasm, labelv, loss, 0, statm, argv, nil, nil, nil, false)
}

// EnergyHeadGradPrecision is EnergyHeadGrad with the energies at precision
// p; the gradients' products stay float32.
func (b *Backend) EnergyHeadGradPrecision(p model.Precision, hm, wm, biasm model.Mat, labelv model.Ints, loss model.Loss, gradScale float32, statm model.Mat, argv model.Ints, dhm, dwm, dbm model.Mat) error {
	return b.energyHead("EnergyHeadGrad", p, hm, wm, biasm, labelv, loss, gradScale, statm, argv, dhm, dwm, dbm, true)
}

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
	var dhAny model.Mat // nil interface when dh is not wanted
	if grad {
		if dw, err = b.mat(dwm, op+" dw"); err != nil {
			return err
		}
		if db, err = b.mat(dbm, op+" db"); err != nil {
			return err
		}
		if dhm != nil {
			if dh, err = b.mat(dhm, op+" dh"); err != nil {
				return err
			}
			dhAny = dh
		}
	}
	if err := loss.Validate(); err != nil {
		return fmt.Errorf("cpu: %s: %w", op, err)
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("cpu: %s: %w", op, err)
	}
	var dwAny, dbAny model.Mat
	if grad {
		dwAny, dbAny = dw, db
	}
	if err := backendcheck.EnergyHeadShapes(h, w, bias, labels, stats, amin, dhAny, dwAny, dbAny, grad); err != nil {
		return fmt.Errorf("cpu: %s: %w", op, err)
	}
	B, D, K := h.rows, h.cols, w.rows
	if i, bad := backendcheck.FirstBadIndex(labels.data, K, true); bad {
		return fmt.Errorf("cpu: %s: %w", op, backendcheck.LabelError(i, labels.data[i], K))
	}
	if B == 0 {
		if grad {
			clear(dw.data)
			clear(db.data)
		}
		return nil
	}
	hs := &headSweep{b: b, h: h.data, w: w.data, bias: bias.data, labels: labels.data, B: B, D: D, K: K, kt: headTile(B, K), beta: loss.Beta, p: p}
	hs.roundH()
	tile := hs.forward()

	rows := make([]rowStats, B)
	coefs := make([]rowCoef, B)
	b.parallelRows(B, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			label := int(labels.data[i])
			rows[i] = hs.state[i].finish(K, label)
			if label != model.IgnoreLabel {
				coefs[i] = lossCoef(loss, label, &rows[i])
			}
			statsRow(stats.data[i*model.NumStats:(i+1)*model.NumStats], loss, label, &rows[i], &coefs[i])
			amin.data[i] = int32(rows[i].am)
		}
	})
	if !grad {
		return nil
	}
	var dhData []float32
	if dh != nil {
		dhData = dh.data
	}
	if loss.Kind.TouchesAll() {
		hs.backwardDense(tile, rows, coefs, float64(gradScale), dhData, dw.data, db.data)
	} else {
		hs.backwardSparse(coefs, float64(gradScale), dhData, dw.data, db.data)
	}
	return nil
}

// headSweep holds one call's operands and scratch.
type headSweep struct {
	b                *Backend
	h, w, bias       []float32
	labels           []int32
	B, D, K, kt      int
	beta             float64
	state            []headRow
	buf              []float32 // the energies tile, B x kt
	lastK0, lastCols int       // the tile buf holds after forward
	// p is the precision of the energies' products; hHi is h rounded (for
	// TF32x3 with hLo, the split of h).
	p        model.Precision
	hHi, hLo []float32
}

// roundH prepares the rounded copy (or split) of h for p, in the
// backend's rounding scratch (GemmPrecision's, which the head never calls).
func (hs *headSweep) roundH() {
	b, n := hs.b, len(hs.h)
	switch hs.p {
	case model.TF32, model.BF16:
		hs.hHi = b.scratch(0, n)
		b.roundInto(hs.p, hs.hHi, hs.h)
	case model.TF32x3:
		hs.hHi, hs.hLo = b.scratch(0, n), b.scratch(2, n)
		b.splitInto(hs.hHi, hs.hLo, hs.h)
	}
}

// energies fills the first B*n floats of buf with the tile of answers
// [k0, k0+n): -(h w_tile^T) by the blocked GEMM, then bias added as
// AddRowVector(-1, bias) adds it, so each element is what the
// materializing path computes.
func (hs *headSweep) energies(k0, n int) []float32 {
	e := hs.buf[:hs.B*n]
	b, w := hs.b, hs.w[k0*hs.D:(k0+n)*hs.D]
	switch hs.p {
	case model.TF32, model.BF16:
		wr := b.scratch(1, len(w))
		b.roundInto(hs.p, wr, w)
		b.gemm(false, true, hs.B, n, hs.D, -1, hs.hHi, wr, 0, e)
	case model.TF32x3:
		// GemmPrecision's order: lo*hi, hi*lo, hi*hi into the tile.
		wHi, wLo := b.scratch(1, len(w)), b.scratch(3, len(w))
		b.splitInto(wHi, wLo, w)
		b.gemm(false, true, hs.B, n, hs.D, -1, hs.hLo, wHi, 0, e)
		b.gemm(false, true, hs.B, n, hs.D, -1, hs.hHi, wLo, 1, e)
		b.gemm(false, true, hs.B, n, hs.D, -1, hs.hHi, wHi, 1, e)
	default:
		b.gemm(false, true, hs.B, n, hs.D, -1, hs.h, w, 0, e)
	}
	bias := hs.bias[k0 : k0+n]
	hs.b.parallelRows(hs.B, rowChunk(n), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := e[i*n : (i+1)*n]
			for j, x := range bias {
				row[j] += -1 * x
			}
		}
	})
	return e
}

// forward folds every tile into the rows' states; it returns the last
// tile's energies, still in buf.
func (hs *headSweep) forward() []float32 {
	b := hs.b
	if need := hs.B * hs.kt; len(b.headBuf) < need {
		b.headBuf = make([]float32, need)
	}
	hs.buf = b.headBuf
	hs.state = make([]headRow, hs.B)
	for i := range hs.state {
		hs.state[i] = newHeadRow()
	}
	var e []float32
	for k0 := 0; k0 < hs.K; k0 += hs.kt {
		n := min(hs.kt, hs.K-k0)
		e = hs.energies(k0, n)
		b.parallelRows(hs.B, rowChunk(n), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				hs.state[i].fold(e[i*n:(i+1)*n], k0, int(hs.labels[i]), hs.beta)
			}
		})
		hs.lastK0, hs.lastCols = k0, n
	}
	return e
}

// backwardDense is the second sweep of NLL and MEE (see the top of the
// file). dh may be nil.
func (hs *headSweep) backwardDense(last []float32, rows []rowStats, coefs []rowCoef, scale float64, dh, dw, db []float32) {
	b, B, D := hs.b, hs.B, hs.D
	for k0 := 0; k0 < hs.K; k0 += hs.kt {
		n := min(hs.kt, hs.K-k0)
		e := last
		if !(k0 == hs.lastK0 && k0 == 0) {
			e = hs.energies(k0, n) // one tile only: the forward's is still there
		}
		// dE in place: scale * (a 1[y == label] + c P_y).
		b.parallelRows(B, rowChunk(n), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				row := e[i*n : (i+1)*n]
				label := int(hs.labels[i])
				if label == model.IgnoreLabel {
					clear(row)
					continue
				}
				r, k := &rows[i], &coefs[i]
				expScaleShifted(row, row, float32(r.eMin), float32(-hs.beta), float32(scale*k.c/r.s))
				if j := label - k0; j >= 0 && j < n {
					pC := math.Exp(-hs.beta*(r.eC-r.eMin)) / r.s
					row[j] = float32(scale * (k.a + k.c*pC))
				}
			}
		})
		// dw_tile = -dE^T h, complete: the sum runs over all B rows.
		b.gemm(true, false, n, D, B, -1, e, hs.h, 0, dw[k0*D:(k0+n)*D])
		// db_tile = -colsums(dE), as ColumnSums(-1) sums: float64, rows in order.
		b.parallelRows(n, max(16, elemChunk/B), func(lo, hi int) {
			acc := make([]float64, hi-lo)
			for i := 0; i < B; i++ {
				for j, x := range e[i*n+lo : i*n+hi] {
					acc[j] += float64(x)
				}
			}
			for j, s := range acc {
				db[k0+lo+j] = float32(-1 * s)
			}
		})
		// dh += -dE w_tile, the tiles in order.
		if dh != nil {
			beta := float32(1)
			if k0 == 0 {
				beta = 0
			}
			b.gemm(false, false, B, D, n, -1, e, hs.w[k0*D:(k0+n)*D], beta, dh)
		}
	}
}

// backwardSparse writes the gradients of the losses that touch at most the
// label and one other answer per row: dh_i = -(g_a w_label + g_b w_other),
// and dw, db scattered from the rows in row order, answers split over
// goroutines (each answer's sums in one goroutine), so the order is fixed.
func (hs *headSweep) backwardSparse(coefs []rowCoef, scale float64, dh, dw, db []float32) {
	b, B, D, K := hs.b, hs.B, hs.D, hs.K
	if dh != nil {
		b.parallelRows(B, max(1, elemChunk/max(D, 1)), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				row := dh[i*D : (i+1)*D]
				clear(row)
				label := int(hs.labels[i])
				if label == model.IgnoreLabel {
					continue
				}
				k := &coefs[i]
				if ga := float32(-scale * k.a); ga != 0 {
					for d, x := range hs.w[label*D : (label+1)*D] {
						row[d] += ga * x
					}
				}
				if gb := float32(-scale * k.b); k.other >= 0 && gb != 0 {
					for d, x := range hs.w[k.other*D : (k.other+1)*D] {
						row[d] += gb * x
					}
				}
			}
		})
	}
	b.parallelRows(K, max(64, elemChunk/max(D, 1)), func(lo, hi int) {
		clear(dw[lo*D : hi*D])
		acc := make([]float64, hi-lo) // db, summed in float64 as ColumnSums does
		add := func(y int, g float32, hrow []float32) {
			if y < lo || y >= hi || g == 0 {
				return
			}
			acc[y-lo] += float64(g)
			out := dw[y*D : (y+1)*D]
			for d, x := range hrow {
				out[d] += -g * x
			}
		}
		for i := 0; i < B; i++ {
			label := int(hs.labels[i])
			if label == model.IgnoreLabel {
				continue
			}
			k := &coefs[i]
			hrow := hs.h[i*D : (i+1)*D]
			add(label, float32(scale*k.a), hrow)
			if k.other >= 0 {
				add(k.other, float32(scale*k.b), hrow)
			}
		}
		for j, s := range acc {
			db[lo+j] = float32(-1 * s)
		}
	})
}
