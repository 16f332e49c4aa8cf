package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/safetensors"
)

// pkgDir is the package's source directory; TestMain runs the tests in a
// temporary directory so that a train run without --save (which writes
// gputrain.safetensors in the working directory) leaves nothing in the
// source tree.
var pkgDir string

// testTmp is the temporary working directory; TestMain removes it.
var testTmp string

func TestMain(m *testing.M) {
	var err error
	if pkgDir, err = os.Getwd(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmp, err := os.MkdirTemp("", "gputrain-cmd-test-")
	testTmp = tmp
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.Chdir(tmp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.Chdir(pkgDir)
	os.RemoveAll(tmp)
	os.Exit(code)
}

// writeBlobsCSV writes n rows of d-feature Gaussian blobs of k classes as
// "label,f0,f1,..." with a header, and returns the path.
func writeBlobsCSV(t *testing.T, dir string, n, d, k int, seed uint64) string {
	t.Helper()
	s := dataset.Blobs(n, d, k, 2.5, seed)
	var b strings.Builder
	b.WriteString("label")
	for j := range d {
		fmt.Fprintf(&b, ",f%d", j)
	}
	b.WriteString("\n")
	for i := range s.N {
		b.WriteString(strconv.Itoa(int(s.Y[i])))
		for _, v := range s.Row(i) {
			// Shift and scale so that standardization has work to do.
			fmt.Fprintf(&b, ",%g", 10+3*v)
		}
		b.WriteString("\n")
	}
	path := filepath.Join(dir, fmt.Sprintf("blobs-%d-%d-%d.csv", n, d, k))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustRun runs the command in-process and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runArgs(args...)
	if code != 0 {
		t.Fatalf("gputrain %s: exit status %d; stderr %q", strings.Join(args, " "), code, errs)
	}
	return out
}

// paramBits returns every model and optimizer tensor of a checkpoint as raw
// bytes (so comparisons are bitwise).
func paramBits(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, ts := range f.Tensors {
		if strings.HasPrefix(ts.Name, "layers.") || strings.HasPrefix(ts.Name, "optimizer.") {
			out[ts.Name] = string(ts.Data)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no weights", path)
	}
	return out
}

func sameParams(t *testing.T, got, want string) {
	t.Helper()
	g, w := paramBits(t, got), paramBits(t, want)
	if len(g) != len(w) {
		t.Fatalf("%s has %d tensors, %s %d", got, len(g), want, len(w))
	}
	for name, wb := range w {
		if g[name] != wb {
			t.Fatalf("tensor %s of %s differs from %s (not bitwise equal)", name, got, want)
		}
	}
}

// csvRun is one small training run on CSV data shared by the tests below:
// a 4-epoch checkpoint and the CSV it was trained on.
type csvRun struct {
	dir, csv, full string
	flags          []string
}

var (
	csvOnce sync.Once
	csvRes  csvRun
	csvErr  string
)

func sharedCSVRun(t *testing.T) csvRun {
	t.Helper()
	csvOnce.Do(func() {
		dir, err := os.MkdirTemp(testTmp, "csv-")
		if err != nil {
			csvErr = err.Error()
			return
		}
		r := csvRun{dir: dir, csv: writeBlobsCSV(t, dir, 401, 7, 4, 3), full: filepath.Join(dir, "full.safetensors")}
		r.flags = []string{"--data", r.csv, "--model", "mlp:16", "--batch", "37", "--seed", "5", "--lr", "0.01", "--quiet"}
		code, _, errs := runArgs(append([]string{"train", "--epochs", "4", "--save", r.full}, r.flags...)...)
		if code != 0 {
			csvErr = errs
			return
		}
		csvRes = r
	})
	if csvErr != "" {
		t.Fatalf("shared training run failed: %s", csvErr)
	}
	return csvRes
}

// TestTrainResumeMatchesUninterrupted: 2 epochs, then --resume up to 4,
// gives the same weights and optimizer state as 4 epochs in one go; the
// checkpoint records the data and its normalization.
func TestTrainResumeMatchesUninterrupted(t *testing.T) {
	r := sharedCSVRun(t)
	half := filepath.Join(t.TempDir(), "half.safetensors")
	mustRun(t, append([]string{"train", "--epochs", "2", "--save", half}, r.flags...)...)
	ck, err := model.ReadCheckpoint(half)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Epoch != 2 || ck.Data.Mean == nil || ck.Data.TrainRows != 321 || ck.Inputs != 7 || ck.Classes != 4 {
		t.Fatalf("checkpoint: epoch %d, normalizer %v, %d training rows, %d inputs, %d classes", ck.Epoch, ck.Data.Mean != nil, ck.Data.TrainRows, ck.Inputs, ck.Classes)
	}
	// Resuming needs no other flag: the data comes from the checkpoint,
	// and the checkpoint itself is updated.
	out := mustRun(t, "train", "--resume", half, "--epochs", "4", "--quiet")
	if !strings.Contains(out, "# resuming "+half+" after epoch 2, up to epoch 4") {
		t.Errorf("no resume line:\n%s", out)
	}
	if n := strings.Count(out, "\nepoch "); n != 2 || !strings.Contains(out, "\nepoch 3/4 ") {
		t.Errorf("want epoch lines 3 and 4:\n%s", out)
	}
	sameParams(t, half, r.full)
}

// TestResumeRefusesContradictions: every flag that would change the run
// (and data of another shape) is a one-line error.
func TestResumeRefusesContradictions(t *testing.T) {
	r := sharedCSVRun(t)
	dir := t.TempDir()
	other := writeBlobsCSV(t, dir, 50, 3, 4, 9)
	moreClasses := writeBlobsCSV(t, dir, 401, 7, 5, 3)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--model", "mlp:32"}, "model mlp:32:relu contradicts the checkpoint " + r.full + ", which has mlp:16:relu"},
		{[]string{"--model", "linear"}, "model linear contradicts"},
		{[]string{"--activation", "tanh"}, "model mlp:16:tanh contradicts"},
		{[]string{"--batch", "10"}, "batch 10 contradicts"},
		{[]string{"--loss", "hinge"}, "loss hinge(m=1) contradicts"},
		{[]string{"--lr", "0.5"}, "lr 0.5 contradicts"},
		{[]string{"--seed", "6"}, "seed 6 contradicts"},
		{[]string{"--optimizer", "sgd"}, "optimizer sgd contradicts"},
		{[]string{"--limit", "100"}, "limit 100 contradicts"},
		{[]string{"--data", other}, "7 inputs"},
		{[]string{"--data", moreClasses}, "5 classes"},
		{nil, "has completed 4 of 4 epochs; pass --epochs N with N > 4"},
		{[]string{"--epochs", "2"}, "has completed 4 epochs, more than --epochs 2"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"train", "--resume", r.full, "--save", filepath.Join(dir, "x.safetensors")}, tc.args...)
			if tc.want != "" && !strings.Contains(tc.want, "completed") {
				args = append(args, "--epochs", "5")
			}
			code := exitUsage
			if strings.Contains(tc.want, "inputs") || strings.Contains(tc.want, "classes") {
				code = exitRuntime // the data, not the command line, differs
			}
			expectExit(t, code, args, tc.want)
		})
	}
}

