package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// IDXType is the element type code of an IDX file, the third byte of its
// magic number.
type IDXType byte

// The element types the IDX format defines. Multi-byte values are stored
// big-endian.
const (
	IDXUint8   IDXType = 0x08
	IDXInt8    IDXType = 0x09
	IDXInt16   IDXType = 0x0B
	IDXInt32   IDXType = 0x0C
	IDXFloat32 IDXType = 0x0D
	IDXFloat64 IDXType = 0x0E
)

// IDXTypes lists every element type, in type-code order.
var IDXTypes = []IDXType{IDXUint8, IDXInt8, IDXInt16, IDXInt32, IDXFloat32, IDXFloat64}

// Size is the number of bytes of one element, 0 for an unknown type.
func (t IDXType) Size() int {
	switch t {
	case IDXUint8, IDXInt8:
		return 1
	case IDXInt16:
		return 2
	case IDXInt32, IDXFloat32:
		return 4
	case IDXFloat64:
		return 8
	}
	return 0
}

// IsInteger reports whether t holds integers (labels can only be integers).
func (t IDXType) IsInteger() bool {
	return t == IDXUint8 || t == IDXInt8 || t == IDXInt16 || t == IDXInt32
}

func (t IDXType) String() string {
	switch t {
	case IDXUint8:
		return "ubyte"
	case IDXInt8:
		return "sbyte"
	case IDXInt16:
		return "int16"
	case IDXInt32:
		return "int32"
	case IDXFloat32:
		return "float32"
	case IDXFloat64:
		return "float64"
	}
	return fmt.Sprintf("IDXType(0x%02X)", byte(t))
}

// MaxIDXBytes bounds the payload of one IDX file. A header is only a claim:
// the reader never allocates more than the data that actually arrived (plus
// one chunk), but a gzip bomb can deliver real data far beyond any sensible
// data set, and this limit stops it.
var MaxIDXBytes int64 = 8 << 30

// idxChunk caps each buffer growth while reading a stream of unknown length,
// so that a lying header costs at most this much memory before the
// truncation is noticed.
const idxChunk = 1 << 20

// IDX is one decoded IDX file.
type IDX struct {
	Type IDXType
	// Dims are the sizes of the dimensions, outermost first: [N 28 28] for
	// an image file, [N] for a label file.
	Dims []int
	// Data holds the elements as stored in the file: row-major, big-endian,
	// Type.Size() bytes each. Keeping the raw bytes (rather than []float64)
	// costs 1 byte per MNIST pixel instead of 8; At and Float64s convert.
	Data []byte
}

// Len is the number of elements, the product of Dims.
func (x *IDX) Len() int {
	if x.Type.Size() == 0 {
		return 0
	}
	return len(x.Data) / x.Type.Size()
}

// At returns element i (row-major order) converted to float64, which holds
// every IDX type exactly.
func (x *IDX) At(i int) float64 {
	switch x.Type {
	case IDXUint8:
		return float64(x.Data[i])
	case IDXInt8:
		return float64(int8(x.Data[i]))
	case IDXInt16:
		return float64(int16(binary.BigEndian.Uint16(x.Data[2*i:])))
	case IDXInt32:
		return float64(int32(binary.BigEndian.Uint32(x.Data[4*i:])))
	case IDXFloat32:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(x.Data[4*i:])))
	case IDXFloat64:
		return math.Float64frombits(binary.BigEndian.Uint64(x.Data[8*i:]))
	}
	return math.NaN()
}

// Float64s returns every element converted to float64.
func (x *IDX) Float64s() []float64 {
	out := make([]float64, x.Len())
	for i := range out {
		out[i] = x.At(i)
	}
	return out
}

// ReadIDX reads an IDX file, gzip-compressed or not: compression is detected
// from the gzip magic bytes, not from the file name. Errors name the file and
// what is wrong with it (bad magic, truncation, trailing data, a size the
// header claims but the file cannot hold). A FIFO or pipe is read as a
// stream (see package internal/inputfile: no read waits forever).
func ReadIDX(path string) (*IDX, error) {
	h, err := openIDX(path)
	if err != nil {
		return nil, err
	}
	defer h.in.Close()
	if err := checkIDXMemory(h.need+4*h.count, path); err != nil {
		return nil, err
	}
	return h.readPayload()
}

// DecodeIDX reads an IDX stream (plain or gzip) from r; name is used in
// error messages. size is the length of the stream in bytes, or -1 if
// unknown; when known, the header is checked against it (for gzip, against
// the most it can inflate to) before any payload is allocated.
func DecodeIDX(r io.Reader, size int64, name string) (*IDX, error) {
	in, err := newInput(r, size, name)
	if err != nil {
		return nil, err
	}
	h, err := readIDXHeader(in, name)
	if err != nil {
		return nil, err
	}
	return h.readPayload()
}

var gzipMagic = []byte{0x1f, 0x8b}

// idxHeader is an IDX file whose header has been read and checked against
// what the file can hold; its payload is read by readPayload.
type idxHeader struct {
	in    *input
	name  string
	t     IDXType
	dims  []int
	count uint64 // elements, saturated
	need  uint64 // payload bytes, saturated
	what  string // "decompressed " for gzip
}

