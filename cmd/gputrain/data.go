package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
)

// csvTestFraction is the share of a CSV file held out as the test split.
// The split is drawn with a fixed seed (csvSplitSeed), not the run's
// --seed, so runs with different seeds are measured on the same rows.
const (
	csvTestFraction = 0.2
	csvSplitSeed    = 1
)

// checkDataPath accepts "" (the embedded MNIST), a directory of IDX files
// or a CSV file; the error names the path.
func checkDataPath(path string) error {
	if path == "" {
		return nil
	}
	if isTextData(path) {
		return checkTextPath(path)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if !st.IsDir() && !st.Mode().IsRegular() {
		return fmt.Errorf("data %s is neither a directory of IDX files nor a CSV file", path)
	}
	return nil
}

// isCSVPath reports whether path names a file (a CSV file) rather than a
// directory of IDX files.
func isCSVPath(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// loadSplits returns the training and test sets of path ("" = the embedded
// MNIST): an IDX directory comes split; a CSV file is split here,
// csvTestFraction of its rows held out.
func loadSplits(path string) (train, test *dataset.Set, err error) {
	return loadSplitsWith(path, nil)
}

// loadSplitsWith is loadSplits reading a CSV file's labels from the
// columns labels names (nil: column 0; see csvdata.go).
func loadSplitsWith(path string, labels *csvLabels) (train, test *dataset.Set, err error) {
	switch {
	case path == "":
		train, test, err = dataset.EmbeddedMNIST()
		if err == nil {
			train.Name, test.Name = "mnist/train", "mnist/test"
		}
		return train, test, err
	case isCSVPath(path):
		all, err := loadCSVSet(path, labels)
		if err != nil {
			return nil, nil, err
		}
		if all.Y == nil {
			return nil, nil, fmt.Errorf("%s: no single label column", path)
		}
		if all.N < 2 {
			return nil, nil, fmt.Errorf("%s: %d rows, need at least 2 to hold out a test split", path, all.N)
		}
		train, test, err = all.Split(1-csvTestFraction, csvSplitSeed)
		if err != nil {
			return nil, nil, err
		}
		if train.N == 0 || test.N == 0 {
			return nil, nil, fmt.Errorf("%s: %d rows are too few to hold out %g of them", path, all.N, csvTestFraction)
		}
		return train, test, nil
	default:
		return dataset.LoadIDXDir(path)
	}
}

// datasetName is the short name a checkpoint records for the data at path.
func datasetName(path string) string {
	if path == "" {
		return "mnist"
	}
	return filepath.Base(filepath.Clean(path))
}

// loadDataInfo loads o's data: the training split (first o.limit rows),
// the test split, and what a checkpoint records about them. CSV features
// are standardized with a normalizer fitted on the training split, or with
// norm when it is given (a resumed run reuses the checkpoint's); IDX images
// are used as loaded (pixels in [0,1]).
func loadDataInfo(o runOptions, norm *dataset.Normalizer) (train, test *model.Data, info model.DataInfo, err error) {
	if isTextData(o.data) {
		return loadTextInfo(o)
	}
	tr, te, err := loadSplitsWith(o.data, o.csv)
	if err != nil {
		return nil, nil, info, err
	}
	if tr.Y == nil || te.Y == nil {
		return nil, nil, info, errors.New("data set has no single label per row")
	}
	if o.limit > 0 && o.limit < tr.N {
		if tr, err = tr.Subset(o.limit); err != nil {
			return nil, nil, info, err
		}
	}
	info = model.DataInfo{Dataset: datasetName(o.data), InputShape: tr.Shape, ClassNames: tr.ClassNames, TrainRows: tr.N, Limit: o.limit}
	if len(info.InputShape) == 0 {
		info.InputShape = []int{tr.D}
	}
	if o.data != "" {
		if info.Source, err = filepath.Abs(o.data); err != nil {
			return nil, nil, info, err
		}
	}
	if isCSVPath(o.data) {
		info.TestFraction = csvTestFraction
		info.LabelColumns = o.csv.columns()
		if norm != nil && len(norm.Mean) != tr.D {
			return nil, nil, info, fmt.Errorf("%s has %d features per row; the resumed checkpoint's model takes %d inputs", o.data, tr.D, len(norm.Mean))
		}
		n := norm
		if n == nil {
			fitted, err := dataset.FitNormalizer(tr)
			if err != nil {
				return nil, nil, info, err
			}
			n = &fitted
		}
		if err := n.Apply(tr); err != nil {
			return nil, nil, info, err
		}
		if err := n.Apply(te); err != nil {
			return nil, nil, info, err
		}
		info.Mean, info.Std = n.Mean, n.Std
	}
	conv := func(s *dataset.Set) *model.Data {
		return &model.Data{X: s.X, Y: s.Y, N: s.N, D: s.D, Classes: s.Classes}
	}
	train, test = conv(tr), conv(te)
	if test.Classes != train.Classes {
		// The test set may miss a class; the model needs the larger count.
		k := max(train.Classes, test.Classes)
		train.Classes, test.Classes = k, k
	}
	return train, test, info, nil
}

// alignToCheckpoint prepares a labelled set for a checkpoint's model: it
// checks the input size, maps string class names onto the checkpoint's
// class indices, checks labels against the model's classes and applies the
// checkpoint's normalizer.
func alignToCheckpoint(s *dataset.Set, ck *model.Checkpoint, what string) error {
	if s.D != ck.Inputs {
		return fmt.Errorf("%s has %d features per row (shape %v); the model %s takes %d (shape %v)", what, s.D, shapeOrD(s.Shape, s.D), ck.Path, ck.Inputs, ck.Data.InputShape)
	}
	if s.Y != nil && len(s.ClassNames) > 0 {
		if len(ck.Data.ClassNames) == 0 {
			return fmt.Errorf("%s has string labels (%s, ...); the model %s was trained on numbered classes", what, s.ClassNames[0], ck.Path)
		}
		index := map[string]int32{}
		for i, n := range ck.Data.ClassNames {
			index[n] = int32(i)
		}
		remap := make([]int32, len(s.ClassNames))
		for i, n := range s.ClassNames {
			j, ok := index[n]
			if !ok {
				return fmt.Errorf("%s has the label %q, which is not one of the model's classes (%s)", what, n, strings.Join(ck.Data.ClassNames, ", "))
			}
			remap[i] = j
		}
		for i, y := range s.Y {
			s.Y[i] = remap[y]
		}
		s.ClassNames = ck.Data.ClassNames
	}
	if s.Y != nil {
		for i, y := range s.Y {
			if int(y) >= ck.Classes {
				return fmt.Errorf("%s: label %d of row %d is outside the model's %d classes", what, y, i, ck.Classes)
			}
		}
		s.Classes = ck.Classes
	}
	if ck.Data.Mean != nil {
		n := dataset.Normalizer{Mean: ck.Data.Mean, Std: ck.Data.Std}
		if err := n.Apply(s); err != nil {
			return err
		}
	}
	return nil
}

func shapeOrD(shape []int, d int) []int {
	if len(shape) == 0 {
		return []int{d}
	}
	return shape
}
