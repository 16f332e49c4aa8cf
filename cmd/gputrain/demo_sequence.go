package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
)

// The sequence demo (docs/SEQUENCE.md): one chain energy over a whole
// string of answers against a per-position classifier on the same trunk,
// on two sources. (1) Strings of real MNIST digit images whose labels
// count upwards with strong probability: the chain learns the counting
// from the labels and uses it to fix digits the pixels leave in doubt. (2)
// A synthetic HMM whose posterior is a chain energy, so the Bayes-optimal
// decisions are computable from its true parameters and show how close the
// trained chain gets to the best any model can do.

func sequenceDemoCommand() *cli.Command {
	d := defaultSeqDemoOptions()
	return &cli.Command{
		Name:  "sequence",
		Usage: "answers that are sequences: a chain energy vs a per-position classifier on MNIST digit strings and on an HMM with a known Bayes decision",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "seed", Value: d.seed, Usage: "seed of the sources (training strings; held-out ones use seed+1) and of the models"},
			&cli.IntFlag{Name: "train", Value: d.train, Usage: "training digit strings, >= 1"},
			&cli.IntFlag{Name: "test", Value: d.test, Usage: "held-out digit strings, >= 1"},
			&cli.IntFlag{Name: "length", Value: d.length, Usage: "digits per string, >= 1"},
			&cli.Float64Flag{Name: "p", Value: d.p, Usage: "probability that the next digit is the previous plus one (else one of the other nine)"},
			&cli.IntFlag{Name: "hmm-train", Value: d.hmmTrain, Usage: "training sequences of the HMM, >= 1 (0 skips the HMM)"},
			&cli.IntFlag{Name: "epochs", Value: d.epochs, Usage: "epochs of every model, >= 1"},
			&cli.StringFlag{Name: "model", Value: d.trunk, Usage: "trunk of every model: " + model.SpecForms},
			&cli.Float64Flag{Name: "lr", Value: d.lr, Usage: "Adam learning rate, > 0"},
			&cli.IntFlag{Name: "batch", Value: d.batch, Usage: "sequences per step (the classifier takes as many positions), >= 1"},
			&cli.StringFlag{Name: "backend", Value: autoBackend, Usage: backendFlagUsage()},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no per-model progress lines on stderr"},
		},
		OnUsageError: usageError,
		Action:       sequenceDemoAction,
	}
}

// The HMM part's budget: its data is small (a few seconds for 10 epochs).
const (
	hmmEpochs = 10
	hmmLR     = 0.01
)

type seqDemoOptions struct {
	seed                                         uint64
	train, test, length, hmmTrain, epochs, batch int
	p, lr                                        float64
	trunk, backend                               string
}

func defaultSeqDemoOptions() seqDemoOptions {
	return seqDemoOptions{seed: 1, train: 6000, test: 1000, length: 8, p: 0.9, hmmTrain: 2000, epochs: 4, batch: 16, lr: 0.003, trunk: "linear", backend: autoBackend}
}

func (o seqDemoOptions) config(chain bool, length int) (model.Config, error) {
	cfg := model.DefaultConfig()
	cfg.Model, cfg.Epochs, cfg.Seed, cfg.Optimizer.LR = o.trunk, o.epochs, o.seed, o.lr
	cfg.Batch, cfg.Chain = o.batch, chain
	if !chain {
		cfg.Batch = o.batch * length // the same positions per step
	}
	return cfg, cfg.Validate()
}

func (o seqDemoOptions) validate() error {
	switch {
	case o.train < 1 || o.test < 1:
		return fmt.Errorf("train and test must be >= 1 string, got %d and %d", o.train, o.test)
	case o.length < 1:
		return fmt.Errorf("length must be >= 1, got %d", o.length)
	case !(o.p >= 0 && o.p <= 1):
		return fmt.Errorf("p must be a probability, got %v", o.p)
	case o.hmmTrain < 0:
		return fmt.Errorf("hmm-train must be >= 0, got %d", o.hmmTrain)
	}
	if _, err := o.config(true, o.length); err != nil {
		return err
	}
	return checkBackend(o.backend)
}

// seqDemoRow is one approach's outcome on held-out sequences.
type seqDemoRow struct {
	name              string
	seqAcc, posAcc    float64 // of the Viterbi path (a classifier: of its answers)
	margAcc           float64 // per position, the largest marginal (-1: none)
	seconds           float64
	transitionsLearnt float64 // chains: rows of P whose lowest energy is the source's likeliest next state (-1: none)
}

// seqDemoResult is the demo's outcome.
type seqDemoResult struct {
	digits, hmm []seqDemoRow
	hmmStates   int
	hmmTest     int
}

