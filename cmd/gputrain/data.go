package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/internal/clip"
	"github.com/gputrain/gputrain/model"
)

// How a run's data is split (docs: README "Data"):
//
//   - IDX data comes split (train / t10k files); a CSV file is split here:
//     --test-split of its rows (default 0.2) are held out as the test set,
//     drawn by a shuffle seeded with --split-seed (default 1, not --seed:
//     runs that differ in their seed are measured on the same rows).
//     --test FILE gives the test set instead, and all of --data trains.
//   - --limit N keeps the first N training rows.
//   - --val-split F then holds out F of those as the validation set (its
//     own shuffle of --split-seed). The validation set is evaluated after
//     every epoch (the epoch lines, --metrics, --early-stop) and the test
//     set once, at the end; without --val-split the test set is evaluated
//     after every epoch, as before.
const (
	defaultTestSplit = 0.2
	defaultSplitSeed = 1
	// valSeedSalt makes the validation shuffle independent of the test one.
	valSeedSalt = 0x76616c
)

func splitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "test", Usage: "the test set: a CSV file (plain or gzip'd) in the layout of --data, or an IDX directory (its t10k files); default: --test-split of a CSV --data, or the IDX test files"},
		&cli.Float64Flag{Name: "test-split", Value: defaultTestSplit, Usage: "with a CSV --data and no --test: the fraction of its rows held out as the test set, in (0, 1)"},
		&cli.Float64Flag{Name: "val-split", Usage: "hold out this fraction of the training rows as a validation set, evaluated after every epoch (the test set is then evaluated once, at the end), in [0, 1)"},
		&cli.Uint64Flag{Name: "split-seed", Value: defaultSplitSeed, Usage: "seed of the shuffles that draw the test and validation rows (not --seed, so runs with other seeds are measured on the same rows)"},
		&cli.IntFlag{Name: "classes", Usage: "the number of classes K, when some of 0..K-1 have no training rows (default: the largest label + 1, every class present)"},
	}
}

// dataSplits is what the split flags ask for.
type dataSplits struct {
	test     string
	testFrac float64
	valFrac  float64
	seed     uint64
	classes  int
}

func parseSplits(c *cli.Context) (dataSplits, error) {
	sp := dataSplits{test: c.String("test"), testFrac: c.Float64("test-split"), valFrac: c.Float64("val-split"), seed: c.Uint64("split-seed"), classes: c.Int("classes")}
	switch {
	case !(sp.testFrac > 0 && sp.testFrac < 1):
		return sp, usagef("--test-split must be in (0, 1), got %v", sp.testFrac)
	case !(sp.valFrac >= 0 && sp.valFrac < 1):
		return sp, usagef("--val-split must be in [0, 1), got %v", sp.valFrac)
	case sp.classes < 0 || sp.classes == 1 || sp.classes > dataset.MaxClasses:
		return sp, usagef("--classes must be at least 2 (and at most %d), got %d", dataset.MaxClasses, sp.classes)
	case c.IsSet("test") && c.IsSet("test-split"):
		return sp, usagef("give --test (a test file) or --test-split (a fraction of --data held out), not both")
	}
	if sp.test != "" {
		if err := checkDataPath(sp.test); err != nil {
			return sp, fmt.Errorf("--test: %w", err)
		}
	}
	return sp, nil
}

