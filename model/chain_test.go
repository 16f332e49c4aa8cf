package model_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/safetensors"
)

// chainHost is a float64 copy of a ChainModel's parameters and a float64
// evaluation of its loss that shares no code with the model's forward
// pass or the chain operations: the trunk by plain loops, every sequence's
// energy by enumerating the K^T sequences.
type chainHost struct {
	k       int
	hidden  []int
	act     model.Activation
	w, b    [][]float64
	outs    []int
	p, s, f []float64
}

func downloadChain(t *testing.T, be model.Backend, m *model.ChainModel) *chainHost {
	t.Helper()
	sp := m.Spec()
	h := &chainHost{k: sp.States, hidden: sp.Trunk.Hidden, act: sp.Trunk.Activation}
	for _, p := range m.Params() {
		r, c := p.Shape()
		v := make([]float32, r*c)
		must(t, be.Download(v, p.Value))
		f := make([]float64, len(v))
		for i, x := range v {
			f[i] = float64(x)
		}
		switch {
		case p.Name == model.ParamTransitions:
			h.p = f
		case p.Name == model.ParamStart:
			h.s = f
		case p.Name == model.ParamFinal:
			h.f = f
		case len(h.w) == len(h.b):
			h.w = append(h.w, f)
			h.outs = append(h.outs, r)
		default:
			h.b = append(h.b, f)
		}
	}
	return h
}

// all returns pointers to every parameter value, in Params order.
func (h *chainHost) all() [][]float64 {
	var out [][]float64
	for l := range h.w {
		out = append(out, h.w[l], h.b[l])
	}
	return append(out, h.p, h.s, h.f)
}

func (h *chainHost) unary(x []float64) []float64 {
	in := x
	for l := range h.w {
		out := make([]float64, h.outs[l])
		for o := range out {
			s := h.b[l][o]
			for i, v := range in {
				s += h.w[l][o*len(in)+i] * v
			}
			out[o] = s
		}
		for o, s := range out {
			switch {
			case l == len(h.w)-1:
				out[o] = -s
			case h.act == model.ReLU:
				out[o] = math.Max(0, s)
			default:
				out[o] = math.Tanh(s)
			}
		}
		in = out
	}
	return in
}

// enumerate calls fn with every sequence d (numbered idx = sum_t d_t K^t)
// of the positions x and its energy, in index order.
func (h *chainHost) enumerate(x [][]float64, fn func(idx int, d []int, e float64)) {
	k, T := h.k, len(x)
	u := make([][]float64, T)
	for t := range x {
		u[t] = h.unary(x[t])
	}
	n := 1
	for range T {
		n *= k
	}
	d := make([]int, T)
	for idx := range n {
		for t, r := 0, idx; t < T; t++ {
			d[t] = r % k
			r /= k
		}
		e := h.s[d[0]] + u[0][d[0]]
		for t := 1; t < T; t++ {
			e += h.p[d[t-1]*k+d[t]] + u[t][d[t]]
		}
		fn(idx, d, e+h.f[d[T-1]])
	}
}

// seqLoss is the loss of one sequence (positions x, labels y) under l,
// from the enumerated energies: E_C, E_I (min over Y != Y_i, ties to the
// chain order), the argmin and log Z, through model.Loss.Terms.
func (h *chainHost) seqLoss(l model.Loss, x [][]float64, y []int32) float64 {
	var eC, eMin, eI = 0.0, math.Inf(1), math.Inf(1)
	argminIsLabel := false
	mx := math.Inf(-1)
	var es []float64
	h.enumerate(x, func(_ int, d []int, e float64) {
		es = append(es, e)
		isLabel := true
		for t := range d {
			isLabel = isLabel && d[t] == int(y[t])
		}
		if e < eMin {
			eMin, argminIsLabel = e, isLabel
		}
		if isLabel {
			eC = e
		} else if e < eI {
			eI = e
		}
		mx = math.Max(mx, -l.Beta*e)
	})
	var z float64
	for _, e := range es {
		z += math.Exp(-l.Beta*e - mx)
	}
	return l.Terms(eC, eI, eMin, mx+math.Log(z), argminIsLabel).Loss
}

