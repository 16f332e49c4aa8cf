package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
)

// inferenceFlags are the flags eval and predict share.
func inferenceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "model", Value: defaultCheckpoint, Usage: "checkpoint written by gputrain train"},
		&cli.StringFlag{Name: "backend", Value: autoBackend, Usage: backendFlagUsage()},
		&cli.IntFlag{Name: "batch", Value: 1000, Usage: "rows per forward pass, >= 1"},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON document instead of text"},
		precisionFlag("precision of the matrix products (default: the checkpoint's)"),
	}
}

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "measure a saved model: accuracy, mean NLL at its beta, per-class accuracy, confusion matrix",
		Flags: append(inferenceFlags(),
			&cli.StringFlag{Name: "data", Usage: "an MNIST-style IDX directory (its test split) or a CSV file (every row); default: the test split of the data the model was trained on"},
		),
		OnUsageError: usageError,
		Action:       evalAction,
	}
}

// loadedModel is a checkpoint's model on an open backend.
type loadedModel struct {
	ck    *model.Checkpoint
	b     model.Backend
	m     model.EnergyModel
	batch int
	name  string // the backend's name
}

func (l *loadedModel) close() {
	if l.m != nil {
		_ = l.m.Free()
	}
	if l.b != nil {
		_ = l.b.Close()
	}
}

// inferenceOptions checks the shared flags and reads the checkpoint; the
// backend is not opened yet (openModel), so that data errors come first.
func inferenceOptions(c *cli.Context) (*model.Checkpoint, string, int, error) {
	if err := noArgs(c.Args().Slice()); err != nil {
		return nil, "", 0, err
	}
	batch := c.Int("batch")
	if batch < 1 {
		return nil, "", 0, usagef("batch must be >= 1, got %d", batch)
	}
	backend := c.String("backend")
	if backend == autoBackend {
		backend, _ = resolveAuto()
	}
	if err := checkBackend(backend); err != nil {
		return nil, "", 0, usage(err)
	}
	override, err := precisionOverride(c)
	if err != nil {
		return nil, "", 0, err
	}
	path := c.String("model")
	if path == "" {
		return nil, "", 0, usagef("--model is empty: name a checkpoint written by gputrain train")
	}
	ck, err := model.ReadCheckpoint(path)
	if err != nil {
		return nil, "", 0, err
	}
	override(&ck.Config)
	return ck, backend, batch, nil
}

func openModel(ck *model.Checkpoint, backend string, batch int) (*loadedModel, error) {
	if err := checkInferenceMemory(ck, backend, batch); err != nil {
		return nil, err
	}
	b, err := openBackend(backend)
	if err != nil {
		return nil, err
	}
	l := &loadedModel{ck: ck, b: b, batch: batch, name: backend}
	if l.m, err = ck.NewModel(b); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// evalSet returns the labelled rows eval measures, aligned to the model.
func evalSet(ck *model.Checkpoint, data string) (*dataset.Set, error) {
	var s *dataset.Set
	var err error
	switch {
	case isTextData(data):
		s, err = textEvalSet(ck, data)
	case data == "" && isTextData(ck.Data.Source):
		s, err = textEvalSet(ck, ck.Data.Source)
	case data != "" && isCSVPath(data):
		s, err = loadCSVSet(data, checkpointLabels(ck))
	case data != "":
		if err = checkDataPath(data); err != nil {
			return nil, err
		}
		_, s, err = dataset.LoadIDXDir(data)
	default:
		if ck.Data.Source == "" && ck.Data.Dataset != "mnist" {
			return nil, fmt.Errorf("the checkpoint %s does not say where its data set %q is; pass --data", ck.Path, ck.Data.Dataset)
		}
		if err := checkDataPath(ck.Data.Source); err != nil {
			return nil, fmt.Errorf("the data the checkpoint %s was trained on: %w (pass --data)", ck.Path, err)
		}
		_, s, err = loadSplitsWith(ck.Data.Source, checkpointLabels(ck), checkpointSplits(ck))
	}
	if err != nil {
		return nil, err
	}
	if s.Y == nil {
		return nil, fmt.Errorf("%s has no single label per row", s.Name)
	}
	if err := alignToCheckpoint(s, ck, s.Name); err != nil {
		return nil, err
	}
	return s, nil
}

// jsonFloat writes non-finite values (a diverged model, a class without
// rows) as null, which JSON can hold and NaN it cannot.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	// Values that came from float32 (energies) print in their shortest
	// float32 form, not as 17 digits of their float64 widening.
	if x := float64(f); float64(float32(x)) == x {
		return strconv.AppendFloat(nil, x, 'g', -1, 32), nil
	}
	return strconv.AppendFloat(nil, float64(f), 'g', -1, 64), nil
}

type variableResult struct {
	Name     string    `json:"name"`
	Accuracy jsonFloat `json:"accuracy"`
}

type classResult struct {
	Class    int       `json:"class"`
	Name     string    `json:"name,omitempty"`
	Rows     int       `json:"rows"`
	Accuracy jsonFloat `json:"accuracy"` // null when the class has no rows
}

