package device_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
)

// Each kernel against the cpu reference backend, at sizes that straddle the
// kernels' tiles and blocks (1, 31, 33, 63, 65, 257, 1000, ...), with every
// output poisoned (NaN, or -999999 for ints) before the call so that an
// element a kernel forgets to write shows.

const poisonInt = -999_999

// pair runs the same operation on a device backend and the cpu reference.
type pair struct {
	t   *testing.T
	dev *device.Backend
	ref *cpu.Backend
	rng *rand.Rand
}

func newPair(t *testing.T, eo emu.Options, do device.Options) *pair {
	t.Helper()
	p := &pair{t: t, dev: newDevice(t, eo, do), ref: cpu.New(), rng: rand.New(rand.NewPCG(1, uint64(len(t.Name()))))}
	t.Cleanup(func() {
		if err := p.dev.Close(); err != nil {
			t.Errorf("device Close: %v", err)
		}
		if err := p.ref.Close(); err != nil {
			t.Errorf("cpu Close: %v", err)
		}
	})
	return p
}

// forModes runs f in a subtest per emulator mode with a fresh pair, and
// once more with grids capped at 3 blocks, so that the grid-stride loops of
// the kernels run several rounds.
func forModes(t *testing.T, do device.Options, f func(t *testing.T, p *pair)) {
	for _, mode := range emuModes {
		t.Run(mode.name, func(t *testing.T) { f(t, newPair(t, mode.opts, do)) })
	}
	capped := do
	capped.MaxBlocks = 3
	t.Run("permuted/3-blocks", func(t *testing.T) { f(t, newPair(t, emuModes[1].opts, capped)) })
}

func (p *pair) random(n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*p.rng.Float64())
	}
	return x
}

func nans(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	return x
}

// mats allocates rows x cols on both backends and uploads data (NaN when nil).
func (p *pair) mats(rows, cols int, data []float32) (d, r model.Mat) {
	p.t.Helper()
	if data == nil {
		data = nans(rows * cols)
	}
	var err error
	if d, err = p.dev.Alloc(rows, cols); err != nil {
		p.t.Fatal(err)
	}
	if r, err = p.ref.Alloc(rows, cols); err != nil {
		p.t.Fatal(err)
	}
	if err := p.dev.Upload(d, data); err != nil {
		p.t.Fatal(err)
	}
	if err := p.ref.Upload(r, data); err != nil {
		p.t.Fatal(err)
	}
	return d, r
}

func (p *pair) ints(data []int32) (d, r model.Ints) {
	p.t.Helper()
	var err error
	if d, err = p.dev.AllocInts(len(data)); err != nil {
		p.t.Fatal(err)
	}
	if r, err = p.ref.AllocInts(len(data)); err != nil {
		p.t.Fatal(err)
	}
	if err := p.dev.UploadInts(d, data); err != nil {
		p.t.Fatal(err)
	}
	if err := p.ref.UploadInts(r, data); err != nil {
		p.t.Fatal(err)
	}
	return d, r
}

func poisonedInts(n int) []int32 {
	x := make([]int32, n)
	for i := range x {
		x[i] = poisonInt
	}
	return x
}

func download(t *testing.T, b model.Backend, m model.Mat) []float32 {
	t.Helper()
	x := make([]float32, m.Rows()*m.Cols())
	if err := b.Download(x, m); err != nil {
		t.Fatal(err)
	}
	return x
}

func downloadInts(t *testing.T, b model.Backend, v model.Ints) []int32 {
	t.Helper()
	x := make([]int32, v.Len())
	if err := b.DownloadInts(x, v); err != nil {
		t.Fatal(err)
	}
	return x
}

// both downloads a result from both backends.
func (p *pair) both(d, r model.Mat) (got, want []float32) {
	p.t.Helper()
	return download(p.t, p.dev, d), download(p.t, p.ref, r)
}

// near reports whether got is within tol of want; NaN and infinities must
// match exactly. An unwritten (NaN-poisoned) element therefore never passes.
func near(got, want float32, tol float64) bool {
	g, w := float64(got), float64(want)
	switch {
	case math.IsNaN(w):
		return math.IsNaN(g)
	case math.IsInf(w, 0):
		return g == w
	}
	return !math.IsNaN(g) && math.Abs(g-w) <= tol
}

