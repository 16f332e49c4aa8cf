package kernels

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// entryPoint matches a kernel definition in a .cu source, with or without
// __launch_bounds__ between the return type and the name.
var entryPoint = regexp.MustCompile(`extern "C" __global__ void\s+(?:__launch_bounds__\([^)]*\)\s*)?(\w+)\(`)

// sourceKernels returns the kernel names defined in kernels/*.cu.
func sourceKernels(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.cu")
	if err != nil || len(files) == 0 {
		t.Fatalf("no kernels/*.cu sources found (err %v)", err)
	}
	var names []string
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range entryPoint.FindAllSubmatch(src, -1) {
			names = append(names, string(m[1]))
		}
	}
	return names
}

// TestFatbin checks that the embedded fatbin is a CUDA fat binary and holds
// every kernel the sources define (a kernel added without rebuilding the
// fatbin would fail to launch on a GPU, where CI cannot see it).
func TestFatbin(t *testing.T) {
	const fatbinMagic = 0xBA55ED50
	if len(Fatbin) < 16 || binary.LittleEndian.Uint32(Fatbin) != fatbinMagic {
		t.Fatalf("Fatbin (%d bytes) does not start with the fatbin magic %#x", len(Fatbin), fatbinMagic)
	}
	names := sourceKernels(t)
	if len(names) < 20 {
		t.Errorf("found only %d kernels in the sources: %v", len(names), names)
	}
	for _, name := range names {
		if !bytes.Contains(Fatbin, []byte(name)) {
			t.Errorf("kernel %s of the sources is not in gputrain.fatbin: run scripts/build-kernels.sh", name)
		}
	}
}

// TestFatbinUpToDate rebuilds the fatbin with nvcc and requires it to be
// byte-for-byte the embedded one (nvcc output is reproducible).
func TestFatbinUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: rebuilding the fatbin with nvcc takes about 10 s")
	}
	if _, err := exec.LookPath("nvcc"); err != nil {
		t.Skip("nvcc is not installed (scripts/install-cuda.sh installs it), so the fatbin cannot be rebuilt to compare")
	}
	out, err := exec.Command("../scripts/build-kernels.sh", "--check").CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/build-kernels.sh --check: %v\n%s", err, out)
	}
}
