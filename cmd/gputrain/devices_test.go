package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDevices: the devices command lists the built-in backends and what
// auto picks, and says why cuda is absent (not compiled in, or no GPU).
func TestDevices(t *testing.T) {
	code, out, errs := runArgs("devices")
	if code != 0 || errs != "" {
		t.Fatalf("devices: status %d, stderr %q", code, errs)
	}
	want := []string{"backends built in: " + strings.Join(backendNames(), ", "), "--backend auto: "}
	name, _ := resolveAuto()
	want = append(want, "--backend auto: "+name, "  cpu   pure Go, the reference")
	if _, ok := backends["cuda"]; !ok {
		want = append(want, "  cuda  not built in (build with -tags cuda")
	}
	if _, ok := backends["emu"]; ok {
		want = append(want, "  emu   the CUDA kernels run by the CPU emulator: slow")
	} else {
		want = append(want, "  emu   not built in (it needs cgo")
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("devices output %q lacks %q", out, w)
		}
	}
	if code, _, errs := runArgs("devices", "extra"); code != 2 || !strings.Contains(errs, "extra") {
		t.Errorf("devices extra: status %d, stderr %q; want 2 and a message naming the argument", code, errs)
	}
}

// TestAutoBackend: auto resolves to a built-in backend, which is cpu unless
// a GPU backend is built in and finds its GPU.
func TestAutoBackend(t *testing.T) {
	name, skipped := resolveAuto()
	if _, ok := backends[name]; !ok {
		t.Fatalf("auto resolves to %q, which is not built in (%v)", name, backendNames())
	}
	if _, ok := backends["cuda"]; !ok && name != "cpu" {
		t.Errorf("without cuda built in, auto resolves to %q, want cpu", name)
	}
	if name == "emu" {
		t.Error("auto resolves to emu, the slow emulator")
	}
	if name == "cpu" && len(skipped) == 0 {
		t.Error("auto fell back to cpu without saying why cuda was passed over")
	}
	if err := checkBackend(autoBackend); err != nil {
		t.Errorf("checkBackend(auto): %v", err)
	}
	b, err := openBackend(autoBackend)
	if err != nil {
		t.Fatalf("openBackend(auto): %v", err)
	}
	defer b.Close()
	if !strings.Contains(b.Name(), name) {
		t.Errorf("openBackend(auto) opened %q, resolveAuto said %q", b.Name(), name)
	}
}

// TestEmuBackendTrains trains the same short run on cpu and on the device
// backend over the CUDA emulator (the kernels of kernels/*.cu): both must
// report the same epoch, to float32 accuracy. The emulator is slow, so the
// run is small, but it evaluates all 10000 MNIST test rows.
func TestEmuBackendTrains(t *testing.T) {
	if _, ok := backends["emu"]; !ok {
		t.Skip("the emu backend is not built in (CGO_ENABLED=0)")
	}
	args := []string{"train", "--limit", "300", "--epochs", "1", "--model", "linear", "--seed", "7", "--batch", "33", "--save", ""}
	var got [2][]float64
	for i, be := range []string{"cpu", "emu"} {
		code, out, errs := runArgs(append(args, "--backend", be)...)
		if code != 0 {
			t.Fatalf("--backend %s: exit status %d; stderr %q", be, code, errs)
		}
		if !strings.Contains(out, "backend "+be+"\n") && !strings.Contains(out, "backend "+be+" ") {
			t.Errorf("--backend %s: the header does not name the backend:\n%s", be, out)
		}
		m := regexp.MustCompile(`loss ([0-9.]+) \| test acc ([0-9.]+)  NLL ([0-9.]+)  margin (-?[0-9.]+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("--backend %s: no epoch line:\n%s", be, out)
		}
		for _, f := range m[1:] {
			got[i] = append(got[i], mustFloat(t, f))
		}
	}
	// Printed to 4 decimals; float32 sums in another order may
	// move an answer or the last printed digit, no more.
	tol := []float64{2e-4, 1e-3, 2e-4, 2e-3}
	for j, what := range []string{"train loss", "test accuracy", "test NLL", "mean margin"} {
		if d := got[0][j] - got[1][j]; d > tol[j] || d < -tol[j] {
			t.Errorf("%s: cpu %v, emu %v", what, got[0][j], got[1][j])
		}
	}
	// One epoch of 10 steps from a random start moves the model off chance
	// (0.1): the emulated kernels trained something.
	if got[1][1] < 0.15 {
		t.Errorf("emu test accuracy %v after one epoch, want > 0.15", got[1][1])
	}
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
