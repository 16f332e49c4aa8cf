// Command emugen writes the kernel registry of device/emu (the gen_*.cpp
// files) from kernels/*.cu and device/emu/testdata/*.cu, and removes
// generated files whose source is gone. `go generate ./device/emu` runs it
// in device/emu.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gputrain/gputrain/device/emu/internal/gen"
)

func main() {
	root := flag.String("root", "../..", "module root (holds kernels/ and device/emu/)")
	out := flag.String("out", ".", "directory for the generated files (device/emu)")
	flag.Parse()
	if err := run(*root, *out); err != nil {
		fmt.Fprintln(os.Stderr, "emugen:", err)
		os.Exit(1)
	}
}

func run(root, out string) error {
	files, err := gen.Generate(root)
	if err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(out, gen.Prefix+"*.cpp"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if _, ok := files[filepath.Base(p)]; !ok {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	for name, data := range files {
		p := filepath.Join(out, name)
		// Rewrite only what changed, so that the build cache stays warm.
		if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, data) {
			continue
		}
		if !strings.HasPrefix(name, gen.Prefix) {
			return fmt.Errorf("refusing to write %s: not a generated name", name)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
