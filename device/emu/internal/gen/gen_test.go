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
		"device/emu/testdata/t.cu":  "#include \"t.cuh\"\nextern \"C\" __global__ void kt() {}",
		"device/emu/testdata/t.cuh": "// a header of the test kernels\n",
	})
	files, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	a := string(files[Prefix+"kernels_a_b.cpp"])
	for _, want := range []string{
		`#define GT_EMU_SHM_SECTION "gt_emu_shm.p.kernels_a_b"`,
		`#include "../../kernels/a-b.cu"`,
		"kernels/a-b.cu sha256 ",
		"kernels/gputrain.cuh sha256 ",
		"row_t s[TILE];",
		"float t[TILE], u;",
		"static shared memory not counted: `float v[L]` uses L",
		`"3", "kernels/a-b.cu:3 s",`,
		`"4", "kernels/a-b.cu:4 t, u",`,
		`{"ka", ::gt_emu::arity(&ka), &gt_emu_tramp_ka, (long long)sizeof(gt_emu_shm_ka), &gt_emu_ctramp_ka, "kernels_a_b", gt_emu_decls_kernels_a_b, 2, 5}`,
		`{"kb", ::gt_emu::arity(&kb), &gt_emu_tramp_kb, 0, &gt_emu_ctramp_kb, "kernels_a_b", gt_emu_decls_kernels_a_b, 6, 6}`,
	} {
		if !strings.Contains(a, want) {
			t.Errorf("generated plain unit lacks %q:\n%s", want, a)
		}
	}
	c := string(files[Prefix+"kernels_a_b"+CheckedSuffix])
	for _, want := range []string{
		"#define GT_EMU_CHECKED 1\n",
		`#define GT_EMU_SHM_SECTION "gt_emu_shm.c.kernels_a_b"`,
		"#define ka gt_emu_c_ka\n#define kb gt_emu_c_kb\nnamespace gt_emu_c_kernels_a_b {\n#include \"../../kernels/a-b.cu\"\n}",
		`extern "C" GT_EMU_NOCHECK void gt_emu_ctramp_ka(const uint64_t* a) { ::gt_emu::invoke(&gt_emu_c_kernels_a_b::ka, a); }`,
	} {
		if !strings.Contains(c, want) {
			t.Errorf("generated checked unit lacks %q:\n%s", want, c)
		}
	}
	tf := string(files[Prefix+"testdata_t.cpp"])
	for _, want := range []string{`#include "testdata/t.cu"`, "device/emu/testdata/t.cuh sha256 "} {
		if !strings.Contains(tf, want) {
			t.Errorf("generated testdata unit lacks %q:\n%s", want, tf)
		}
	}
	reg := string(files[Prefix+"registry.cpp"])
	for _, want := range []string{
		"gt_emu_table_kernels_a_b,\n    gt_emu_table_testdata_t,\n    nullptr",
		`"device/emu/testdata/t.cuh", "`, `"kernels/a-b.cu", "`, `"kernels/gputrain.cuh", "`,
	} {
		if !strings.Contains(reg, want) {
			t.Errorf("registry lacks %q:\n%s", want, reg)
		}
	}
	inputs, err := Inputs(root)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, in := range inputs {
		paths = append(paths, in.Path)
	}
	if got := strings.Join(paths, " "); got != "device/emu/testdata/t.cu device/emu/testdata/t.cuh kernels/a-b.cu kernels/gputrain.cuh" {
		t.Errorf("Inputs = %s", got)
	}

	// A header change changes every generated unit; a change of a file a
	// test kernel includes changes its units.
	writeFiles(t, root, map[string]string{
		"kernels/gputrain.cuh":      "#define TILE 32\ntypedef float row_t[TILE + 1];\n",
		"device/emu/testdata/t.cuh": "// changed\n",
	})
	again, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if string(again[name]) == string(files[name]) {
			t.Errorf("%s unchanged after its inputs changed", name)
		}
	}

	// A missing include is an error (nvcc would fail too).
	writeFiles(t, root, map[string]string{"kernels/c.cu": "#include \"nope.cuh\"\n"})
	if _, err := Generate(root); err == nil || !strings.Contains(err.Error(), "nope.cuh") {
		t.Errorf("missing include: %v", err)
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