// chainBatch is a batch of sequences on the host: positions x (rows x D),
// offsets and labels.
type chainBatch struct {
	x      []float32
	d      int
	off    []int32
	labels []int32
}

func randomChainBatch(rng *rand.Rand, lens []int, d, k int) chainBatch {
	cb := chainBatch{d: d, off: []int32{0}}
	for _, n := range lens {
		for range n {
			for range d {
				cb.x = append(cb.x, float32(rng.NormFloat64()))
			}
			cb.labels = append(cb.labels, int32(rng.IntN(k)))
		}
		cb.off = append(cb.off, cb.off[len(cb.off)-1]+int32(n))
	}
	return cb
}

func (cb chainBatch) seq(i int) ([][]float64, []int32) {
	lo, hi := cb.off[i], cb.off[i+1]
	var x [][]float64
	for r := lo; r < hi; r++ {
		row := make([]float64, cb.d)
		for j := range row {
			row[j] = float64(cb.x[int(r)*cb.d+j])
		}
		x = append(x, row)
	}
	return x, cb.labels[lo:hi]
}

func (h *chainHost) loss(l model.Loss, cb chainBatch) float64 {
	var sum float64
	for i := 0; i+1 < len(cb.off); i++ {
		x, y := cb.seq(i)
		sum += h.seqLoss(l, x, y)
	}
	return sum
}

// randomizeChain gives every parameter of m random values (P, S and F
// start at zero otherwise).
func randomizeChain(t *testing.T, be model.Backend, m *model.ChainModel, rng *rand.Rand) {
	t.Helper()
	for _, p := range m.Params() {
		v := make([]float32, p.Size())
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.7)
		}
		must(t, be.Upload(p.Value, v))
	}
}

// chainGradients runs ChainLoss (gradient scale 1, sum over sequences)
// and the trunk's backward pass, and returns every parameter's gradient
// and the per-sequence statistics.
func chainGradients(t *testing.T, be model.Backend, m *model.ChainModel, cb chainBatch, l model.Loss) ([][]float32, []float32, []int32) {
	t.Helper()
	rows := len(cb.labels)
	x := mustMat(t, be, rows, cb.d, cb.x)
	off, err := be.AllocInts(len(cb.off))
	must(t, err)
	must(t, be.UploadInts(off, cb.off))
	labels, err := be.AllocInts(rows)
	must(t, err)
	must(t, be.UploadInts(labels, cb.labels))
	st := mustMat(t, be, len(cb.off)-1, model.NumStats, nanSlice((len(cb.off)-1)*model.NumStats))
	path, err := be.AllocInts(rows)
	must(t, err)
	u, err := m.UnaryEnergies(x)
	must(t, err)
	must(t, m.Ops().ChainLoss(m.Chain(u, off), labels, l, 1, st, path, m.Grads()))
	must(t, m.BackwardUnary(u))
	var grads [][]float32
	for _, p := range m.Params() {
		g := make([]float32, p.Size())
		must(t, be.Download(g, p.Grad))
		grads = append(grads, g)
	}
	stats := make([]float32, st.Rows()*st.Cols())
	must(t, be.Download(stats, st))
	ps := make([]int32, rows)
	must(t, be.DownloadInts(ps, path))
	return grads, stats, ps
}

