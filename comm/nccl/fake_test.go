//go:build cgo

package nccl

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gputrain/gputrain/comm"
	"github.com/gputrain/gputrain/comm/commtest"
)

var (
	fakeOnce sync.Once
	fakeDir  string
	fakeErr  error
)

// fakeLib compiles testdata/fakenccl.c (once per variant) and returns the
// path of the library: variant "" is the full fake, "omit-send" lacks
// ncclSend.
func fakeLib(t *testing.T, variant string) string {
	t.Helper()
	fakeOnce.Do(func() {
		cc, err := exec.LookPath("cc")
		if err != nil {
			fakeErr = fmt.Errorf("no C compiler (cc) to build the fake NCCL: %v", err)
			return
		}
		if fakeDir, fakeErr = os.MkdirTemp("", "fakenccl"); fakeErr != nil {
			return
		}
		for v, flags := range map[string][]string{"": nil, "omit-send": {"-DFAKE_OMIT_SEND"}} {
			dir := filepath.Join(fakeDir, v+"lib")
			os.MkdirAll(dir, 0o755)
			args := append([]string{"-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", filepath.Join(dir, "libnccl.so.2")}, flags...)
			args = append(args, "testdata/fakenccl.c", "-lpthread")
			if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
				fakeErr = fmt.Errorf("building the fake NCCL: %v\n%s", err, out)
				return
			}
		}
	})
	if fakeErr != nil {
		t.Skip(fakeErr)
	}
	return filepath.Join(fakeDir, variant+"lib", "libnccl.so.2")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fakeDir != "" {
		os.RemoveAll(fakeDir)
	}
	os.Exit(code)
}

func TestOpenPathErrors(t *testing.T) {
	fake := fakeLib(t, "")
	notELF := filepath.Join(t.TempDir(), "libnccl.so.2")
	os.WriteFile(notELF, []byte("not a library\n"), 0o644)
	for _, tc := range []struct {
		name, path, env, want string
	}{
		{"missing", "/nonexistent/libnccl.so.2", "", "cannot load /nonexistent/libnccl.so.2: "},
		{"not a library", notELF, "", "cannot load " + notELF},
		{"no ncclSend", fakeLib(t, "omit-send"), "", "has no ncclSend (NCCL >= 2.7 needed)"},
		{"too old", fake, "2603", "is NCCL 2.6.3; gputrain needs NCCL >= 2.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("FAKE_NCCL_VERSION", tc.env)
			}
			l, err := OpenPath(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenPath(%s) = %v, %v; want an error containing %q", tc.path, l, err, tc.want)
			}
		})
	}
	l, err := OpenPath(fake)
	if err != nil {
		t.Fatal(err)
	}
	if l.Version() != "2.21.5" || l.Path() != fake {
		t.Fatalf("version %q path %q", l.Version(), l.Path())
	}
	t.Setenv("FAKE_NCCL_VERSION", "2708") // the pre-2.9 encoding
	if l, err := OpenPath(fake); err != nil || l.Version() != "2.7.8" {
		t.Fatalf("NCCL 2.7.8: %v, %v", l, err)
	}
}

func TestOpenHonoursTheEnvironment(t *testing.T) {
	fake := fakeLib(t, "")
	// A directory holding libnccl.so.2, or the file itself.
	for _, p := range []string{filepath.Dir(fake), fake} {
		t.Setenv(EnvLibrary, p)
		l, err := Open()
		if err != nil || l.Path() != fake {
			t.Fatalf("%s=%s: %v, %v", EnvLibrary, p, l, err)
		}
	}
	// Set but wrong: an error naming the variable, never another copy.
	t.Setenv(EnvLibrary, "/nonexistent/nccl")
	if _, err := Open(); err == nil || !strings.Contains(err.Error(), EnvLibrary+"=/nonexistent/nccl") {
		t.Fatalf("a wrong %s: %v", EnvLibrary, err)
	}
	// Unset: the loader and the usual places. This machine may or may not
	// have NCCL; if not, the error says how to point at it.
	t.Setenv(EnvLibrary, "")
	if l, err := Open(); err != nil {
		if !strings.Contains(err.Error(), "no usable libnccl.so.2") || !strings.Contains(err.Error(), "set "+EnvLibrary) {
			t.Fatalf("no NCCL: %v", err)
		}
		t.Logf("no NCCL on this machine (as expected without a GPU): %.200s...", err)
	} else {
		t.Logf("found NCCL %s at %s", l.Version(), l.Path())
	}
}

