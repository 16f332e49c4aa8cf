package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func runArgs(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"gputrain"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestInvalidFlagsExit2OneLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the message
	}{
		{[]string{"train", "--batch", "0"}, "batch must be >= 1"},
		{[]string{"train", "--batch", "-5"}, "batch must be >= 1"},
		{[]string{"train", "--beta", "0"}, "beta"},
		{[]string{"train", "--loss", "squared"}, "valid: energy, perceptron, hinge"},
		{[]string{"train", "--optimizer", "rmsprop"}, "valid: sgd, momentum, adam"},
		{[]string{"train", "--model", "cnn"}, `"linear", "mlp:H1`},
		{[]string{"train", "--model", "mlp:256,x"}, "hidden size"},
		{[]string{"train", "--activation", "gelu", "--model", "mlp:8"}, "valid: relu, tanh"},
		{[]string{"train", "--backend", "cuda"}, "not built into this binary"},
		{[]string{"losses", "--backend", "cuda", "--limit", "100"}, "not built into this binary"},
		{[]string{"train", "--backend", "tpu"}, "built in: cpu"},
		{[]string{"train", "--lr", "-1"}, "learning rate"},
		{[]string{"train", "--limit", "-1"}, "limit"},
		{[]string{"train", "--reduction", "max"}, "valid: mean, sum"},
		{[]string{"train", "--epochs", "two"}, "epochs"},
		{[]string{"train", "--no-such-flag"}, "no-such-flag"},
		{[]string{"train", "extra"}, "unexpected argument"},
		{[]string{"losses", "--gamma", "0"}, "gamma"},
		{[]string{"trian"}, "unknown command"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			want := exitUsage
			if _, built := backends["cuda"]; built && strings.Contains(tc.want, "not built into") {
				// A -tags cuda binary has the backend; without a GPU,
				// opening it is the failure, before any output: not the
				// command line's fault, so exit status 1.
				if backendProbes["cuda"]() == nil {
					t.Skip("a GPU is present: --backend cuda works here")
				}
				tc.want, want = "no usable NVIDIA GPU", exitRuntime
			}
			code, out, errs := runArgs(tc.args...)
			if code != want {
				t.Errorf("exit status %d, want %d", code, want)
			}
			if out != "" {
				t.Errorf("stdout not empty: %q", out)
			}
			if strings.Count(errs, "\n") != 1 || !strings.HasSuffix(errs, "\n") {
				t.Errorf("stderr is not one line: %q", errs)
			}
			if !strings.Contains(errs, tc.want) || !strings.HasPrefix(errs, "gputrain: ") {
				t.Errorf("stderr %q does not say %q", errs, tc.want)
			}
		})
	}
}

var epochLineRE = regexp.MustCompile(`(?m)^epoch 1/1  loss [0-9.]+ \| test acc 0\.[0-9]{4}  NLL [0-9.]+  margin -?[0-9.]+  [0-9.]+s$`)

func TestShortTrainRun(t *testing.T) {
	code, out, errs := runArgs("train", "--limit", "2000", "--epochs", "1")
	if code != 0 {
		t.Fatalf("exit status %d; stderr %q", code, errs)
	}
	if !epochLineRE.MatchString(out) {
		t.Fatalf("no epoch line in stdout:\n%s", out)
	}
	if !strings.Contains(out, "2000 training rows") {
		t.Errorf("--limit 2000 not applied:\n%s", out)
	}
	// stderr is not a terminal here: no progress bar, only the warning
	// that 16 steps are too few to learn much.
	if strings.Contains(errs, "\r") || errs != "" && (strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "warning: 16 optimizer steps")) {
		t.Errorf("stderr: %q", errs)
	}
	acc := regexp.MustCompile(`test acc (0\.[0-9]+)`).FindStringSubmatch(out)
	// 16 Adam steps take a linear model well above chance (0.1).
	if acc == nil {
		t.Fatal("no test accuracy")
	}
	if a, err := strconv.ParseFloat(acc[1], 64); err != nil || a < 0.3 {
		t.Errorf("test accuracy after one epoch on 2000 rows: %s, want >= 0.3", acc[1])
	}
}

func TestShortMLPRunWithOptions(t *testing.T) {
	code, out, errs := runArgs("train", "--limit", "777", "--epochs", "2", "--model", "mlp:33", "--activation", "tanh",
		"--loss", "hinge", "--margin", "2", "--optimizer", "momentum", "--lr", "0.01", "--batch", "31", "--quiet", "--save", "")
	if code != 0 {
		t.Fatalf("exit status %d; stderr %q", code, errs)
	}
	if n := strings.Count(out, "\nepoch "); n != 2 {
		t.Fatalf("want 2 epoch lines, got %d:\n%s", n, out)
	}
	if !strings.Contains(out, "mlp:33:tanh") || !strings.Contains(out, "hinge(m=2)") {
		t.Errorf("header does not show the settings:\n%s", out)
	}
}

func TestLossesTable(t *testing.T) {
	md := filepath.Join(t.TempDir(), "LOSSES.md")
	code, out, errs := runArgs("losses", "--limit", "1000", "--epochs", "1", "--quiet", "--out", md)
	if code != 0 {
		t.Fatalf("exit status %d; stderr %q", code, errs)
	}
	rows := regexp.MustCompile(`(?m)^\| [a-z0-9-]+(\([a-z]+=[0-9.]+\))? \| `).FindAllString(out, -1)
	if len(rows) != 11 { // the header and ten losses
		t.Fatalf("want a header and 10 rows, got %d:\n%s", len(rows), out)
	}
	for _, name := range []string{"energy", "perceptron", "hinge", "log", "lvq2", "mce", "square-square", "square-exp", "nll", "mee"} {
		if !strings.Contains(out, "| "+name) {
			t.Errorf("no row for %s", name)
		}
	}
	doc, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "| nll(beta=1) |") {
		t.Errorf("%s lacks the table:\n%s", md, doc)
	}
}