// TestChainGradientsFiniteDifferences: every parameter's gradient (trunk
// layers through an MLP, transitions, start, final) after ChainLoss and
// the trunk's backward pass equals float64 central differences of the
// float64 enumeration, for all ten losses, sequences of lengths 1..4.
// Parameters whose difference quotient changes between step h and h/4 sit
// at a kink of the loss (the argmin or offending sequence switches) and
// are skipped; at most a few may be.
func TestChainGradientsFiniteDifferences(t *testing.T) {
	be := cpu.New()
	defer be.Close()
	const k, d = 3, 3
	for _, l := range []model.Loss{
		{Kind: model.NLL, Beta: 0.8, Margin: 1, Gamma: 1, Delta: 1},
		{Kind: model.MEE, Beta: 1.3, Margin: 1, Gamma: 1, Delta: 1},
		{Kind: model.Log, Beta: 1, Margin: 1, Gamma: 1, Delta: 1},
		{Kind: model.MCE, Beta: 1, Margin: 1, Gamma: 1, Delta: 1},
		{Kind: model.Hinge, Beta: 1, Margin: 30, Gamma: 1, Delta: 1},
		{Kind: model.SquareSquare, Beta: 1, Margin: 30, Gamma: 1, Delta: 1},
		{Kind: model.SquareExp, Beta: 1, Margin: 1, Gamma: 0.5, Delta: 1},
		{Kind: model.Energy, Beta: 1, Margin: 1, Gamma: 1, Delta: 1},
		{Kind: model.Perceptron, Beta: 1, Margin: 1, Gamma: 1, Delta: 1},
		{Kind: model.LVQ2, Beta: 1, Margin: 1, Gamma: 1, Delta: 30},
	} {
		t.Run(l.Kind.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, uint64(l.Kind)))
			m, err := model.NewChainModel(be, model.ChainSpec{States: k, Trunk: model.Spec{Hidden: []int{4}, Activation: model.Tanh}}, d, rng)
			must(t, err)
			defer m.Free()
			randomizeChain(t, be, m, rng)
			cb := randomChainBatch(rng, []int{1, 3, 4, 2}, d, k)
			grads, _, _ := chainGradients(t, be, m, cb, l)
			h := downloadChain(t, be, m)
			checked, skipped := 0, 0
			for pi, vals := range h.all() {
				for i := range vals {
					fd := func(step float64) float64 {
						old := vals[i]
						vals[i] = old + step
						up := h.loss(l, cb)
						vals[i] = old - step
						down := h.loss(l, cb)
						vals[i] = old
						return (up - down) / (2 * step)
					}
					g1, g2 := fd(1e-4), fd(2.5e-5)
					scale := 1 + math.Abs(g1)
					if math.Abs(g1-g2) > 1e-5*scale {
						skipped++
						continue
					}
					got := float64(grads[pi][i])
					if math.Abs(got-g1) > 2e-4*scale {
						t.Errorf("%s[%d]: gradient %v, finite differences %v", m.Params()[pi].Name, i, got, g1)
					}
					checked++
				}
			}
			if skipped > checked/10 {
				t.Errorf("%d parameters at a kink, %d checked: the test point is badly chosen", skipped, checked)
			}
		})
	}
}