// evalReport is eval's result; --json prints it as is.
type evalReport struct {
	Checkpoint       string        `json:"checkpoint"`
	Model            string        `json:"model"`
	Epoch            int           `json:"epoch"`
	Data             string        `json:"data"`
	Backend          string        `json:"backend"`
	Precision        string        `json:"precision"`
	Rows             int           `json:"rows"`
	Classes          int           `json:"classes"`
	Accuracy         jsonFloat     `json:"accuracy"`
	NLL              jsonFloat     `json:"nll"`
	Perplexity       jsonFloat     `json:"perplexity"` // exp(beta * NLL)
	Beta             float64       `json:"beta"`
	Loss             string        `json:"loss"`
	LossValue        jsonFloat     `json:"loss_value"`
	MeanMargin       jsonFloat     `json:"mean_margin"`
	MarginViolations jsonFloat     `json:"margin_violations"`
	PerClass         []classResult `json:"per_class"`
	// PerVariable, for a joint model: each output variable's accuracy,
	// the share of rows whose answer has that variable's value right
	// (Accuracy is the exact match of the whole joint answer).
	PerVariable []variableResult `json:"per_variable,omitempty"`
	// Confusion[i][j] counts rows of true class i answered j.
	Confusion [][]int `json:"confusion"`
}

func evalAction(c *cli.Context) error {
	ck, backend, batch, err := inferenceOptions(c)
	if err != nil {
		return err
	}
	if ck.Config.Chain {
		return evalSequencesAction(c, ck, backend, batch) // seqinfer.go
	}
	s, err := evalSet(ck, c.String("data"))
	if err != nil {
		return err
	}
	lm, err := openModel(ck, backend, min(batch, s.N)) // a batch beyond the rows is all of them
	if err != nil {
		return err
	}
	defer lm.close()
	rep, err := evaluateSet(lm, s)
	if err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printEval(w, rep)
	return nil
}

