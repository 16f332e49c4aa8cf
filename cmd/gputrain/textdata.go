package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
)

// Word prediction from text: --data text:FILE trains a CBOW model (model
// cbow:E[+mlp:...]) to predict each word of FILE from the words around it
// (dataset.LoadText: tokenization, vocabulary, held-out sentences), and the
// sampled losses (--sampled) are the shortcuts audited against the exact
// one. predict --context and eval take the vocabulary from the checkpoint.

const textPrefix = "text:"

// isTextData reports whether a --data value names a text file.
func isTextData(path string) bool { return strings.HasPrefix(path, textPrefix) }

// textOptions are the text and sampled-loss flags.
type textOptions struct {
	window, minCount, vocab int
	budget                  time.Duration
}

func textFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "window", Value: 4, Usage: "text data: context words on each side of the word to predict (the model's inputs: 2*window word ids)"},
		&cli.IntFlag{Name: "min-count", Value: 3, Usage: "text data: words seen fewer times in the training text become <unk>"},
		&cli.IntFlag{Name: "vocab", Value: 200000, Usage: "text data: most words in the vocabulary, <unk> included (the answers)"},
		&cli.StringFlag{Name: "sampled", Value: "none", Usage: "train with a sampled approximation of nll instead of the exact one: none, softmax (sampled softmax with the log-Q correction), nce; evaluation stays exact and reports the sampled log Z's error"},
		&cli.IntFlag{Name: "samples", Value: 1024, Usage: "--sampled: answers drawn per step (shared by the batch, seeded)"},
		&cli.StringFlag{Name: "proposal", Value: model.ProposalUnigram, Usage: "--sampled: the sampling distribution: unigram (training label frequencies^0.75) or uniform"},
		&cli.DurationFlag{Name: "time-budget", Usage: "stop training after this much time (e.g. 10m), evaluate and save as after an epoch; 0: no limit"},
	}
}

// parseTextOptions reads the text and sampled flags into cfg and returns
// the rest. Commands without these flags get the zero values: no sampled
// loss, the loader's defaults.
func parseTextOptions(c *cli.Context, cfg *model.Config) (*textOptions, error) {
	t := &textOptions{window: c.Int("window"), minCount: c.Int("min-count"), vocab: c.Int("vocab"), budget: c.Duration("time-budget")}
	if t.budget < 0 {
		return nil, fmt.Errorf("time-budget must be >= 0, got %v", t.budget)
	}
	for _, f := range []struct {
		name  string
		v, lo int
	}{{"window", t.window, 1}, {"min-count", t.minCount, 1}, {"vocab", t.vocab, 2}} {
		if c.IsSet(f.name) && f.v < f.lo {
			return nil, fmt.Errorf("%s must be >= %d, got %d", f.name, f.lo, f.v)
		}
	}
	if name := c.String("sampled"); name != "" {
		if err := checkChoice("sampled loss", name, []string{"none", "softmax", "nce"}); err != nil {
			return nil, err
		}
		if err := checkChoice("proposal", c.String("proposal"), []string{model.ProposalUnigram, model.ProposalUniform}); err != nil {
			return nil, err
		}
		kind, err := model.ParseSampledKind(name)
		if err != nil {
			return nil, err
		}
		if kind != model.SampledNone {
			cfg.Sampled = model.SampledConfig{Kind: kind, Samples: c.Int("samples"), Proposal: c.String("proposal")}
		}
	}
	return t, nil
}

// checkTextPath checks a text:FILE --data value.
func checkTextPath(path string) error {
	file := strings.TrimPrefix(path, textPrefix)
	if file == "" {
		return errors.New("data text: names no file (want text:FILE, e.g. text:/usr/share/dictd/gcide.dict.dz)")
	}
	st, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("data %s is not a regular file", file)
	}
	return nil
}

