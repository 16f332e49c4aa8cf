package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
)

// writeHMMCSV writes n sequences of a 4-state HMM in the sequence CSV
// format, labels as the names "s0".."s3" when named, and returns the path.
func writeHMMCSV(t *testing.T, dir string, n int, named bool) string {
	t.Helper()
	h, err := dataset.NewHMM(4, 3, 0.7, 0.2, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	s, err := h.Sample(n, 2, 9, 7)
	if err != nil {
		t.Fatal(err)
	}
	if named {
		s.ClassNames = []string{"s0", "s1", "s2", "s3"}
	}
	path := filepath.Join(dir, "seqs.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := dataset.WriteSequenceCSV(f, s); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSequenceTrainEvalPredictResume drives the sequence commands end to
// end on a generated CSV file: train (a chain, held-out sequences, per
// sequence and per position accuracy in the epoch lines, a checkpoint
// recording the chain), eval (the same held-out numbers as the last epoch),
// predict --json (a path and marginals per position that sum to 1, the
// label column of the input ignored), resume without repeating
// --seq-column, and losses on sequences.
func TestSequenceTrainEvalPredictResume(t *testing.T) {
	dir := t.TempDir()
	data := writeHMMCSV(t, dir, 120, true)
	ck := filepath.Join(dir, "chain.safetensors")
	code, out, errs := runArgs("train", "--data", data, "--seq-column", "seq", "--epochs", "3", "--lr", "0.05", "--batch", "8", "--save", ck, "--backend", "cpu", "-q")
	if code != 0 {
		t.Fatalf("train: exit %d, stderr %q", code, errs)
	}
	if !strings.Contains(out, "chain over 4 states on 96 training sequences (24 test)") {
		t.Errorf("train header does not describe the chain:\n%s", out)
	}
	epochs := regexp.MustCompile(`(?m)^epoch +(\d+)/3 .*\| test acc ([0-9.]+) pos ([0-9.]+)  NLL +([0-9.]+)`).FindAllStringSubmatch(out, -1)
	if len(epochs) != 3 {
		t.Fatalf("want 3 epoch lines with position accuracy:\n%s", out)
	}
	c, err := model.ReadCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Config.Chain || c.Data.SeqColumn != "seq" || c.Data.TrainRows != 96 || len(c.Data.ClassNames) != 4 {
		t.Fatalf("checkpoint: chain %v seq column %q train rows %d class names %v", c.Config.Chain, c.Data.SeqColumn, c.Data.TrainRows, c.Data.ClassNames)
	}

	code, out, errs = runArgs("eval", "--model", ck, "--backend", "cpu", "--json")
	if code != 0 {
		t.Fatalf("eval: exit %d, stderr %q", code, errs)
	}
	var ev seqEvalReport
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("eval --json: %v\n%s", err, out)
	}
	last := epochs[2]
	if ev.Sequences != 24 || fmtJF(ev.SequenceAccuracy, "%.4f") != last[2] || fmtJF(ev.PositionAccuracy, "%.4f") != last[3] {
		t.Errorf("eval: %d sequences, accuracy %v / %v; the last epoch said %s / %s on 24", ev.Sequences, ev.SequenceAccuracy, ev.PositionAccuracy, last[2], last[3])
	}
	code, out, _ = runArgs("eval", "--model", ck, "--backend", "cpu")
	if code != 0 || !strings.Contains(out, "sequence accuracy") || !strings.Contains(out, "confusion matrix over positions") {
		t.Errorf("eval text:\n%s", out)
	}

	code, out, errs = runArgs("predict", "--model", ck, "--input", data, "--backend", "cpu", "--json")
	if code != 0 {
		t.Fatalf("predict: exit %d, stderr %q", code, errs)
	}
	var pr seqPredictReport
	if err := json.Unmarshal([]byte(out), &pr); err != nil {
		t.Fatalf("predict --json: %v", err)
	}
	if len(pr.Sequences) != 120 || pr.Sequences[0].ID != "0" {
		t.Fatalf("predict: %d sequences, first id %q", len(pr.Sequences), pr.Sequences[0].ID)
	}
	for _, s := range pr.Sequences {
		if len(s.Path) != len(s.Marginals) || len(s.Names) != len(s.Path) {
			t.Fatalf("sequence %s: path %d, names %d, marginals %d", s.ID, len(s.Path), len(s.Names), len(s.Marginals))
		}
		for p, row := range s.Marginals {
			sum := 0.0
			for _, v := range row {
				sum += float64(v)
			}
			if sum < 0.999 || sum > 1.001 {
				t.Fatalf("sequence %s position %d: marginals sum to %v", s.ID, p, sum)
			}
		}
		if !(s.Probability > 0 && s.Probability <= 1) {
			t.Fatalf("sequence %s: P(path) = %v", s.ID, s.Probability)
		}
	}
	code, out, _ = runArgs("predict", "--model", ck, "--input", data, "--backend", "cpu", "--top", "2")
	if code != 0 || !regexp.MustCompile(`(?m)^0: (s[0-3] )+\| energy -?[0-9.]+  P [0-9.]+  log Z -?[0-9.]+$`).MatchString(out) {
		t.Errorf("predict text:\n%.600s", out)
	}

	code, out, errs = runArgs("train", "--resume", ck, "--epochs", "4", "--backend", "cpu", "-q")
	if code != 0 || !strings.Contains(out, "resuming") || !regexp.MustCompile(`(?m)^epoch +4/4 `).MatchString(out) {
		t.Fatalf("resume: exit %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = runArgs("train", "--resume", ck, "--epochs", "5", "--seq-column", "other", "--backend", "cpu", "-q")
	if code == 0 || !strings.Contains(errs, "contradict") {
		t.Errorf("resume with another --seq-column: exit %d, %q", code, errs)
	}

	// --val-split holds out training sequences for the epochs and tests
	// the held-out ones at the end, as sequences.
	code, out, errs = runArgs("train", "--data", data, "--seq-column", "seq", "--epochs", "1", "--batch", "8", "--val-split", "0.25", "--save", "", "--backend", "cpu", "-q")
	if code != 0 || !strings.Contains(out, "on 72 training sequences (24 val)") || !regexp.MustCompile(`(?m)^# test \(24 sequences, the last epoch's weights\): acc [0-9.]+ pos [0-9.]+ `).MatchString(out) {
		t.Errorf("--val-split: exit %d, stderr %q\n%s", code, errs, out)
	}

	code, out, errs = runArgs("losses", "--data", data, "--seq-column", "seq", "--epochs", "1", "--backend", "cpu", "-q")
	if code != 0 || strings.Count(out, "| ok |") < 8 {
		t.Errorf("losses on sequences: exit %d, stderr %q\n%s", code, errs, out)
	}
}

// TestSequenceDataErrors: careless and hostile sequence files are refused
// with a message naming the file and line.
func TestSequenceDataErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, body string
		args       []string
		want       string
		code       int
	}{
		{"interleaved.csv", "seq,label,x\na,0,1\na,1,2\nb,0,3\na,1,4\n", nil, "interleaved.csv:5: sequence \"a\" continues here after other sequences (it started on line 2)", exitRuntime},
		{"noid.csv", "id,label,x\na,0,1\nb,1,2\n", nil, "no column \"seq\"", exitRuntime},
		{"nolabel.csv", "seq,y,x\na,0,1\nb,1,2\n", nil, "label column: no column \"label\"", exitRuntime},
		{"nan.csv", "seq,label,x\na,0,1\nb,1,NaN\n", nil, "nan.csv:3:3: \"NaN\" (column \"x\") is not a finite number", exitRuntime},
		{"ragged.csv", "seq,label,x,y\na,0,1,2\nb,1,2\n", nil, "ragged.csv:3", exitRuntime},
		{"one.csv", "seq,label,x\na,0,1\na,1,2\n", nil, "1 sequence, need at least 2", exitRuntime},
		{"ok.csv", "seq,label,x\na,0,1\nb,1,2\n", []string{"--labels", "label,x"}, "exclude each other", exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(tc.name, tc.body)
			args := append([]string{"train", "--data", p, "--seq-column", "seq", "--backend", "cpu", "--save", "", "-q"}, tc.args...)
			code, _, errs := runArgs(args...)
			if code != tc.code || !strings.Contains(errs, tc.want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
				t.Errorf("exit %d, stderr %q; want exit %d and one line containing %q", code, errs, tc.code, tc.want)
			}
		})
	}
	code, _, errs := runArgs("train", "--seq-column", "seq", "--backend", "cpu")
	if code != exitUsage || !strings.Contains(errs, "--seq-column needs --data") {
		t.Errorf("--seq-column without --data: exit %d, %q", code, errs)
	}
}