// expectOneLineError expects a usage error (exit 2) saying want.
func expectOneLineError(t *testing.T, args []string, want string) {
	t.Helper()
	expectExit(t, exitUsage, args, want)
}

// expectExit expects the command to fail with exit status code before
// training, with one line on stderr saying want.
func expectExit(t *testing.T, wantCode int, args []string, want string) {
	t.Helper()
	code, out, errs := runArgs(args...)
	if code != wantCode {
		t.Errorf("exit status %d, want %d (stderr %q)", code, wantCode, errs)
	}
	if regexp.MustCompile(`(?m)^epoch `).MatchString(out) {
		t.Errorf("trained before refusing:\n%s", out)
	}
	if strings.Count(errs, "\n") != 1 || !strings.HasSuffix(errs, "\n") || !strings.HasPrefix(errs, "gputrain: ") {
		t.Errorf("stderr is not one gputrain: line: %q", errs)
	}
	if strings.Contains(errs, "goroutine ") || strings.Contains(errs, "panic") {
		t.Errorf("stack trace on stderr: %q", errs)
	}
	if !strings.Contains(errs, want) {
		t.Errorf("stderr %q does not say %q", errs, want)
	}
}

// TestEvalAndPredictAgree checks eval's numbers against each other and
// against predict on the same rows, and predict's answers against the
// pure-Python reader when python3 is there.
func TestEvalAndPredictAgree(t *testing.T) {
	r := sharedCSVRun(t)
	out := mustRun(t, "eval", "--model", r.full, "--json", "--batch", "33")
	var ev evalReport
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("eval --json: %v\n%s", err, out)
	}
	if ev.Rows != 80 || ev.Classes != 4 || len(ev.Confusion) != 4 || len(ev.PerClass) != 4 || ev.Epoch != 4 {
		t.Fatalf("eval: %d rows, %d classes, %d confusion rows, %d per-class, epoch %d", ev.Rows, ev.Classes, len(ev.Confusion), len(ev.PerClass), ev.Epoch)
	}
	diag, total := 0, 0
	for i, row := range ev.Confusion {
		n := 0
		for _, c := range row {
			n += c
		}
		if n != ev.PerClass[i].Rows {
			t.Errorf("class %d: %d rows in the confusion matrix, %d per class", i, n, ev.PerClass[i].Rows)
		}
		if n > 0 && math.Abs(float64(row[i])/float64(n)-float64(ev.PerClass[i].Accuracy)) > 1e-12 {
			t.Errorf("class %d: accuracy %v, confusion says %d/%d", i, ev.PerClass[i].Accuracy, row[i], n)
		}
		diag += row[i]
		total += n
	}
	if total != ev.Rows || float64(diag)/float64(total) != float64(ev.Accuracy) {
		t.Errorf("accuracy %v, confusion matrix %d/%d", ev.Accuracy, diag, total)
	}
	if !(ev.NLL > 0) || math.IsInf(float64(ev.NLL), 0) || ev.Beta != 1 || ev.Loss != "nll(beta=1)" || float64(ev.LossValue) != float64(ev.NLL) && math.Abs(float64(ev.LossValue-ev.NLL)) > 1e-5 {
		t.Errorf("eval NLL %v loss %s %v beta %v", ev.NLL, ev.Loss, ev.LossValue, ev.Beta)
	}
	if ev.Accuracy < 0.5 {
		t.Errorf("accuracy %v on separable blobs after 4 epochs", ev.Accuracy)
	}

	// The same held-out rows, unlabelled and raw, through predict.
	_, test, err := loadSplits(r.csv)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range test.N {
		var f []string
		for _, v := range test.Row(i) {
			f = append(f, strconv.FormatFloat(float64(v), 'g', -1, 32))
		}
		b.WriteString(strings.Join(f, ",") + "\n")
	}
	in := filepath.Join(t.TempDir(), "inputs.csv")
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, "predict", "--model", r.full, "--input", in, "--top", "3", "--json", "--batch", "7")
	var pr predictReport
	if err := json.Unmarshal([]byte(out), &pr); err != nil {
		t.Fatalf("predict --json: %v\n%s", err, out)
	}
	if len(pr.Predictions) != test.N {
		t.Fatalf("%d predictions for %d inputs", len(pr.Predictions), test.N)
	}
	right := 0
	for i, p := range pr.Predictions {
		if p.Row != i || len(p.Top) != 3 || p.Answer != p.Top[0].Answer || p.Energy != p.Top[0].Energy {
			t.Fatalf("prediction %d: %+v", i, p)
		}
		sum := 0.0
		for j, a := range p.Top {
			if j > 0 && (a.Energy < p.Top[j-1].Energy || a.Probability > p.Top[j-1].Probability) {
				t.Errorf("row %d: top answers not in energy order: %+v", i, p.Top)
			}
			sum += float64(a.Probability)
		}
		if !(sum > 0 && sum <= 1+1e-9) {
			t.Errorf("row %d: top-3 probabilities sum to %v", i, sum)
		}
		if int32(p.Answer) == test.Y[i] {
			right++
		}
	}
	if float64(right)/float64(test.N) != float64(ev.Accuracy) {
		t.Errorf("predict is right on %d/%d rows, eval says accuracy %v", right, test.N, ev.Accuracy)
	}

	// Text output: one line per input after two header lines.
	out = mustRun(t, "predict", "--model", r.full, "--input", in, "--top", "2")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != test.N+2 || !regexp.MustCompile(`^0 [0-3] -?[0-9.]+ [01]\.[0-9]{4} \| [0-3] `).MatchString(lines[2]) {
		t.Errorf("predict text output:\n%s", out)
	}

	py, err := exec.LookPath("python3")
	if err != nil {
		t.Log("python3 not on PATH: skipping the pure-Python cross-check")
		return
	}
	args := []string{filepath.Join(pkgDir, "..", "..", "scripts", "read_checkpoint.py"), "--predict", r.full}
	for _, v := range test.Row(0) {
		args = append(args, strconv.FormatFloat(float64(v), 'g', -1, 32))
	}
	pyOut, err := exec.Command(py, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("read_checkpoint.py --predict: %v\n%s", err, pyOut)
	}
	best, bestE := -1, math.Inf(1)
	for _, line := range strings.Split(strings.TrimSpace(string(pyOut)), "\n") {
		var y int
		var e, p float64
		if _, err := fmt.Sscan(line, &y, &e, &p); err != nil {
			t.Fatalf("python output %q: %v", line, err)
		}
		if e < bestE {
			best, bestE = y, e
		}
	}
	p0 := pr.Predictions[0]
	if best != p0.Answer || math.Abs(bestE-float64(p0.Energy)) > 1e-4*(1+math.Abs(bestE)) {
		t.Errorf("python: answer %d energy %v; gputrain predict: %d %v", best, bestE, p0.Answer, p0.Energy)
	}
}