// loadTextInfo loads --data text:FILE as loadDataInfo loads other data:
// the held-out sentences are the set evaluated after every epoch (text
// data has its own split: --test and --val-split do not apply).
func loadTextInfo(o runOptions) (*loadedData, error) {
	if o.splits.test != "" || o.splits.valFrac > 0 {
		return nil, usagef("--data %s: text data has its own held-out sentences; --test and --val-split do not apply", o.data)
	}
	file := strings.TrimPrefix(o.data, textPrefix)
	t := o.text
	if t == nil {
		t = &textOptions{}
	}
	corpus, err := dataset.LoadText(file, dataset.TextOptions{Window: t.window, MinCount: t.minCount, MaxVocab: t.vocab})
	if err != nil {
		return nil, err
	}
	tr, te := corpus.Train, corpus.Test
	if o.limit > 0 && o.limit < tr.N {
		if tr, err = tr.Subset(o.limit); err != nil {
			return nil, err
		}
	}
	if te.N == 0 {
		return nil, fmt.Errorf("%s: no held-out sentence (%.0f%% of %d)", file, 100*corpus.Options.TestFraction, corpus.Sentences)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	summary := fmt.Sprintf("# %s: %d words in %d sentences; vocabulary %d (min count %d, %.2f%% of the words <unk>); window %d each side; %.0f%% of the sentences held out",
		file, corpus.Tokens, corpus.Sentences, len(corpus.Vocab), corpus.Options.MinCount, 100*corpus.Unknown, corpus.Options.Window, 100*corpus.Options.TestFraction)
	info := model.DataInfo{Dataset: textPrefix + filepath.Base(file), Source: textPrefix + abs, InputShape: []int{tr.D},
		ClassNames: corpus.Vocab, TrainRows: tr.N, Limit: o.limit, TestFraction: corpus.Options.TestFraction}
	conv := func(s *dataset.Set) *model.Data {
		return &model.Data{X: s.X, Y: s.Y, N: s.N, D: s.D, Classes: s.Classes}
	}
	return &loadedData{train: conv(tr), eval: conv(te), evalName: "test", info: info, about: []string{summary}}, nil
}

// textEvalSet loads the held-out sentences of text data for a checkpoint,
// through the checkpoint's vocabulary and window.
func textEvalSet(ck *model.Checkpoint, path string) (*dataset.Set, error) {
	if len(ck.Data.ClassNames) != ck.Classes || ck.Inputs%2 != 0 {
		return nil, fmt.Errorf("the checkpoint %s is not a text model (no vocabulary of %d words, or an odd window of %d inputs)", ck.Path, ck.Classes, ck.Inputs)
	}
	if err := checkTextPath(path); err != nil {
		return nil, err
	}
	frac := ck.Data.TestFraction
	if frac == 0 {
		frac = 0.02
	}
	c, err := dataset.LoadText(strings.TrimPrefix(path, textPrefix), dataset.TextOptions{Window: ck.Inputs / 2, Vocab: ck.Data.ClassNames, TestFraction: frac})
	if err != nil {
		return nil, err
	}
	if c.Test.N == 0 {
		return nil, fmt.Errorf("%s: no held-out sentence (a %.0f%% split of %d sentences)", path, 100*frac, c.Sentences)
	}
	return c.Test, nil
}

// errBudget is the cause of a run stopped by --time-budget.
var errBudget = errors.New("time budget reached")

// budgetContext applies --time-budget to ctx.
func budgetContext(ctx context.Context, o runOptions) (context.Context, context.CancelFunc) {
	if o.text == nil || o.text.budget == 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, o.text.budget, errBudget)
}

// budgetDone turns a run the time budget stopped into a finished one: the
// model as it stands is evaluated and reported through the trainer's
// OnEpoch (the progress line, --metrics, the checkpoint saved mid-epoch:
// resumable), its Epoch the one in progress.
func budgetDone(ctx context.Context, o runOptions, tr *model.Trainer, res []model.EpochResult, err error, progress io.Writer) ([]model.EpochResult, error) {
	if err == nil || !errors.Is(context.Cause(ctx), errBudget) {
		return res, err
	}
	epochs, step := tr.Progress()
	fmt.Fprintf(progress, "gputrain: time budget of %v reached in epoch %d after step %d of %d; evaluating the model as it stands\n",
		o.text.budget, epochs+1, step, tr.StepsPerEpoch())
	// The partial epoch's training loss is not known here: NaN.
	r := model.EpochResult{Epoch: epochs + 1, TrainLoss: math.NaN()}
	start := time.Now()
	ev, eerr := tr.Evaluate()
	if eerr != nil {
		return res, eerr
	}
	r.Eval, r.EvalSeconds = &ev, time.Since(start).Seconds()
	if tr.OnEpoch != nil {
		tr.OnEpoch(r)
	}
	return append(res, r), nil
}

// epochExtra is what train prints after an epoch line for text and sampled
// runs, in lines of at most 80 columns like the epoch line: the perplexity,
// and the log Z audit.
func epochExtra(cfg model.Config, r model.EpochResult) string {
	var lines []string
	if r.Eval != nil && isCBOWConfig(cfg) {
		lines = append(lines, fmt.Sprintf("  perplexity %.2f (exp(beta * NLL), the exact NLL over every answer)", math.Exp(cfg.Loss.Beta*r.Eval.NLL)))
	}
	if r.Eval != nil && r.Eval.LogZAudit != nil {
		a := r.Eval.LogZAudit
		lines = append(lines,
			fmt.Sprintf("  log Z audit, %v, %d samples, %d held-out rows in %d batches:", a.Kind, a.Samples, a.Rows, a.Batches),
			fmt.Sprintf("    exact %.4f estimate %.4f bias %+.4f; spread %.4f/row %.4f/batch", a.MeanExact, a.MeanEst, a.Bias, a.RowStd, a.BatchStd))
		if a.Kind == model.NCE {
			lines = append(lines, fmt.Sprintf("    self-normalization (log Z = 0): bias %+.4f", a.SelfNormalizedBias))
		}
	}
	return strings.Join(lines, "\n")
}

