package main

import (
	"bufio"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/internal/trainplot"
)

// TestTrainMetricsAndPlot: a short run writes one JSON line per epoch whose
// numbers match the printed epoch lines, and a PNG of the promised size.
func TestTrainMetricsAndPlot(t *testing.T) {
	dir := t.TempDir()
	mp, pp := filepath.Join(dir, "m.jsonl"), filepath.Join(dir, "p.png")
	code, out, errs := runArgs("train", "--limit", "1000", "--epochs", "3", "--batch", "33", "--loss", "hinge", "--margin", "1.5",
		"--metrics", mp, "--plot", pp, "--quiet", "--save", "")
	if code != 0 {
		t.Fatalf("exit status %d; stderr %q", code, errs)
	}
	accs := regexp.MustCompile(`test acc (0\.[0-9]{4})`).FindAllStringSubmatch(out, -1)
	if len(accs) != 3 {
		t.Fatalf("want 3 epoch lines:\n%s", out)
	}
	f, err := os.Open(mp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", n, err, sc.Text())
		}
		if m["epoch"] != float64(n) || m["backend"] != "cpu" || m["loss"] != "hinge(m=1.5)" || m["batch"] != float64(33) || m["steps"] != float64(n*31) {
			t.Errorf("line %d: epoch %v backend %v loss %v batch %v steps %v", n, m["epoch"], m["backend"], m["loss"], m["batch"], m["steps"])
		}
		if n <= len(accs) {
			want, _ := strconv.ParseFloat(accs[n-1][1], 64)
			if got, _ := m["test_accuracy"].(float64); abs(got-want) > 0.00005 {
				t.Errorf("epoch %d: test_accuracy %v, printed %v", n, got, want)
			}
		}
		for _, k := range []string{"train_loss", "test_loss", "test_nll", "test_margin_mean", "test_margin_median", "test_violations",
			"test_mean_correct", "test_mean_offending", "lr", "train_seconds"} {
			if v, ok := m[k].(float64); !ok || (k != "test_mean_correct" && k != "test_mean_offending" && k != "test_margin_mean" && k != "test_margin_median" && v <= 0) {
				t.Errorf("line %d: %s = %v", n, k, m[k])
			}
		}
		if p10, p90 := m["test_margin_p10"].(float64), m["test_margin_p90"].(float64); !(p10 < p90) {
			t.Errorf("line %d: margin p10 %v >= p90 %v", n, p10, p90)
		}
	}
	if n != 3 {
		t.Errorf("%d lines, want one per epoch (3)", n)
	}
	pf, err := os.Open(pp)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	cfg, err := png.DecodeConfig(pf)
	if err != nil {
		t.Fatalf("plot is not a PNG: %v", err)
	}
	if cfg.Width != trainplot.Width || cfg.Height != trainplot.Height {
		t.Errorf("plot is %dx%d, want %dx%d", cfg.Width, cfg.Height, trainplot.Width, trainplot.Height)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%d files in the output directory, want 2 (no temporary files left)", len(ents))
	}
}

// Bad output paths are refused before any training (no epoch line).
func TestTrainUnwritableOutputs(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--metrics", filepath.Join(dir, "missing", "m.jsonl")},
		{"--plot", filepath.Join(dir, "missing", "p.png")},
		{"--plot", dir},
	} {
		code, out, errs := runArgs(append([]string{"train", "--limit", "100", "--epochs", "1", "--quiet", "--save", ""}, args...)...)
		if code != exitRuntime || strings.Contains(out, "epoch") || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, args[1]) {
			t.Errorf("%v: status %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// TestResumeAppendsMetrics: a run resumed from its checkpoint appends its
// epochs to the metrics file, and its plot shows the earlier epochs too.
func TestResumeAppendsMetrics(t *testing.T) {
	dir := t.TempDir()
	mp, ck, pp := filepath.Join(dir, "m.jsonl"), filepath.Join(dir, "ck.safetensors"), filepath.Join(dir, "p.png")
	common := []string{"--limit", "500", "--batch", "31", "--metrics", mp, "--quiet"}
	if code, _, errs := runArgs(append([]string{"train", "--epochs", "2", "--save", ck}, common...)...); code != 0 {
		t.Fatalf("first run: status %d, %s", code, errs)
	}
	if code, _, errs := runArgs(append([]string{"train", "--resume", ck, "--epochs", "3", "--plot", pp}, common...)...); code != 0 {
		t.Fatalf("resumed run: status %d, %s", code, errs)
	}
	data, err := os.ReadFile(mp)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines after 2 + 1 epochs:\n%s", len(lines), data)
	}
	for i, l := range lines {
		var m struct{ Epoch, Steps int }
		if err := json.Unmarshal([]byte(l), &m); err != nil || m.Epoch != i+1 || m.Steps != 17*(i+1) {
			t.Errorf("line %d: %+v, %v", i+1, m, err)
		}
	}
	if _, err := os.Stat(pp); err != nil {
		t.Errorf("no plot: %v", err)
	}
}
