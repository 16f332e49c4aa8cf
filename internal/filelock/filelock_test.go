package filelock

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecondWriterRefused: while one holder has the lock, a second Acquire
// (a second open file description, as a second process has) is refused
// with the holder's pid; after Release the lock is free and the file gone.
func TestSecondWriterRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ck.safetensors")
	l, err := Acquire(p, "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(p, "checkpoint")
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) || !strings.Contains(err.Error(), p) {
		t.Fatalf("second Acquire: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(Name(p)); !os.IsNotExist(err) {
		t.Errorf("lock file left after Release: %v", err)
	}
	l2, err := Acquire(p, "checkpoint")
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}

// TestKilledHolderReleases: a process killed with SIGKILL while holding the
// lock leaves the lock free (the kernel drops it), even though its lock file
// stays.
func TestKilledHolderReleases(t *testing.T) {
	if os.Getenv("FILELOCK_HOLD") != "" {
		if _, err := Acquire(os.Getenv("FILELOCK_HOLD"), "x"); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("held")
		select {}
	}
	p := filepath.Join(t.TempDir(), "ck")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledHolderReleases$")
	cmd.Env = append(os.Environ(), "FILELOCK_HOLD="+p)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil || string(buf[:4]) != "held" {
		t.Fatalf("child: %q %v", buf, err)
	}
	if _, err := Acquire(p, "x"); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Fatalf("while the child holds it: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := Acquire(p, "x")
	if err != nil {
		t.Fatalf("after kill -9 of the holder: %v", err)
	}
	l.Release()
}
