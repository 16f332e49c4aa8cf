package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/dataset"
)

// writeRobotCSV writes n rows of the robot simulator as a CSV file with a
// header: the two sensor readings, a distractor feature and the two motor
// commands, the label columns placed apart from each other.
func writeRobotCSV(t *testing.T, n int, seed uint64) string {
	t.Helper()
	s, err := dataset.Robot(n, 0.03, seed)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("left_motor,dl,dr,right_motor,noise\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%d,%g,%g,%d,%g\n", s.Labels[i][0], s.X[2*i], s.X[2*i+1], s.Labels[i][1], float64(i%7)/7)
	}
	path := filepath.Join(t.TempDir(), "robot.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var lastAccRE = regexp.MustCompile(`test acc (0\.[0-9]+|1\.0+)`)

func lastAccuracy(t *testing.T, out string) float64 {
	t.Helper()
	m := lastAccRE.FindAllStringSubmatch(out, -1)
	if m == nil {
		t.Fatalf("no test accuracy in:\n%s", out)
	}
	a, err := strconv.ParseFloat(m[len(m)-1][1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestTrainJointCSV trains a joint model on a CSV file with two label
// columns (--labels) and an ordinary one on one of them (--label).
func TestTrainJointCSV(t *testing.T) {
	path := writeRobotCSV(t, 1500, 3)
	common := []string{"train", "--data", path, "--epochs", "8", "--model", "mlp:32:tanh", "--lr", "0.01", "--batch", "32", "--backend", "cpu", "--quiet"}

	ckpt := filepath.Join(t.TempDir(), "joint.safetensors")
	code, out, errs := runArgs(append(common, "--labels", "left_motor,right_motor", "--save", ckpt)...)
	if code != 0 {
		t.Fatalf("--labels: exit status %d; stderr %q", code, errs)
	}
	if !strings.Contains(out, "joint over [3 3] label values (9 joint answers, unary + pairwise)") {
		t.Errorf("--labels: the header does not describe the joint model:\n%s", out)
	}
	if n := strings.Count(out, "\nepoch "); n != 8 {
		t.Errorf("--labels: want 8 epoch lines, got %d:\n%s", n, out)
	}
	// Exact-match accuracy: blocked rows (about 40%) are coin flips, so
	// about 0.8 is the best possible; chance over 9 answers is 0.11.
	if a := lastAccuracy(t, out); a < 0.6 {
		t.Errorf("--labels: joint exact-match accuracy %v, want >= 0.6:\n%s", a, out)
	}

	joint := lastAccuracy(t, out)
	// The checkpoint records the label columns: eval reads the file the same
	// way and names the joint answers by their columns' values.
	code, ev, errs := runArgs("eval", "--model", ckpt, "--backend", "cpu")
	if code != 0 {
		t.Fatalf("eval of the joint checkpoint: exit status %d; stderr %q", code, errs)
	}
	if !strings.Contains(ev, "left_motor=2,right_motor=0") || !strings.Contains(ev, fmt.Sprintf("accuracy %.4f", joint)) {
		t.Errorf("eval of the joint checkpoint does not name the joint answers or report the training run's test accuracy %.4f:\n%s", joint, ev)
	}

	code, out, errs = runArgs(append(common, "--labels", "0,3", "--no-pairwise", "--epochs", "1", "--save", "")...)
	if code != 0 || !strings.Contains(out, "unary only") {
		t.Errorf("--labels 0,3 --no-pairwise: exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}

	code, out, errs = runArgs(append(common, "--label", "right_motor", "--save", "")...)
	if code != 0 {
		t.Fatalf("--label: exit status %d; stderr %q", code, errs)
	}
	if strings.Contains(out, "joint") {
		t.Errorf("--label: one label column made a joint model:\n%s", out)
	}
	if a := lastAccuracy(t, out); a < 0.6 {
		t.Errorf("--label right_motor: accuracy %v, want >= 0.6:\n%s", a, out)
	}

	for _, tc := range []struct {
		code int
		args []string
		want string
	}{
		{exitUsage, []string{"train", "--labels", "a,b"}, "need --data to name a CSV file"},
		{exitUsage, []string{"train", "--data", path, "--label", "dl", "--labels", "left_motor,right_motor"}, "not both"},
		{exitUsage, []string{"train", "--data", path, "--label", "left_motor", "--no-pairwise"}, "--no-pairwise needs a joint model"},
		{exitUsage, []string{"train", "--data", path, "--labels", "left_motor,"}, "empty column"},
		{exitRuntime, []string{"train", "--data", path, "--labels", "left_motor,wheel"}, "wheel"},
	} {
		code, out, errs := runArgs(tc.args...)
		if code != tc.code || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, nothing, one line with %q", tc.args, code, out, errs, tc.code, tc.want)
		}
	}
}

// TestJointCSVPredictResumeLosses: a joint CSV checkpoint is predicted with
// the answer decoded per variable and each variable's marginals (which
// must be the sums of the joint probabilities), is resumed without
// --labels, refuses other label columns on resume, and the losses table
// says that its models are joint.
func TestJointCSVPredictResumeLosses(t *testing.T) {
	path := writeRobotCSV(t, 600, 5)
	ckpt := filepath.Join(t.TempDir(), "j.safetensors")
	mustRun(t, "train", "--data", path, "--labels", "left_motor,right_motor", "--epochs", "2", "--lr", "0.02", "--batch", "33",
		"--backend", "cpu", "--quiet", "--save", ckpt)

	// Inputs: the feature columns (dl, dr, noise) of 7 fresh robot rows.
	s, err := dataset.Robot(7, 0.03, 99)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("dl,dr,noise\n")
	for i := 0; i < s.N; i++ {
		fmt.Fprintf(&b, "%g,%g,%g\n", s.X[2*i], s.X[2*i+1], float64(i%5)/5)
	}
	in := filepath.Join(t.TempDir(), "in.csv")
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, "predict", "--model", ckpt, "--input", in, "--top", "9", "--json", "--batch", "3")
	var pr predictReport
	if err := json.Unmarshal([]byte(out), &pr); err != nil {
		t.Fatalf("predict --json: %v\n%s", err, out)
	}
	if len(pr.Variables) != 2 || pr.Variables[0].Name != "left_motor" || pr.Variables[1].Name != "right_motor" ||
		len(pr.Variables[0].Values) != 3 || len(pr.Variables[1].Values) != 3 {
		t.Fatalf("variables %+v, want left_motor and right_motor with 3 values each", pr.Variables)
	}
	if len(pr.Predictions) != 7 {
		t.Fatalf("%d predictions for 7 inputs", len(pr.Predictions))
	}
	for _, p := range pr.Predictions {
		if len(p.Values) != 2 || p.Values[0]*3+p.Values[1] != p.Answer {
			t.Errorf("row %d: joint answer %d decoded as %v", p.Row, p.Answer, p.Values)
		}
		want := fmt.Sprintf("left_motor=%s,right_motor=%s", pr.Variables[0].Values[p.Values[0]], pr.Variables[1].Values[p.Values[1]])
		if p.Name != want {
			t.Errorf("row %d: answer named %q, values say %q", p.Row, p.Name, want)
		}
		if len(p.Top) != 9 || len(p.Marginals) != 2 {
			t.Fatalf("row %d: %d ranked answers (want all 9), %d marginals (want 2)", p.Row, len(p.Top), len(p.Marginals))
		}
		// P(y_i = v | X) is the sum of the joint probabilities with y_i = v.
		var sums [2][3]float64
		for _, a := range p.Top {
			sums[0][a.Answer/3] += float64(a.Probability)
			sums[1][a.Answer%3] += float64(a.Probability)
		}
		for i, m := range p.Marginals {
			if len(m) != 3 {
				t.Fatalf("row %d: variable %d has %d marginals, want 3", p.Row, i, len(m))
			}
			for v, pv := range m {
				if math.Abs(float64(pv)-sums[i][v]) > 1e-5 {
					t.Errorf("row %d: P(%s = %d | X) = %v, the joint probabilities sum to %v", p.Row, pr.Variables[i].Name, v, pv, sums[i][v])
				}
			}
		}
	}

	text := mustRun(t, "predict", "--model", ckpt, "--input", in)
	if !strings.Contains(text, "9 joint answers over left_motor (3 values), right_motor (3 values)") {
		t.Errorf("predict text header does not describe the joint answers:\n%s", text)
	}
	p0 := pr.Predictions[0]
	row0 := fmt.Sprintf("\n0 %s ", p0.Name)
	marg0 := fmt.Sprintf("| left_motor 0:%.4f 1:%.4f 2:%.4f, right_motor 0:%.4f", p0.Marginals[0][0], p0.Marginals[0][1], p0.Marginals[0][2], p0.Marginals[1][0])
	if !strings.Contains(text, row0) || !strings.Contains(text, marg0) {
		t.Errorf("predict text lacks row 0's answer %q or marginals %q:\n%s", row0, marg0, text)
	}

	// Resume takes the label columns from the checkpoint.
	out = mustRun(t, "train", "--resume", ckpt, "--epochs", "3", "--quiet")
	if !strings.Contains(out, "joint over [3 3] label values") || !strings.Contains(out, "\nepoch 3/3 ") || strings.Contains(out, "epoch 2/") {
		t.Errorf("resume without --labels:\n%s", out)
	}
	mustRun(t, "train", "--resume", ckpt, "--epochs", "4", "--quiet", "--labels", "left_motor,right_motor")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--labels", "right_motor,left_motor"}, "label columns right_motor,left_motor contradicts the checkpoint"},
		{[]string{"--label", "left_motor"}, "label columns left_motor contradicts"},
		{[]string{"--labels", "left_motor,right_motor", "--no-pairwise"}, "--no-pairwise contradicts"},
	} {
		code, out, errs := runArgs(append([]string{"train", "--resume", ckpt, "--epochs", "5"}, tc.args...)...)
		if code != 2 || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("resume %v: exit %d, stdout %q, stderr %q; want 2, nothing, one line with %q", tc.args, code, out, errs, tc.want)
		}
	}

	out = mustRun(t, "losses", "--data", path, "--labels", "left_motor,right_motor", "--epochs", "1", "--limit", "100", "--quiet")
	if !strings.Contains(out, "joint over [3 3] label values (9 joint answers, unary + pairwise)") || !strings.Contains(out, "exact match over the joint answer") {
		t.Errorf("the losses table does not say its models are joint:\n%s", out)
	}
}
