package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/internal/suggest"
	"github.com/gputrain/gputrain/model"
)

// finishApp applies what every command shares, so that a command added
// later gets it too: flag errors as one-line usage errors with a
// suggestion for a mistyped flag, and --version.
func finishApp(app *cli.App) {
	app.OnUsageError = flagError(nil)
	var walk func(cmds []*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.OnUsageError = flagError(c)
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}

func init() {
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintln(c.App.Writer, versionLine())
	}
}

// versionLine is what --version prints: the release, the commit the binary
// was built from when the build recorded it, and the toolchain.
func versionLine() string {
	s := "gputrain " + model.Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, kv := range bi.Settings {
			switch kv.Key {
			case "vcs.revision":
				rev = kv.Value
			case "vcs.modified":
				if kv.Value == "true" {
					dirty = "+modified"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			s += " (commit " + rev + dirty + ")"
		}
	}
	return s + ", " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ", backends: " + strings.Join(backendNames(), ", ")
}

// flagError turns cli's flag-parsing error ("flag provided but not
// defined: -epoch") into a usage error that names the flag as it is
// written and suggests the one meant ("unknown flag --epoch (did you mean
// --epochs?)").
func flagError(cmd *cli.Command) cli.OnUsageErrorFunc {
	return func(c *cli.Context, err error, _ bool) error {
		msg := err.Error()
		name, ok := strings.CutPrefix(msg, "flag provided but not defined: ")
		if !ok {
			return usage(err)
		}
		name = strings.TrimLeft(name, "-")
		var flags []cli.Flag
		where := "gputrain"
		if cmd != nil {
			flags, where = cmd.Flags, "gputrain "+cmd.Name
		} else if c != nil && c.App != nil {
			flags = c.App.Flags
		}
		var names []string
		for _, f := range flags {
			for _, n := range f.Names() {
				names = append(names, "--"+n)
			}
		}
		names = append(names, "--help")
		return usagef("unknown flag --%s for %s%s", quoteShort(name), where, suggest.Mean("--"+name, names))
	}
}

// unknownCommand refuses a command that does not exist, suggesting the one
// meant.
func unknownCommand(app *cli.App, name string) error {
	var names []string
	for _, c := range app.Commands {
		// cli adds its own help command to the list; it is named once, below.
		if !c.Hidden && c.Name != "help" {
			names = append(names, c.Name)
		}
	}
	return usagef("unknown command %q%s (valid: %s, help)", quoteShort(name), suggest.Mean(name, names), strings.Join(names, ", "))
}

// choiceError refuses a value that is not one of choices, suggesting the
// one meant: "unknown loss "hnge" (did you mean hinge? valid: ...)".
func choiceError(what, got string, choices []string) error {
	hint := ""
	if c := suggest.Closest(got, choices); c != "" {
		hint = "did you mean " + c + "? "
	}
	return usagef("unknown %s %q (%svalid: %s)", what, quoteShort(got), hint, strings.Join(choices, ", "))
}

// checkChoice returns choiceError unless got is one of choices (case
// insensitive).
func checkChoice(what, got string, choices []string) error {
	for _, c := range choices {
		if strings.EqualFold(c, got) {
			return nil
		}
	}
	return choiceError(what, got, choices)
}