// compare checks got against want elementwise with tol(i), reporting at
// most a few mismatches.
func compare(t *testing.T, what string, got, want []float32, tol func(i int) float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range want {
		if !near(got[i], want[i], tol(i)) {
			if bad < 5 {
				t.Errorf("%s[%d] = %v, want %v (tol %.3g)", what, i, got[i], want[i], tol(i))
			}
			bad++
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d elements differ", what, bad, len(want))
	}
}

func relTol(want []float32, rel float64) func(int) float64 {
	return func(i int) float64 { return rel * (1 + math.Abs(float64(want[i]))) }
}

const u32 = 1.0 / (1 << 24) // float32 unit roundoff

// checkGemm runs one product on both backends and compares: random A and B
// in [-1, 1], C poisoned with NaN when beta == 0 (it must not be read).
func checkGemm(t *testing.T, p *pair, m, n, k int, ta, tb bool, beta float32) {
	t.Helper()
	name := fmt.Sprintf("%dx%dx%d/transA=%v/transB=%v/beta=%v", m, n, k, ta, tb, beta)
	ar, ac := m, k
	if ta {
		ar, ac = k, m
	}
	br, bc := k, n
	if tb {
		br, bc = n, k
	}
	aData, bData := p.random(ar*ac, -1, 1), p.random(br*bc, -1, 1)
	ad, arf := p.mats(ar, ac, aData)
	bd, brf := p.mats(br, bc, bData)
	var cData []float32 // NaN: beta == 0 must not read it
	if beta != 0 {
		cData = p.random(m*n, -1, 1)
	}
	cd, crf := p.mats(m, n, cData)
	const alpha = 1.25
	if err := p.dev.Gemm(ta, tb, alpha, ad, bd, beta, cd); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := p.ref.Gemm(ta, tb, alpha, arf, brf, beta, crf); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	got, want := p.both(cd, crf)
	// Inputs lie in [-1, 1]: every product is at most 1 in magnitude, so a
	// k-term sum errs by ~k u.
	compare(t, name, got, want, func(int) float64 { return 4 * float64(k+2) * u32 * (alpha + 1) })
	for _, x := range []model.Mat{ad, bd, cd} {
		if err := p.dev.Free(x); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range []model.Mat{arf, brf, crf} {
		if err := p.ref.Free(x); err != nil {
			t.Fatal(err)
		}
	}
}

// checkGemmAlphaZero checks that alpha == 0 gives C = beta*C without
// touching A and B (NaN here).
func checkGemmAlphaZero(t *testing.T, p *pair) {
	t.Helper()
	ad, arf := p.mats(5, 70, nil)
	bd, brf := p.mats(70, 3, nil)
	cData := p.random(15, -1, 1)
	cd, crf := p.mats(5, 3, cData)
	if err := p.dev.Gemm(false, false, 0, ad, bd, 0.5, cd); err != nil {
		t.Fatal(err)
	}
	if err := p.ref.Gemm(false, false, 0, arf, brf, 0.5, crf); err != nil {
		t.Fatal(err)
	}
	got, want := p.both(cd, crf)
	compare(t, "alpha=0", got, want, func(int) float64 { return 0 })
}

// TestGemm checks all four transposes at sizes on both sides of the
// default (64 x 64 x 16) tiles, with beta = 0 over a NaN-poisoned C (which
// must never be read), with beta != 0, and with alpha = 0 over NaN inputs
// (which must not be read). TestGemmTiles forces the larger tiles.
func TestGemm(t *testing.T) {
	sizes := [][3]int{{1, 1, 1}, {1, 33, 7}, {31, 1, 17}, {33, 31, 65}, {64, 64, 16}, {65, 63, 33}, {7, 130, 1}, {129, 2, 100}}
	forModes(t, device.Options{}, func(t *testing.T, p *pair) {
		for _, s := range sizes {
			for _, ta := range []bool{false, true} {
				for _, tb := range []bool{false, true} {
					for _, beta := range []float32{0, 0.75} {
						checkGemm(t, p, s[0], s[1], s[2], ta, tb, beta)
					}
				}
			}
		}
		checkGemmAlphaZero(t, p)
	})
}

// TestElementwise covers AddRowVector, the activations and their gradients,
// and ColumnSums at awkward shapes.
func TestElementwise(t *testing.T) {
	shapes := [][2]int{{1, 1}, {1, 1000}, {31, 33}, {257, 7}, {1000, 3}, {3, 65}}
	forModes(t, device.Options{}, func(t *testing.T, p *pair) {
		for _, s := range shapes {
			rows, cols := s[0], s[1]
			shape := fmt.Sprintf("%dx%d", rows, cols)
			x := p.random(rows*cols, -3, 3)
			v := p.random(cols, -1, 1)

			md, mr := p.mats(rows, cols, x)
			vd, vr := p.mats(1, cols, v)
			if err := p.dev.AddRowVector(md, -0.5, vd); err != nil {
				t.Fatal(err)
			}
			if err := p.ref.AddRowVector(mr, -0.5, vr); err != nil {
				t.Fatal(err)
			}
			got, want := p.both(md, mr)
			compare(t, "AddRowVector "+shape, got, want, relTol(want, 2*u32))

			for _, act := range []model.Activation{model.ReLU, model.Tanh} {
				name := fmt.Sprintf("%v %s", act, shape)
				ad, ar := p.mats(rows, cols, x)
				if err := p.dev.Activate(act, ad); err != nil {
					t.Fatal(err)
				}
				if err := p.ref.Activate(act, ar); err != nil {
					t.Fatal(err)
				}
				got, want := p.both(ad, ar)
				compare(t, "Activate "+name, got, want, relTol(want, 4*u32))

				g := p.random(rows*cols, -2, 2)
				gd, gr := p.mats(rows, cols, g)
				if err := p.dev.ActivationGrad(act, gd, ad); err != nil {
					t.Fatal(err)
				}
				if err := p.ref.ActivationGrad(act, gr, ar); err != nil {
					t.Fatal(err)
				}
				got, want = p.both(gd, gr)
				compare(t, "ActivationGrad "+name, got, want, relTol(want, 8*u32))
			}

			for _, beta := range []float32{0, 2} {
				var dData []float32 // NaN: beta == 0 must not read it
				if beta != 0 {
					dData = p.random(cols, -1, 1)
				}
				dd, dr := p.mats(1, cols, dData)
				sd, sr := p.mats(rows, cols, x)
				if err := p.dev.ColumnSums(dd, 1.5, sd, beta); err != nil {
					t.Fatal(err)
				}
				if err := p.ref.ColumnSums(dr, 1.5, sr, beta); err != nil {
					t.Fatal(err)
				}
				got, want := p.both(dd, dr)
				// Both sum in float64: only the final rounding differs.
				compare(t, fmt.Sprintf("ColumnSums %s beta=%v", shape, beta), got, want, relTol(want, 4*u32))
			}
		}
	})
}

// TestArgminAndGather covers ArgminRows (with many ties), GatherRows and
// GatherInts (indices with repeats).
func TestArgminAndGather(t *testing.T) {
	forModes(t, device.Options{}, func(t *testing.T, p *pair) {
		for _, s := range [][2]int{{1, 1}, {7, 31}, {33, 257}, {3, 1000}, {100, 2}} {
			rows, cols := s[0], s[1]
			// Energies on a coarse grid: ties everywhere, so the lowest-index
			// rule is exercised across threads.
			e := p.random(rows*cols, 0, 4)
			for i := range e {
				e[i] = float32(math.Floor(float64(e[i])))
			}
			ed, er := p.mats(rows, cols, e)
			od, or := p.ints(poisonedInts(rows))
			if err := p.dev.ArgminRows(ed, od); err != nil {
				t.Fatal(err)
			}
			if err := p.ref.ArgminRows(er, or); err != nil {
				t.Fatal(err)
			}
			got, want := downloadInts(t, p.dev, od), downloadInts(t, p.ref, or)
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("ArgminRows %dx%d: row %d: %d, want %d", rows, cols, i, got[i], want[i])
				}
			}

			n := 2*rows + 1
			idx := make([]int32, n)
			for i := range idx {
				idx[i] = int32(p.rng.IntN(rows))
			}
			id, ir := p.ints(idx)
			gd, gr := p.mats(n, cols, nil)
			if err := p.dev.GatherRows(gd, ed, id); err != nil {
				t.Fatal(err)
			}
			if err := p.ref.GatherRows(gr, er, ir); err != nil {
				t.Fatal(err)
			}
			gotR, wantR := p.both(gd, gr)
			compare(t, "GatherRows", gotR, wantR, func(int) float64 { return 0 })

			vd, vr := p.ints(poisonedInts(n))
			if err := p.dev.GatherInts(vd, od, id); err != nil {
				t.Fatal(err)
			}
			if err := p.ref.GatherInts(vr, or, ir); err != nil {
				t.Fatal(err)
			}
			gotI, wantI := downloadInts(t, p.dev, vd), downloadInts(t, p.ref, vr)
			for i := range wantI {
				if gotI[i] != wantI[i] {
					t.Errorf("GatherInts: [%d] = %d, want %d", i, gotI[i], wantI[i])
				}
			}
		}
	})
}

