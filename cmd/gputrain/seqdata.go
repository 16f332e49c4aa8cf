package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/comm"
	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
)

// Training on sequences (docs/SEQUENCE.md): --data names a CSV file with a
// sequence-id column (--seq-column), a label column (--label, default
// "label") and feature columns, one row per position. The model is then a
// chain (model.ChainModel) over the label's values with --model as its
// trunk; 20% of the sequences are held out (never cut), features are
// standardized on the training positions, --batch and --limit count
// sequences. The hooks into the ordinary train path are runOptions.seq
// (set by parseSeq), loadDataInfo (which calls loadSequenceDataInfo) and
// trainRun (NewSequenceTrainer).

// seqFlags are the flags of sequence data.
func seqFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "seq-column", Usage: "with a CSV --data: train a chain model on sequences; this column (header name or 0-based index) holds each row's sequence id, rows of a sequence consecutive and in order (docs/SEQUENCE.md)"},
	}
}

// seqOptions is a sequence run: the id column, and once loaded the data.
type seqOptions struct {
	column      string
	label       string
	train, test *model.Sequences // test: what the epochs are evaluated on
	finalTest   *model.Sequences // with --val-split: the test sequences, evaluated at the end
}

// defaultSeqLabel is the label column of sequence data when --label is
// not given.
const defaultSeqLabel = "label"

// parseSeq reads --seq-column: it makes the run a chain model's. Its label
// column is --label or "label".
func (o *runOptions) parseSeq(c *cli.Context) error {
	if !c.IsSet("seq-column") {
		return nil
	}
	col := c.String("seq-column")
	switch {
	case col == "":
		return usagef("--seq-column is empty: name the column of sequence ids")
	case c.IsSet("labels") || c.IsSet("no-pairwise"):
		return usagef("--seq-column (a chain over positions) and --labels (a joint model over columns) exclude each other")
	case o.data != "" && !isCSVPath(o.data):
		return usagef("--seq-column needs --data to name a CSV file (got the directory %s)", o.data)
	case o.data == "" && c.String("resume") == "":
		return usagef("--seq-column needs --data to name a CSV file of sequences")
	}
	o.seq = &seqOptions{column: col, label: defaultSeqLabel}
	if c.IsSet("label") {
		o.seq.label = c.String("label")
	}
	o.csv = nil // the label column is the sequence format's, not the flat CSV path's
	o.cfg.Chain = true
	return usage(o.cfg.Validate())
}

// resumeSeq sets a resumed chain run's sequence options from its
// checkpoint; flags may repeat the columns but not contradict them.
func (o *runOptions) resumeSeq(c *cli.Context, ck *model.Checkpoint) error {
	if !ck.Config.Chain {
		if o.seq != nil {
			return usagef("--seq-column: the checkpoint %s is not a chain model", ck.Path)
		}
		return nil
	}
	label := defaultSeqLabel
	if len(ck.Data.LabelColumns) == 1 {
		label = ck.Data.LabelColumns[0]
	}
	if o.seq != nil && (o.seq.column != ck.Data.SeqColumn || c.IsSet("label") && o.seq.label != label) {
		return usagef("--seq-column %q --label %q contradict the checkpoint %s, trained on sequence column %q and label %q", o.seq.column, o.seq.label, ck.Path, ck.Data.SeqColumn, label)
	}
	o.seq = &seqOptions{column: ck.Data.SeqColumn, label: label}
	o.csv = nil
	return nil
}

// toSequences converts a dataset sequence set.
func toSequences(s *dataset.SequenceSet, classes int) *model.Sequences {
	return &model.Sequences{Data: model.Data{X: s.X, Y: s.Y, N: s.N, D: s.D, Classes: classes}, Offsets: s.Offsets}
}

