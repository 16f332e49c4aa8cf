// Package inputfile opens the files a command reads so that no open and
// no read blocks forever. Opening a FIFO for reading blocks until a writer
// comes, which may be never; so every input is opened non-blocking and
// examined before it is read:
//
//   - OpenRegular, for inputs that must be seekable (checkpoints are read
//     at offsets), refuses anything but a regular file, naming what it is.
//   - Open, for inputs that are read once from start to end (CSV, IDX),
//     also accepts a FIFO, a pipe or a character device, and gives up when
//     no byte arrives for IdleTimeout, instead of waiting forever for a
//     writer that is not there.
package inputfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// IdleTimeout is how long a stream input may stay silent before the read
// fails; 0 or less waits forever. A variable so that tests need not wait a
// minute, and so that the command can take it from TimeoutEnv.
var IdleTimeout = 60 * time.Second

// TimeoutEnv names the environment variable the gputrain command reads
// IdleTimeout from (a Go duration such as 10m, or 0 to wait forever): a
// slow generator behind a pipe is not an absent writer.
const TimeoutEnv = "GPUTRAIN_INPUT_TIMEOUT"

// ParseTimeout reads a TimeoutEnv value: a Go duration ("90s", "10m"), "0"
// or "none" to wait forever.
func ParseTimeout(v string) (time.Duration, error) {
	if v == "none" || v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: not a duration such as 90s or 10m (0 or none waits forever)", TimeoutEnv, v)
	}
	return d, nil
}

// Kind names a file type for messages ("a FIFO", "a directory", ...).
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}

func openNonBlocking(path string) (*os.File, fs.FileInfo, error) {
	// O_NONBLOCK makes opening a FIFO without a writer return at once; it
	// changes nothing for regular files.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// OpenRegular opens path for reading if it is a regular file (or a link to
// one); anything else is refused without blocking. what names the input in
// messages ("checkpoint").
func OpenRegular(path, what string) (*os.File, fs.FileInfo, error) {
	f, st, err := openNonBlocking(path)
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s %s is %s; a %s must be a regular file", what, path, Kind(st.Mode()), what)
	}
	return clearNonBlock(f), st, nil
}

// clearNonBlock returns f in blocking mode (a regular file never blocks,
// and Go's reads expect the mode they were opened with).
func clearNonBlock(f *os.File) *os.File {
	if sc, err := f.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) { _ = syscall.SetNonblock(int(fd), false) })
	}
	return f
}

// Input is an opened input: a regular file of known Size, or a stream
// (Size -1) whose reads time out after IdleTimeout without data.
type Input struct {
	*os.File
	Size   int64 // bytes, -1 for a stream
	Stream bool
	path   string
}

// Open opens path for reading from start to end: a regular file, or a
// FIFO, pipe or character device read as a stream. A directory is refused.
func Open(path string) (*Input, error) {
	f, st, err := openNonBlocking(path)
	if err != nil {
		return nil, err
	}
	m := st.Mode()
	switch {
	case m.IsRegular():
		return &Input{File: clearNonBlock(f), Size: st.Size(), path: path}, nil
	case m.IsDir():
		f.Close()
		return nil, fmt.Errorf("%s is a directory, not a file", path)
	case m&(fs.ModeNamedPipe|fs.ModeCharDevice|fs.ModeSocket) != 0:
		return &Input{File: f, Size: -1, Stream: true, path: path}, nil
	}
	f.Close()
	return nil, fmt.Errorf("%s is %s, not a file to read", path, Kind(m))
}

// ErrIdle is wrapped by a stream read that waited IdleTimeout for data.
var ErrIdle = errors.New("no data arrived")

// Read reads from the input; a stream's read fails after IdleTimeout
// without a byte (never, when IdleTimeout is 0 or less: the descriptor
// stays non-blocking and Go's poller parks the read until data comes). A
// FIFO whose writer has not come yet reads as empty, as an empty file
// would.
func (in *Input) Read(p []byte) (int, error) {
	if !in.Stream {
		return in.File.Read(p)
	}
	var deadline time.Time // the zero time: no deadline
	if IdleTimeout > 0 {
		deadline = time.Now().Add(IdleTimeout)
	}
	if err := in.File.SetReadDeadline(deadline); err != nil {
		// Not pollable (some character devices): a plain read.
		return in.File.Read(p)
	}
	n, err := in.File.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, fmt.Errorf("%s: %w for %v (a FIFO or device with no writer? %s=10m waits longer, 0 forever)", in.path, ErrIdle, IdleTimeout, TimeoutEnv)
	}
	if errors.Is(err, syscall.EAGAIN) {
		return n, io.EOF
	}
	return n, err
}