// TestOptimizers runs a few steps of each optimizer with weight decay.
func TestOptimizers(t *testing.T) {
	forModes(t, device.Options{}, func(t *testing.T, p *pair) {
		for _, s := range [][2]int{{1, 1}, {31, 33}, {1000, 1}} {
			rows, cols := s[0], s[1]
			n := rows * cols
			w := p.random(n, -1, 1)
			zeros := make([]float32, n)
			wd, wr := p.mats(rows, cols, w)
			vd, vr := p.mats(rows, cols, zeros)
			md, mr := p.mats(rows, cols, zeros)
			ad, ar := p.mats(rows, cols, zeros)
			for step := 1; step <= 3; step++ {
				g := p.random(n, -1, 1)
				gd, gr := p.mats(rows, cols, g)
				check := func(what string, err1, err2 error, ms ...[2]model.Mat) {
					t.Helper()
					if err1 != nil || err2 != nil {
						t.Fatalf("%s: %v, %v", what, err1, err2)
					}
					for _, m := range ms {
						got, want := p.both(m[0], m[1])
						compare(t, fmt.Sprintf("%s %dx%d step %d", what, rows, cols, step), got, want, relTol(want, 16*u32))
					}
				}
				check("SGDStep", p.dev.SGDStep(wd, gd, 0.1, 0.01), p.ref.SGDStep(wr, gr, 0.1, 0.01), [2]model.Mat{wd, wr})
				check("MomentumStep", p.dev.MomentumStep(wd, gd, vd, 0.05, 0.9, 0.01), p.ref.MomentumStep(wr, gr, vr, 0.05, 0.9, 0.01),
					[2]model.Mat{wd, wr}, [2]model.Mat{vd, vr})
				check("AdamStep", p.dev.AdamStep(wd, gd, md, ad, 0.01, 0.9, 0.999, 1e-8, 0.01, step),
					p.ref.AdamStep(wr, gr, mr, ar, 0.01, 0.9, 0.999, 1e-8, 0.01, step),
					[2]model.Mat{wd, wr}, [2]model.Mat{md, mr}, [2]model.Mat{ad, ar})
			}
		}
	})
}