// checkDataPath accepts "" (the embedded MNIST), a directory of IDX files
// or a data file (CSV); the error names the path.
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
	if !st.IsDir() && !st.Mode().IsRegular() && st.Mode()&(os.ModeNamedPipe|os.ModeCharDevice) == 0 {
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
// MNIST) split as by default.
func loadSplits(path string) (train, test *dataset.Set, err error) {
	return loadSplitsWith(path, nil, dataSplits{testFrac: defaultTestSplit, seed: defaultSplitSeed})
}

// loadSplitsWith returns the training and test sets of path ("" = the
// embedded MNIST), the CSV labels read from the columns labels names (nil:
// the default column), split as sp says; the test set is aligned to the
// training set (feature columns by name, class names).
func loadSplitsWith(path string, labels *csvLabels, sp dataSplits) (train, test *dataset.Set, err error) {
	switch {
	case path == "":
		train, test, err = dataset.EmbeddedMNIST()
		if err == nil {
			train.Name, test.Name = "mnist/train", "mnist/test"
		}
	case isCSVPath(path):
		all, err := loadCSVSet(path, labels)
		if err != nil {
			return nil, nil, err
		}
		if all.Y == nil {
			return nil, nil, fmt.Errorf("%s: no single label column", path)
		}
		if sp.test != "" {
			train = all
			break
		}
		if all.N < 2 {
			return nil, nil, fmt.Errorf("%s: %d rows, need at least 2 to hold out a test split", path, all.N)
		}
		if train, test, err = all.Split(1-sp.testFrac, sp.seed); err != nil {
			return nil, nil, err
		}
		if train.N == 0 || test.N == 0 {
			return nil, nil, fmt.Errorf("%s: %d rows are too few to hold out %g of them", path, all.N, sp.testFrac)
		}
		train.Name, test.Name = all.Name+"/train", all.Name+"/test"
	default:
		train, test, err = dataset.LoadIDXDir(path)
	}
	if err != nil {
		return nil, nil, err
	}
	if sp.test != "" {
		if test, err = loadTestSet(sp.test, labels, train); err != nil {
			return nil, nil, err
		}
	}
	return train, test, nil
}

// loadTestSet loads a --test file (CSV, or an IDX directory's t10k files)
// and aligns it to train.
func loadTestSet(path string, labels *csvLabels, train *dataset.Set) (*dataset.Set, error) {
	var test *dataset.Set
	var err error
	if isCSVPath(path) {
		test, err = loadCSVSet(path, labels)
	} else {
		_, test, err = dataset.LoadIDXDir(path)
	}
	if err != nil {
		return nil, err
	}
	if test.Y == nil {
		return nil, fmt.Errorf("%s: no single label column", path)
	}
	if err := alignSet(test, train.FeatureNames, train.ClassNames, train.D); err != nil {
		return nil, err
	}
	return test, nil
}

// alignSet makes s's columns and classes those of a training set with the
// given feature names (matched by name when both have a header), class
// names and width.
func alignSet(s *dataset.Set, features, classes []string, d int) error {
	if features != nil && s.FeatureNames != nil {
		if err := s.AlignFeatures(features); err != nil {
			return err
		}
	}
	if s.D != d {
		return fmt.Errorf("%s has %d features per row (shape %v); the model takes %d", s.Name, s.D, shapeOrD(s.Shape, s.D), d)
	}
	if classes == nil && s.ClassNames != nil {
		return fmt.Errorf("%s has string labels (%s, ...); the model was trained on numbered classes", s.Name, clip.Quote(s.ClassNames[0]))
	}
	return s.Relabel(classes)
}

// datasetName is the short name a checkpoint records for the data at path.
func datasetName(path string) string {
	if path == "" {
		return "mnist"
	}
	return filepath.Base(filepath.Clean(path))
}

// loadedData is a run's data, ready for the trainer.
type loadedData struct {
	train *model.Data
	// eval is evaluated after every epoch: the validation set with
	// --val-split, else the test set. test is evaluated at the end when it
	// is not eval (nil otherwise).
	eval, test *model.Data
	evalName   string // "val" or "test"
	info       model.DataInfo
	// about says what was loaded and how (layout, label column, split),
	// for the lines a run prints.
	about []string
	// majority is the most frequent class of eval and its share, to warn
	// when a model is no better than always answering it.
	majority     string
	majorityRate float64
}

// loadDataInfo loads o's data: the training split (first o.limit rows,
// minus the validation rows), the validation and test sets, and what a
// checkpoint records about them. CSV features are standardized with a
// normalizer fitted on the training rows, or with norm when it is given (a
// resumed run reuses the checkpoint's); IDX images are used as loaded
// (pixels in [0,1]). Labels must be 0..K-1 with every class in the
// training rows, unless --classes K says some are absent.
func loadDataInfo(o runOptions, norm *dataset.Normalizer) (*loadedData, error) {
	if o.seq != nil {
		return loadSequenceData(o, norm) // seqdata.go
	}
	if isTextData(o.data) {
		return loadTextInfo(o) // textdata.go
	}
	sp := o.splits
	tr, te, err := loadSplitsWith(o.data, o.csv, sp)
	if err != nil {
		return nil, err
	}
	if tr.Y == nil || te.Y == nil {
		return nil, errors.New("data set has no single label per row")
	}
	ld := &loadedData{evalName: "test"}
	if tr.Layout != "" {
		ld.about = append(ld.about, fmt.Sprintf("# %s: %s", datasetName(o.data), tr.Layout))
	}
	if o.limit > 0 && o.limit < tr.N {
		if tr, err = tr.Subset(o.limit); err != nil {
			return nil, err
		}
	}
	var va *dataset.Set
	if sp.valFrac > 0 {
		if tr, va, err = tr.Split(1-sp.valFrac, sp.seed^valSeedSalt); err != nil {
			return nil, err
		}
		if tr.N == 0 || va.N == 0 {
			return nil, fmt.Errorf("%d training rows are too few to hold out %g of them for validation", tr.N+va.N, sp.valFrac)
		}
		va.Name = strings.TrimSuffix(tr.Name, "/train") + "/val"
	}
	classes, err := checkClasses(tr, []*dataset.Set{va, te}, sp.classes)
	if err != nil {
		return nil, err
	}
	info := model.DataInfo{Dataset: datasetName(o.data), InputShape: tr.Shape, ClassNames: tr.ClassNames, TrainRows: tr.N, Limit: o.limit,
		FeatureNames: tr.FeatureNames, SplitSeed: sp.seed, ValFraction: sp.valFrac}
	if len(info.InputShape) == 0 {
		info.InputShape = []int{tr.D}
	}
	if o.data != "" {
		if info.Source, err = filepath.Abs(o.data); err != nil {
			return nil, err
		}
	}
	if sp.test != "" {
		if info.TestSource, err = filepath.Abs(sp.test); err != nil {
			return nil, err
		}
	}
	if isCSVPath(o.data) {
		if sp.test == "" {
			info.TestFraction = sp.testFrac
		}
		info.LabelColumns = o.csv.columns()
		info.CSVColumns, info.LabelIndex, info.LabelNames = tr.D+len(tr.LabelColumns), tr.LabelColumns, tr.LabelNames
		if norm != nil && len(norm.Mean) != tr.D {
			return nil, fmt.Errorf("%s has %d features per row; the resumed checkpoint's model takes %d inputs", o.data, tr.D, len(norm.Mean))
		}
		n := norm
		if n == nil {
			fitted, err := dataset.FitNormalizer(tr)
			if err != nil {
				return nil, err
			}
			n = &fitted
		}
		for _, s := range []*dataset.Set{tr, va, te} {
			if s == nil {
				continue
			}
			if err := n.Apply(s); err != nil {
				return nil, err
			}
		}
		info.Mean, info.Std = n.Mean, n.Std
	}
	conv := func(s *dataset.Set) *model.Data {
		if s == nil {
			return nil
		}
		return &model.Data{X: s.X, Y: s.Y, N: s.N, D: s.D, Classes: classes}
	}
	ld.train, ld.info = conv(tr), info
	ld.eval = conv(te)
	var held []string
	switch {
	case sp.test != "":
		held = append(held, "test rows from "+sp.test)
	case isCSVPath(o.data):
		held = append(held, fmt.Sprintf("test rows %g of the file (--test-split), drawn by --split-seed %d", sp.testFrac, sp.seed))
	default:
		held = append(held, "test rows from the t10k files")
	}
	if va != nil {
		ld.eval, ld.test, ld.evalName = conv(va), conv(te), "val"
		held = append(held, fmt.Sprintf("%d validation rows (%g of the training rows, --val-split) evaluated after each epoch, the %d test rows at the end", va.N, sp.valFrac, te.N))
	}
	ld.about = append(ld.about, fmt.Sprintf("# %d classes%s; %s", classes, classList(tr.ClassNames), strings.Join(held, "; ")))
	ld.majority, ld.majorityRate = majorityClass(ld.eval, tr.ClassNames)
	return ld, nil
}

// classList names the first classes for a header line: ": a, b, c".
func classList(names []string) string {
	if len(names) == 0 {
		return ""
	}
	const show = 6
	s := strings.Join(names[:min(show, len(names))], ", ")
	if len(names) > show {
		s += fmt.Sprintf(", ... (%d more)", len(names)-show)
	}
	return " (" + clip.String(s) + ")"
}

// checkClasses enforces the label rule of issue 13: the classes are
// 0..K-1, K = the largest label + 1 (or the number of string labels), and
// every one of them has training rows, unless --classes K (want > 0) says
// how many there are (then some may be absent, and no label may reach K).
// One class is no decision and is refused. It returns K.
func checkClasses(train *dataset.Set, others []*dataset.Set, want int) (int, error) {
	if len(train.VarClasses) > 0 {
		return train.Classes, checkJointValues(train, want)
	}
	k := train.Classes
	for _, s := range others {
		if s != nil {
			k = max(k, s.Classes)
		}
	}
	counts := make([]int, max(k, want))
	for _, y := range train.Y {
		counts[y]++
	}
	name := func(c int) string {
		if c < len(train.ClassNames) {
			return fmt.Sprintf("%d (%s)", c, clip.Quote(train.ClassNames[c]))
		}
		return fmt.Sprint(c)
	}
	if want > 0 {
		if k > want {
			return 0, fmt.Errorf("a label %d, but --classes %d: labels must be 0..%d", k-1, want, want-1)
		}
		return want, nil
	}
	var missing []string
	for c, n := range counts {
		if n == 0 {
			missing = append(missing, name(c))
		}
	}
	if len(missing) > 0 {
		what := "class " + clip.String(strings.Join(missing, ", ")) + " has"
		if len(missing) > 1 {
			what = "classes " + clip.String(strings.Join(missing, ", ")) + " have"
		}
		return 0, fmt.Errorf("%s no training rows, but labels must be 0..K-1 with every class present (K = %d, the largest label + 1): fix the labels, or pass --classes %d if that is meant", what, k, k)
	}
	if k < 2 {
		return 0, fmt.Errorf("the training rows have one class (%s): there is nothing to decide; is the label column the right one? (--label NAME, INDEX, -1 or last)", name(0))
	}
	return k, nil
}

// majorityClass returns the most frequent class of d and its share.
func majorityClass(d *model.Data, names []string) (string, float64) {
	if d == nil || d.N == 0 {
		return "", 0
	}
	counts := make([]int, d.Classes)
	best := 0
	for _, y := range d.Y {
		counts[y]++
		if counts[y] > counts[best] || counts[y] == counts[best] && int(y) < best {
			best = int(y)
		}
	}
	name := fmt.Sprint(best)
	if best < len(names) {
		name = names[best]
	}
	return name, float64(counts[best]) / float64(d.N)
}

// alignToCheckpoint prepares a labelled set for a checkpoint's model: it
// matches its feature columns to the model's by name (when both have
// names), checks the input size, maps class names onto the checkpoint's
// class indices, checks labels against the model's classes and applies the
// checkpoint's normalizer.
func alignToCheckpoint(s *dataset.Set, ck *model.Checkpoint, what string) error {
	if err := alignSet(s, ck.Data.FeatureNames, ck.Data.ClassNames, ck.Inputs); err != nil {
		return fmt.Errorf("%w (the model %s)", err, ck.Path)
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

// checkpointSplits returns the splits a checkpoint's run used, so eval
// measures the same test rows.
func checkpointSplits(ck *model.Checkpoint) dataSplits {
	sp := dataSplits{test: ck.Data.TestSource, testFrac: ck.Data.TestFraction, valFrac: ck.Data.ValFraction, seed: ck.Data.SplitSeed}
	if sp.testFrac == 0 {
		sp.testFrac = defaultTestSplit
	}
	return sp
}

// checkJointValues applies checkClasses' rule to each variable of a joint
// model: its values 0..K_i-1 all have training rows. (The joint answers
// need not: that some combinations never occur is what the pairwise terms
// learn.)
func checkJointValues(train *dataset.Set, want int) error {
	if want > 0 {
		return usagef("--classes applies to one label column; with --labels each column's values must all be present")
	}
	for v, k := range train.VarClasses {
		seen := make([]bool, k)
		for _, row := range train.Labels {
			seen[row[v]] = true
		}
		for x, ok := range seen {
			if !ok {
				return fmt.Errorf("label column %s: value %d has no training rows, but each label column's values must be 0..K-1 with every value present", clip.Quote(train.VarNames[v]), x)
			}
		}
		if k < 2 {
			return fmt.Errorf("label column %s has one value: there is nothing to decide", clip.Quote(train.VarNames[v]))
		}
	}
	return nil
}
