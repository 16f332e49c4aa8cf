package gen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// An empty module (no kernels yet) still gets a registry, with no tables.
func TestGenerateEmpty(t *testing.T) {
	root := t.TempDir()
	files, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	reg, ok := files[Prefix+"registry.cpp"]
	if len(files) != 1 || !ok {
		t.Fatalf("Generate of an empty module = %d files, want only the registry", len(files))
	}
	if !strings.Contains(string(reg), "gt_emu_tables[] = {\n    nullptr,\n};") {
		t.Errorf("empty registry:\n%s", reg)
	}
}

func TestGenerate(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"kernels/gputrain.cuh": "#define TILE 16\ntypedef float row_t[TILE + 1];\n",
		"kernels/a-b.cu": `#include "gputrain.cuh"
extern "C" __global__ void ka(float* x, long long n) {
    __shared__ __align__(16) row_t s[TILE];
    __shared__ volatile float t[TILE], u;
}
extern "C" __global__ void kb(double a) { const int L = 3; __shared__ float v[L]; }
`,
		"device/emu/testdata/t.cu": `extern "C" __global__ void kt() {}`,
	})
	files, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	a := string(files[Prefix+"kernels_a_b.cpp"])
	for _, want := range []string{
		`#include "../../kernels/a-b.cu"`,
		"kernels/a-b.cu sha256 ",
		"kernels/gputrain.cuh sha256 ",
		"row_t s[TILE];",
		"float t[TILE], u;",
		"static shared memory not counted: `float v[L]` uses L",
		`{"ka", ::gt_emu::arity(&ka), &gt_emu_tramp_ka, (long long)sizeof(gt_emu_shm_ka)}`,
		`{"kb", ::gt_emu::arity(&kb), &gt_emu_tramp_kb, 0}`,
	} {
		if !strings.Contains(a, want) {
			t.Errorf("generated kernels file lacks %q:\n%s", want, a)
		}
	}
	if tf := string(files[Prefix+"testdata_t.cpp"]); !strings.Contains(tf, `#include "testdata/t.cu"`) {
		t.Errorf("generated testdata file:\n%s", tf)
	}
	reg := string(files[Prefix+"registry.cpp"])
	if !strings.Contains(reg, "gt_emu_table_kernels_a_b,\n    gt_emu_table_testdata_t,\n    nullptr") {
		t.Errorf("registry:\n%s", reg)
	}

	// A header change changes every generated source file.
	writeFiles(t, root, map[string]string{"kernels/gputrain.cuh": "#define TILE 32\ntypedef float row_t[TILE + 1];\n"})
	again, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	if string(again[Prefix+"testdata_t.cpp"]) == string(files[Prefix+"testdata_t.cpp"]) {
		t.Error("a changed header left the generated file unchanged")
	}
}

func TestGenerateDuplicate(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"kernels/a.cu": `extern "C" __global__ void k(float* x) {}`,
		"kernels/b.cu": `extern "C" __global__ void k(float* x) {}`,
	})
	if _, err := Generate(root); err == nil || !strings.Contains(err.Error(), "kernel k is also defined in kernels/a.cu") {
		t.Errorf("duplicate kernel: %v", err)
	}
}

func TestStripComments(t *testing.T) {
	in := "a // c1 \"x\nb /* c2\nc2 */ \"// not a comment\" '/'"
	// Same length, newlines kept, comment bytes blanked, literals kept.
	want := "a" + strings.Repeat(" ", 9) + "\nb" + strings.Repeat(" ", 6) + "\n" + strings.Repeat(" ", 6) + "\"// not a comment\" '/'"
	if got := StripComments(in); got != want {
		t.Errorf("StripComments = %q, want %q", got, want)
	}
}