// TestMNISTCheckpointEvalPredict: a model trained on the embedded MNIST is
// evaluated on its test split by default, and predicts IDX image files,
// with and without a count dimension.
func TestMNISTCheckpointEvalPredict(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "mnist.safetensors")
	mustRun(t, "train", "--limit", "300", "--epochs", "1", "--save", ck, "--quiet")
	out := mustRun(t, "eval", "--model", ck)
	for _, want := range []string{"on mnist/test: 10000 rows, 10 classes", "per-class accuracy:", "confusion matrix (rows: true class, columns: answer):"} {
		if !strings.Contains(out, want) {
			t.Errorf("eval output lacks %q:\n%s", want, out)
		}
	}
	_, test, err := dataset.EmbeddedMNIST()
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]float64, 7*784)
	for i := range vals {
		vals[i] = math.Round(float64(test.X[i]) * 255)
	}
	imgs := filepath.Join(dir, "seven-idx3-ubyte")
	if err := dataset.WriteIDX(imgs, dataset.IDXUint8, []int{7, 28, 28}, vals); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, "predict", "--model", ck, "--input", imgs, "--json")
	var pr predictReport
	if err := json.Unmarshal([]byte(out), &pr); err != nil {
		t.Fatal(err)
	}
	if len(pr.Predictions) != 7 || len(pr.Predictions[0].Top) != 3 {
		t.Fatalf("%d predictions", len(pr.Predictions))
	}
	one := filepath.Join(dir, "one-idx3-ubyte")
	if err := dataset.WriteIDX(one, dataset.IDXUint8, []int{28, 28}, vals[784:2*784]); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, "predict", "--model", ck, "--input", one, "--json", "--top", "10")
	var p1 predictReport
	if err := json.Unmarshal([]byte(out), &p1); err != nil {
		t.Fatal(err)
	}
	if len(p1.Predictions) != 1 || p1.Predictions[0].Answer != pr.Predictions[1].Answer || p1.Predictions[0].Energy != pr.Predictions[1].Energy {
		t.Fatalf("single image: %+v, as row 1 of seven: %+v", p1.Predictions, pr.Predictions[1])
	}
	sum := 0.0
	for _, a := range p1.Predictions[0].Top {
		sum += float64(a.Probability)
	}
	if len(p1.Predictions[0].Top) != 10 || math.Abs(sum-1) > 1e-9 {
		t.Errorf("top 10 of 10 answers: %d answers, probabilities sum to %v", len(p1.Predictions[0].Top), sum)
	}
}