func isCBOWConfig(cfg model.Config) bool {
	s, err := cfg.Spec()
	return err == nil && s.Embed > 0
}

// predictContexts answers predict --context: each context is words with
// one "_" for the word to predict (no "_": the word after them), mapped
// through the checkpoint's vocabulary; the top words by energy.
func predictContexts(c *cli.Context, ctxs []string) error {
	ck, backend, batch, err := inferenceOptions(c)
	if err != nil {
		return err
	}
	top := c.Int("top")
	if top < 1 {
		return fmt.Errorf("top must be >= 1, got %d", top)
	}
	if !isCBOWConfig(ck.Config) || len(ck.Data.ClassNames) != ck.Classes {
		return fmt.Errorf("--context needs a word-prediction model (cbow, trained on --data text:FILE); %s is a %s", ck.Path, ck.Spec())
	}
	ids := map[string]int32{}
	for i, w := range ck.Data.ClassNames {
		ids[w] = int32(i)
	}
	window := ck.Inputs / 2
	x := make([]float32, 0, len(ctxs)*ck.Inputs)
	var unknown [][]string
	for _, q := range ctxs {
		before, after, found := strings.Cut(q, "_")
		if strings.Count(q, "_") > 1 {
			return fmt.Errorf("context %q: more than one _ (the word to predict)", q)
		}
		if !found {
			after = ""
		}
		bw, _ := dataset.TokenizeLine(before, nil, nil)
		aw, _ := dataset.TokenizeLine(after, nil, nil)
		if len(bw)+len(aw) == 0 {
			return fmt.Errorf("context %q has no words", q)
		}
		var unk []string
		for _, w := range append(bw, aw...) {
			if _, ok := ids[w]; !ok {
				unk = append(unk, w)
			}
		}
		unknown = append(unknown, unk)
		x = append(x, dataset.ContextIDs(bw, aw, window, ids)...)
	}
	lm, err := openModel(ck, backend, batch)
	if err != nil {
		return err
	}
	defer lm.close()
	w := c.App.Writer
	beta := ck.Config.Loss.Beta
	fmt.Fprintf(w, "# %s (%s): %d words, window %d each side; top %d answers with their probability at beta %g\n", ck.Spec(), ck.Path, ck.Classes, window, top, beta)
	return model.Energies(lm.b, lm.m, x, len(ctxs), batch, func(start int, e []float32) error {
		for r := 0; r*ck.Classes < len(e); r++ {
			ranked, _ := model.Rank(e[r*ck.Classes:(r+1)*ck.Classes], beta, top)
			var parts []string
			for _, a := range ranked {
				parts = append(parts, fmt.Sprintf("%s %.4f", ck.Data.ClassNames[a.Answer], a.Probability))
			}
			note := ""
			if u := unknown[start+r]; len(u) > 0 {
				note = fmt.Sprintf("  (not in the vocabulary, read as %s: %s)", dataset.UnknownWord, strings.Join(u, " "))
			}
			fmt.Fprintf(w, "%q: %s%s\n", ctxs[start+r], strings.Join(parts, ", "), note)
		}
		return nil
	})
}

// describeSampled names the sampled loss of the train header, if any.
func describeSampled(cfg model.Config) string {
	s := cfg.Sampled
	if s.Kind == model.SampledNone {
		return ""
	}
	p := s.Proposal
	if p == "" {
		p = model.ProposalUnigram
	}
	return fmt.Sprintf(" estimated by sampled %v (%d samples per step from the %s proposal)", s.Kind, s.Samples, p)
}

// maxConfusionClasses is the most classes eval reports per class (and
// counts a confusion matrix of); above, the summary alone.
const maxConfusionClasses = 4096

// largeEvalReport is eval's report without per-class results.
func largeEvalReport(lm *loadedModel, s *dataset.Set, ev model.EvalResult) *evalReport {
	ck := lm.ck
	rep := &evalReport{
		Checkpoint: ck.Path, Model: ck.Spec().String(), Epoch: ck.Epoch, Data: s.Name, Backend: lm.name,
		Rows: s.N, Classes: ck.Classes, Accuracy: jsonFloat(ev.Accuracy), NLL: jsonFloat(ev.NLL),
		Perplexity: jsonFloat(math.Exp(ck.Config.Loss.Beta * ev.NLL)), Beta: ck.Config.Loss.Beta,
		Loss: ck.Config.Loss.String(), LossValue: jsonFloat(ev.Loss), MeanMargin: jsonFloat(ev.Margin),
		MarginViolations: jsonFloat(ev.Violations),
	}
	return rep
}