func TestCandidatesFindPyTorchsWheel(t *testing.T) {
	venv := t.TempDir()
	lib := filepath.Join(venv, "lib", "python3.12", "site-packages", "nvidia", "nccl", "lib", "libnccl.so.2")
	os.MkdirAll(filepath.Dir(lib), 0o755)
	os.WriteFile(lib, nil, 0o644)
	t.Setenv("VIRTUAL_ENV", venv)
	for _, c := range Candidates() {
		if c == lib {
			return
		}
	}
	t.Fatalf("Candidates() = %v misses the virtual environment's %s", Candidates(), lib)
}

// fakeGroup bootstraps an NCCL communicator on the fake library over each
// of hosts (one goroutine per rank) and runs fn on each rank.
func fakeGroup(t *testing.T, hosts []comm.Comm, fn func(c *Comm) error) error {
	t.Helper()
	fake := fakeLib(t, "")
	return commtest.RunGroup(hosts, func(h comm.Comm) error {
		c, err := bootstrap(h, func() (*Library, error) { return OpenPath(fake) }, func() (gpu, error) { return newHostGPU(), nil })
		if err != nil {
			return err
		}
		ferr := fn(c)
		if err := c.Close(); err != nil && ferr == nil {
			ferr = err
		}
		return ferr
	})
}

func floatBytes(f []float32) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, f)
	return b.Bytes()
}

// checkDeviceAllReduce all-reduces commtest's inputs in "device" memory and
// compares with the rank-order reference, bitwise.
func checkDeviceAllReduce(c *Comm) error {
	for round := 0; round < 2; round++ {
		for _, n := range append(commtest.Lengths, 100003) {
			in := commtest.Input(round*100+n, c.Rank(), n)
			p, err := c.g.alloc(4*n + 64)
			if err != nil {
				return err
			}
			// Poison beyond the buffer: the all-reduce must not write there.
			guard := bytes.Repeat([]byte{0xAB}, 64)
			c.g.upload(p, floatBytes(in))
			c.g.upload(p+uintptr(4*n), guard)
			if err := c.AllReduceSumDevice(p, n); err != nil {
				return err
			}
			out := make([]byte, 4*n+64)
			c.g.download(out, p)
			c.g.free(p)
			want := commtest.Expected(round*100+n, c.Size(), n)
			for i, w := range want {
				got := math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:]))
				if math.Float32bits(got) != math.Float32bits(w) {
					return fmt.Errorf("rank %d of %d, %d floats: element %d = %v, the rank-order sum is %v", c.Rank(), c.Size(), n, i, got, w)
				}
			}
			if !bytes.Equal(out[4*n:], guard) {
				return fmt.Errorf("rank %d, %d floats: wrote past the buffer", c.Rank(), n)
			}
		}
	}
	return nil
}

func TestFakeAllReduceIsTheRankOrderSum(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 7} {
		err := fakeGroup(t, comm.Local(n), func(c *Comm) error {
			if err := checkDeviceAllReduce(c); err != nil {
				return err
			}
			// The host operations go over the bootstrap communicator.
			return commtest.Check(c)
		})
		if err != nil {
			t.Fatalf("%d ranks: %v", n, err)
		}
	}
}