// TestChainMatchesJointModelT2: for sequences of length 2 a chain model is
// a joint model over (y_1, y_2) on the concatenated inputs whose heads
// share one weight matrix: [W 0; 0 W] with biases b - S and b - F, and
// pairwise table P. Built so, both give the same log Z, E_C, E_I, loss and
// argmin for all ten losses, and the chain's gradients are the joint
// model's summed over the two blocks.
func TestChainMatchesJointModelT2(t *testing.T) {
	be := cpu.New()
	defer be.Close()
	const k, d, n = 3, 4, 9
	rng := rand.New(rand.NewPCG(8, 1))
	cm, err := model.NewChainModel(be, model.ChainSpec{States: k, Trunk: model.Spec{}}, d, rng)
	must(t, err)
	defer cm.Free()
	randomizeChain(t, be, cm, rng)
	jm, err := model.NewJointModel(be, model.JointSpec{Vars: []int{k, k}, Pairwise: true}, 2*d, rng)
	must(t, err)
	defer jm.Free()
	h := downloadChain(t, be, cm)
	// Joint weights: layer0/W (2K x 2D), layer0/b (2K), pairwise/P (K x K).
	jw := make([]float32, 2*k*2*d)
	jb := make([]float32, 2*k)
	for o := range k {
		for i := range d {
			jw[o*2*d+i] = float32(h.w[0][o*d+i])
			jw[(k+o)*2*d+d+i] = float32(h.w[0][o*d+i])
		}
		// Head energies are negated scores: a bias of b - S is an energy
		// term -b + S.
		jb[o] = float32(h.b[0][o] - h.s[o])
		jb[k+o] = float32(h.b[0][o] - h.f[o])
	}
	jp := make([]float32, k*k)
	for i, v := range h.p {
		jp[i] = float32(v)
	}
	ps := jm.Params()
	must(t, be.Upload(ps[0].Value, jw))
	must(t, be.Upload(ps[1].Value, jb))
	must(t, be.Upload(ps[2].Value, jp))

	lens := make([]int, n)
	for i := range lens {
		lens[i] = 2
	}
	cb := randomChainBatch(rng, lens, d, k)
	jl := make([]int32, n)
	for i := range n {
		jl[i] = cb.labels[2*i]*k + cb.labels[2*i+1]
	}
	jx := mustMat(t, be, n, 2*d, cb.x) // rows [x_1 x_2]: the same floats
	jlab, err := be.AllocInts(n)
	must(t, err)
	must(t, be.UploadInts(jlab, jl))
	for _, kind := range model.LossKinds() {
		l := model.Loss{Kind: kind, Beta: 0.9, Margin: 2, Gamma: 0.7, Delta: 3}
		t.Run(kind.String(), func(t *testing.T) {
			cg, cstats, path := chainGradients(t, be, cm, cb, l)
			e, err := jm.Forward(jx)
			must(t, err)
			st := mustMat(t, be, n, model.NumStats, nanSlice(n*model.NumStats))
			am, err := be.AllocInts(n)
			must(t, err)
			must(t, be.EnergyLoss(e, jlab, l, 1, st, am))
			must(t, jm.Backward(e))
			jstats := make([]float32, n*model.NumStats)
			must(t, be.Download(jstats, st))
			jam := make([]int32, n)
			must(t, be.DownloadInts(jam, am))
			close := func(a, b float32) bool { return math.Abs(float64(a-b)) <= 2e-5*(1+math.Abs(float64(b))) }
			for i := range n {
				for s := range model.NumStats {
					if a, b := cstats[i*model.NumStats+s], jstats[i*model.NumStats+s]; !close(a, b) {
						t.Errorf("sequence %d stat %d: chain %v, joint %v", i, s, a, b)
					}
				}
				if got := path[2*i]*k + path[2*i+1]; got != jam[i] {
					t.Errorf("sequence %d: chain argmin %d, joint %d", i, got, jam[i])
				}
			}
			jg := func(p int) []float32 {
				g := make([]float32, ps[p].Size())
				must(t, be.Download(g, ps[p].Grad))
				return g
			}
			gw, gb, gp := jg(0), jg(1), jg(2)
			for o := range k {
				for i := range d {
					if want := gw[o*2*d+i] + gw[(k+o)*2*d+d+i]; !close(cg[0][o*d+i], want) {
						t.Errorf("dW[%d,%d]: chain %v, joint blocks %v", o, i, cg[0][o*d+i], want)
					}
				}
				if want := gb[o] + gb[k+o]; !close(cg[1][o], want) {
					t.Errorf("db[%d]: chain %v, joint %v", o, cg[1][o], want)
				}
				if !close(cg[3][o], -gb[o]) || !close(cg[4][o], -gb[k+o]) {
					t.Errorf("dS[%d], dF[%d] = %v, %v; joint head biases %v, %v", o, o, cg[3][o], cg[4][o], gb[o], gb[k+o])
				}
			}
			for i := range gp {
				if !close(cg[2][i], gp[i]) {
					t.Errorf("dP[%d]: chain %v, joint pairwise %v", i, cg[2][i], gp[i])
				}
			}
		})
	}
}

