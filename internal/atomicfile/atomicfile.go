// Package atomicfile replaces files so that a crash or a kill -9 at any
// moment leaves either the old file or the new one, complete, with the
// mode it should have: the new content goes to a temporary file in the
// same directory, created with the final mode, fsynced, renamed over the
// destination, and the directory is fsynced so the rename itself survives
// a power cut. Failures at every step, the directory fsync included, are
// returned. The temporary files of a writer that was killed are named so
// that CleanStale finds them.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gputrain/gputrain/internal/inputfile"
	"github.com/gputrain/gputrain/internal/sysmem"
)

// tempPrefix and tempInfix make the temporary name of path:
// dir/.base.tmp-<random>.
func tempPattern(path string) (dir, prefix string) {
	return filepath.Dir(path), "." + filepath.Base(path) + ".tmp-"
}

// SyncDir makes a rename in directory d durable. It is a variable so that
// tests can inject the failure a real disk rarely shows.
var SyncDir = func(d *os.File) error { return d.Sync() }

// WriteFile replaces path with what write writes. A new file gets the
// mode a plain create gives (0666 less the umask); an existing file keeps
// its mode. The destination, when it exists, must be a regular file: a
// symbolic link, a device or a FIFO is refused, because renaming over it
// would replace the link or the device node rather than write to it.
func WriteFile(path string, write func(w io.Writer) error) (err error) {
	var keepMode fs.FileMode
	if st, err := os.Lstat(path); err == nil {
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is %s, not a regular file: refusing to replace it", path, inputfile.Kind(st.Mode()))
		}
		keepMode = st.Mode().Perm()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir, prefix := tempPattern(path)
	tmp, err := createTemp(dir, prefix)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if keepMode != 0 {
		// Set before the rename: a kill between rename and chmod would
		// otherwise leave the file with the temporary's mode.
		if err = tmp.Chmod(keepMode); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if err = write(tmp); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("%s: fsync: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%s: written, but its directory cannot be opened to make the rename durable: %w", path, err)
	}
	defer d.Close()
	if err := SyncDir(d); err != nil {
		return fmt.Errorf("%s: written, but the directory fsync failed, so the new file may not survive a power cut: %w", path, err)
	}
	return nil
}

// createTemp creates dir/prefix<random> with mode 0666 (less the umask),
// as os.Create would, unlike os.CreateTemp's private 0600.
func createTemp(dir, prefix string) (*os.File, error) {
	for range 100 {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		name := filepath.Join(dir, prefix+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, errors.New("cannot find a free temporary name")
}

// CleanStale removes the temporary files that writers of path killed
// mid-write left behind, and returns their names. Call it only while
// holding the lock on path (package filelock): a live writer's temporary
// file has the same form.
func CleanStale(path string) ([]string, error) {
	dir, prefix := tempPattern(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, p)
	}
	return removed, nil
}

// CheckWritable reports whether a file can be created beside path (so an
// unwritable output is refused before any work), and refuses a
// destination that is not a regular file. It leaves nothing behind.
func CheckWritable(path string) error {
	if st, err := os.Lstat(path); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("%s is %s, not a regular file", path, inputfile.Kind(st.Mode()))
	}
	dir, prefix := tempPattern(path)
	f, err := createTemp(dir, prefix)
	if err != nil {
		return fmt.Errorf("%s: cannot write there: %w", path, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// CheckSpace refuses to start work whose output would not fit: need bytes
// must be free on the file system of path's directory, plus a megabyte of
// slack for the file system's own blocks.
func CheckSpace(path string, need int64) error {
	dir := filepath.Dir(path)
	avail, err := Available(dir)
	if err != nil {
		return err
	}
	const slack = 1 << 20
	if avail < need+slack {
		return fmt.Errorf("%s: %s free on its file system, the checkpoint needs %s: free some space or --save elsewhere", path, sysmem.Bytes(avail), sysmem.Bytes(need))
	}
	return nil
}
