//go:build unix

package atomicfile

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Available returns the bytes an unprivileged writer may still use on
// the file system holding dir. A variable, so that tests can simulate a
// full disk.
var Available = available

func available(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("%s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