// seqSource is one source of the demo: training and held-out sequences,
// and each state's likeliest successor under the source.
type seqSource struct {
	train, test *model.Sequences
	successor   func(j int) int
}

func sequencesOf(s *dataset.SequenceSet) *model.Sequences { return toSequences(s, s.Classes) }

// compareOnSource trains the chain and the per-position classifier on src.
func compareOnSource(ctx context.Context, o seqDemoOptions, be model.Backend, src seqSource, length int, progress io.Writer) ([]seqDemoRow, error) {
	var rows []seqDemoRow
	// (a) A per-position classifier: the trunk alone, trained on the
	// positions as independent rows; a string is right when every one of
	// its positions is.
	cfg, err := o.config(false, length)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	tr, err := model.NewTrainer(be, cfg, &src.train.Data, nil)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	if _, err := tr.Run(ctx); err != nil {
		return nil, fmt.Errorf("per-position classifier: %w", err)
	}
	ans, err := model.Answers(be, tr.Model, src.test.X, src.test.N, 1024)
	if err != nil {
		return nil, err
	}
	row := seqDemoRow{name: fmt.Sprintf("per-position classifier (%s)", cfg.Model), transitionsLearnt: -1}
	row.seqAcc, row.posAcc = pathAccuracy(src.test, ans)
	row.margAcc = row.posAcc // its answers are its largest marginals
	row.seconds = time.Since(start).Seconds()
	rows = append(rows, row)
	if progress != nil {
		fmt.Fprintf(progress, "%-44s sequence acc %.4f  position acc %.4f  %5.1fs\n", row.name, row.seqAcc, row.posAcc, row.seconds)
	}
	// (b) The chain energy on the same trunk.
	cfg, err = o.config(true, length)
	if err != nil {
		return nil, err
	}
	start = time.Now()
	ct, err := model.NewSequenceTrainer(be, cfg, src.train, src.test)
	if err != nil {
		return nil, err
	}
	defer ct.Close()
	res, err := ct.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	ev := res[len(res)-1].Eval
	row = seqDemoRow{name: fmt.Sprintf("chain energy (%s trunk)", cfg.Model), seqAcc: ev.Accuracy, posAcc: ev.PositionAccuracy, seconds: time.Since(start).Seconds()}
	cm := ct.Model.(*model.ChainModel)
	k := cm.States()
	pred, err := model.PredictChain(be, cm, src.test.X, src.test.Offsets, 1, 256)
	if err != nil {
		return nil, err
	}
	_, row.margAcc = pathAccuracy(src.test, maxMarginals(pred.Marginals, k))
	p := make([]float32, k*k)
	for _, prm := range cm.Params() {
		if prm.Name == model.ParamTransitions {
			if err := be.Download(p, prm.Value); err != nil {
				return nil, err
			}
		}
	}
	learnt := 0
	for j := range k {
		r := p[j*k : (j+1)*k]
		if slices.Index(r, slices.Min(r)) == src.successor(j) {
			learnt++
		}
	}
	row.transitionsLearnt = float64(learnt) / float64(k)
	rows = append(rows, row)
	if progress != nil {
		fmt.Fprintf(progress, "%-44s sequence acc %.4f  position acc %.4f  %5.1fs\n", row.name, row.seqAcc, row.posAcc, row.seconds)
	}
	return rows, nil
}

// pathAccuracy scores per-position answers against s: whole sequences
// right, and positions right.
func pathAccuracy(s *model.Sequences, ans []int32) (seqAcc, posAcc float64) {
	right, pos := 0, 0
	for i := 0; i < s.Len(); i++ {
		ok := true
		for r := s.Offsets[i]; r < s.Offsets[i+1]; r++ {
			if ans[r] == s.Y[r] {
				pos++
			} else {
				ok = false
			}
		}
		if ok {
			right++
		}
	}
	return float64(right) / float64(s.Len()), float64(pos) / float64(s.N)
}

// maxMarginals returns the state of the largest marginal of each position
// (marg is positions x k).
func maxMarginals(marg []float64, k int) []int32 {
	out := make([]int32, len(marg)/k)
	for r := range out {
		row := marg[r*k : (r+1)*k]
		out[r] = int32(slices.Index(row, slices.Max(row)))
	}
	return out
}