// openIDX opens path and reads its header.
func openIDX(path string) (*idxHeader, error) {
	in, err := openInput(path)
	if err != nil {
		return nil, err // *PathError already names the file
	}
	h, err := readIDXHeader(in, path)
	if err != nil {
		in.Close()
		return nil, err
	}
	return h, nil
}

// readIDXHeader reads and checks the header of the IDX stream in: the
// payload it declares must fit what the file can hold (exactly its size
// for a plain file, at most gzipMaxRatio times it for gzip) and
// MaxIDXBytes, all before a byte of payload is read or allocated.
func readIDXHeader(in *input, name string) (*idxHeader, error) {
	what := ""
	if in.gzipped {
		what = "decompressed "
	}
	r := in.r
	var magic [4]byte
	if n, err := io.ReadFull(r, magic[:]); err != nil {
		switch {
		case err == io.EOF && !in.gzipped:
			return nil, fmt.Errorf("%s: empty file, expected an IDX header", name)
		case err == io.EOF:
			return nil, fmt.Errorf("%s: empty %sstream, expected an IDX header", name, what)
		case err == io.ErrUnexpectedEOF:
			return nil, fmt.Errorf("%s: truncated: %d %sbyte(s), an IDX header needs at least 4", name, n, what)
		}
		return nil, fmt.Errorf("%s: reading IDX header: %v", name, err)
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, fmt.Errorf("%s: bad magic % X: not an IDX file (IDX starts with 00 00 <type> <ndims>)", name, magic[:])
	}
	t := IDXType(magic[2])
	if t.Size() == 0 {
		return nil, fmt.Errorf("%s: unknown IDX element type 0x%02X (want one of 08 09 0B 0C 0D 0E)", name, magic[2])
	}
	ndims := int(magic[3])
	if ndims == 0 {
		return nil, fmt.Errorf("%s: IDX header declares 0 dimensions", name)
	}
	raw := make([]byte, 4*ndims) // at most 1020 bytes: ndims is one byte
	if _, err := io.ReadFull(r, raw); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%s: truncated: header declares %d dimensions but the %sfile ends inside the dimension list", name, ndims, what)
		}
		return nil, fmt.Errorf("%s: reading IDX dimensions: %v", name, err)
	}
	dims := make([]int, ndims)
	// count = product of dims, saturated so that a lying header cannot
	// overflow it into a small or negative number.
	count := uint64(1)
	const sat = math.MaxInt64
	for i := range dims {
		d := binary.BigEndian.Uint32(raw[4*i:])
		dims[i] = int(d)
		if count != 0 && d != 0 && count > sat/uint64(d) {
			count = sat
		} else {
			count *= uint64(d)
		}
	}
	esize := uint64(t.Size())
	need := uint64(sat) // payload bytes, saturated
	if count <= sat/esize {
		need = count * esize
	}
	headerLen := int64(4 + 4*ndims)
	h := &idxHeader{in: in, name: name, t: t, dims: dims, count: count, need: need, what: what}
	switch {
	case in.size >= 0 && !in.gzipped:
		// Plain file of known size: the header must match it exactly.
		have := max(in.size-headerLen, 0)
		if uint64(have) < need {
			return nil, truncErr(name, t, dims, need, uint64(have), what)
		}
		if uint64(have) > need {
			return nil, fmt.Errorf("%s: %d bytes of trailing data after the %d bytes the header declares (dims %v of %s)", name, uint64(have)-need, need, dims, t)
		}
	case in.size >= 0 && in.gzipped && need > uint64(in.maxPayload()):
		return nil, fmt.Errorf("%s: header declares dims %v of %s = %s bytes, but a gzip file of %d bytes inflates to at most %d: the header lies or the file is truncated", name, dims, t, satString(need), in.size, in.maxPayload())
	}
	if need > uint64(MaxIDXBytes) || need > math.MaxInt {
		return nil, fmt.Errorf("%s: header declares dims %v of %s = %s bytes, more than the %d-byte limit (MaxIDXBytes)", name, dims, t, satString(need), MaxIDXBytes)
	}
	return h, nil
}

// checkIDXMemory refuses to read payloads (and build their float32 sets)
// that need more than the memory available.
func checkIDXMemory(need uint64, name string) error {
	if b := memoryBudget(); need > uint64(b) {
		return fmt.Errorf("%s: reading it needs %s bytes of memory, more than the %s available", name, satString(need), bytesString(b))
	}
	return nil
}