// TestChainEnergyModelView: Forward of a ChainModel scores sequences of
// length one, so EnergyLoss on it and ChainLoss on length-1 sequences agree
// (statistics and the trunk's, S's and F's gradients; P's is zero).
func TestChainEnergyModelView(t *testing.T) {
	be := cpu.New()
	defer be.Close()
	const k, d, n = 4, 3, 6
	rng := rand.New(rand.NewPCG(2, 2))
	m, err := model.NewChainModel(be, model.ChainSpec{States: k, Trunk: model.Spec{Hidden: []int{5}}}, d, rng)
	must(t, err)
	defer m.Free()
	randomizeChain(t, be, m, rng)
	cb := randomChainBatch(rng, []int{1, 1, 1, 1, 1, 1}, d, k)
	l := model.Loss{Kind: model.MEE, Beta: 0.6, Margin: 1, Gamma: 1, Delta: 1}
	cg, cstats, _ := chainGradients(t, be, m, cb, l)
	x := mustMat(t, be, n, d, cb.x)
	e, err := m.Forward(x)
	must(t, err)
	labels, err := be.AllocInts(n)
	must(t, err)
	must(t, be.UploadInts(labels, cb.labels))
	st := mustMat(t, be, n, model.NumStats, nanSlice(n*model.NumStats))
	am, err := be.AllocInts(n)
	must(t, err)
	must(t, be.EnergyLoss(e, labels, l, 1, st, am))
	must(t, m.Backward(e))
	stats := make([]float32, n*model.NumStats)
	must(t, be.Download(stats, st))
	for i := range stats {
		if math.Abs(float64(stats[i]-cstats[i])) > 1e-5*(1+math.Abs(float64(cstats[i]))) {
			t.Errorf("stat %d: EnergyModel view %v, chain %v", i, stats[i], cstats[i])
		}
	}
	for pi, p := range m.Params() {
		g := make([]float32, p.Size())
		must(t, be.Download(g, p.Grad))
		for i := range g {
			if math.Abs(float64(g[i]-cg[pi][i])) > 1e-5*(1+math.Abs(float64(cg[pi][i]))) {
				t.Errorf("%s[%d]: EnergyModel view %v, chain %v", p.Name, i, g[i], cg[pi][i])
			}
		}
	}
}

// hmmSequences samples train and test sequences of a 4-state HMM.
func hmmSequences(t *testing.T, nTrain, nTest int) (*model.Sequences, *model.Sequences, *dataset.HMM) {
	t.Helper()
	h, err := dataset.NewHMM(4, 5, 0.7, 0.2, 2.5, 3)
	must(t, err)
	conv := func(s *dataset.SequenceSet) *model.Sequences {
		return &model.Sequences{Data: model.Data{X: s.X, Y: s.Y, N: s.N, D: s.D, Classes: s.Classes}, Offsets: s.Offsets}
	}
	tr, err := h.Sample(nTrain, 2, 12, 1)
	must(t, err)
	te, err := h.Sample(nTest, 2, 12, 2)
	must(t, err)
	return conv(tr), conv(te), h
}

func chainConfig() model.Config {
	cfg := model.DefaultConfig()
	cfg.Optimizer.LR, cfg.Epochs, cfg.Batch, cfg.Seed = 0.05, 6, 16, 3
	return cfg
}

// TestSequenceTrainerLearnsHMM: a chain with a linear trunk trained by NLL
// on an HMM source lowers its held-out NLL epoch after epoch, ends close to
// the Bayes decision's accuracy, and learns the source's cycle: from each
// state the lowest transition energy is to the next state. Every other
// loss trains too (finite statistics after two epochs).
func TestSequenceTrainerLearnsHMM(t *testing.T) {
	be := cpu.New()
	defer be.Close()
	train, test, hmm := hmmSequences(t, 400, 200)
	tr, err := model.NewSequenceTrainer(be, chainConfig(), train, test)
	must(t, err)
	defer tr.Close()
	if _, err := model.NewTrainer(be, tr.Config(), &train.Data, nil); err == nil {
		t.Error("NewTrainer accepted a chain configuration")
	}
	first, err := tr.Evaluate()
	must(t, err)
	res, err := tr.Run(context.Background())
	must(t, err)
	last := res[len(res)-1].Eval
	if !(last.NLL < first.NLL*0.7) {
		t.Errorf("held-out NLL per sequence %v after training, %v before", last.NLL, first.NLL)
	}
	if last.N != test.Len() || last.Positions != test.N {
		t.Errorf("evaluated %d sequences and %d positions, want %d and %d", last.N, last.Positions, test.Len(), test.N)
	}
	bSeq, bPos := bayesAccuracy(t, hmm, test)
	t.Logf("sequence accuracy %.3f (Bayes %.3f), per-position %.3f (Bayes %.3f)", last.Accuracy, bSeq, last.PositionAccuracy, bPos)
	if !(last.Accuracy > bSeq-0.05 && last.PositionAccuracy > bPos-0.03) {
		t.Errorf("sequence accuracy %.3f (Bayes decision %.3f), per-position %.3f (Bayes %.3f)", last.Accuracy, bSeq, last.PositionAccuracy, bPos)
	}
	cm := tr.Model.(*model.ChainModel)
	p := make([]float32, 16)
	must(t, be.Download(p, cm.Params()[len(cm.Params())-3].Value))
	for j := range 4 {
		row := p[j*4 : (j+1)*4]
		if best := slices.Index(row, slices.Min(row)); best != (j+1)%4 {
			t.Errorf("transitions from %d: %v; the lowest energy should be to %d", j, row, (j+1)%4)
		}
	}
	for _, kind := range model.LossKinds() {
		t.Run(kind.String(), func(t *testing.T) {
			cfg := chainConfig()
			cfg.Epochs, cfg.Loss = 2, model.DefaultLoss(kind)
			if kind == model.Energy || kind == model.SquareExp {
				cfg.Optimizer.LR = 0.005 // the energy loss collapses; square-exp grows exponentially
			}
			tr, err := model.NewSequenceTrainer(be, cfg, train, test)
			must(t, err)
			defer tr.Close()
			res, err := tr.Run(context.Background())
			must(t, err)
			ev := res[len(res)-1].Eval
			for _, v := range []float64{res[len(res)-1].TrainLoss, ev.NLL, ev.Loss, ev.Margin} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("non-finite result: %+v", ev)
				}
			}
		})
	}
}