// loadSequenceData is loadDataInfo for sequence data: the training
// sequences (the first o.limit, less the --val-split ones), the held-out
// ones (--test-split of the file drawn by --split-seed, or a --test file
// of sequences), never cutting a sequence; features standardized on the
// training positions (or with the resumed checkpoint's norm). The
// sequences themselves go to o.seq; the returned sets are their positions.
func loadSequenceData(o runOptions, norm *dataset.Normalizer) (*loadedData, error) {
	sp := o.splits
	opts := dataset.SequenceCSVOptions{SeqColumn: o.seq.column, Label: o.seq.label}
	all, err := dataset.LoadSequenceCSV(o.data, opts)
	if err != nil {
		return nil, err
	}
	var tr, te, va *dataset.SequenceSet
	held := ""
	if sp.test != "" {
		if te, err = dataset.LoadSequenceCSV(sp.test, dataset.SequenceCSVOptions{SeqColumn: o.seq.column, Label: o.seq.label, Classes: all.ClassNames}); err != nil {
			return nil, err
		}
		tr, held = all, "test sequences from "+sp.test
	} else {
		if all.Len() < 2 {
			return nil, fmt.Errorf("%s: %d sequence, need at least 2 to hold out a test split", o.data, all.Len())
		}
		if tr, te, err = all.Split(1-sp.testFrac, sp.seed); err != nil {
			return nil, err
		}
		if tr.Len() == 0 || te.Len() == 0 {
			return nil, fmt.Errorf("%s: %d sequences are too few to hold out %g of them", o.data, all.Len(), sp.testFrac)
		}
		held = fmt.Sprintf("test sequences %g of the file (--test-split), drawn by --split-seed %d", sp.testFrac, sp.seed)
	}
	if o.limit > 0 && o.limit < tr.Len() {
		if tr, err = tr.Subset(o.limit); err != nil {
			return nil, err
		}
	}
	if sp.valFrac > 0 {
		if tr, va, err = tr.Split(1-sp.valFrac, sp.seed^valSeedSalt); err != nil {
			return nil, err
		}
		if tr.Len() == 0 || va.Len() == 0 {
			return nil, fmt.Errorf("%d training sequences are too few to hold out %g of them for validation", tr.Len()+va.Len(), sp.valFrac)
		}
	}
	if te.D != tr.D {
		return nil, fmt.Errorf("%s has %d features per position, %s %d", sp.test, te.D, o.data, tr.D)
	}
	if norm != nil && len(norm.Mean) != tr.D {
		return nil, fmt.Errorf("%s has %d features per position; the resumed checkpoint's model takes %d inputs", o.data, tr.D, len(norm.Mean))
	}
	n := norm
	if n == nil {
		fitted, err := dataset.FitNormalizer(tr.Set)
		if err != nil {
			return nil, err
		}
		n = &fitted
	}
	for _, s := range []*dataset.SequenceSet{tr, va, te} {
		if s != nil {
			if err := n.Apply(s.Set); err != nil {
				return nil, err
			}
		}
	}
	src, err := filepath.Abs(o.data)
	if err != nil {
		return nil, err
	}
	k := max(all.Classes, te.Classes, sp.classes)
	info := model.DataInfo{
		Dataset: datasetName(o.data), Source: src, InputShape: []int{tr.D}, ClassNames: all.ClassNames,
		TrainRows: tr.Len(), Limit: o.limit, Mean: n.Mean, Std: n.Std, FeatureNames: all.FeatureNames,
		LabelColumns: []string{o.seq.label}, SeqColumn: o.seq.column, SplitSeed: sp.seed, ValFraction: sp.valFrac,
	}
	if sp.test == "" {
		info.TestFraction = sp.testFrac
	} else if info.TestSource, err = filepath.Abs(sp.test); err != nil {
		return nil, err
	}
	o.seq.train, o.seq.test = toSequences(tr, k), toSequences(te, k)
	ld := &loadedData{train: &o.seq.train.Data, eval: &o.seq.test.Data, evalName: "test", info: info}
	if va != nil {
		// Epochs are evaluated on the validation sequences, the test ones
		// at the end.
		o.seq.test = toSequences(va, k)
		ld.eval, ld.test, ld.evalName = &o.seq.test.Data, &toSequences(te, k).Data, "val"
		o.seq.finalTest = toSequences(te, k)
		held += fmt.Sprintf("; %d validation sequences (%g of the training ones, --val-split) evaluated after each epoch, the test ones at the end", va.Len(), sp.valFrac)
	}
	ld.about = append(ld.about, fmt.Sprintf("# %d states%s; %d training sequences (%d positions); %s", k, classList(all.ClassNames), tr.Len(), tr.N, held))
	return ld, nil
}

// newRunTrainer builds the trainer of a run: a sequence trainer for
// sequence data (on one rank: chains do not train data parallel), else
// the ordinary one on the communicator c (nil: alone).
func newRunTrainer(be model.Backend, o runOptions, c comm.Comm, train, test *model.Data) (*model.Trainer, error) {
	if o.seq == nil {
		return model.NewDistributedTrainer(be, o.cfg, c, train, test)
	}
	if c != nil && c.Size() > 1 {
		return nil, fmt.Errorf("chain models train on one rank; this run has %d (data-parallel training of sequences is not supported yet)", c.Size())
	}
	return model.NewSequenceTrainer(be, o.cfg, o.seq.train, o.seq.test)
}

// finalTestSequences evaluates a chain model m on the test sequences held
// back by --val-split.
func finalTestSequences(be model.Backend, m model.EnergyModel, o runOptions) (model.EvalResult, error) {
	cm, ok := m.(*model.ChainModel)
	if !ok || o.seq.finalTest == nil {
		return model.EvalResult{}, fmt.Errorf("evaluating the test sequences: not a chain model (%T)", m)
	}
	ev, err := model.EvaluateSequences(be, cm, o.seq.finalTest, o.cfg.Loss, o.cfg.Batch)
	if err != nil {
		return ev, fmt.Errorf("evaluating the test sequences: %w", err)
	}
	return ev, nil
}

// trainUnitsOf is the number of training units of o: sequences or rows.
func trainUnitsOf(o runOptions, train *model.Data) int {
	n, _ := trainUnits(o, train)
	return n
}

// trainUnits is what train_rows of a checkpoint counts for o: sequences or
// rows.
func trainUnits(o runOptions, train *model.Data) (int, string) {
	if o.seq != nil {
		return o.seq.train.Len(), "sequences"
	}
	return train.N, "rows"
}

// describeSeq names the sequences of a run for its header line.
func describeSeq(o runOptions) string {
	if o.seq == nil || o.seq.train == nil {
		return ""
	}
	what := o.evalName
	if what == "" {
		what = "test"
	}
	return fmt.Sprintf(", chain over %d states on %d training sequences (%d %s)", o.seq.train.Classes, o.seq.train.Len(), o.seq.test.Len(), what)
}