// readPayload reads the payload the header declared, stopping there: a
// stream that goes on is trailing data, one that ends early is truncated.
func (h *idxHeader) readPayload() (*IDX, error) {
	r, name, t, dims, need, what := h.in.r, h.name, h.t, h.dims, h.need, h.what
	// For a stream of unknown length, grow the buffer only once it is full
	// of data that really arrived, at most doubling it: a header claiming
	// gigabytes over a tiny stream costs one idxChunk, and a real stream at
	// most about twice its size in allocations.
	total := int(need)
	initial := min(total, idxChunk)
	if h.in.size >= 0 && !h.in.gzipped {
		initial = total // already checked against the real file size
	}
	buf := make([]byte, 0, initial)
	for len(buf) < total {
		if len(buf) == cap(buf) {
			grow := min(max(cap(buf), idxChunk), total-len(buf))
			nb := make([]byte, len(buf), len(buf)+grow)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading IDX data after %d of %d bytes: %v", name, len(buf), total, err)
		}
	}
	if len(buf) < total {
		return nil, truncErr(name, t, dims, need, uint64(len(buf)), what)
	}
	// Reading one byte more both detects trailing data and, for gzip, makes
	// the reader verify the CRC and length in the stream's trailer.
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		if n > 0 {
			return nil, fmt.Errorf("%s: trailing %sdata after the %d bytes the header declares (dims %v of %s)", name, what, need, dims, t)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: after the IDX data: %v", name, err)
		}
	}
	return &IDX{Type: t, Dims: dims, Data: buf}, nil
}

func satString(v uint64) string {
	if v == math.MaxInt64 {
		return "more than 2^63"
	}
	return fmt.Sprint(v)
}

// truncErr describes a payload shorter than the header claims, in items of
// the outermost dimension ("header says 60000 items ..., file holds 59000")
// because that is what a reader of an MNIST file thinks in.
func truncErr(name string, t IDXType, dims []int, need, have uint64, what string) error {
	item := uint64(t.Size())
	for _, d := range dims[1:] {
		if d != 0 && item > math.MaxInt64/uint64(d) {
			item = math.MaxInt64
			break
		}
		item *= uint64(d)
	}
	if item == 0 {
		item = 1
	}
	unit := "values"
	shape := ""
	if len(dims) > 1 {
		s := make([]string, len(dims)-1)
		for i, d := range dims[1:] {
			s[i] = fmt.Sprint(d)
		}
		unit = "items"
		shape = " of " + strings.Join(s, "x")
	}
	holder := "file"
	if what != "" {
		holder = "decompressed data"
	}
	return fmt.Errorf("%s: truncated: header says %d %s %s%s (%s bytes), %s holds %d %s (%d bytes)",
		name, dims[0], t, unit, shape, satString(need), holder, have/item, unit, have)
}

// WriteIDX writes an IDX file with element type t and the given dims;
// values (row-major, len = product of dims) are converted to t and must be
// representable in it (integers in range for integer types). The file is
// gzip-compressed when path ends in ".gz". Mostly for tests and fixtures.
func WriteIDX(path string, t IDXType, dims []int, values []float64) error {
	var b bytes.Buffer
	var w io.Writer = &b
	var zw *gzip.Writer
	if strings.HasSuffix(path, ".gz") {
		zw = gzip.NewWriter(&b)
		w = zw
	}
	if err := EncodeIDX(w, t, dims, values); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// EncodeIDX writes an uncompressed IDX stream; see WriteIDX.
func EncodeIDX(w io.Writer, t IDXType, dims []int, values []float64) error {
	if t.Size() == 0 {
		return fmt.Errorf("unknown IDX element type 0x%02X", byte(t))
	}
	if len(dims) == 0 || len(dims) > 255 {
		return fmt.Errorf("IDX needs 1 to 255 dimensions, got %d", len(dims))
	}
	count := 1
	for i, d := range dims {
		if d < 0 || int64(d) > math.MaxUint32 {
			return fmt.Errorf("dimension %d is %d, outside [0, 2^32)", i, d)
		}
		count *= d
	}
	if count != len(values) {
		return fmt.Errorf("dims %v hold %d values, got %d", dims, count, len(values))
	}
	out := make([]byte, 0, 4+4*len(dims)+count*t.Size())
	out = append(out, 0, 0, byte(t), byte(len(dims)))
	for _, d := range dims {
		out = binary.BigEndian.AppendUint32(out, uint32(d))
	}
	lo, hi := 0.0, 0.0
	switch t {
	case IDXUint8:
		lo, hi = 0, math.MaxUint8
	case IDXInt8:
		lo, hi = math.MinInt8, math.MaxInt8
	case IDXInt16:
		lo, hi = math.MinInt16, math.MaxInt16
	case IDXInt32:
		lo, hi = math.MinInt32, math.MaxInt32
	}
	for i, v := range values {
		if t.IsInteger() && (v != math.Trunc(v) || v < lo || v > hi) {
			return fmt.Errorf("value %d = %v is not representable as %s", i, v, t)
		}
		switch t {
		case IDXUint8, IDXInt8:
			out = append(out, byte(int64(v)))
		case IDXInt16:
			out = binary.BigEndian.AppendUint16(out, uint16(int64(v)))
		case IDXInt32:
			out = binary.BigEndian.AppendUint32(out, uint32(int64(v)))
		case IDXFloat32:
			out = binary.BigEndian.AppendUint32(out, math.Float32bits(float32(v)))
		case IDXFloat64:
			out = binary.BigEndian.AppendUint64(out, math.Float64bits(v))
		}
	}
	_, err := w.Write(out)
	return err
}
