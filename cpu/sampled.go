package cpu

import (
	"errors"
	"fmt"
	"math"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendcheck"
)

// The sampled losses (model.SampledOps): the energies of the labels and of
// the S shared samples only, B x (S + 1) of them, by the blocked GEMM on
// the gathered sample rows; the per-row losses in float64; the gradients
// by two more products and a scatter onto the sampled rows of dw and db
// in a fixed order (samples in order, then rows in order; answers split
// over goroutines), so the result does not depend on the thread count.

var _ model.SampledOps = (*Backend)(nil)

// SampledHead computes sampled softmax or NCE for the batch (see
// model.SampledOps); dw nil means no gradient.
func (b *Backend) SampledHead(kind model.SampledKind, hm, wm, biasm model.Mat, labelv, samplev model.Ints, logQm model.Mat,
	beta float64, gradScale float32, statm, dhm, dwm, dbm model.Mat) error {
	if err := b.open(); err != nil {
		return err
	}
	const op = "SampledHead"
	mats := map[string]*Matrix{}
	for _, m := range []struct {
		name string
		x    model.Mat
		opt  bool
	}{{"h", hm, false}, {"w", wm, false}, {"bias", biasm, false}, {"logQ", logQm, false}, {"stats", statm, false},
		{"dh", dhm, true}, {"dw", dwm, true}, {"db", dbm, true}} {
		if m.opt && m.x == nil {
			continue
		}
		x, err := b.mat(m.x, op+" "+m.name)
		if err != nil {
			return err
		}
		mats[m.name] = x
	}
	labels, err := b.ints(labelv, op+" labels")
	if err != nil {
		return err
	}
	samples, err := b.ints(samplev, op+" samples")
	if err != nil {
		return err
	}
	h, w, bias, logQ, stats := mats["h"], mats["w"], mats["bias"], mats["logQ"], mats["stats"]
	dh, dw, db := mats["dh"], mats["dw"], mats["db"]
	grad := dw != nil
	B, D, K, S := h.rows, h.cols, w.rows, samples.Len()
	switch {
	case kind != model.SampledSoftmax && kind != model.NCE:
		return fmt.Errorf("cpu: %s: unknown sampled loss %v", op, kind)
	case !(beta > 0) || math.IsInf(beta, 0):
		return fmt.Errorf("cpu: %s: beta must be a finite number > 0, got %v", op, beta)
	case S < 1:
		return fmt.Errorf("cpu: %s: no samples", op)
	case w.cols != D || bias.rows != 1 || bias.cols != K || logQ.rows != 1 || logQ.cols != K:
		return fmt.Errorf("cpu: %s: h %s, w %s, bias %s, logQ %s: want B x D, K x D, 1 x K, 1 x K", op, h.shape(), w.shape(), bias.shape(), logQ.shape())
	case labels.Len() != B || stats.rows != B || stats.cols != model.NumStats:
		return fmt.Errorf("cpu: %s: %d labels and stats %s for %d rows (want %d labels, %dx%d stats)", op, labels.Len(), stats.shape(), B, B, B, model.NumStats)
	case grad && (db == nil || dw.rows != K || dw.cols != D || db.rows != 1 || db.cols != K):
		return fmt.Errorf("cpu: %s: dw and db must be %s and 1x%d", op, w.shape(), K)
	case grad && dh != nil && (dh.rows != B || dh.cols != D):
		return fmt.Errorf("cpu: %s: dh is %s, want %s", op, dh.shape(), h.shape())
	case !grad && (dh != nil || db != nil):
		return errors.New("cpu: SampledHead: dh and db without dw")
	}
	var outs []model.Mat
	for _, x := range []*Matrix{h, w, bias, logQ, stats, dh, dw, db} {
		if x != nil {
			outs = append(outs, x)
		}
	}
	if err := backendcheck.Distinct(outs...); err != nil {
		return fmt.Errorf("cpu: %s: %w", op, err)
	}
	if i, bad := backendcheck.FirstBadIndex(labels.data, K, true); bad {
		return fmt.Errorf("cpu: %s: %w", op, backendcheck.LabelError(i, labels.data[i], K))
	}
	if i, bad := backendcheck.FirstBadIndex(samples.data, K, false); bad {
		return fmt.Errorf("cpu: %s: sample %d is %d, outside the %d answers", op, i, samples.data[i], K)
	}

	// The samples' rows and energies: es = -(h ws^T) - b_s (B x S).
	ws := make([]float32, S*D)
	for j, s := range samples.data {
		copy(ws[j*D:(j+1)*D], w.data[int(s)*D:(int(s)+1)*D])
	}
	es := make([]float32, B*S)
	b.gemm(false, true, B, S, D, -1, h.data, ws, 0, es)
	logS := math.Log(float64(S))
	g := es // overwritten row by row with the gradient coefficients gradScale * dL/dE_{s_j}
	gy := make([]float32, B)
	b.parallelRows(B, max(1, elemChunk/max(S+D, 1)), func(lo, hi int) {
		o := make([]float64, S)
		for i := lo; i < hi; i++ {
			row := es[i*S : (i+1)*S]
			label := int(labels.data[i])
			// The log-Q corrected logits of the samples, and the IS
			// estimate of log Z from all of them.
			mx := math.Inf(-1)
			for j, s := range samples.data {
				e := float64(row[j]) - float64(bias.data[s])
				o[j] = -beta*e - float64(logQ.data[s])
				mx = math.Max(mx, o[j])
			}
			var z float64
			for j := range o {
				z += math.Exp(o[j] - mx)
			}
			st := stats.data[i*model.NumStats : (i+1)*model.NumStats]
			st[model.StatLogZ] = float32(mx + math.Log(z) - logS)
			st[model.StatLoss], st[model.StatCorrect], st[model.StatOffending] = 0, 0, 0
			if label == model.IgnoreLabel {
				clear(row)
				gy[i] = 0
				continue
			}
			// The label's energy, a float64 dot product.
			var dot float64
			for d, x := range h.data[i*D : (i+1)*D] {
				dot += float64(x) * float64(w.data[label*D+d])
			}
			ey := -dot - float64(bias.data[label])
			// E_I among the samples: the smallest energy off the label.
			ei := math.Inf(1)
			for j, s := range samples.data {
				if int(s) != label {
					ei = math.Min(ei, float64(row[j])-float64(bias.data[s]))
				}
			}
			oy := -beta*ey - float64(logQ.data[label]) - logS
			loss, cy := sampledRow(kind, beta, oy, o, samples.data, label, logS)
			st[model.StatLoss], st[model.StatCorrect], st[model.StatOffending] = float32(loss), float32(ey), float32(ei)
			gy[i] = float32(float64(gradScale) * cy)
			for j := range row {
				row[j] = float32(float64(gradScale) * o[j]) // sampledRow left dL/dE_{s_j} in o
			}
		}
	})
	if !grad {
		return nil
	}
	// dh = -(G ws) - gy w_y; dws = -(G^T h) (S x D).
	if dh != nil {
		b.gemm(false, false, B, D, S, -1, g, ws, 0, dh.data)
		b.parallelRows(B, max(1, elemChunk/max(D, 1)), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				if label := int(labels.data[i]); label >= 0 && gy[i] != 0 {
					row := dh.data[i*D : (i+1)*D]
					for d, x := range w.data[label*D : (label+1)*D] {
						row[d] += -gy[i] * x
					}
				}
			}
		})
	}
	dws := make([]float32, S*D)
	b.gemm(true, false, S, D, B, -1, g, h.data, 0, dws)
	// db of the samples: -colsums(G) in float64, rows in order.
	dbs := make([]float64, S)
	for i := 0; i < B; i++ {
		for j, x := range g[i*S : (i+1)*S] {
			dbs[j] -= float64(x)
		}
	}
	// The scatter: answers split over goroutines; each element gets its
	// samples' terms in sample order, then its labels' in row order.
	b.parallelRows(K, max(64, elemChunk/max(D, 1)), func(lo, hi int) {
		clear(dw.data[lo*D : hi*D])
		acc := make([]float64, hi-lo)
		for j, s := range samples.data {
			if c := int(s); c >= lo && c < hi {
				dst := dw.data[c*D : (c+1)*D]
				for d, x := range dws[j*D : (j+1)*D] {
					dst[d] += x
				}
				acc[c-lo] += dbs[j]
			}
		}
		for i, y := range labels.data {
			if c := int(y); c >= lo && c < hi && gy[i] != 0 {
				dst := dw.data[c*D : (c+1)*D]
				for d, x := range h.data[i*D : (i+1)*D] {
					dst[d] += -gy[i] * x
				}
				acc[c-lo] -= float64(gy[i])
			}
		}
		for c := range acc {
			db.data[lo+c] = float32(acc[c])
		}
	})
	return nil
}

