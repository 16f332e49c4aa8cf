package emu

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/device/emu/internal/gen"
)

// TestCheckSources: a test binary refuses to run kernels older than the
// sources on disk. The go command rebuilds cgo code only for changes inside
// the package directory; the hashes compiled in (gen_registry.cpp) are what
// notices a changed, new or removed kernel source or header.
func TestCheckSources(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module "+module+"\n")
	write("kernels/gputrain.cuh", "#define X 1\n")
	write("kernels/a.cu", "#include \"gputrain.cuh\"\nextern \"C\" __global__ void ka(float* x) {}\n")
	write("device/emu/testdata/t.cu", "extern \"C\" __global__ void kt(float* x) {}\n")
	inputs, err := gen.Inputs(root)
	if err != nil {
		t.Fatal(err)
	}
	compiled := map[string]string{}
	for _, in := range inputs {
		compiled[in.Path] = fmt.Sprintf("%x", in.Sum)
	}
	if err := checkSources(root, compiled); err != nil {
		t.Fatalf("fresh sources: %v", err)
	}
	if err := checkSources("", compiled); err != nil {
		t.Fatalf("no source tree: %v", err)
	}

	for _, c := range []struct {
		name   string
		change func()
		want   string
	}{
		{"edited kernel", func() { write("kernels/a.cu", "extern \"C\" __global__ void ka(float* x) { x[0] = 1; }\n") }, "kernels/a.cu changed"},
		{"edited header", func() { write("kernels/gputrain.cuh", "#define X 2\n") }, "kernels/gputrain.cuh changed"},
		{"new kernel file", func() { write("kernels/gemm_tc.cu", "extern \"C\" __global__ void gt_tc_k(float* x) {}\n") }, "kernels/gemm_tc.cu is new"},
		{"new test kernel", func() { write("device/emu/testdata/u.cu", "\n") }, "device/emu/testdata/u.cu is new"},
		{"removed", func() { os.Remove(filepath.Join(root, "device", "emu", "testdata", "t.cu")) }, "device/emu/testdata/t.cu is gone"},
	} {
		c.change()
		err := checkSources(root, compiled)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "run `go generate ./device/emu`") {
			t.Errorf("%s: error %v, want one naming %q and the command", c.name, err, c.want)
		}
	}
}

// TestCompiledInputsFresh: this test binary's kernels match the sources.
func TestCompiledInputsFresh(t *testing.T) {
	root := moduleRoot()
	if root == "" {
		t.Skip("no source tree next to the test binary")
	}
	in := compiledInputs()
	if len(in) == 0 {
		t.Skip("no emulator in this build (cgo disabled)")
	}
	for _, want := range []string{"kernels/gputrain.cuh", "kernels/reduce.cu", "device/emu/testdata/checks.cu"} {
		if _, ok := in[want]; !ok {
			t.Errorf("compiled inputs lack %s: %v", want, in)
		}
	}
	if err := checkSources(root, in); err != nil {
		t.Error(err)
	}
}
