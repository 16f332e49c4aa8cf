package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

// TestModeKeptAndSetBeforeRename: a replaced file keeps its mode, a new
// one gets 0666 less the umask, and the temporary file already has the
// final mode while it is written, so no kill can leave a 0600 file behind
// (issue 13, item 8).
func TestModeKeptAndSetBeforeRename(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.bin")
	if err := WriteFile(p, writeString("one")); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if want := 0o666 &^ umask(); st.Mode().Perm() != want {
		t.Errorf("new file mode %v, want %v", st.Mode().Perm(), want)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(p, func(w io.Writer) error {
		st, err := w.(*os.File).Stat()
		if err != nil {
			return err
		}
		if st.Mode().Perm() != 0o640 {
			t.Errorf("temporary file has mode %v while written, want the final 0640", st.Mode().Perm())
		}
		_, err = io.WriteString(w, "two")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ = os.Stat(p)
	b, _ := os.ReadFile(p)
	if st.Mode().Perm() != 0o640 || string(b) != "two" {
		t.Errorf("after replacing: mode %v, content %q", st.Mode().Perm(), b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files left in the directory, want 1", len(ents))
	}
}

// TestDirSyncErrorReported: a failed directory fsync is an error, not a
// silent "saved" (issue 13, item 8).
func TestDirSyncErrorReported(t *testing.T) {
	old := SyncDir
	defer func() { SyncDir = old }()
	SyncDir = func(*os.File) error { return syscall.EIO }
	p := filepath.Join(t.TempDir(), "x")
	err := WriteFile(p, writeString("x"))
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "directory fsync failed") {
		t.Fatalf("WriteFile with a failing directory fsync: %v", err)
	}
}

// TestWriteErrorLeavesOldFile: a failed write leaves the old content and no
// temporary file.
func TestWriteErrorLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x")
	if err := WriteFile(p, writeString("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := WriteFile(p, func(io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	b, _ := os.ReadFile(p)
	ents, _ := os.ReadDir(dir)
	if string(b) != "old" || len(ents) != 1 {
		t.Errorf("content %q, %d files", b, len(ents))
	}
}

// TestRefusesNonRegular: a symbolic link, a FIFO or a device is never
// replaced by a regular file (issue 13, item 1).
func TestRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for p, kind := range map[string]string{link: "a symbolic link", fifo: "a FIFO", "/dev/null": "a character device", dir: "a directory"} {
		err := WriteFile(p, writeString("x"))
		if err == nil || !strings.Contains(err.Error(), kind) {
			t.Errorf("WriteFile(%s): %v, want a refusal naming %s", p, err, kind)
		}
		if err := CheckWritable(p); err == nil || !strings.Contains(err.Error(), kind) {
			t.Errorf("CheckWritable(%s): %v, want a refusal naming %s", p, err, kind)
		}
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the link target was written: %q", b)
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced")
	}
}

// TestCleanStale removes a killed writer's temporary files and nothing else.
func TestCleanStale(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ck.safetensors")
	keep := []string{"ck.safetensors", ".other.tmp-1", "ck.safetensors.tmp-2", ".ck.safetensors.lock"}
	stale := []string{".ck.safetensors.tmp-0a1b2c", ".ck.safetensors.tmp-ffffff"}
	for _, n := range append(keep, stale...) {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := CleanStale(p)
	if err != nil || len(removed) != len(stale) {
		t.Fatalf("CleanStale: %v, %v", removed, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(keep) {
		t.Errorf("%d files left, want %d", len(ents), len(keep))
	}
}

func TestCheckSpace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	if err := CheckSpace(p, 1); err != nil {
		t.Errorf("1 byte: %v", err)
	}
	err := CheckSpace(p, 1<<62)
	if err == nil || !strings.Contains(err.Error(), "free on its file system") {
		t.Errorf("4 EB: %v", err)
	}
}
