package backendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// The CBOW input layer's model.EmbeddingOps. Reference: plain float64
// loops over the ids, decoded as model.EmbedID documents (integers in
// [0, V), anything else padding), written here from the interface's doc.

// embShapes are (B, W, V, E): one id, a small vocabulary (many repeated
// ids, in a row and across rows), and awkward sizes.
var embShapes = [][4]int{{1, 1, 1, 1}, {7, 4, 3, 5}, {33, 8, 1000, 17}, {130, 3, 7, 65}}

// embIDs draws B x W ids: uniform in [0, V), a fifth padding (-1), row 1
// all padding, row 2 one id repeated, and a few values that are padding
// too because they name no row (V, -3, 1.5, NaN).
func embIDs(h *helper, B, W, V int) []float32 {
	ids := make([]float32, B*W)
	for i := range ids {
		ids[i] = float32(h.rng.IntN(V))
		if h.rng.IntN(5) == 0 {
			ids[i] = -1
		}
	}
	if B > 1 {
		for j := 0; j < W; j++ {
			ids[W+j] = -1
		}
	}
	if B > 2 {
		for j := 0; j < W; j++ {
			ids[2*W+j] = ids[2*W]
		}
		if ids[2*W] < 0 {
			for j := 0; j < W; j++ {
				ids[2*W+j] = 0
			}
		}
	}
	odd := []float32{float32(V), -3, 1.5, float32(math.NaN())}
	for k, x := range odd {
		if p := 3 + 5*k; p < B*W && B > 3 {
			ids[p] = x
		}
	}
	return ids
}

// refEmbedID decodes an id: an integer in [0, V), else -1.
func refEmbedID(x float32, v int) int {
	f := float64(x)
	if math.IsNaN(f) || f < 0 || f >= float64(v) || f != math.Trunc(f) {
		return -1
	}
	return int(f)
}

// refEmbedMean returns the mean rows and their error bounds.
func refEmbedMean(table, ids []float32, B, W, V, E int) (out, tol []float64) {
	out, tol = make([]float64, B*E), make([]float64, B*E)
	for i := 0; i < B; i++ {
		n := 0
		for j := 0; j < W; j++ {
			if v := refEmbedID(ids[i*W+j], V); v >= 0 {
				n++
				for d := 0; d < E; d++ {
					t := float64(table[v*E+d])
					out[i*E+d] += t
					tol[i*E+d] += math.Abs(t)
				}
			}
		}
		for d := 0; d < E; d++ {
			if n > 0 {
				out[i*E+d] /= float64(n)
				tol[i*E+d] *= gamma(n, 2) / float64(n)
			}
		}
	}
	return out, tol
}

// refEmbedGrad returns dtable and its error bounds.
func refEmbedGrad(dout, ids []float32, B, W, V, E int) (g, tol []float64) {
	g, tol = make([]float64, V*E), make([]float64, V*E)
	terms := make([]int, V)
	for i := 0; i < B; i++ {
		n := 0
		for j := 0; j < W; j++ {
			if refEmbedID(ids[i*W+j], V) >= 0 {
				n++
			}
		}
		for j := 0; j < W; j++ {
			v := refEmbedID(ids[i*W+j], V)
			if v < 0 {
				continue
			}
			terms[v]++
			for d := 0; d < E; d++ {
				x := float64(dout[i*E+d]) / float64(n)
				g[v*E+d] += x
				tol[v*E+d] += math.Abs(x)
			}
		}
	}
	for v := 0; v < V; v++ {
		for d := 0; d < E; d++ {
			tol[v*E+d] *= gamma(terms[v], 2)
		}
	}
	return g, tol
}