// TestCommandsFailWithOneLine covers the hardening requirement for train,
// eval and predict: wrong flags, missing files, checkpoints of another
// model shape or not checkpoints at all, data of another input size.
func TestCommandsFailWithOneLine(t *testing.T) {
	r := sharedCSVRun(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := write("garbage.safetensors", "this is not a safetensors file at all")
	plain := filepath.Join(dir, "plain.safetensors")
	if err := safetensors.WriteFileAtomic(plain, &safetensors.File{Tensors: []safetensors.Tensor{safetensors.Float32Tensor("w", []int{2}, []float32{1, 2})}}); err != nil {
		t.Fatal(err)
	}
	// A checkpoint whose metadata claims another model shape than its tensors.
	f, err := safetensors.ReadFile(r.full)
	if err != nil {
		t.Fatal(err)
	}
	f.Metadata["model"] = "mlp:17"
	reshaped := filepath.Join(dir, "reshaped.safetensors")
	if err := safetensors.WriteFileAtomic(reshaped, f); err != nil {
		t.Fatal(err)
	}
	narrow := writeBlobsCSV(t, dir, 30, 3, 4, 1)
	wide := write("wide.csv", "1,2,3,4,5,6,7,8,9\n")
	nan := write("nan.csv", "1,2,3,4,5,6,7\n1,2,x,4,5,6,7\n")
	labels := filepath.Join(dir, "labels-idx1-ubyte")
	if err := dataset.WriteIDX(labels, dataset.IDXUint8, []int{3}, []float64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	strLabels := write("names.csv", "cat,1,2,3,4,5,6,7\ndog,1,2,3,4,5,6,7\n")
	unwritable := filepath.Join(dir, "no-such-dir", "m.safetensors")
	missing := filepath.Join(dir, "missing.safetensors")
	const u, rt = exitUsage, exitRuntime
	for _, tc := range []struct {
		code int
		args []string
		want string
	}{
		{u, []string{"eval", "--no-such-flag"}, "no-such-flag"},
		{rt, []string{"eval", "--model", missing}, missing},
		{rt, []string{"eval", "--model", garbage}, garbage},
		{rt, []string{"eval", "--model", plain}, "not a gputrain checkpoint"},
		{rt, []string{"eval", "--model", reshaped}, "tensor layers.0.weight is F32 [16 7], the model needs F32 [17 7]"},
		{rt, []string{"eval", "--model", r.full, "--data", narrow}, `has no column "f3", a feature of the model`},
		{rt, []string{"eval", "--model", r.full, "--data", filepath.Join(dir, "nope")}, filepath.Join(dir, "nope")},
		{rt, []string{"eval", "--model", r.full, "--data", strLabels}, "string labels"},
		{u, []string{"eval", "--model", r.full, "--batch", "0"}, "batch must be >= 1"},
		{u, []string{"eval", "--model", r.full, "--backend", "tpu"}, "unknown backend"},
		{u, []string{"eval", "--model", r.full, "extra"}, "unexpected argument"},
		{u, []string{"eval", "--model", ""}, "--model is empty"},
		{u, []string{"predict", "--model", r.full}, "--input is required"},
		{rt, []string{"predict", "--model", r.full, "--input", missing}, missing},
		{rt, []string{"predict", "--model", r.full, "--input", dir}, "is a directory"},
		{rt, []string{"predict", "--model", r.full, "--input", wide}, wide + ":1: 9 features; the model takes 7 (or 8, the training file's columns with its label)"},
		{rt, []string{"predict", "--model", r.full, "--input", nan}, nan + ":2:3"},
		{rt, []string{"predict", "--model", r.full, "--input", labels}, "holds an array of shape [3]"},
		{u, []string{"predict", "--model", r.full, "--input", narrow, "--top", "0"}, "top must be >= 1"},
		{rt, []string{"predict", "--model", reshaped, "--input", wide}, "the model needs F32 [17 7]"},
		{u, []string{"predict", "--top", "x"}, "top"},
		{rt, []string{"train", "--save", unwritable, "--limit", "10"}, "cannot write there"},
		{rt, []string{"train", "--save", dir, "--limit", "10"}, "is a directory"},
		{rt, []string{"train", "--resume", missing}, missing},
		{rt, []string{"train", "--resume", garbage}, garbage},
		{rt, []string{"train", "--resume", reshaped, "--epochs", "9"}, "layers.0.weight"},
		{rt, []string{"train", "--data", wide}, "wide.csv"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			expectExit(t, tc.code, tc.args, tc.want)
		})
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// gputrainBinary builds the command once for the signal tests.
func gputrainBinary(t *testing.T) string {
	binOnce.Do(func() {
		dir, err := os.MkdirTemp(testTmp, "bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "gputrain")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = pkgDir
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// TestSignalSavesCheckpoint starts a long training run in a subprocess,
// sends SIGINT (or SIGTERM) once the first epoch line shows training is
// under way, and checks the exit status, the one-line message naming the
// checkpoint, that the checkpoint loads, and that resuming it reaches the
// same weights as a run that was never interrupted.
func TestSignalSavesCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the command and trains in a subprocess")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go tool is not on PATH, so the command cannot be built")
	}
	bin := gputrainBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			ck := filepath.Join(dir, "run.safetensors")
			flags := []string{"--limit", "3000", "--model", "mlp:32", "--batch", "16", "--quiet"}
			cmd := exec.Command(bin, append([]string{"train", "--epochs", "1000", "--save", ck}, flags...)...)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "epoch ") {
					break
				}
			}
			// Part of the way into the next epoch, so the checkpoint is
			// taken mid-epoch (an epoch takes well over 10ms here).
			time.Sleep(10 * time.Millisecond)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			for sc.Scan() {
			}
			err = cmd.Wait()
			want := map[syscall.Signal]int{syscall.SIGINT: 130, syscall.SIGTERM: 143}[sig]
			if code := cmd.ProcessState.ExitCode(); code != want {
				t.Fatalf("exit status %d (%v), want %d; stderr %q", code, err, want, stderr.String())
			}
			msg := stderr.String()
			name := map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[sig]
			if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "interrupted by "+name) || !strings.Contains(msg, "checkpoint saved to "+ck) {
				t.Fatalf("stderr %q does not say where the checkpoint is", msg)
			}
			c, err := model.ReadCheckpoint(ck)
			if err != nil {
				t.Fatal(err)
			}
			if c.Epoch < 1 {
				t.Fatalf("checkpoint after %d epochs, want >= 1 (one epoch line was printed)", c.Epoch)
			}
			t.Logf("interrupted after %d epochs + %d steps", c.Epoch, c.StepInEpoch)
			end := strconv.Itoa(c.Epoch + 1)
			mustRun(t, "train", "--resume", ck, "--epochs", end)
			ref := filepath.Join(dir, "ref.safetensors")
			mustRun(t, append([]string{"train", "--epochs", end, "--save", ref}, flags...)...)
			sameParams(t, ck, ref)
		})
	}
}
