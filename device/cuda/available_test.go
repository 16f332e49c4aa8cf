//go:build cuda

package cuda

import (
	"errors"
	"testing"
)

// TestAvailable checks the cuInit interposer: the test binary started (cu's
// init did not exit), and Available agrees with Devices and New.
func TestAvailable(t *testing.T) {
	err := Available()
	infos, derr := Devices()
	if err != nil {
		t.Logf("no GPU: %v", err)
		if !errors.Is(err, ErrNoGPU) {
			t.Errorf("Available: %v does not wrap ErrNoGPU", err)
		}
		if !errors.Is(derr, ErrNoGPU) {
			t.Errorf("Devices without a GPU: got %v, want an error wrapping ErrNoGPU", derr)
		}
		if d, nerr := New(0); !errors.Is(nerr, ErrNoGPU) {
			t.Errorf("New(0) without a GPU: got %v, %v; want an error wrapping ErrNoGPU", d, nerr)
		}
		return
	}
	if derr != nil {
		t.Fatalf("Devices: %v", derr)
	}
	if len(infos) == 0 {
		t.Fatal("Available reports a GPU but Devices lists none")
	}
	for _, info := range infos {
		t.Log(info)
		if info.Name == "" || info.Memory <= 0 || info.Major < 1 || info.Multiprocessors < 1 {
			t.Errorf("implausible device info %+v", info)
		}
	}
	if _, err := New(len(infos)); err == nil {
		t.Errorf("New(%d) with %d GPUs: no error", len(infos), len(infos))
	}
}