// TestFakeBootstrapOverTCP: the unique id travels over the TCP bootstrap
// (processes without MPI); the fake NCCL then runs the all-reduce.
func TestFakeBootstrapOverTCP(t *testing.T) {
	addr := commtest.FreeAddr(t)
	hosts := make([]comm.Comm, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for r := range hosts {
		wg.Go(func() { hosts[r], errs[r] = comm.DialTCP(addr, r, 3, "nccl-test", 20*time.Second) })
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	defer func() {
		for _, h := range hosts {
			h.Close()
		}
	}()
	err := fakeGroup(t, hosts, func(c *Comm) error {
		if !strings.Contains(c.Describe(), "NCCL 2.21.5 (host memory) with TCP via rank 0") {
			return fmt.Errorf("describe: %q", c.Describe())
		}
		return checkDeviceAllReduce(c)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBootstrapFailsOnEveryRank(t *testing.T) {
	fake := fakeLib(t, "")
	// Rank 2 has no NCCL: every rank fails, none waits in ncclCommInitRank.
	errs := make([]error, 3)
	commtest.RunGroup(comm.Local(3), func(h comm.Comm) error {
		open := func() (*Library, error) { return OpenPath(fake) }
		if h.Rank() == 2 {
			open = func() (*Library, error) { return OpenPath("/nonexistent/libnccl.so.2") }
		}
		c, err := bootstrap(h, open, func() (gpu, error) { return newHostGPU(), nil })
		if err == nil {
			c.Close()
		}
		errs[h.Rank()] = err
		return nil
	})
	for r, err := range errs {
		want := "rank 2 failed opening NCCL and its GPU"
		if r == 2 {
			want = "rank 2: opening NCCL and its GPU: cannot load /nonexistent/libnccl.so.2"
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("rank %d: %v, want %q", r, err, want)
		}
	}
	// Rank 0 cannot draw the id: every rank fails.
	t.Setenv("FAKE_NCCL_FAIL_ID", "1")
	err := fakeGroup(t, comm.Local(3), func(*Comm) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "rank 0: ncclGetUniqueId: unhandled system error (fake)") ||
		!strings.Contains(err.Error(), "rank 0 could not draw the NCCL unique id") {
		t.Fatalf("no unique id: %v", err)
	}
}

func TestFakeBroadcastDevice(t *testing.T) {
	err := fakeGroup(t, comm.Local(3), func(c *Comm) error {
		src, _ := c.g.alloc(100)
		dst, _ := c.g.alloc(100)
		defer c.g.free(src)
		defer c.g.free(dst)
		c.g.upload(src, bytes.Repeat([]byte{byte(c.Rank() + 1)}, 100))
		if err := c.BroadcastDevice(src, dst, 100, 1); err != nil {
			return err
		}
		out := make([]byte, 100)
		c.g.download(out, dst)
		if !bytes.Equal(out, bytes.Repeat([]byte{2}, 100)) {
			return fmt.Errorf("rank %d: broadcast from rank 1 gave %v...", c.Rank(), out[:4])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestClosedCommRefuses(t *testing.T) {
	err := fakeGroup(t, comm.Local(1), func(c *Comm) error {
		c.Close()
		if err := c.AllReduceSumDevice(1, 1); err == nil || !strings.Contains(err.Error(), "used after Close") {
			return fmt.Errorf("after Close: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPTXIsFresh(t *testing.T) {
	nvcc, err := exec.LookPath("nvcc")
	if err != nil {
		t.Skip("nvcc not installed: cannot rebuild sum.ptx to compare (scripts/install-cuda.sh)")
	}
	// The committed PTX comes from the project's nvcc (CUDA 11.8, which CI
	// installs); another release writes other (equally valid) PTX.
	ver, err := exec.Command(nvcc, "--version").Output()
	if err != nil {
		t.Fatalf("nvcc --version: %v", err)
	}
	release := regexp.MustCompile(`release [0-9.]+`)
	if want := release.FindString(sumPTX); release.FindString(string(ver)) != want {
		t.Skipf("nvcc is %q; sum.ptx was built by %q: only that release reproduces it", release.FindString(string(ver)), want)
	}
	out := filepath.Join(t.TempDir(), "sum.ptx")
	if b, err := exec.Command(nvcc, "-ptx", "-arch=compute_70", "-o", out, "sum.cu").CombinedOutput(); err != nil {
		t.Fatalf("nvcc: %v\n%s", err, b)
	}
	got, _ := os.ReadFile(out)
	if string(got) != sumPTX {
		t.Fatal("sum.ptx is stale: run `go generate ./comm/nccl` and commit it")
	}
}