// TestSequenceResumeIsBitwiseExact: a chain run stopped after any step
// (mid-epoch too), saved and restored, ends with bitwise the weights of
// the uninterrupted run.
func TestSequenceResumeIsBitwiseExact(t *testing.T) {
	train, test, _ := hmmSequences(t, 150, 40)
	for _, bm := range backendMakers {
		t.Run(bm.name, func(t *testing.T) {
			if testing.Short() && bm.name != "cpu" {
				t.Skip("-short: cpu only")
			}
			b := bm.open(t)
			defer b.Close()
			testSequenceResume(t, b, train, test)
		})
	}
}

func testSequenceResume(t *testing.T, b model.Backend, train, test *model.Sequences) {
	cfg := chainConfig()
	cfg.Model, cfg.Epochs, cfg.Batch = "mlp:6", 3, 23
	ref, err := model.NewSequenceTrainer(b, cfg, train, test)
	must(t, err)
	want, err := ref.Run(context.Background())
	must(t, err)
	wantW := weights(t, b, ref.Model)
	ref.Close()
	steps := (train.Len() + cfg.Batch - 1) / cfg.Batch
	for _, stopAt := range []int{1, steps, steps + 3, 3*steps - 1} {
		t.Run(fmt.Sprintf("stop after step %d", stopAt), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "chain.safetensors")
			tr, err := model.NewSequenceTrainer(b, cfg, train, test)
			must(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			tr.OnStep = func(s model.StepInfo) {
				if s.GlobalStep == stopAt {
					cancel()
				}
			}
			_, err = tr.Run(ctx)
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v, want context.Canceled", err)
			}
			must(t, tr.SaveCheckpoint(path, model.DataInfo{Dataset: "hmm"}))
			tr.Close()
			ck, err := model.ReadCheckpoint(path)
			must(t, err)
			if !ck.Config.Chain || ck.Data.TrainRows != train.Len() {
				t.Fatalf("checkpoint: chain %v, train_rows %d (want %d sequences)", ck.Config.Chain, ck.Data.TrainRows, train.Len())
			}
			tr2, err := model.NewSequenceTrainer(b, ck.Config, train, test)
			must(t, err)
			defer tr2.Close()
			must(t, ck.Restore(tr2))
			got, err := tr2.Run(context.Background())
			must(t, err)
			sameBits(t, weights(t, b, tr2.Model), wantW)
			lastGot, lastWant := got[len(got)-1], want[len(want)-1]
			if lastGot.TrainLoss != lastWant.TrainLoss || lastGot.Eval.NLL != lastWant.Eval.NLL {
				t.Errorf("last epoch: resumed loss %v NLL %v, uninterrupted %v %v", lastGot.TrainLoss, lastGot.Eval.NLL, lastWant.TrainLoss, lastWant.Eval.NLL)
			}
			// The checkpoint rebuilds the chain model for inference.
			m, err := ck.NewModel(b)
			must(t, err)
			defer m.Free()
			if _, ok := m.(*model.ChainModel); !ok {
				t.Fatalf("NewModel built a %T", m)
			}
			// A shorter data set cannot resume it.
			tr3, err := model.NewSequenceTrainer(b, ck.Config, train.Limit(train.Len()-1), test)
			must(t, err)
			defer tr3.Close()
			if err := ck.Restore(tr3); err == nil {
				t.Error("Restore accepted a training set with one sequence fewer")
			}
		})
	}
}

