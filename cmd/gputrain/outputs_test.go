package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/internal/atomicfile"
	"github.com/gputrain/gputrain/internal/metrics"
)

// fileBytes reads path (for before/after comparisons).
func fileBytes(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSaveNeverOverwritesInputs reproduces issue 13, item 1: `train --data
// victim.csv --save victim.csv` replaced the training data and exited 0;
// --save onto a FIFO, a character device or a symbolic link replaced it;
// --save X --metrics X clobbered the metrics. Each is refused before any
// training, and the file is left as it was.
func TestSaveNeverOverwritesInputs(t *testing.T) {
	dir := t.TempDir()
	victim := writeBlobsCSV(t, dir, 60, 3, 2, 1)
	before := fileBytes(t, victim)
	fifo := filepath.Join(dir, "fifo.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target.safetensors")
	link := filepath.Join(dir, "link.safetensors")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("my notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(dir, "idx")
	if err := os.Mkdir(idx, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTinyIDXDir(t, idx)
	same := filepath.Join(dir, "same.safetensors")
	hard := filepath.Join(dir, "hardlink.csv")
	if err := os.Link(victim, hard); err != nil {
		t.Fatal(err)
	}
	const u, rt = exitUsage, exitRuntime
	for _, tc := range []struct {
		code int
		args []string
		want string
	}{
		{rt, []string{"--data", victim, "--save", victim}, "is an input of this run"},
		{rt, []string{"--data", victim, "--save", hard}, "is an input of this run"},
		{rt, []string{"--data", victim, "--save", dir + "/idx/../" + filepath.Base(victim)}, "is an input of this run"},
		{rt, []string{"--data", victim, "--metrics", victim, "--save", ""}, "is an input of this run"},
		{rt, []string{"--data", victim, "--plot", victim, "--save", ""}, "is an input of this run"},
		{rt, []string{"--data", idx, "--save", filepath.Join(idx, "train-images-idx3-ubyte")}, "is an input of this run"},
		{rt, []string{"--data", victim, "--save", fifo}, "is a FIFO"},
		{rt, []string{"--data", victim, "--save", "/dev/null"}, "is a character device"},
		{rt, []string{"--data", victim, "--save", link}, "is a symbolic link"},
		{rt, []string{"--data", victim, "--save", notes}, "is not a gputrain checkpoint"},
		{rt, []string{"--data", victim, "--save", notes, "--overwrite"}, "is not a gputrain checkpoint"},
		{rt, []string{"--data", victim, "--save", "", "--metrics", notes}, "is not a gputrain metrics file"},
		{rt, []string{"--data", victim, "--save", "", "--plot", notes}, "is not a PNG image"},
		{u, []string{"--data", victim, "--save", same, "--metrics", same}, "--save and --metrics name the same file"},
		{u, []string{"--data", victim, "--save", "", "--metrics", same, "--plot", same}, "--metrics and --plot name the same file"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if strings.Contains(strings.Join(tc.args, " "), "/dev/null") {
				if _, err := os.Stat("/dev/null"); err != nil {
					t.Skip("no /dev/null here")
				}
			}
			expectExit(t, tc.code, append([]string{"train", "--epochs", "1", "--quiet"}, tc.args...), tc.want)
		})
	}
	if fileBytes(t, victim) != before {
		t.Fatal("the training data was changed")
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Error("the FIFO was replaced")
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Error("the link was replaced")
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Error("the link's target was written")
	}
	if fileBytes(t, notes) != "my notes\n" {
		t.Error("the notes were changed")
	}
	if _, err := os.Stat(same); !os.IsNotExist(err) {
		t.Error("a refused run wrote its checkpoint")
	}
}

// writeTinyIDXDir writes a 4-file MNIST-style directory of 2x2 images.
func writeTinyIDXDir(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []struct {
		name string
		dims []int
		n    int
	}{{"train-images-idx3-ubyte", []int{20, 2, 2}, 80}, {"train-labels-idx1-ubyte", []int{20}, 20},
		{"t10k-images-idx3-ubyte", []int{6, 2, 2}, 24}, {"t10k-labels-idx1-ubyte", []int{6}, 6}} {
		v := make([]float64, f.n)
		for i := range v {
			v[i] = float64((i * 37) % 2)
		}
		if err := dataset.WriteIDX(filepath.Join(dir, f.name), dataset.IDXUint8, f.dims, v); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSaveRefusesAnotherRunsCheckpoint (issue 12): every train used to
// overwrite ./gputrain.safetensors silently. A checkpoint of another run is
// now replaced only with --overwrite; resuming it writes it again.
func TestSaveRefusesAnotherRunsCheckpoint(t *testing.T) {
	dir := t.TempDir()
	data := writeBlobsCSV(t, dir, 60, 3, 2, 1)
	ck := filepath.Join(dir, "run.safetensors")
	flags := []string{"--data", data, "--quiet", "--save", ck}
	mustRun(t, append([]string{"train", "--epochs", "1"}, flags...)...)
	first := fileBytes(t, ck)
	expectExit(t, exitRuntime, append([]string{"train", "--epochs", "1", "--lr", "0.01"}, flags...),
		"holds the checkpoint of another run (linear on "+filepath.Base(data)+"): to keep it, --save another file; to continue it, --resume "+ck+"; to replace it, add --overwrite")
	if fileBytes(t, ck) != first {
		t.Fatal("the refused run changed the checkpoint")
	}
	mustRun(t, "train", "--resume", ck, "--epochs", "2", "--quiet")
	mustRun(t, append([]string{"train", "--epochs", "1", "--lr", "0.01", "--overwrite"}, flags...)...)
	if fileBytes(t, ck) == first {
		t.Fatal("--overwrite did not replace the checkpoint")
	}
}

// TestSaveKeepsModeCleansTempsReportsDirSync covers issue 13, item 8: a
// kill between rename and chmod left mode 0600 (now the mode is set on the
// temporary file before the rename, and a replaced file keeps its own);
// killed saves left .X.tmp-* files forever (now removed when the next run
// starts); a directory fsync error was ignored ("saved", exit 0).
func TestSaveKeepsModeCleansTempsReportsDirSync(t *testing.T) {
	dir := t.TempDir()
	data := writeBlobsCSV(t, dir, 60, 3, 2, 1)
	ck := filepath.Join(dir, "run.safetensors")
	mustRun(t, "train", "--data", data, "--epochs", "1", "--quiet", "--save", ck)
	if err := os.Chmod(ck, 0o640); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, ".run.safetensors.tmp-0123abcd")
	if err := os.WriteFile(stale, []byte("half a checkpoint"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "train", "--resume", ck, "--epochs", "2", "--quiet")
	if st, _ := os.Stat(ck); st.Mode().Perm() != 0o640 {
		t.Errorf("mode after resuming %v, want 0640 kept", st.Mode().Perm())
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale temporary file is still there: %v", err)
	}

	old := atomicfile.SyncDir
	atomicfile.SyncDir = func(*os.File) error { return syscall.EIO }
	defer func() { atomicfile.SyncDir = old }()
	code, out, errs := runArgs("train", "--resume", ck, "--epochs", "3", "--quiet")
	if code != exitRuntime || !strings.Contains(errs, "directory fsync failed") || strings.Contains(out, "checkpoint saved") {
		t.Errorf("failing directory fsync: exit %d, stderr %q, stdout %q", code, errs, out)
	}
}

// TestFullDiskFoundBeforeTraining reproduces issue 13, item 8: a full disk
// was found only after a whole epoch (the probe wrote an empty file). The
// real checkpoint size is now checked against the free space before the
// first epoch.
func TestFullDiskFoundBeforeTraining(t *testing.T) {
	dir := t.TempDir()
	data := writeBlobsCSV(t, dir, 60, 3, 2, 1)
	old := atomicfile.Available
	atomicfile.Available = func(string) (int64, error) { return 1 << 20, nil } // 1 MB: less than the slack
	defer func() { atomicfile.Available = old }()
	code, out, errs := runArgs("train", "--data", data, "--epochs", "1", "--quiet", "--save", filepath.Join(dir, "c.safetensors"), "--model", "mlp:64")
	if code != exitRuntime || strings.Contains(out, "epoch ") || !strings.Contains(errs, "free on its file system, the checkpoint needs") {
		t.Errorf("full disk: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestMetricsAgreeWithCheckpointAfterKill reproduces issue 13, item 8: a
// kill between the checkpoint and the metrics line lost that line for
// good. The line is now written first, and a resumed run drops lines of
// epochs its checkpoint does not have: here a killed run wrote epoch 3's
// line, then died before saving epoch 3; resuming gives epochs 1..4 once
// each.
func TestMetricsAgreeWithCheckpointAfterKill(t *testing.T) {
	dir := t.TempDir()
	data := writeBlobsCSV(t, dir, 60, 3, 2, 1)
	ck := filepath.Join(dir, "run.safetensors")
	m := filepath.Join(dir, "m.jsonl")
	mustRun(t, "train", "--data", data, "--epochs", "2", "--quiet", "--save", ck, "--metrics", m)
	f, err := os.OpenFile(m, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, `{"epoch":3,"steps":3,"train_loss":0.5}`)
	f.Close()
	mustRun(t, "train", "--resume", ck, "--epochs", "4", "--quiet", "--metrics", m)
	rs, err := metrics.Read(m)
	if err != nil {
		t.Fatal(err)
	}
	var epochs []int
	for _, r := range rs {
		epochs = append(epochs, r.Epoch)
	}
	if fmt.Sprint(epochs) != "[1 2 3 4]" {
		t.Errorf("metrics epochs after resuming: %v, want [1 2 3 4]", epochs)
	}
}

// TestSecondWriterRefused reproduces issue 13, item 7: two trainings saving
// to one path both said "checkpoint saved", one run's model silently lost.
// The second is now refused at its start, naming the first one's pid.
func TestSecondWriterRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the command and trains in a subprocess")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go tool is not on PATH, so the command cannot be built")
	}
	bin := gputrainBinary(t)
	dir := t.TempDir()
	ck := filepath.Join(dir, "shared.safetensors")
	cmd := exec.Command(bin, "train", "--limit", "2000", "--epochs", "1000", "--batch", "16", "--quiet", "--save", ck)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "epoch ") {
	}
	expectExit(t, exitRuntime, []string{"train", "--limit", "100", "--epochs", "1", "--quiet", "--save", ck, "--overwrite"},
		fmt.Sprintf("checkpoint %s is being written by another process (pid %d)", ck, cmd.Process.Pid))
}