// TestEmbedding checks model.EmbeddingOps when the backend has it: the
// mean and its gradient against the float64 reference over poisoned
// outputs, padding and ids that name no row left out, the gradient against
// central finite differences of L = sum_i r_i . out_i computed from the
// backend's own forward, two identical calls bitwise equal, inputs
// untouched, and misuse refused without writing.
func TestEmbedding(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	ops, ok := b.(model.EmbeddingOps)
	if !ok {
		t.Skip("backend has no EmbeddingOps: CBOW models cannot run on it")
	}
	for _, s := range embShapes {
		B, W, V, E := s[0], s[1], s[2], s[3]
		t.Run(fmt.Sprintf("B=%d,W=%d,V=%d,E=%d", B, W, V, E), func(t *testing.T) {
			h := newHelper(t, b)
			table := h.uniform(V*E, -1, 1)
			ids := embIDs(h, B, W, V)
			r := h.uniform(B*E, -1, 1)
			mt, mi, mr := h.mat(V, E, table), h.mat(B, W, ids), h.mat(B, E, r)
			out, dt := h.poisoned(B, E), h.poisoned(V, E)
			must(t, "EmbedMean", func() error { return ops.EmbedMean(mt, mi, out) })
			must(t, "EmbedMeanGrad", func() error { return ops.EmbedMeanGrad(mr, mi, dt) })
			gotOut, gotDT := h.get(out), h.get(dt)
			mm := newMismatches(t, "EmbeddingOps B=%d W=%d V=%d E=%d", B, W, V, E)
			wantOut, tolOut := refEmbedMean(table, ids, B, W, V, E)
			mm.check("out", gotOut, wantOut, tolOut, E)
			wantDT, tolDT := refEmbedGrad(r, ids, B, W, V, E)
			mm.check("dtable", gotDT, wantDT, tolDT, E)

			// Finite differences of L(table) = sum_i r_i . out_i, from the
			// backend's forward: L is linear, so the central difference is
			// exact up to float32 rounding of the outputs.
			const step = 1.0 / 64
			lossAt := func(tb []float32) float64 {
				must(t, "Upload", func() error { return b.Upload(mt, tb) })
				must(t, "EmbedMean", func() error { return ops.EmbedMean(mt, mi, out) })
				o := h.get(out)
				var l float64
				for k := range o {
					l += float64(r[k]) * float64(o[k])
				}
				return l
			}
			probe := append([]float32(nil), table...)
			for k := 0; k < min(12, V*E); k++ {
				e := h.rng.IntN(V * E)
				if k == 0 {
					e = 0
				}
				old := probe[e]
				probe[e] = old + step
				up := lossAt(probe)
				probe[e] = old - step
				down := lossAt(probe)
				probe[e] = old
				fd := (up - down) / (2 * step)
				// Each output carries gamma(W) relative error; L sums B*E of them.
				var mag float64
				for kk := range gotOut {
					mag += math.Abs(float64(r[kk])) * (math.Abs(float64(gotOut[kk])) + step)
				}
				if tl := gamma(W+B*E, 4) * mag / step; math.Abs(fd-float64(gotDT[e])) > tl+tolDT[e] {
					mm.add("dtable[%d,%d] = %v, central difference %v (within %.3g)", e/E, e%E, gotDT[e], fd, tl+tolDT[e])
				}
			}
			must(t, "Upload", func() error { return b.Upload(mt, table) })

			// Determinism and untouched inputs.
			must(t, "Upload", func() error { return b.Upload(out, nans(B*E)) })
			must(t, "Upload", func() error { return b.Upload(dt, nans(V*E)) })
			must(t, "EmbedMean", func() error { return ops.EmbedMean(mt, mi, out) })
			must(t, "EmbedMeanGrad", func() error { return ops.EmbedMeanGrad(mr, mi, dt) })
			mm.checkBits("out of a second identical call", h.get(out), gotOut, E)
			mm.checkBits("dtable of a second identical call", h.get(dt), gotDT, E)
			mm.checkBits("table (input)", h.get(mt), table, E)
			mm.checkBits("ids (input)", h.get(mi), ids, W)
			mm.checkBits("dout (input)", h.get(mr), r, E)
			mm.report()
		})
	}
	t.Run("errors", func(t *testing.T) {
		h := newHelper(t, b)
		table, ids := h.mat(5, 3, h.uniform(15, -1, 1)), h.mat(4, 2, []float32{0, 1, 2, -1, 4, 4, 3, 0})
		out, dt := h.poisoned(4, 3), h.poisoned(5, 3)
		wantErr(t, "EmbedMean with out 4x2", func() error { return ops.EmbedMean(table, ids, h.poisoned(4, 2)) })
		wantErr(t, "EmbedMean with out 3x3", func() error { return ops.EmbedMean(table, ids, h.poisoned(3, 3)) })
		wantErr(t, "EmbedMean with out = ids", func() error { return ops.EmbedMean(h.mat(5, 2, make([]float32, 10)), ids, ids) })
		wantErr(t, "EmbedMean with a foreign table", func() error { return ops.EmbedMean(foreignMat{5, 3}, ids, out) })
		wantErr(t, "EmbedMean with nil ids", func() error { return ops.EmbedMean(table, nil, out) })
		wantErr(t, "EmbedMeanGrad with dtable 5x2", func() error { return ops.EmbedMeanGrad(out, ids, h.poisoned(5, 2)) })
		wantErr(t, "EmbedMeanGrad with dout 3x3", func() error { return ops.EmbedMeanGrad(h.mat(3, 3, make([]float32, 9)), ids, dt) })
		wantErr(t, "EmbedMeanGrad with dtable = dout", func() error { sq := h.mat(4, 3, make([]float32, 12)); return ops.EmbedMeanGrad(sq, ids, sq) })
		mm := newMismatches(t, "refused EmbeddingOps calls must write nothing")
		mm.checkBits("out", h.get(out), nans(12), 3)
		mm.checkBits("dtable", h.get(dt), nans(15), 3)
		mm.report()
	})
}
