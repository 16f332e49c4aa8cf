package main

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// TestExitCodes: 2 only for a wrong command line, 1 for a failure while
// doing the work (issue 12: "every error, usage or runtime, exits 2").
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		code int
		args []string
		want string
	}{
		{exitUsage, []string{"train", "--epochs", "0"}, "epochs must be >= 1"},
		{exitUsage, []string{"train", "--epoch", "3"}, "unknown flag --epoch for gputrain train (did you mean --epochs?)"},
		{exitUsage, []string{"trian"}, `unknown command "trian" (did you mean train?`},
		{exitUsage, []string{"trian"}, "losses, help)"}, // help named once
		{exitUsage, []string{"train", "--loss", "hnge"}, `unknown loss "hnge" (did you mean hinge? valid: energy`},
		{exitUsage, []string{"train", "--optimizer", "adma"}, `did you mean adam?`},
		{exitUsage, []string{"train", "--reduction", "summ"}, `did you mean sum?`},
		{exitUsage, []string{"train", "--activation", "rel", "--model", "mlp:4"}, `did you mean relu?`},
		{exitUsage, []string{"train", "--backend", "cppu"}, `did you mean cpu?`},
		{exitUsage, []string{"eval", "--modle", "x"}, "did you mean --model?"},
		{exitUsage, []string{"demo", "robt"}, "did you mean robot?"},
		{exitRuntime, []string{"train", "--data", "/nonexistent/mnist"}, "/nonexistent/mnist"},
		{exitRuntime, []string{"eval", "--model", "/nonexistent/m.safetensors"}, "/nonexistent/m.safetensors"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			expectExit(t, tc.code, tc.args, tc.want)
		})
	}
}

// TestPanicBecomesOneLine: a panic anywhere in a command reaches the user as
// one line naming a report file that holds the stack, and exit status 1,
// not Go's goroutine dump and status 2 (issue 13, item 3).
func TestPanicBecomesOneLine(t *testing.T) {
	var out, errb strings.Builder
	app := newApp(&out, &errb)
	app.Commands = append(app.Commands, &cli.Command{Name: "boom", Action: func(*cli.Context) error {
		var s []int
		_ = s[len(os.Args)+5] // index out of range, a runtime panic
		return nil
	}})
	code := runApp(context.Background(), app, []string{"gputrain", "boom"}, &errb)
	if code != exitRuntime {
		t.Errorf("exit status %d, want %d", code, exitRuntime)
	}
	msg := errb.String()
	if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "gputrain: internal error: runtime error: index out of range") || strings.Contains(msg, "goroutine") {
		t.Fatalf("stderr is not one line about the panic: %q", msg)
	}
	m := regexp.MustCompile(`report written to (\S+),`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("no report file named: %q", msg)
	}
	defer os.Remove(m[1])
	rep, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"gputrain " + model.Version, `command: ["gputrain" "boom"]`, "panic: runtime error: index out of range", "goroutine ", "exit_test.go"} {
		if !strings.Contains(string(rep), want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, errs := runArgs("--version")
	if code != 0 || !strings.HasPrefix(out, "gputrain "+model.Version) || !strings.Contains(out, "backends: ") || errs != "" {
		t.Errorf("--version: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestLongInputIsQuotedShort: a huge argument is not repeated whole.
func TestLongInputIsQuotedShort(t *testing.T) {
	long := strings.Repeat("z", 1<<20)
	for _, args := range [][]string{{"train", "--loss", long}, {long}, {"train", long}, {"train", "--" + long}} {
		code, _, errs := runArgs(args...)
		if code != exitUsage || len(errs) > 400 || !strings.Contains(errs, "(1048576 bytes)") {
			t.Errorf("%.20s...: exit %d, %d bytes of stderr: %.200s", args[len(args)-1], code, len(errs), errs)
		}
	}
}

// A panic in one of the cpu backend's worker goroutines reaches the user as
// the same one line and report, and the report holds the worker's stack
// (where the bug is), not only where it was re-panicked.
func TestWorkerPanicReport(t *testing.T) {
	var errb strings.Builder
	code := crashed(&cpu.WorkerPanic{Value: "index 7 out of range", Stack: []byte("goroutine 42 [running]:\nkernelThatPanicked()\n")}, []byte("goroutine 1 [running]:\nmain()\n"), []string{"gputrain", "train"}, &errb)
	msg := errb.String()
	if code != exitRuntime || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "internal error: index 7 out of range (in a cpu worker goroutine)") {
		t.Fatalf("exit %d, stderr %q", code, msg)
	}
	m := regexp.MustCompile(`report written to (\S+),`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("no report file named: %q", msg)
	}
	defer os.Remove(m[1])
	rep, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kernelThatPanicked()", "main()"} {
		if !strings.Contains(string(rep), want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
}
