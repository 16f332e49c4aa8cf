package emu

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/gputrain/gputrain/device/emu/internal/gen"
)

// module is the module path whose root holds kernels/ and device/emu/.
const module = "github.com/gputrain/gputrain"

// moduleRoot returns the directory of the module's source tree this package
// was built from: that of this file at build time, else the nearest parent
// of the working directory with the module's go.mod (a -trimpath build); ""
// if neither is there.
func moduleRoot() string {
	isRoot := func(dir string) bool {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		return err == nil && bytes.Contains(data, []byte("module "+module+"\n"))
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		if dir := filepath.Join(filepath.Dir(file), "..", ".."); isRoot(dir) {
			return filepath.Clean(dir)
		}
	}
	dir, err := os.Getwd()
	for err == nil {
		if isRoot(dir) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return ""
}

// sourcesErr is checkSources, once per process.
var sourcesErr = sync.OnceValue(func() error { return checkSources(moduleRoot(), compiledInputs()) })

// checkSources compares the inputs the emulator's generated units were made
// from (path -> SHA-256, as compiled in) with the files under root: the go
// command does not rebuild cgo code when a file it #includes from outside
// the package directory changes (kernels/*.cu, kernels/gputrain.cuh,
// testdata/*.cu), so after such an edit without `go generate ./device/emu`
// a test would silently run the old kernels. A changed, removed or new
// input is an error naming the command to run. Without a source tree
// (root == "") there is nothing to compare.
func checkSources(root string, compiled map[string]string) error {
	if root == "" {
		return nil
	}
	onDisk, err := gen.Inputs(root)
	if err != nil {
		return fmt.Errorf("emu: checking that the compiled kernels match the sources: %v", err)
	}
	var problems []string
	seen := map[string]bool{}
	for _, in := range onDisk {
		seen[in.Path] = true
		want, ok := compiled[in.Path]
		switch {
		case !ok:
			problems = append(problems, in.Path+" is new")
		case want != fmt.Sprintf("%x", in.Sum):
			problems = append(problems, in.Path+" changed")
		}
	}
	for p := range compiled {
		if !seen[p] {
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(p))); err != nil {
				problems = append(problems, p+" is gone")
			} else {
				problems = append(problems, p+" is no longer an input")
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return fmt.Errorf("emu: the kernels compiled into this binary are stale (%s since `go generate ./device/emu` last ran; "+
		"cgo does not rebuild for edits to files outside device/emu): run `go generate ./device/emu`",
		strings.Join(problems, ", "))
}
