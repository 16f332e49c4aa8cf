package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
)

func predictCommand() *cli.Command {
	return &cli.Command{
		Name:  "predict",
		Usage: "answer each input with a saved model: the answer, its energy and probability at beta, the top k",
		Flags: append(inferenceFlags(),
			&cli.StringFlag{Name: "input", Usage: "an IDX file of inputs (images: count x shape, ubyte scaled to [0,1] as in training) or a CSV file of features (one input per row, a non-numeric first row is a header)"},
			&cli.IntFlag{Name: "top", Value: 3, Usage: "how many of the lowest-energy answers to list, >= 1"},
			&cli.StringSliceFlag{Name: "context", Usage: "word-prediction models (text data): a context, words with _ for the word to predict (without _: the next word); repeat for several"},
		),
		OnUsageError: usageError,
		Action:       predictAction,
	}
}

// readInputs reads unlabelled inputs for ck's model: n rows of ck.Inputs
// features, raw (not yet normalized), from an IDX or CSV file (plain or
// gzip'd; the content decides) or a FIFO. A CSV file in the training
// layout has its label column dropped and its columns matched by name
// (dataset.LoadCSVInputs); note says how it was read. Errors name the file.
func readInputs(path string, ck *model.Checkpoint) (x []float32, n int, note string, err error) {
	if st, err := os.Stat(path); err != nil {
		return nil, 0, "", fmt.Errorf("input: %w", err)
	} else if st.IsDir() {
		return nil, 0, "", fmt.Errorf("input %s is a directory; want an IDX or CSV file", path)
	}
	layout := dataset.InputLayout{Features: ck.Data.FeatureNames, Labels: ck.Data.LabelNames, LabelIndex: ck.Data.LabelIndex, Columns: ck.Data.CSVColumns, D: ck.Inputs}
	idx, x, n, note, err := dataset.ReadInputs(path, layout)
	if err != nil || idx == nil {
		return x, n, note, err
	}
	d := ck.Inputs
	dims := idx.Dims
	switch {
	case slices.Equal(dims, ck.Data.InputShape) || len(dims) == 1 && dims[0] == d:
		n = 1 // a single input without a count dimension
	case len(dims) >= 2 && idx.Len()/max(dims[0], 1) == d && dims[0] > 0:
		n = dims[0]
	default:
		per := dims
		if len(dims) >= 2 {
			per = dims[1:]
		}
		return nil, 0, "", fmt.Errorf("%s holds an array of shape %v (inputs of shape %v); the model %s takes inputs of shape %v (%d features)", path, dims, per, ck.Path, ck.Data.InputShape, d)
	}
	x = make([]float32, n*d)
	for i := range x {
		v := idx.At(i)
		if idx.Type == dataset.IDXUint8 {
			v /= 255 // as LoadIDXDir scales training images
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.MaxFloat32 {
			return nil, 0, "", fmt.Errorf("%s: value %v of input %d is not a finite float32", path, v, i/d)
		}
		x[i] = float32(v)
	}
	return x, n, "", nil
}

type rankedJSON struct {
	Answer      int       `json:"answer"`
	Name        string    `json:"name,omitempty"`
	Energy      jsonFloat `json:"energy"`
	Probability jsonFloat `json:"probability"`
}

type predictionJSON struct {
	Row int `json:"row"`
	rankedJSON
	Top []rankedJSON `json:"top"`
	// Joint models only: the answer's value of each variable, and each
	// variable's marginal P(y_i = v | X), v = 0..K_i-1, at beta.
	Values    []int         `json:"values,omitempty"`
	Marginals [][]jsonFloat `json:"marginals,omitempty"`
}

// jointVarJSON describes one output variable of a joint model.
type jointVarJSON struct {
	Name   string   `json:"name"`
	Values []string `json:"values"` // the name of each value, in order
}

type predictReport struct {
	Checkpoint  string           `json:"checkpoint"`
	Model       string           `json:"model"`
	Input       string           `json:"input"`
	InputLayout string           `json:"input_layout,omitempty"` // how a CSV file's columns were read
	Classes     int              `json:"classes"`
	Beta        float64          `json:"beta"`
	Variables   []jointVarJSON   `json:"variables,omitempty"` // joint models only
	Predictions []predictionJSON `json:"predictions"`
}

// jointVariables names the variables of a joint checkpoint and their
// values: from the joint answers' class names ("left=fwd,right=stop", as
// training on a CSV file names them) when they parse, else from the label
// columns, else y0, y1, ... with numbered values.
func jointVariables(ck *model.Checkpoint) []jointVarJSON {
	vars := ck.Config.Vars
	vs := make([]jointVarJSON, len(vars))
	for i, k := range vars {
		vs[i].Name = "y" + strconv.Itoa(i)
		if i < len(ck.Data.LabelColumns) && len(ck.Data.LabelColumns) == len(vars) {
			vs[i].Name = ck.Data.LabelColumns[i]
		}
		vs[i].Values = make([]string, k)
		for v := range vs[i].Values {
			vs[i].Values[v] = strconv.Itoa(v)
		}
	}
	names := ck.Data.ClassNames
	if len(names) != ck.Classes {
		return vs
	}
	// Parse every name first; use them only if all are consistent.
	parsed := make([]jointVarJSON, len(vars))
	for i := range parsed {
		parsed[i].Values = make([]string, vars[i])
	}
	d := make([]int, len(vars))
	for y, name := range names {
		parts := strings.Split(name, ",")
		if len(parts) != len(vars) {
			return vs
		}
		model.JointValues(vars, y, d)
		for i, part := range parts {
			varName, val, ok := strings.Cut(part, "=")
			if !ok || y > 0 && varName != parsed[i].Name {
				return vs
			}
			parsed[i].Name = varName
			parsed[i].Values[d[i]] = val
		}
	}
	return parsed
}

// jointText is a joint prediction's answer decoded per variable and each
// variable's marginals, for the text output.
func jointText(vs []jointVarJSON, p predictionJSON) (answer, marginals string) {
	var a, m []string
	for i, v := range vs {
		a = append(a, v.Name+"="+v.Values[p.Values[i]])
		var ps []string
		for val, pr := range p.Marginals[i] {
			ps = append(ps, v.Values[val]+":"+fmtJF(pr, "%.4f"))
		}
		m = append(m, v.Name+" "+strings.Join(ps, " "))
	}
	return strings.Join(a, ","), strings.Join(m, ", ")
}

func predictAction(c *cli.Context) error {
	if ctxs := c.StringSlice("context"); len(ctxs) > 0 {
		return predictContexts(c, ctxs)
	}
	ck, backend, batch, err := inferenceOptions(c)
	if err != nil {
		return err
	}
	if ck.Config.Chain {
		return predictSequencesAction(c, ck, backend, batch) // seqinfer.go
	}
	top := c.Int("top")
	if top < 1 {
		return usagef("top must be >= 1, got %d", top)
	}
	in := c.String("input")
	if in == "" {
		return usagef("--input is required: an IDX or CSV file of inputs")
	}
	x, n, note, err := readInputs(in, ck)
	if err != nil {
		return err
	}
	if ck.Data.Mean != nil {
		s := &dataset.Set{Name: in, X: x, N: n, D: ck.Inputs}
		if err := (dataset.Normalizer{Mean: ck.Data.Mean, Std: ck.Data.Std}).Apply(s); err != nil {
			return err
		}
	}
	lm, err := openModel(ck, backend, min(batch, n))
	if err != nil {
		return err
	}
	defer lm.close()
	beta := ck.Config.Loss.Beta
	k := ck.Classes
	name := func(y int) string {
		if y < len(ck.Data.ClassNames) {
			return ck.Data.ClassNames[y]
		}
		return ""
	}
	rep := &predictReport{Checkpoint: ck.Path, Model: ck.Spec().String(), Input: in, InputLayout: note, Classes: k, Beta: beta}
	err = model.Energies(lm.b, lm.m, x, n, lm.batch, func(start int, e []float32) error {
		for r := 0; r*k < len(e); r++ {
			ranked, _ := model.Rank(e[r*k:(r+1)*k], beta, top)
			p := predictionJSON{Row: start + r}
			for _, a := range ranked {
				p.Top = append(p.Top, rankedJSON{Answer: a.Answer, Name: name(a.Answer), Energy: jsonFloat(a.Energy), Probability: jsonFloat(a.Probability)})
			}
			p.rankedJSON = p.Top[0]
			rep.Predictions = append(rep.Predictions, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if jm, ok := lm.m.(*model.JointModel); ok {
		if err := addJointPredictions(rep, ck, lm.b, jm, x, n, lm.batch); err != nil {
			return err
		}
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	label := func(a rankedJSON) string {
		if a.Name != "" {
			return a.Name
		}
		return strconv.Itoa(a.Answer)
	}
	if rep.Variables != nil {
		var vs []string
		for _, v := range rep.Variables {
			vs = append(vs, fmt.Sprintf("%s (%d values)", v.Name, len(v.Values)))
		}
		fmt.Fprintf(w, "# %s (%s): %d inputs from %s, %d joint answers over %s, probabilities at beta %g\n", rep.Model, ck.Path, n, in, k, strings.Join(vs, ", "), beta)
		fmt.Fprintf(w, "# row answer energy probability | top %d: answer energy probability, ... | marginals P(y_i = v | X): variable v:p ..., ...\n", min(top, k))
	} else {
		fmt.Fprintf(w, "# %s (%s): %d inputs from %s, %d answers, probabilities at beta %g\n", rep.Model, ck.Path, n, in, k, beta)
	}
	if note != "" {
		fmt.Fprintf(w, "# %s: %s\n", in, note)
	}
	if rep.Variables == nil {
		fmt.Fprintf(w, "# row answer energy probability | top %d: answer energy probability, ...\n", min(top, k))
	}
	for _, p := range rep.Predictions {
		var tops []string
		for _, a := range p.Top {
			tops = append(tops, fmt.Sprintf("%s %s %s", label(a), fmtJF(a.Energy, "%.4f"), fmtJF(a.Probability, "%.4f")))
		}
		answer, marginals := label(p.rankedJSON), ""
		if rep.Variables != nil {
			answer, marginals = jointText(rep.Variables, p)
			marginals = " | " + marginals
		}
		fmt.Fprintf(w, "%d %s %s %s | %s%s\n", p.Row, answer, fmtJF(p.Energy, "%.4f"), fmtJF(p.Probability, "%.4f"), strings.Join(tops, ", "), marginals)
	}
	return nil
}

// addJointPredictions adds to rep what a joint model infers besides the
// ranked joint answers: each answer's value per variable and every
// variable's marginal distribution (model.PredictJoint).
func addJointPredictions(rep *predictReport, ck *model.Checkpoint, b model.Backend, jm *model.JointModel, x []float32, n, batch int) error {
	jp, err := model.PredictJoint(b, jm, x, n, rep.Beta, batch)
	if err != nil {
		return err
	}
	rep.Variables = jointVariables(ck)
	rep.Model = fmt.Sprintf("joint%v trunk %s", ck.Config.Vars, rep.Model)
	for r := range rep.Predictions {
		p := &rep.Predictions[r]
		// The answer ranked first and PredictJoint's argmin are the same
		// lowest-energy joint answer (ties to the lowest index in both).
		p.Values = make([]int, len(rep.Variables))
		model.JointValues(ck.Config.Vars, p.Answer, p.Values)
		for i := range rep.Variables {
			var ms []jsonFloat
			for _, pr := range jp.Marginal(r, i) {
				ms = append(ms, jsonFloat(pr))
			}
			p.Marginals = append(p.Marginals, ms)
		}
	}
	return nil
}
