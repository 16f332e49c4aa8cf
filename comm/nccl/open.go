package nccl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ID is an ncclUniqueId: what rank 0 draws and every rank needs to join.
type ID [128]byte

// minVersion is NCCL 2.7.0, the first with ncclSend/ncclRecv.
const (
	minVersion       = 2700
	minVersionString = "2.7"
)

// EnvLibrary names the environment variable that points at libnccl.so.2
// (the file, or its directory). When set, Open uses it or fails: it never
// falls back to another copy behind the user's back.
const EnvLibrary = "GPUTRAIN_NCCL"

// Path is the file the library was loaded from.
func (l *Library) Path() string { return l.path }

// Version is NCCL's version, "2.21.5".
func (l *Library) Version() string {
	v := l.version
	if v < 10000 { // before 2.9: major*1000 + minor*100 + patch
		return fmt.Sprintf("%d.%d.%d", v/1000, v%1000/100, v%100)
	}
	return fmt.Sprintf("%d.%d.%d", v/10000, v%10000/100, v%100)
}

// Candidates lists where Open looks for libnccl.so.2 after $GPUTRAIN_NCCL
// and the dynamic loader's own search: the usual install prefixes, conda,
// and the nvidia-nccl-cu* wheels PyTorch's wheels depend on (in system,
// user and virtual-environment site-packages).
func Candidates() []string {
	var out []string
	add := func(pattern string) {
		ms, _ := filepath.Glob(pattern)
		out = append(out, ms...)
	}
	for _, dir := range []string{"/usr/local/cuda/lib64", "/usr/local/nccl/lib", "/opt/nccl/lib", "/usr/lib64"} {
		add(filepath.Join(dir, "libnccl.so.2"))
	}
	var prefixes []string
	for _, env := range []string{"CONDA_PREFIX", "VIRTUAL_ENV"} {
		if p := os.Getenv(env); p != "" {
			prefixes = append(prefixes, p)
			add(filepath.Join(p, "lib", "libnccl.so.2"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		prefixes = append(prefixes, filepath.Join(home, ".local"))
	}
	prefixes = append(prefixes, "/usr/local", "/usr", "/opt/conda")
	for _, p := range prefixes {
		for _, sp := range []string{"site-packages", "dist-packages"} {
			add(filepath.Join(p, "lib", "python3*", sp, "nvidia", "nccl", "lib", "libnccl.so.2"))
		}
	}
	add("/usr/lib/python3/dist-packages/nvidia/nccl/lib/libnccl.so.2")
	return out
}

// Open finds and opens NCCL: $GPUTRAIN_NCCL if set, else "libnccl.so.2"
// through the dynamic loader, else the first of Candidates that loads. The
// error lists every place tried and why each failed.
func Open() (*Library, error) {
	if p := os.Getenv(EnvLibrary); p != "" {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			p = filepath.Join(p, "libnccl.so.2")
		}
		l, err := OpenPath(p)
		if err != nil {
			return nil, fmt.Errorf("nccl: %s=%s: %w", EnvLibrary, os.Getenv(EnvLibrary), err)
		}
		return l, nil
	}
	var tried []string
	for _, p := range append([]string{"libnccl.so.2"}, Candidates()...) {
		l, err := OpenPath(p)
		if err == nil {
			return l, nil
		}
		tried = append(tried, err.Error())
	}
	return nil, errors.New("nccl: no usable libnccl.so.2 (set " + EnvLibrary + " to its path; PyTorch's wheels ship it in site-packages/nvidia/nccl/lib): " + strings.Join(tried, "; "))
}