// TestPredictChain: PredictChain's path, energy, log Z and marginals on a
// few sequences equal the float64 enumeration of the model.
func TestPredictChain(t *testing.T) {
	be := cpu.New()
	defer be.Close()
	const k, d = 3, 2
	rng := rand.New(rand.NewPCG(4, 4))
	m, err := model.NewChainModel(be, model.ChainSpec{States: k, Trunk: model.Spec{}}, d, rng)
	must(t, err)
	defer m.Free()
	randomizeChain(t, be, m, rng)
	cb := randomChainBatch(rng, []int{3, 1, 4, 2, 5}, d, k)
	off := make([]int, len(cb.off))
	for i, v := range cb.off {
		off[i] = int(v)
	}
	beta := 0.8
	p, err := model.PredictChain(be, m, cb.x, off, beta, 2)
	must(t, err)
	h := downloadChain(t, be, m)
	for i := 0; i+1 < len(off); i++ {
		x, _ := cb.seq(i)
		T := len(x)
		best, bestE := 0, math.Inf(1)
		var es []float64
		h.enumerate(x, func(idx int, _ []int, e float64) {
			es = append(es, e)
			if e < bestE {
				best, bestE = idx, e
			}
		})
		lz := logSumExp(beta, es)
		for pos, r := 0, best; pos < T; pos++ {
			if got := int(p.Path[off[i]+pos]); got != r%k {
				t.Errorf("sequence %d position %d: path %d, enumeration %d", i, pos, got, r%k)
			}
			r /= k
		}
		if math.Abs(p.Energy[i]-bestE) > 1e-4 || math.Abs(p.LogZ[i]-lz) > 1e-4 || math.Abs(p.Prob[i]-math.Exp(-beta*bestE-lz)) > 1e-4 {
			t.Errorf("sequence %d: energy %v log Z %v prob %v, enumeration %v %v %v", i, p.Energy[i], p.LogZ[i], p.Prob[i], bestE, lz, math.Exp(-beta*bestE-lz))
		}
		for pos := range T {
			stride := int(math.Pow(k, float64(pos)))
			for v := range k {
				var mu float64
				for idx, e := range es {
					if (idx/stride)%k == v {
						mu += math.Exp(-beta*e - lz)
					}
				}
				if got := p.Marginal(off[i] + pos)[v]; math.Abs(got-mu) > 1e-5 {
					t.Errorf("sequence %d position %d: P(y = %d) = %v, enumeration %v", i, pos, v, got, mu)
				}
			}
		}
	}
}

// bayesAccuracy returns the accuracy of the Bayes decisions of the HMM on
// seqs: Viterbi with the true parameters (the most probable sequence) for
// whole sequences, the largest marginal for positions.
func bayesAccuracy(t *testing.T, h *dataset.HMM, seqs *model.Sequences) (seqAcc, posAcc float64) {
	t.Helper()
	be := cpu.New()
	defer be.Close()
	u, p, s, f := h.ChainEnergies(seqs.X)
	off := make([]int32, len(seqs.Offsets))
	for i, v := range seqs.Offsets {
		off[i] = int32(v)
	}
	k, n := h.K, seqs.N
	offsets, err := be.AllocInts(len(off))
	must(t, err)
	must(t, be.UploadInts(offsets, off))
	c := model.Chain{U: mustMat(t, be, n, k, u), P: mustMat(t, be, k, k, p), Start: mustMat(t, be, 1, k, s), Final: mustMat(t, be, 1, k, f), Offsets: offsets}
	path, err := be.AllocInts(n)
	must(t, err)
	energy := mustMat(t, be, seqs.Len(), 1, make([]float32, seqs.Len()))
	must(t, be.ChainViterbi(c, path, energy))
	marg := mustMat(t, be, n, k, make([]float32, n*k))
	must(t, be.ChainMarginals(c, 1, mustMat(t, be, seqs.Len(), 1, make([]float32, seqs.Len())), marg, nil))
	hp := make([]int32, n)
	must(t, be.DownloadInts(hp, path))
	hm := make([]float32, n*k)
	must(t, be.Download(hm, marg))
	right, pos := 0, 0
	for i := 0; i < seqs.Len(); i++ {
		ok := true
		for r := seqs.Offsets[i]; r < seqs.Offsets[i+1]; r++ {
			ok = ok && hp[r] == seqs.Y[r]
			row := hm[r*k : (r+1)*k]
			if int32(slices.Index(row, slices.Max(row))) == seqs.Y[r] {
				pos++
			}
		}
		if ok {
			right++
		}
	}
	return float64(right) / float64(seqs.Len()), float64(pos) / float64(n)
}

