package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math"

	"github.com/gputrain/gputrain/internal/inputfile"
	"github.com/gputrain/gputrain/internal/sysmem"
)

// Every loader reads its file through openInput: regular files, and FIFOs,
// pipes or devices as streams whose reads give up after
// inputfile.IdleTimeout without data (no read blocks forever), with gzip
// detected by its magic bytes (any file may be gzip'd, whatever its name).

// gzipMaxRatio bounds how much a DEFLATE stream can inflate: a stored
// byte costs at least 1/1032 of a byte compressed (RFC 1951's longest
// match, 258 bytes, in one bit short of 2 bits). A header that declares
// more than the compressed size times this cannot be telling the truth.
const gzipMaxRatio = 1032

// input is an opened input file.
type input struct {
	r          io.Reader
	closer     io.Closer
	gzipped    bool
	size       int64 // bytes on disk, -1 for a stream
	name       string
	gz         *gzip.Reader
	compressed *countingReader
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// openInput opens path; reads of the result are decompressed when the file
// is gzip'd.
func openInput(path string) (*input, error) {
	f, err := inputfile.Open(path)
	if err != nil {
		return nil, err
	}
	in, err := newInput(f, f.Size, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	in.closer = f
	return in, nil
}

// newInput wraps r (size bytes, -1 if unknown), detecting gzip.
func newInput(r io.Reader, size int64, name string) (*input, error) {
	cr := &countingReader{r: r}
	br := bufio.NewReaderSize(cr, 64<<10)
	in := &input{r: br, size: size, name: name, compressed: cr}
	head, _ := br.Peek(2)
	if bytes.Equal(head, gzipMagic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: bad gzip stream: %v", name, err)
		}
		in.r, in.gz, in.gzipped = zr, zr, true
	}
	return in, nil
}

func (in *input) Read(p []byte) (int, error) { return in.r.Read(p) }

func (in *input) Close() error {
	if in.gz != nil {
		in.gz.Close()
	}
	if in.closer != nil {
		return in.closer.Close()
	}
	return nil
}

// maxPayload is the most data the input can deliver: its size, or for a
// gzip'd file gzipMaxRatio times it; unknown (MaxInt64) for a stream.
func (in *input) maxPayload() int64 {
	if in.size < 0 {
		return math.MaxInt64
	}
	if in.gzipped {
		if in.size > math.MaxInt64/gzipMaxRatio {
			return math.MaxInt64
		}
		return in.size * gzipMaxRatio
	}
	return in.size
}

// memoryBudget is how much a loader may hold: nine tenths of what the
// process can still allocate (no limit where that is unknown), and never
// more than MaxMemory when it is set.
func memoryBudget() int64 {
	b := int64(math.MaxInt64)
	if avail, ok := sysmem.Available(); ok {
		b = avail / 10 * 9
	}
	if MaxMemory > 0 && MaxMemory < b {
		b = MaxMemory
	}
	return b
}

// MaxMemory, when > 0, caps the memory a loader may use for one data set,
// below what the machine has (tests set it to see the limit act).
var MaxMemory int64