// hmmBayes returns the Bayes decisions' accuracy on s from the HMM's true
// parameters, and the expected accuracies E[max_Y P(Y | X)] and E[max_k
// P(y_t = k | X)] over the held-out inputs: Viterbi and forward-backward
// on the exact chain energies of the posterior (beta 1), on be's ChainOps.
func hmmBayes(be model.Backend, h *dataset.HMM, s *model.Sequences) (bayes, expected seqDemoRow, err error) {
	ops, ok := be.(model.ChainOps)
	if !ok {
		return bayes, expected, fmt.Errorf("backend %s has no chain operations", be.Name())
	}
	u, p, st, f := h.ChainEnergies(s.X)
	k, n, b := h.K, s.N, s.Len()
	var free []any
	defer func() {
		for _, x := range free {
			_ = be.Free(x)
		}
	}()
	mat := func(r, c int, v []float32) model.Mat {
		if err != nil {
			return nil
		}
		var m model.Mat
		if m, err = be.Alloc(r, c); err == nil {
			free = append(free, m)
			if v != nil {
				err = be.Upload(m, v)
			}
		}
		return m
	}
	ints := func(n int) model.Ints {
		if err != nil {
			return nil
		}
		var v model.Ints
		if v, err = be.AllocInts(n); err == nil {
			free = append(free, v)
		}
		return v
	}
	off := make([]int32, b+1)
	for i, v := range s.Offsets {
		off[i] = int32(v)
	}
	c := model.Chain{U: mat(n, k, u), P: mat(k, k, p), Start: mat(1, k, st), Final: mat(1, k, f), Offsets: ints(b + 1)}
	path, energy, logZ, marg := ints(n), mat(b, 1, nil), mat(b, 1, nil), mat(n, k, nil)
	if err != nil {
		return bayes, expected, err
	}
	if err = be.UploadInts(c.Offsets, off); err != nil {
		return bayes, expected, err
	}
	if err = ops.ChainViterbi(c, path, energy); err != nil {
		return bayes, expected, err
	}
	if err = ops.ChainMarginals(c, 1, logZ, marg, nil); err != nil {
		return bayes, expected, err
	}
	hp, he, hz, hm := make([]int32, n), make([]float32, b), make([]float32, b), make([]float32, n*k)
	for _, dl := range []struct {
		dst []float32
		m   model.Mat
	}{{he, energy}, {hz, logZ}, {hm, marg}} {
		if err = be.Download(dl.dst, dl.m); err != nil {
			return bayes, expected, err
		}
	}
	if err = be.DownloadInts(hp, path); err != nil {
		return bayes, expected, err
	}
	hm64 := make([]float64, n*k)
	var expPos, expSeq float64
	for r := range n {
		row := hm[r*k : (r+1)*k]
		expPos += float64(slices.Max(row))
		for j, v := range row {
			hm64[r*k+j] = float64(v)
		}
	}
	for i := range b {
		expSeq += math.Exp(-float64(he[i]) - float64(hz[i]))
	}
	bayes = seqDemoRow{name: "Bayes decision: true parameters", transitionsLearnt: -1}
	bayes.seqAcc, bayes.posAcc = pathAccuracy(s, hp)
	_, bayes.margAcc = pathAccuracy(s, maxMarginals(hm64, k))
	expected = seqDemoRow{name: "expected Bayes accuracy: mean of the largest posterior", seqAcc: expSeq / float64(b), posAcc: -1, margAcc: expPos / float64(n), transitionsLearnt: -1}
	return bayes, expected, nil
}