// evaluateSet measures lm on s: the summary through model.Evaluate (the
// numbers training reports, from the backend's energy-loss pass) and the
// per-class accuracy and confusion matrix from the energies.
func evaluateSet(lm *loadedModel, s *dataset.Set) (*evalReport, error) {
	ck := lm.ck
	data := &model.Data{X: s.X, Y: s.Y, N: s.N, D: s.D, Classes: ck.Classes}
	dd, err := model.Upload(lm.b, data)
	if err != nil {
		return nil, err
	}
	defer dd.Free()
	ev, err := model.Evaluate(lm.b, lm.m, dd, ck.Config.Loss, lm.batch)
	if err != nil {
		return nil, err
	}
	k := ck.Classes
	if k > maxConfusionClasses || isCBOWConfig(ck.Config) {
		// Per-class results of this many classes would need the energies
		// of every row (and a K x K matrix): the summary alone.
		return largeEvalReport(lm, s, ev), nil
	}
	vars := ck.Config.Vars
	varRight := make([]int, len(vars))
	got, want := make([]int, len(vars)), make([]int, len(vars))
	conf := make([][]int, k)
	for i := range conf {
		conf[i] = make([]int, k)
	}
	err = model.Energies(lm.b, lm.m, s.X, s.N, lm.batch, func(start int, e []float32) error {
		for r := 0; r*k < len(e); r++ {
			best := 0
			row := e[r*k : (r+1)*k]
			for y, v := range row {
				if v < row[best] {
					best = y
				}
			}
			y := int(s.Y[start+r])
			conf[y][best]++
			if len(vars) > 0 {
				model.JointValues(vars, best, got)
				model.JointValues(vars, y, want)
				for i := range vars {
					if got[i] == want[i] {
						varRight[i]++
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep := &evalReport{
		Checkpoint: ck.Path, Model: ck.Spec().String(), Epoch: ck.Epoch, Data: s.Name, Backend: lm.name, Precision: ck.Config.Precision.String(),
		Rows: s.N, Classes: k, Accuracy: jsonFloat(ev.Accuracy), NLL: jsonFloat(ev.NLL), Perplexity: jsonFloat(math.Exp(ck.Config.Loss.Beta * ev.NLL)), Beta: ck.Config.Loss.Beta,
		Loss: ck.Config.Loss.String(), LossValue: jsonFloat(ev.Loss), MeanMargin: jsonFloat(ev.Margin),
		MarginViolations: jsonFloat(ev.Violations), Confusion: conf,
	}
	if len(ck.Config.Vars) > 0 {
		rep.Model = fmt.Sprintf("joint%v trunk %s", ck.Config.Vars, rep.Model)
		for i, v := range jointVariables(ck) {
			rep.PerVariable = append(rep.PerVariable, variableResult{Name: v.Name, Accuracy: jsonFloat(float64(varRight[i]) / float64(s.N))})
		}
	}
	for y := range k {
		n := 0
		for _, c := range conf[y] {
			n += c
		}
		cr := classResult{Class: y, Rows: n, Accuracy: jsonFloat(math.NaN())}
		if n > 0 {
			cr.Accuracy = jsonFloat(float64(conf[y][y]) / float64(n))
		}
		if y < len(ck.Data.ClassNames) {
			cr.Name = ck.Data.ClassNames[y]
		}
		rep.PerClass = append(rep.PerClass, cr)
	}
	return rep, nil
}

func fmtJF(f jsonFloat, format string) string {
	if math.IsNaN(float64(f)) {
		return "-"
	}
	return fmt.Sprintf(format, float64(f))
}

// maxTextConfusion is the most classes whose confusion matrix the text
// output prints; a wider one would not fit a terminal.
const maxTextConfusion = 30

func printEval(w io.Writer, r *evalReport) {
	fmt.Fprintf(w, "# %s (%s, %d epochs) on %s: %d rows, %d classes, backend %s, precision %s\n", r.Model, r.Checkpoint, r.Epoch, r.Data, r.Rows, r.Classes, r.Backend, r.Precision)
	fmt.Fprintf(w, "accuracy %s  NLL %s (beta %g)  perplexity %s  loss %s %s  mean margin %s  margin violations %s\n",
		fmtJF(r.Accuracy, "%.4f"), fmtJF(r.NLL, "%.4f"), r.Beta, fmtJF(r.Perplexity, "%.2f"), r.Loss, fmtJF(r.LossValue, "%.4f"), fmtJF(r.MeanMargin, "%.3f"), fmtJF(r.MarginViolations, "%.4f"))
	if r.PerClass == nil {
		fmt.Fprintf(w, "\n(%d classes: no per-class accuracy or confusion matrix for word prediction or above %d classes)\n", r.Classes, maxConfusionClasses)
		return
	}
	if len(r.PerVariable) > 0 {
		var vs []string
		for _, v := range r.PerVariable {
			vs = append(vs, fmt.Sprintf("%s %s", v.Name, fmtJF(v.Accuracy, "%.4f")))
		}
		fmt.Fprintf(w, "per-variable accuracy (the joint accuracy above is the exact match of all): %s\n", strings.Join(vs, ", "))
	}
	printClassTables(w, classTables{
		perClassTitle: "per-class accuracy:", class: "class", rows: "rows",
		confusionTitle: "confusion matrix (rows: true class, columns: answer):", plural: "classes",
	}, r.PerClass, r.Confusion)
}

// classTables names what eval's and a sequence eval's per-class tables
// count (classes over rows, states over positions).
type classTables struct {
	perClassTitle, class, rows, confusionTitle, plural string
}

// printClassTables prints the per-class accuracy table and, up to
// maxTextConfusion classes, the confusion matrix labelled by class name.
func printClassTables(w io.Writer, t classTables, perClass []classResult, confusion [][]int) {
	fmt.Fprintln(w, "\n"+t.perClassTitle)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tname\t%s\taccuracy\t\n", t.class, t.rows)
	for _, c := range perClass {
		name := c.Name
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t\n", c.Class, name, c.Rows, fmtJF(c.Accuracy, "%.4f"))
	}
	tw.Flush()
	if len(confusion) > maxTextConfusion {
		fmt.Fprintf(w, "\n(%d %s: the confusion matrix is in --json only)\n", len(confusion), t.plural)
		return
	}
	fmt.Fprintln(w, "\n"+t.confusionTitle)
	tw = tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight)
	labels := confusionLabels(len(confusion), perClass)
	head := []string{""}
	head = append(head, labels...)
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for i, row := range confusion {
		cells := []string{labels[i]}
		for _, n := range row {
			cells = append(cells, strconv.Itoa(n))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	tw.Flush()
}

// maxConfusionName is the most characters of a class name the text
// confusion matrix prints in its row and column labels: wider names would
// push 30 columns off any terminal (the per-class table has them whole).
const maxConfusionName = 10

// confusionLabels are the row and column labels of the text confusion
// matrix: the class names where the data named them (answers are printed
// by name everywhere), blanks replaced by '_' and shortened to
// maxConfusionName characters; a class without a name keeps its index.
// Where two labels would read the same, every label is the index: a matrix
// whose labels are ambiguous is worse than one labelled by number.
func confusionLabels(classes int, perClass []classResult) []string {
	index := func() []string {
		labels := make([]string, classes)
		for j := range labels {
			labels[j] = strconv.Itoa(j)
		}
		return labels
	}
	labels := index()
	for _, c := range perClass {
		if c.Name == "" || c.Class < 0 || c.Class >= classes {
			continue
		}
		name := []rune(strings.Join(strings.Fields(c.Name), "_"))
		if len(name) > maxConfusionName {
			name = append(name[:maxConfusionName-1], '~')
		}
		labels[c.Class] = string(name)
	}
	seen := make(map[string]bool, classes)
	for _, l := range labels {
		if seen[l] {
			return index()
		}
		seen[l] = true
	}
	return labels
}