// energyCase is one EnergyLoss input: energies, labels (some ignored).
type energyCase struct {
	B, K   int
	e      []float32
	labels []int32
}

func newEnergyCase(rng *rand.Rand, B, K int, ties bool) energyCase {
	c := energyCase{B: B, K: K, e: make([]float32, B*K), labels: make([]int32, B)}
	for i := range c.e {
		x := -3 + 6*rng.Float64()
		if ties {
			x = math.Floor(2*x) / 2 // a coarse grid: ties within and across chunks
		}
		c.e[i] = float32(x)
	}
	for i := range c.labels {
		c.labels[i] = int32(rng.IntN(K))
		if i%5 == 3 {
			c.labels[i] = model.IgnoreLabel
		}
	}
	return c
}

// energyLoss runs EnergyLoss on b with poisoned outputs and returns the
// gradient, statistics and argmin.
func energyLoss(t *testing.T, b model.Backend, c energyCase, l model.Loss, gradScale float32) (grad, stats []float32, argmin []int32) {
	t.Helper()
	e, err := b.Alloc(c.B, c.K)
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.Alloc(c.B, model.NumStats)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := b.AllocInts(c.B)
	if err != nil {
		t.Fatal(err)
	}
	am, err := b.AllocInts(c.B)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, x := range []any{e, st, labels, am} {
			if err := b.Free(x); err != nil {
				t.Error(err)
			}
		}
	}()
	for _, err := range []error{b.Upload(e, c.e), b.Upload(st, nans(c.B*model.NumStats)), b.UploadInts(labels, c.labels), b.UploadInts(am, poisonedInts(c.B))} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.EnergyLoss(e, labels, l, gradScale, st, am); err != nil {
		t.Fatalf("%s: EnergyLoss %v: %v", b.Name(), l, err)
	}
	return download(t, b, e), download(t, b, st), downloadInts(t, b, am)
}