// TestChainCheckpointEnergyFormula: a chain checkpoint's "energy" metadata
// and its tensors (chain.transitions [K, K], chain.start and chain.final
// [K], the layers of a linear trunk) give, computed in float64 exactly as
// docs/CHECKPOINTS.md says, the E(Y_i) that ChainLoss reports for the
// held-out sequences.
func TestChainCheckpointEnergyFormula(t *testing.T) {
	train, test, _ := hmmSequences(t, 60, 5)
	b := cpu.New()
	defer b.Close()
	cfg := chainConfig()
	cfg.Epochs = 1
	tr, err := model.NewSequenceTrainer(b, cfg, train, nil)
	must(t, err)
	defer tr.Close()
	_, err = tr.Run(context.Background())
	must(t, err)
	path := filepath.Join(t.TempDir(), "c.safetensors")
	must(t, tr.SaveCheckpoint(path, model.DataInfo{Dataset: "hmm", SeqColumn: "seq"}))
	f, err := safetensors.ReadFile(path)
	must(t, err)
	md := f.Metadata
	for _, w := range []string{"chain.transitions[y_{t-1}, y_t]", "chain.start[y_1]", "chain.final[y_T]", "U(k,x) = -(layers.L.weight[k]"} {
		if !strings.Contains(md["energy"], w) {
			t.Errorf("energy metadata %q lacks %q", md["energy"], w)
		}
	}
	if md["chain"] != "true" || md["states"] != "4" || md["seq_column"] != "seq" || md["train_rows"] != "60" {
		t.Errorf("metadata chain %q states %q seq_column %q train_rows %q", md["chain"], md["states"], md["seq_column"], md["train_rows"])
	}
	tensor := func(name string, shape ...int) []float64 {
		tt, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("no tensor %s", name)
		}
		if !slices.Equal(tt.Shape, shape) {
			t.Fatalf("tensor %s has shape %v, want %v", name, tt.Shape, shape)
		}
		v, err := tt.Float32s()
		must(t, err)
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	}
	const k, d = 4, 5
	w, bias := tensor("layers.0.weight", k, d), tensor("layers.0.bias", k)
	p, s, fin := tensor("chain.transitions", k, k), tensor("chain.start", k), tensor("chain.final", k)
	cm := tr.Model.(*model.ChainModel)
	cb := chainBatch{x: test.X, d: d, labels: test.Y}
	for _, o := range test.Offsets {
		cb.off = append(cb.off, int32(o))
	}
	_, stats, _ := chainGradients(t, b, cm, cb, model.DefaultLoss(model.NLL))
	for i := 0; i < test.Len(); i++ {
		x, y := cb.seq(i)
		u := func(pos int, state int32) float64 {
			e := bias[state]
			for j := range d {
				e += w[int(state)*d+j] * x[pos][j]
			}
			return -e
		}
		e := s[y[0]] + fin[y[len(y)-1]]
		for pos := range y {
			e += u(pos, y[pos])
			if pos > 0 {
				e += p[int(y[pos-1])*k+int(y[pos])]
			}
		}
		if got := float64(stats[i*model.NumStats+model.StatCorrect]); math.Abs(got-e) > 1e-4*(1+math.Abs(e)) {
			t.Errorf("sequence %d: E(Y_i) %v from ChainLoss, %v from the checkpoint's tensors", i, got, e)
		}
	}
}
