package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// autoBackend is the --backend value that picks the best backend here.
const autoBackend = "auto"

// autoOrder is the preference of --backend auto: the first that is built in
// and finds its hardware wins; cpu always does. emu is never in it: it is
// for checking kernels, far slower than cpu.
var autoOrder = []string{"cuda", "cpu"}

// backendProbes holds, for backends that need hardware, a check that it is
// present (nil error) without opening the backend. Tagged files add theirs.
var backendProbes = map[string]func() error{}

// gpuLister, set by a GPU backend's tagged file, describes each GPU.
var gpuLister func() ([]string, error)

// resolveAuto returns the backend --backend auto stands for, and why the
// backends before it in autoOrder were passed over.
func resolveAuto() (name string, skipped []string) {
	for _, n := range autoOrder {
		if _, ok := backends[n]; !ok {
			skipped = append(skipped, n+": not built in")
			continue
		}
		if probe, ok := backendProbes[n]; ok {
			if err := probe(); err != nil {
				skipped = append(skipped, fmt.Sprintf("%s: %v", n, err))
				continue
			}
		}
		return n, skipped
	}
	return "cpu", skipped
}

func backendFlagUsage() string {
	u := "compute backend: auto (cuda when built in and a GPU is present, else cpu), or one built in: " +
		strings.Join(backendNames(), ", ")
	if _, ok := backends["emu"]; ok {
		u += " (emu: the CUDA kernels on a CPU emulator, slow)"
	}
	return u
}

// backendLines describes every backend, built in or not, one per line.
func backendLines() []string {
	names := backendNames()
	for n := range knownBackends {
		if _, ok := backends[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	var lines []string
	for _, n := range names {
		about := backendAbout[n]
		if _, ok := backends[n]; !ok {
			about = "not built in (" + knownBackends[n] + ")"
		}
		lines = append(lines, fmt.Sprintf("  %-*s  %s", width, n, about))
	}
	return lines
}

func devicesCommand() *cli.Command {
	return &cli.Command{
		Name:         "devices",
		Usage:        "list the backends built in, what --backend auto picks, and the GPUs",
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return usagef("unexpected argument %q (devices takes none)", quoteShort(c.Args().First()))
			}
			w := c.App.Writer
			fmt.Fprintf(w, "backends built in: %s\n", strings.Join(backendNames(), ", "))
			for _, l := range backendLines() {
				fmt.Fprintln(w, l)
			}
			name, skipped := resolveAuto()
			fmt.Fprintf(w, "--backend auto: %s", name)
			if len(skipped) > 0 {
				fmt.Fprintf(w, " (%s)", oneLine(strings.Join(skipped, "; ")))
			}
			fmt.Fprintln(w)
			if gpuLister == nil {
				return nil // the backend lines said why cuda is absent
			}
			gpus, err := gpuLister()
			if err != nil {
				fmt.Fprintf(w, "cuda: compiled in; no GPU: %s\n", oneLine(err.Error()))
				return nil
			}
			for _, g := range gpus {
				fmt.Fprintln(w, g)
			}
			return nil
		},
	}
}
