package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
)

// Training on a user's CSV file with one label column (an ordinary model)
// or several (one joint model over the product of their values, see
// model.JointModel and docs/JOINT.md). The split and the standardization
// are loadSplits' and loadDataInfo's (data.go), whatever the labels.

// csvFlags select the label columns when --data names a CSV file.
func csvFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "label", Usage: "with a CSV --data: the label column, a header name or a 0-based index (default: column 0)"},
		&cli.StringFlag{Name: "labels", Usage: "with a CSV --data: several label columns, comma-separated (names or 0-based indices): one joint model over their values"},
		&cli.BoolFlag{Name: "no-pairwise", Usage: "with --labels: no pairwise tables in the joint model (unary heads only)"},
	}
}

// csvLabels is what the label flags ask for.
type csvLabels struct {
	label      string
	labels     []string
	noPairwise bool
	// vars is filled in when the file is loaded with several label
	// columns: the number of values of each (applyJoint copies it into the
	// configuration).
	vars []int
}

// parseCSVLabels reads and checks the label flags. They need --data to name
// a CSV file, so they are never silently ignored; nil means "not given". A
// resumed run (--resume) may leave --data out: its data and label columns
// come from the checkpoint, and prepareCheckpointing compares the flags with
// them.
func parseCSVLabels(c *cli.Context, data string) (*csvLabels, error) {
	if !c.IsSet("label") && !c.IsSet("labels") && !c.IsSet("no-pairwise") {
		return nil, nil
	}
	resuming := data == "" && c.String("resume") != ""
	if !resuming && (data == "" || !isCSVPath(data)) {
		return nil, fmt.Errorf("--label, --labels and --no-pairwise need --data to name a CSV file (got %q)", data)
	}
	l := &csvLabels{label: c.String("label"), noPairwise: c.Bool("no-pairwise")}
	if s := c.String("labels"); c.IsSet("labels") {
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f == "" {
				return nil, fmt.Errorf("--labels %q names an empty column", s)
			}
			l.labels = append(l.labels, f)
		}
	}
	switch {
	case c.IsSet("label") && c.IsSet("labels"):
		return nil, fmt.Errorf("give --label (one label column) or --labels (several), not both")
	case l.noPairwise && len(l.labels) < 2:
		return nil, fmt.Errorf("--no-pairwise needs a joint model: --labels with at least two columns")
	}
	return l, nil
}

// loadCSVSet loads a CSV file with the label columns l asks for (nil: column
// 0). With several label columns, each row's labels become its joint index
// (row-major, model.JointIndex) in Y, Classes becomes the number of joint
// answers, and l.vars the number of values of each column.
func loadCSVSet(path string, l *csvLabels) (*dataset.Set, error) {
	var opts dataset.CSVOptions
	if l != nil {
		opts.Label = l.label
		if len(l.labels) > 1 {
			opts.LabelColumns = l.labels
		} else if len(l.labels) == 1 {
			opts.Label = l.labels[0]
		}
	}
	s, err := dataset.LoadCSV(path, opts)
	if err != nil || l == nil || len(l.labels) < 2 {
		return s, err
	}
	vars := s.VarClasses
	j, err := model.JointStates(vars)
	if err != nil {
		return nil, fmt.Errorf("%s: label columns %v: %w", path, l.labels, err)
	}
	s.Y = make([]int32, s.N)
	for i, row := range s.Labels {
		if s.Y[i], err = model.JointIndex(vars, row); err != nil {
			return nil, fmt.Errorf("%s: row %d: %w", path, i, err)
		}
	}
	s.Classes, s.ClassNames = j, jointClassNames(s)
	l.vars = append([]int(nil), vars...)
	return s, nil
}

// maxJointNames bounds the joint answers jointClassNames names: past it a
// list of names helps no one reading a per-class table.
const maxJointNames = 4096

// jointClassNames names each joint answer of s by its columns' values,
// "left=forward,right=stop", in joint-index order; nil past maxJointNames.
func jointClassNames(s *dataset.Set) []string {
	j, err := model.JointStates(s.VarClasses)
	if err != nil || j > maxJointNames {
		return nil
	}
	names := make([]string, j)
	d := make([]int, len(s.VarClasses))
	parts := make([]string, len(d))
	for y := range names {
		model.JointValues(s.VarClasses, y, d)
		for v, x := range d {
			name := fmt.Sprint(v)
			if v < len(s.VarNames) {
				name = s.VarNames[v]
			}
			val := strconv.Itoa(x)
			if v < len(s.VarClassNames) && x < len(s.VarClassNames[v]) {
				val = s.VarClassNames[v][x]
			}
			parts[v] = name + "=" + val
		}
		names[y] = strings.Join(parts, ",")
	}
	return names
}

// applyJoint makes o's model a joint model when its CSV data was loaded
// with several label columns.
func (o *runOptions) applyJoint() error {
	if o.csv == nil || o.csv.vars == nil {
		return nil
	}
	o.cfg.Vars, o.cfg.NoPairwise = o.csv.vars, o.csv.noPairwise
	return o.cfg.Validate()
}

// describeJoint names the joint answer space for a header line ("" for an
// ordinary model).
func describeJoint(cfg model.Config) string {
	if len(cfg.Vars) == 0 {
		return ""
	}
	j, _ := model.JointStates(cfg.Vars)
	parts := "unary + pairwise"
	if cfg.NoPairwise {
		parts = "unary only"
	}
	return fmt.Sprintf(", joint over %v label values (%d joint answers, %s)", cfg.Vars, j, parts)
}

// columns returns the label columns as a checkpoint records them (nil for
// column 0).
func (l *csvLabels) columns() []string {
	switch {
	case l == nil:
		return nil
	case len(l.labels) > 0:
		return append([]string(nil), l.labels...)
	case l.label != "":
		return []string{l.label}
	}
	return nil
}

// checkpointLabels returns the label columns a checkpoint's model was
// trained on, so its CSV data is read the same way again.
func checkpointLabels(ck *model.Checkpoint) *csvLabels {
	cols := ck.Data.LabelColumns
	switch len(cols) {
	case 0:
		return nil
	case 1:
		return &csvLabels{label: cols[0]}
	}
	return &csvLabels{labels: append([]string(nil), cols...), noPairwise: ck.Config.NoPairwise}
}

// resumedLabels returns the label columns a resumed run reads its CSV data
// with: the checkpoint's, which flags may repeat but not contradict.
func resumedLabels(flags *csvLabels, ck *model.Checkpoint, data string) (*csvLabels, error) {
	saved := checkpointLabels(ck)
	if flags == nil {
		return saved, nil
	}
	if !isCSVPath(data) {
		return nil, fmt.Errorf("--label, --labels and --no-pairwise need CSV data; the checkpoint %s was trained on %q", ck.Path, data)
	}
	describe := func(l *csvLabels) string {
		cols := l.columns()
		if len(cols) == 0 {
			return "label column 0"
		}
		return "label columns " + strings.Join(cols, ",")
	}
	if got, want := describe(flags), describe(saved); got != want {
		return nil, fmt.Errorf("%s contradicts the checkpoint %s, which was trained on %s", got, ck.Path, want)
	}
	if flags.noPairwise && !ck.Config.NoPairwise {
		return nil, fmt.Errorf("--no-pairwise contradicts the checkpoint %s, whose joint model has pairwise tables", ck.Path)
	}
	return saved, nil
}
