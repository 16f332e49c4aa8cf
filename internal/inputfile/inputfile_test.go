package inputfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFIFONeverBlocks: a FIFO without a writer is refused at once where a
// seekable file is needed, and read as empty (not waited on) as a stream;
// a writer that opens it and then falls silent times the read out (issue
// 13, item 5).
func TestFIFONeverBlocks(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, _, err := OpenRegular(fifo, "checkpoint"); err == nil || !strings.Contains(err.Error(), "is a FIFO; a checkpoint must be a regular file") {
			t.Errorf("OpenRegular(FIFO): %v", err)
		}
		in, err := Open(fifo)
		if err != nil {
			t.Errorf("Open(FIFO): %v", err)
			return
		}
		defer in.Close()
		if b, err := io.ReadAll(in); err != nil || len(b) != 0 {
			t.Errorf("FIFO without a writer: %q, %v", b, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("opening or reading a FIFO without a writer blocked")
	}

	old := IdleTimeout
	IdleTimeout = 200 * time.Millisecond
	defer func() { IdleTimeout = old }()
	in, err := Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	if _, err := io.ReadFull(in, b); err != nil || string(b) != "abc" {
		t.Fatalf("read %q, %v", b, err)
	}
	start := time.Now()
	_, err = in.Read(b)
	if !errors.Is(err, ErrIdle) || time.Since(start) > 5*time.Second {
		t.Fatalf("a silent writer: %v after %v", err, time.Since(start))
	}
}

func TestOpenKinds(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := Open(p)
	if err != nil || in.Size != 5 || in.Stream {
		t.Fatalf("regular file: %+v, %v", in, err)
	}
	b, _ := io.ReadAll(in)
	in.Close()
	if string(b) != "12345" {
		t.Errorf("read %q", b)
	}
	f, st, err := OpenRegular(p, "checkpoint")
	if err != nil || st.Size() != 5 {
		t.Fatalf("OpenRegular: %v", err)
	}
	f.Close()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("Open(dir): %v", err)
	}
	if _, _, err := OpenRegular("/dev/null", "checkpoint"); err == nil || !strings.Contains(err.Error(), "a character device") {
		t.Errorf("OpenRegular(/dev/null): %v", err)
	}
	in, err = Open("/dev/zero")
	if err != nil || !in.Stream {
		t.Fatalf("Open(/dev/zero): %v", err)
	}
	n, err := in.Read(make([]byte, 10))
	in.Close()
	if n != 10 || err != nil {
		t.Errorf("reading /dev/zero: %d, %v", n, err)
	}
}

// With IdleTimeout 0 (GPUTRAIN_INPUT_TIMEOUT=0), a slow writer is waited
// for: a pause far longer than the short limit the test would otherwise
// use does not fail the read.
func TestIdleTimeoutForever(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "slow")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	old := IdleTimeout
	IdleTimeout = 0
	defer func() { IdleTimeout = old }()
	in, err := Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(700 * time.Millisecond)
		w.Write([]byte("late"))
		w.Close()
	}()
	b, err := io.ReadAll(in)
	if err != nil || string(b) != "late" {
		t.Fatalf("read %q, %v; want the slow writer's bytes", b, err)
	}
}

func TestParseTimeout(t *testing.T) {
	for v, want := range map[string]time.Duration{"0": 0, "none": 0, "90s": 90 * time.Second, "10m": 10 * time.Minute} {
		if d, err := ParseTimeout(v); err != nil || d != want {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v", v, d, err, want)
		}
	}
	for _, v := range []string{"", "ten", "-5s", "60"} {
		if _, err := ParseTimeout(v); err == nil || !strings.Contains(err.Error(), TimeoutEnv) {
			t.Errorf("ParseTimeout(%q): %v, want an error naming %s", v, err, TimeoutEnv)
		}
	}
}
