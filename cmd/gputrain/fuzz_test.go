package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// parseOnlyApp is the command's app with every action replaced by its
// flag parsing and validation alone: no data is loaded, nothing trained.
func parseOnlyApp() *cli.App {
	app := newApp(io.Discard, io.Discard)
	for _, c := range app.Commands {
		switch c.Name {
		case "train", "losses":
			name := c.Name
			c.Action = func(c *cli.Context) error {
				loss := c.String("loss")
				if name == "losses" {
					loss = "nll"
				}
				_, err := parseOptions(c, loss)
				return err
			}
		case "eval", "predict":
			c.Action = func(c *cli.Context) error {
				_, _, _, err := inferenceOptions(c)
				return err
			}
		case "bench", "demo", "devices":
			c.Action = func(*cli.Context) error { return nil }
			c.Subcommands = nil
		}
	}
	return app
}

// FuzzFlags feeds arbitrary command lines to the flag parser and the
// validation of every command: it must never panic, every error is one
// bounded line with exit status 1 or 2.
func FuzzFlags(f *testing.F) {
	for _, s := range []string{
		"train --epochs 3 --batch 9223372036854775807 --lr 1e38",
		"train --model mlp:256,128:tanh --loss hinge --margin -1",
		"train --label -1 --data x.csv --val-split 0.5 --test-split 0.9",
		"train --lr-schedule warmup:2e,cosine:0.1 --early-stop 3 --monitor accuracy",
		"train --epoch 3", "trian", "eval --modle x", "predict --top -5 --input -",
		"train --classes 1", "train --lr-schedule step:0e:2", "losses --gamma NaN",
		"train --data \x00 --save \xff", "--version", "train --help",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := append([]string{"gputrain"}, strings.Fields(line)...)
		var errb strings.Builder
		code := runApp(context.Background(), parseOnlyApp(), args, &errb)
		msg := errb.String()
		switch code {
		case exitOK:
		case exitUsage, exitRuntime:
			if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "gputrain: ") || len(msg) > maxErrorLine+200 {
				t.Fatalf("%q: exit %d, stderr %q", line, code, msg)
			}
			if strings.Contains(msg, "internal error") {
				t.Fatalf("%q: a panic: %s", line, msg)
			}
		default:
			t.Fatalf("%q: exit status %d", line, code)
		}
	})
}