// sampledRow returns a row's sampled loss and dL/dE_y, and overwrites o
// (the samples' corrected logits) with dL/dE_{s_j}. Samples equal to the
// label are left out (a zero gradient).
func sampledRow(kind model.SampledKind, beta, oy float64, o []float64, samples []int32, label int, logS float64) (loss, cy float64) {
	for j := range o {
		o[j] -= logS // o_c = -beta E_c - log(S Q(c))
	}
	if kind == model.NCE {
		loss = softplus(-oy)
		cy = beta * sigmoid(-oy)
		for j, s := range samples {
			if int(s) == label {
				o[j] = 0
				continue
			}
			loss += softplus(o[j])
			o[j] = -beta * sigmoid(o[j])
		}
		return loss, cy
	}
	mx := oy
	for j, s := range samples {
		if int(s) != label {
			mx = math.Max(mx, o[j])
		}
	}
	z := math.Exp(oy - mx)
	for j, s := range samples {
		if int(s) != label {
			z += math.Exp(o[j] - mx)
		}
	}
	lz := mx + math.Log(z)
	loss = (lz - oy) / beta
	cy = 1 - math.Exp(oy-lz)
	for j, s := range samples {
		if int(s) == label {
			o[j] = 0
			continue
		}
		o[j] = -math.Exp(o[j] - lz)
	}
	return loss, cy
}

// softplus is log(1 + exp(x)) without overflow.
func softplus(x float64) float64 { return math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))) }
