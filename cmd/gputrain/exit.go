package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/gputrain/gputrain/internal/clip"
	"github.com/gputrain/gputrain/model"
)

// Exit statuses, as shells and supervisors read them: 2 for a command line
// that is wrong (nothing was done), 1 for everything that went wrong while
// doing the work (files, data, devices, divergence, an internal error), and
// 128 + the signal for a run stopped by SIGINT or SIGTERM after saving.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
	exitSIGINT  = 128 + int(syscall.SIGINT)  // 130
	exitSIGTERM = 128 + int(syscall.SIGTERM) // 143
)

// usageErr marks an error in the command line itself: an unknown flag or
// command, an invalid value, flags that contradict each other or the
// checkpoint being resumed. run exits with exitUsage for it.
type usageErr struct{ err error }

func (u usageErr) Error() string { return u.err.Error() }
func (u usageErr) Unwrap() error { return u.err }

// usage marks err (nil stays nil) as a command-line error.
func usage(err error) error {
	if err == nil {
		return nil
	}
	var u usageErr
	if errors.As(err, &u) {
		return err
	}
	return usageErr{err}
}

func usagef(format string, args ...any) error { return usageErr{fmt.Errorf(format, args...)} }

// noArgs refuses positional arguments: every setting is a flag.
func noArgs(argv []string) error {
	if len(argv) > 0 {
		return usagef("unexpected argument %q (all settings are flags; see --help)", quoteShort(argv[0]))
	}
	return nil
}

// exitCode maps the error an action returned to the process's status.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	if ie := (*interruptedError)(nil); errors.As(err, &ie) {
		if ie.sig == syscall.SIGTERM {
			return exitSIGTERM
		}
		return exitSIGINT
	}
	if errors.As(err, new(usageErr)) {
		return exitUsage
	}
	return exitRuntime
}

// crashed turns a panic that reached the top of the command into what a
// user can act on: one line on stderr naming a report file that holds the
// panic, the stack, the command line and the version, and exitRuntime. A
// panic is a bug; the report is what a bug report needs.
func crashed(v any, stack []byte, args []string, stderr io.Writer) int {
	// A panic carried over from another goroutine (cpu.WorkerPanic) brings
	// the stack where it happened; the report holds both.
	if ps, ok := v.(interface{ PanicStack() []byte }); ok {
		stack = fmt.Appendf(nil, "the goroutine that panicked:\n%s\nthe goroutine that re-panicked:\n%s", ps.PanicStack(), stack)
	}
	report := fmt.Sprintf("gputrain %s (%s, %s/%s) panicked at %s\ncommand: %q\npanic: %v\n\n%s",
		model.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format(time.RFC3339), args, v, stack)
	where := "no report written"
	if f, err := os.CreateTemp("", "gputrain-crash-*.txt"); err == nil {
		_, werr := f.WriteString(report)
		if cerr := f.Close(); werr == nil && cerr == nil {
			where = "report written to " + f.Name()
		}
	}
	fmt.Fprintf(stderr, "gputrain: internal error: %s (a bug; %s, please include it when reporting)\n", oneLine(quoteShort(fmt.Sprint(v))), where)
	return exitRuntime
}

// maxErrorLine bounds an error line, whatever a library repeated in it (a
// flag parser quotes a bad value whole).
const maxErrorLine = 1000

// capLine cuts s to maxErrorLine bytes.
func capLine(s string) string {
	if len(s) <= maxErrorLine {
		return s
	}
	cut := maxErrorLine
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes in all)", s[:cut], len(s))
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// quoteShort is clip.String: user input repeated in a message, cut short.
func quoteShort(s string) string { return clip.String(s) }

// stackOf is debug.Stack, a variable so that tests see what crashed got.
var stackOf = debug.Stack
