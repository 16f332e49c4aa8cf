// Package filelock keeps two processes from writing one output file: a
// writer takes an exclusive lock on a small companion file, dir/.base.lock,
// for as long as it writes, and a second writer is refused at once, with
// the first one's process id. The lock is the kernel's (flock), so a
// writer killed by kill -9 releases it; the companion file holds only the
// id and is removed by a clean release.
package filelock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrLocked is wrapped by Acquire's error when another process holds the
// lock.
var ErrLocked = errors.New("locked by another process")

// Lock is a held lock; Release gives it up.
type Lock struct {
	f    *os.File
	path string // the lock file
}

// Name returns the companion lock file of path.
func Name(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".lock")
}

// Acquire locks path for writing or says who holds it. what names the file
// in the message ("the checkpoint").
func Acquire(path, what string) (*Lock, error) {
	lp := Name(path)
	for range 10 {
		f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return nil, fmt.Errorf("%s %s: cannot create its lock file: %w", what, path, err)
		}
		held, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s %s: locking %s: %w", what, path, lp, err)
		}
		if !held {
			b := make([]byte, 32)
			n, _ := f.ReadAt(b, 0)
			f.Close()
			who := "another process"
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n]))); err == nil && pid > 0 {
				who = fmt.Sprintf("another process (pid %d)", pid)
			}
			return nil, fmt.Errorf("%s %s is being written by %s: %w; wait for it or write elsewhere", what, path, who, ErrLocked)
		}
		// A releaser removes the file before unlocking it: if the file
		// was removed (or replaced) after we opened it, our lock is on an
		// orphan that no one else would see. Start again.
		if same(f, lp) {
			if err := f.Truncate(0); err == nil {
				_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			}
			return &Lock{f: f, path: lp}, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("%s %s: its lock file %s keeps being replaced", what, path, lp)
}

func same(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// Release removes the lock file and gives up the lock. A nil Lock is fine.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
