package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// excerptData is the --data value of the GCIDE excerpt (tests run in a
// temporary directory: TestMain).
func excerptData() string {
	return "text:" + filepath.Join(pkgDir, "../../testdata/text/gcide-excerpt.txt")
}

// TestTextTrainPredictEval: train a CBOW model on the GCIDE excerpt, save
// it, predict words for contexts (known and unknown words, a blank in the
// middle and at the end), and eval its held-out perplexity, which must be
// the one training reported and below the vocabulary size (better than
// uniform).
func TestTextTrainPredictEval(t *testing.T) {
	ck := filepath.Join(t.TempDir(), "words.safetensors")
	code, out, errs := runArgs("train", "--data", excerptData(), "--model", "cbow:16", "--min-count", "2", "--window", "3",
		"--epochs", "2", "--batch", "64", "--lr", "3e-3", "--backend", "cpu", "-q", "--save", ck)
	if code != 0 {
		t.Fatalf("train: exit %d, stderr %q", code, errs)
	}
	m := regexp.MustCompile(`vocabulary (\d+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no vocabulary line:\n%s", out)
	}
	vocab, _ := strconv.Atoi(m[1])
	pm := regexp.MustCompile(`  perplexity ([0-9.]+)`).FindAllStringSubmatch(out, -1)
	if len(pm) != 2 {
		t.Fatalf("want 2 perplexity lines:\n%s", out)
	}
	trainPPL, _ := strconv.ParseFloat(pm[1][1], 64)
	if !(trainPPL > 1 && trainPPL < float64(vocab)/4) {
		t.Errorf("perplexity %v after training over %d words", trainPPL, vocab)
	}

	code, out, errs = runArgs("predict", "--model", ck, "--backend", "cpu", "--top", "4",
		"--context", "to _ the touch", "--context", "the sense of", "--context", "zzqx _ qqzx")
	if code != 0 {
		t.Fatalf("predict: exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], `"to _ the touch": `) || strings.Count(lines[1], ",") != 3 {
		t.Fatalf("predict output:\n%s", out)
	}
	if !strings.Contains(lines[3], "not in the vocabulary") || !strings.Contains(lines[3], "zzqx qqzx") {
		t.Errorf("unknown context words not reported:\n%s", lines[3])
	}

	code, out, errs = runArgs("eval", "--model", ck, "--backend", "cpu", "--json")
	if code != 0 {
		t.Fatalf("eval: exit %d, stderr %q", code, errs)
	}
	var rep evalReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if got := float64(rep.Perplexity); got < trainPPL*0.999 || got > trainPPL*1.001 || rep.Classes != vocab || rep.PerClass != nil {
		t.Errorf("eval: perplexity %v (training reported %v), %d classes (vocabulary %d), per-class %v", got, trainPPL, rep.Classes, vocab, rep.PerClass != nil)
	}
}

// TestTextSampledAndBudget trains with sampled softmax and NCE under a
// time budget: the run stops, evaluates exactly and prints the log Z
// audit; hostile settings are refused with a one-line error.
func TestTextSampledAndBudget(t *testing.T) {
	for _, kind := range []string{"softmax", "nce"} {
		code, out, errs := runArgs("train", "--data", excerptData(), "--model", "cbow:8", "--min-count", "2", "--epochs", "1000",
			"--batch", "32", "--backend", "cpu", "-q", "--sampled", kind, "--samples", "64", "--time-budget", "1500ms", "--save", filepath.Join(t.TempDir(), "ck"))
		if code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", kind, code, errs)
		}
		if !strings.Contains(errs, "time budget of 1.5s reached") || !strings.Contains(out, "log Z audit, "+kind+", 64 samples") {
			t.Errorf("%s: no budget note or audit:\nstdout %s\nstderr %s", kind, out, errs)
		}
		if kind == "nce" && !strings.Contains(out, "self-normalization") {
			t.Errorf("nce: no self-normalization bias:\n%s", out)
		}
		for _, l := range strings.Split(out, "\n") {
			if len(l) > 80 && !strings.HasPrefix(l, "#") {
				t.Errorf("%s: line of %d columns: %q", kind, len(l), l)
			}
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--data", "text:"}, "names no file"},
		{[]string{"--data", "text:/no/such/file.txt"}, "no such file"},
		{[]string{"--data", excerptData(), "--sampled", "softmax", "--loss", "hinge"}, "approximates NLL"},
		{[]string{"--data", excerptData(), "--sampled", "bogus"}, "valid: none, softmax, nce"},
		{[]string{"--data", excerptData(), "--sampled", "nce", "--samples", "0"}, ">= 1 samples"},
		{[]string{"--data", excerptData(), "--window", "0"}, "window"},
		{[]string{"--data", excerptData(), "--time-budget", "-1s"}, "time-budget"},
		{[]string{"--data", writeBlobsCSV(t, t.TempDir(), 50, 3, 2, 1), "--model", "cbow:4"}, "not a word id"},
	} {
		save := filepath.Join(t.TempDir(), "ck.safetensors")
		code, _, errs := runArgs(append([]string{"train", "--backend", "cpu", "-q", "--epochs", "1", "--model", "cbow:4", "--save", save}, tc.args...)...)
		if code == 0 || !strings.Contains(errs, tc.want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("train %v: exit %d, stderr %q (want one line containing %q)", tc.args, code, errs, tc.want)
		}
	}
}