// checkEnergyLoss compares a device result with the cpu reference's.
func checkEnergyLoss(t *testing.T, name string, c energyCase, gotG, gotS []float32, gotA []int32, wantG, wantS []float32, wantA []int32) {
	t.Helper()
	// The statistics are O(1)-sized sums of at most K exponentials: float32
	// accumulation errs by ~K u relative.
	compare(t, name+" stats", gotS, wantS, relTol(wantS, 8*float64(c.K+4)*u32))
	compare(t, name+" grad", gotG, wantG, func(int) float64 { return 8 * float64(c.K+4) * u32 })
	for i := range wantA {
		if gotA[i] != wantA[i] {
			t.Errorf("%s argmin[%d] = %d, want %d", name, i, gotA[i], wantA[i])
		}
	}
}

// TestEnergyLoss compares every loss on the single-block and the split-row
// paths with the cpu reference, with ties (so the lowest-index rules decide
// E_I, the argmin and where the sparse gradients go), and checks that both
// paths agree with each other.
func TestEnergyLoss(t *testing.T) {
	shapes := [][2]int{{1, 1}, {3, 2}, {7, 31}, {5, 33}, {2, 257}, {2, 1000}}
	for _, mode := range emuModes {
		t.Run(mode.name, func(t *testing.T) {
			single := newPair(t, mode.opts, device.Options{})
			split := newDevice(t, mode.opts, device.Options{RowChunk: 7})
			t.Cleanup(func() { split.Close() })
			// Two blocks for all rows: the single-block kernel loops over rows.
			capped := newDevice(t, mode.opts, device.Options{MaxBlocks: 2})
			t.Cleanup(func() { capped.Close() })
			rng := rand.New(rand.NewPCG(7, 11))
			for _, s := range shapes {
				for _, ties := range []bool{false, true} {
					c := newEnergyCase(rng, s[0], s[1], ties)
					for _, kind := range model.LossKinds() {
						l := model.Loss{Kind: kind, Beta: 1.5, Margin: 0.5, Gamma: 0.7, Delta: 2}
						name := fmt.Sprintf("%v %dx%d ties=%v", l, c.B, c.K, ties)
						wantG, wantS, wantA := energyLoss(t, single.ref, c, l, 0.25)
						gotG, gotS, gotA := energyLoss(t, single.dev, c, l, 0.25)
						checkEnergyLoss(t, name+" single", c, gotG, gotS, gotA, wantG, wantS, wantA)
						splitG, splitS, splitA := energyLoss(t, split, c, l, 0.25)
						checkEnergyLoss(t, name+" split", c, splitG, splitS, splitA, wantG, wantS, wantA)
						checkEnergyLoss(t, name+" split vs single", c, splitG, splitS, splitA, gotG, gotS, gotA)
						capG, capS, capA := energyLoss(t, capped, c, l, 0.25)
						checkEnergyLoss(t, name+" 2 blocks", c, capG, capS, capA, wantG, wantS, wantA)
					}
				}
			}
		})
	}
}
