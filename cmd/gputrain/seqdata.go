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
	train, test *model.Sequences
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
		return fmt.Errorf("--seq-column is empty: name the column of sequence ids")
	case c.IsSet("labels") || c.IsSet("no-pairwise"):
		return fmt.Errorf("--seq-column (a chain over positions) and --labels (a joint model over columns) exclude each other")
	case o.data != "" && !isCSVPath(o.data):
		return fmt.Errorf("--seq-column needs --data to name a CSV file (got the directory %s)", o.data)
	case o.data == "" && c.String("resume") == "":
		return fmt.Errorf("--seq-column needs --data to name a CSV file of sequences")
	}
	o.seq = &seqOptions{column: col, label: defaultSeqLabel}
	if c.IsSet("label") {
		o.seq.label = c.String("label")
	}
	o.csv = nil // the label column is the sequence format's, not the flat CSV path's
	o.cfg.Chain = true
	return o.cfg.Validate()
}

// resumeSeq sets a resumed chain run's sequence options from its
// checkpoint; flags may repeat the columns but not contradict them.
func (o *runOptions) resumeSeq(c *cli.Context, ck *model.Checkpoint) error {
	if !ck.Config.Chain {
		if o.seq != nil {
			return fmt.Errorf("--seq-column: the checkpoint %s is not a chain model", ck.Path)
		}
		return nil
	}
	label := defaultSeqLabel
	if len(ck.Data.LabelColumns) == 1 {
		label = ck.Data.LabelColumns[0]
	}
	if o.seq != nil && (o.seq.column != ck.Data.SeqColumn || c.IsSet("label") && o.seq.label != label) {
		return fmt.Errorf("--seq-column %q --label %q contradict the checkpoint %s, trained on sequence column %q and label %q", o.seq.column, o.seq.label, ck.Path, ck.Data.SeqColumn, label)
	}
	o.seq = &seqOptions{column: ck.Data.SeqColumn, label: label}
	o.csv = nil
	return nil
}

// toSequences converts a dataset sequence set.
func toSequences(s *dataset.SequenceSet, classes int) *model.Sequences {
	return &model.Sequences{Data: model.Data{X: s.X, Y: s.Y, N: s.N, D: s.D, Classes: classes}, Offsets: s.Offsets}
}

// loadSequenceDataInfo is loadDataInfo for sequence data: the training and
// test sequences (o.seq.train, o.seq.test), their positions as the
// returned sets, and what a checkpoint records.
func loadSequenceDataInfo(o runOptions, norm *dataset.Normalizer) (train, test *model.Data, info model.DataInfo, err error) {
	all, err := dataset.LoadSequenceCSV(o.data, dataset.SequenceCSVOptions{SeqColumn: o.seq.column, Label: o.seq.label})
	if err != nil {
		return nil, nil, info, err
	}
	if all.Len() < 2 {
		return nil, nil, info, fmt.Errorf("%s: %d sequence, need at least 2 to hold out a test split", o.data, all.Len())
	}
	tr, te, err := all.Split(1-csvTestFraction, csvSplitSeed)
	if err != nil {
		return nil, nil, info, err
	}
	if tr.Len() == 0 || te.Len() == 0 {
		return nil, nil, info, fmt.Errorf("%s: %d sequences are too few to hold out %g of them", o.data, all.Len(), csvTestFraction)
	}
	if o.limit > 0 && o.limit < tr.Len() {
		if tr, err = tr.Subset(o.limit); err != nil {
			return nil, nil, info, err
		}
	}
	if norm != nil && len(norm.Mean) != tr.D {
		return nil, nil, info, fmt.Errorf("%s has %d features per position; the resumed checkpoint's model takes %d inputs", o.data, tr.D, len(norm.Mean))
	}
	n := norm
	if n == nil {
		fitted, err := dataset.FitNormalizer(tr.Set)
		if err != nil {
			return nil, nil, info, err
		}
		n = &fitted
	}
	if err := n.Apply(tr.Set); err != nil {
		return nil, nil, info, err
	}
	if err := n.Apply(te.Set); err != nil {
		return nil, nil, info, err
	}
	src, err := filepath.Abs(o.data)
	if err != nil {
		return nil, nil, info, err
	}
	info = model.DataInfo{
		Dataset: datasetName(o.data), Source: src, InputShape: []int{tr.D}, ClassNames: all.ClassNames,
		TrainRows: tr.Len(), Limit: o.limit, TestFraction: csvTestFraction, Mean: n.Mean, Std: n.Std,
		LabelColumns: []string{o.seq.label}, SeqColumn: o.seq.column,
	}
	k := all.Classes
	o.seq.train, o.seq.test = toSequences(tr, k), toSequences(te, k)
	return &o.seq.train.Data, &o.seq.test.Data, info, nil
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
	return fmt.Sprintf(", chain over %d states on %d training sequences (%d test)", o.seq.train.Classes, o.seq.train.Len(), o.seq.test.Len())
}