// runSequenceDemo runs both sources.
func runSequenceDemo(ctx context.Context, o seqDemoOptions, progress io.Writer) (*seqDemoResult, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	be, err := openBackend(o.backend)
	if err != nil {
		return nil, err
	}
	defer be.Close()
	mnTrain, mnTest, err := dataset.EmbeddedMNIST()
	if err != nil {
		return nil, err
	}
	trainS, err := dataset.DigitStrings(mnTrain, o.train, o.length, o.p, o.seed)
	if err != nil {
		return nil, err
	}
	testS, err := dataset.DigitStrings(mnTest, o.test, o.length, o.p, o.seed+1)
	if err != nil {
		return nil, err
	}
	res := &seqDemoResult{}
	successor := func(j int) int { return (j + 1) % 10 }
	if o.p < 0.1 {
		successor = func(j int) int { return -1 } // no likeliest successor to learn
	}
	res.digits, err = compareOnSource(ctx, o, be, seqSource{train: sequencesOf(trainS), test: sequencesOf(testS), successor: successor}, o.length, progress)
	if err != nil {
		return nil, err
	}
	if o.hmmTrain == 0 {
		return res, nil
	}
	// The HMM: 5 states in 8 dimensions whose means are about 2.5 noise
	// deviations apart, so one position alone is often ambiguous, with a
	// strong cycle (0 -> 1 -> ... -> 4 -> 0 with probability 0.6, stay
	// 0.25).
	h, err := dataset.NewHMM(5, 8, 0.6, 0.25, 2.5, o.seed)
	if err != nil {
		return nil, err
	}
	hTrain, err := h.Sample(o.hmmTrain, 4, 12, o.seed)
	if err != nil {
		return nil, err
	}
	hTest, err := h.Sample(max(200, o.hmmTrain/4), 4, 12, o.seed+1)
	if err != nil {
		return nil, err
	}
	test := sequencesOf(hTest)
	hmmOpts := o
	// The exact posterior is linear in x: with a linear trunk the Bayes
	// decision is in reach. The HMM is small: it gets a budget of its own.
	hmmOpts.trunk, hmmOpts.epochs, hmmOpts.lr = "linear", hmmEpochs, hmmLR
	res.hmm, err = compareOnSource(ctx, hmmOpts, be, seqSource{train: sequencesOf(hTrain), test: test, successor: func(j int) int { return (j + 1) % 5 }}, 8, progress)
	if err != nil {
		return nil, err
	}
	bayes, expected, err := hmmBayes(be, h, test)
	if err != nil {
		return nil, err
	}
	res.hmm = append(res.hmm, bayes, expected)
	res.hmmStates, res.hmmTest = h.K, test.Len()
	return res, nil
}

func seqDemoTable(rows []seqDemoRow) string {
	var b strings.Builder
	b.WriteString("| approach | sequence accuracy (Viterbi) | per-position accuracy (Viterbi) | per-position accuracy (max marginal) | learned transitions | seconds |\n|---|---|---|---|---|---|\n")
	f := func(x float64) string {
		if x < 0 {
			return "-"
		}
		return fmt.Sprintf("%.4f", x)
	}
	for _, r := range rows {
		lt, sec := "-", "-"
		if r.transitionsLearnt >= 0 {
			lt = fmt.Sprintf("%.0f%%", 100*r.transitionsLearnt)
		}
		if r.seconds > 0 {
			sec = fmt.Sprintf("%.1f", r.seconds)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.name, f(r.seqAcc), f(r.posAcc), f(r.margAcc), lt, sec)
	}
	return b.String()
}

func sequenceDemoAction(c *cli.Context) error {
	if err := noArgs(c.Args().Slice()); err != nil {
		return err
	}
	o := seqDemoOptions{
		seed: c.Uint64("seed"), train: c.Int("train"), test: c.Int("test"), length: c.Int("length"), p: c.Float64("p"),
		hmmTrain: c.Int("hmm-train"), epochs: c.Int("epochs"), batch: c.Int("batch"), lr: c.Float64("lr"),
		trunk: c.String("model"), backend: c.String("backend"),
	}
	if o.backend == autoBackend {
		o.backend, _ = resolveAuto()
	}
	if err := o.validate(); err != nil {
		return usage(err)
	}
	var progress io.Writer
	if !c.Bool("quiet") {
		progress = c.App.ErrWriter
	}
	res, err := runSequenceDemo(c.Context, o, progress)
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "MNIST digit strings: %d training and %d held-out strings of %d digits (seeds %d, %d); the next digit is the previous + 1 (mod 10) with probability %g, else one of the other nine. Every model: trunk %s, NLL, Adam lr %g, %d epochs, %d strings (or their %d positions) per step, backend %s.\n\n",
		o.train, o.test, o.length, o.seed, o.seed+1, o.p, o.trunk, o.lr, o.epochs, o.batch, o.batch*o.length, o.backend)
	fmt.Fprint(w, seqDemoTable(res.digits))
	fmt.Fprintln(w, "\nlearned transitions: rows j of the chain's P whose lowest energy is to the source's likeliest next digit j+1.")
	if res.hmm != nil {
		fmt.Fprintf(w, "\nHMM: %d states, 8 dimensions, means ~2.5 noise deviations apart, cycle 0 -> 1 -> ... with probability 0.6, stay 0.25; %d training and %d held-out sequences of 4..12 positions; linear trunk (the exact posterior is linear in x), Adam lr %g, %d epochs. The Bayes decisions use the true parameters: Viterbi for sequences, the largest marginal for positions; the expected accuracy is the mean over held-out inputs of max_Y P(Y given X) and of max_k P(y_t = k given X).\n\n", res.hmmStates, o.hmmTrain, res.hmmTest, hmmLR, hmmEpochs)
		fmt.Fprint(w, seqDemoTable(res.hmm))
	}
	return nil
}
