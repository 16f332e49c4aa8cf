package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
)

// eval and predict of a chain checkpoint (docs/SEQUENCE.md): evalAction
// and predictAction hand a checkpoint with chain = "true" to these.

// loadCheckpointSequences reads a sequence CSV file the way the checkpoint's
// training did (its sequence and label columns, its class names, its
// normalizer); labelled says whether labels are read.
func loadCheckpointSequences(ck *model.Checkpoint, path string, labelled bool) (*dataset.SequenceSet, error) {
	if path == "" || !isCSVPath(path) {
		return nil, fmt.Errorf("a chain model reads sequences from a CSV file (docs/SEQUENCE.md), not %q", path)
	}
	label := defaultSeqLabel
	if len(ck.Data.LabelColumns) == 1 {
		label = ck.Data.LabelColumns[0]
	}
	opts := dataset.SequenceCSVOptions{SeqColumn: ck.Data.SeqColumn, Label: label, NoLabels: !labelled, Classes: ck.Data.ClassNames}
	if opts.SeqColumn == "" {
		opts.SeqColumn = "seq"
	}
	s, err := dataset.LoadSequenceCSV(path, opts)
	if err != nil {
		return nil, err
	}
	if s.D != ck.Inputs {
		return nil, fmt.Errorf("%s has %d features per position; the model %s takes %d", path, s.D, ck.Path, ck.Inputs)
	}
	if labelled {
		for i, y := range s.Y {
			if int(y) >= ck.Classes {
				return nil, fmt.Errorf("%s: label %d of position %d is outside the model's %d states", path, y, i, ck.Classes)
			}
		}
		s.Classes = ck.Classes
	}
	if ck.Data.Mean != nil {
		if err := (dataset.Normalizer{Mean: ck.Data.Mean, Std: ck.Data.Std}).Apply(s.Set); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// seqEvalReport is eval's result for a chain model.
type seqEvalReport struct {
	Checkpoint       string        `json:"checkpoint"`
	Model            string        `json:"model"`
	Epoch            int           `json:"epoch"`
	Data             string        `json:"data"`
	Backend          string        `json:"backend"`
	Sequences        int           `json:"sequences"`
	Positions        int           `json:"positions"`
	States           int           `json:"states"`
	SequenceAccuracy jsonFloat     `json:"sequence_accuracy"`
	PositionAccuracy jsonFloat     `json:"position_accuracy"`
	NLL              jsonFloat     `json:"nll"` // per sequence
	Beta             float64       `json:"beta"`
	Loss             string        `json:"loss"`
	LossValue        jsonFloat     `json:"loss_value"`
	MeanMargin       jsonFloat     `json:"mean_margin"`
	MarginViolations jsonFloat     `json:"margin_violations"`
	PerClass         []classResult `json:"per_class"` // per position
	// Confusion[i][j] counts positions of true state i answered j by the
	// Viterbi path.
	Confusion [][]int `json:"confusion"`
}

func chainModelName(ck *model.Checkpoint) string {
	return fmt.Sprintf("chain over %d states, trunk %s", ck.Classes, ck.Spec())
}

func evalSequencesAction(c *cli.Context, ck *model.Checkpoint, backend string, batch int) error {
	data := c.String("data")
	var s *dataset.SequenceSet
	var err error
	switch {
	case data != "":
		s, err = loadCheckpointSequences(ck, data, true)
	case ck.Data.TestSource != "":
		s, err = loadCheckpointSequences(ck, ck.Data.TestSource, true)
	default:
		// The held-out split of the training file, drawn as training drew it.
		if err = checkDataPath(ck.Data.Source); err != nil {
			return fmt.Errorf("the data the checkpoint %s was trained on: %w (pass --data)", ck.Path, err)
		}
		var all *dataset.SequenceSet
		if all, err = loadCheckpointSequences(ck, ck.Data.Source, true); err == nil {
			_, s, err = all.Split(1-ck.Data.TestFraction, ck.Data.SplitSeed)
			if err == nil && s.Len() == 0 {
				err = fmt.Errorf("%s: no held-out sequences", ck.Data.Source)
			}
			if err == nil {
				s.Name = all.Name + " (held-out sequences)"
			}
		}
	}
	if err != nil {
		return err
	}
	lm, err := openModel(ck, backend, batch)
	if err != nil {
		return err
	}
	defer lm.close()
	cm := lm.m.(*model.ChainModel)
	seqs := toSequences(s, ck.Classes)
	ev, err := model.EvaluateSequences(lm.b, cm, seqs, ck.Config.Loss, batch)
	if err != nil {
		return err
	}
	p, err := model.PredictChain(lm.b, cm, seqs.X, seqs.Offsets, ck.Config.Loss.Beta, batch)
	if err != nil {
		return err
	}
	k := ck.Classes
	rep := &seqEvalReport{
		Checkpoint: ck.Path, Model: chainModelName(ck), Epoch: ck.Epoch, Data: s.Name, Backend: lm.name,
		Sequences: seqs.Len(), Positions: seqs.N, States: k, SequenceAccuracy: jsonFloat(ev.Accuracy),
		PositionAccuracy: jsonFloat(ev.PositionAccuracy), NLL: jsonFloat(ev.NLL), Beta: ck.Config.Loss.Beta,
		Loss: ck.Config.Loss.String(), LossValue: jsonFloat(ev.Loss), MeanMargin: jsonFloat(ev.Margin),
		MarginViolations: jsonFloat(ev.Violations), Confusion: make([][]int, k),
	}
	for i := range rep.Confusion {
		rep.Confusion[i] = make([]int, k)
	}
	for r, y := range seqs.Y {
		rep.Confusion[y][p.Path[r]]++
	}
	for y := range k {
		n := 0
		for _, c := range rep.Confusion[y] {
			n += c
		}
		cr := classResult{Class: y, Rows: n, Accuracy: jsonFloat(math.NaN())}
		if n > 0 {
			cr.Accuracy = jsonFloat(float64(rep.Confusion[y][y]) / float64(n))
		}
		if y < len(ck.Data.ClassNames) {
			cr.Name = ck.Data.ClassNames[y]
		}
		rep.PerClass = append(rep.PerClass, cr)
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printSeqEval(w, rep)
	return nil
}

func printSeqEval(w io.Writer, r *seqEvalReport) {
	fmt.Fprintf(w, "# %s (%s, %d epochs) on %s: %d sequences, %d positions, backend %s\n", r.Model, r.Checkpoint, r.Epoch, r.Data, r.Sequences, r.Positions, r.Backend)
	fmt.Fprintf(w, "sequence accuracy %s  position accuracy %s  NLL per sequence %s (beta %g)  loss %s %s  mean margin %s  margin violations %s\n",
		fmtJF(r.SequenceAccuracy, "%.4f"), fmtJF(r.PositionAccuracy, "%.4f"), fmtJF(r.NLL, "%.4f"), r.Beta, r.Loss, fmtJF(r.LossValue, "%.4f"),
		fmtJF(r.MeanMargin, "%.3f"), fmtJF(r.MarginViolations, "%.4f"))
	printClassTables(w, classTables{
		perClassTitle: "per-state accuracy of the Viterbi path, over positions:", class: "state", rows: "positions",
		confusionTitle: "confusion matrix over positions (rows: true state, columns: Viterbi answer):", plural: "states",
	}, r.PerClass, r.Confusion)
}

// seqPredictionJSON is one sequence's prediction.
type seqPredictionJSON struct {
	Sequence    int       `json:"sequence"`
	ID          string    `json:"id"`
	Path        []int32   `json:"path"`                 // the Viterbi sequence
	Names       []string  `json:"path_names,omitempty"` // its class names
	Energy      jsonFloat `json:"energy"`
	Probability jsonFloat `json:"probability"` // P(path | X) at beta
	LogZ        jsonFloat `json:"log_z"`
	// Marginals[t][k] = P(y_t = k | X) at beta.
	Marginals [][]jsonFloat `json:"marginals"`
}

type seqPredictReport struct {
	Checkpoint string              `json:"checkpoint"`
	Model      string              `json:"model"`
	Input      string              `json:"input"`
	States     int                 `json:"states"`
	ClassNames []string            `json:"class_names,omitempty"`
	Beta       float64             `json:"beta"`
	Sequences  []seqPredictionJSON `json:"sequences"`
}

func predictSequencesAction(c *cli.Context, ck *model.Checkpoint, backend string, batch int) error {
	top := c.Int("top")
	if top < 1 {
		return usagef("top must be >= 1, got %d", top)
	}
	in := c.String("input")
	if in == "" {
		return usagef("--input is required: a CSV file of sequences (the label column may be left out)")
	}
	s, err := loadCheckpointSequences(ck, in, false)
	if err != nil {
		return err
	}
	lm, err := openModel(ck, backend, batch)
	if err != nil {
		return err
	}
	defer lm.close()
	beta := ck.Config.Loss.Beta
	p, err := model.PredictChain(lm.b, lm.m.(*model.ChainModel), s.X, s.Offsets, beta, batch)
	if err != nil {
		return err
	}
	k := ck.Classes
	name := func(y int32) string {
		if int(y) < len(ck.Data.ClassNames) {
			return ck.Data.ClassNames[y]
		}
		return strconv.Itoa(int(y))
	}
	rep := &seqPredictReport{Checkpoint: ck.Path, Model: chainModelName(ck), Input: in, States: k, ClassNames: ck.Data.ClassNames, Beta: beta}
	for i := 0; i < s.Len(); i++ {
		lo, hi := s.Offsets[i], s.Offsets[i+1]
		sp := seqPredictionJSON{Sequence: i, ID: s.IDs[i], Path: p.Path[lo:hi], Energy: jsonFloat(p.Energy[i]), Probability: jsonFloat(p.Prob[i]), LogZ: jsonFloat(p.LogZ[i])}
		for r := lo; r < hi; r++ {
			if ck.Data.ClassNames != nil {
				sp.Names = append(sp.Names, name(p.Path[r]))
			}
			row := make([]jsonFloat, k)
			for j, v := range p.Marginal(r) {
				row[j] = jsonFloat(v)
			}
			sp.Marginals = append(sp.Marginals, row)
		}
		rep.Sequences = append(rep.Sequences, sp)
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(w, "# %s (%s): %d sequences (%d positions) from %s, probabilities at beta %g\n", rep.Model, ck.Path, s.Len(), s.N, in, beta)
	fmt.Fprintf(w, "# sequence id: Viterbi path | energy, P(path | X), log Z; then each position: its answer, P(answer | X) | the top %d marginals P(y_t = k | X)\n", min(top, k))
	for _, sp := range rep.Sequences {
		var ans []string
		for _, y := range sp.Path {
			ans = append(ans, name(y))
		}
		fmt.Fprintf(w, "%s: %s | energy %s  P %s  log Z %s\n", sp.ID, strings.Join(ans, " "), fmtJF(sp.Energy, "%.4f"), fmtJF(sp.Probability, "%.4f"), fmtJF(sp.LogZ, "%.4f"))
		for t, row := range sp.Marginals {
			order := make([]int, k)
			for j := range order {
				order[j] = j
			}
			sort.SliceStable(order, func(a, b int) bool { return row[order[a]] > row[order[b]] })
			var ms []string
			for _, j := range order[:min(top, k)] {
				ms = append(ms, name(int32(j))+":"+fmtJF(row[j], "%.4f"))
			}
			y := sp.Path[t]
			fmt.Fprintf(w, "  %d %s %s | %s\n", t, name(y), fmtJF(row[y], "%.4f"), strings.Join(ms, " "))
		}
	}
	return nil
}
