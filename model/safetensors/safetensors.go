package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/gputrain/gputrain/internal/atomicfile"
	"github.com/gputrain/gputrain/internal/inputfile"
)

// DType is a safetensors element type.
type DType string

const (
	F64 DType = "F64"
	F32 DType = "F32"
	I64 DType = "I64"
	I32 DType = "I32"
	U8  DType = "U8"
)

// Size returns the element size in bytes, or 0 for a type this package does not know.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case U8:
		return 1
	}
	return 0
}

// MaxHeaderBytes bounds the JSON header, as the reference implementation does (100 MB).
const MaxHeaderBytes = 100 << 20

// Tensor is one named tensor: row-major, little-endian bytes.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// File is the content of a safetensors file.
type File struct {
	Metadata map[string]string
	Tensors  []Tensor
}

// Tensor returns the tensor with the given name.
func (f *File) Tensor(name string) (*Tensor, bool) {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return &f.Tensors[i], true
		}
	}
	return nil, false
}

// Float32Tensor makes an F32 tensor from row-major values.
func Float32Tensor(name string, shape []int, v []float32) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, DType: F32, Shape: append([]int(nil), shape...), Data: b}
}

// Int64Tensor makes an I64 tensor.
func Int64Tensor(name string, shape []int, v []int64) Tensor {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return Tensor{Name: name, DType: I64, Shape: append([]int(nil), shape...), Data: b}
}

// Uint8Tensor makes a U8 tensor (opaque bytes such as an RNG state).
func Uint8Tensor(name string, v []byte) Tensor {
	return Tensor{Name: name, DType: U8, Shape: []int{len(v)}, Data: append([]byte(nil), v...)}
}

// Elements is the product of the shape (1 for a scalar).
func (t *Tensor) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Float32s decodes an F32 tensor.
func (t *Tensor) Float32s() ([]float32, error) {
	if t.DType != F32 {
		return nil, fmt.Errorf("tensor %q is %s, want F32", t.Name, t.DType)
	}
	v := make([]float32, len(t.Data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return v, nil
}

// Int64s decodes an I64 tensor.
func (t *Tensor) Int64s() ([]int64, error) {
	if t.DType != I64 {
		return nil, fmt.Errorf("tensor %q is %s, want I64", t.Name, t.DType)
	}
	v := make([]int64, len(t.Data)/8)
	for i := range v {
		v[i] = int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return v, nil
}

type entry struct {
	DType       DType    `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

func checkTensor(t *Tensor) error {
	if t.Name == "" || t.Name == "__metadata__" {
		return fmt.Errorf("invalid tensor name %q", t.Name)
	}
	size := t.DType.Size()
	if size == 0 {
		return fmt.Errorf("tensor %q: unsupported dtype %q", t.Name, t.DType)
	}
	n := int64(1)
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("tensor %q: negative dimension in shape %v", t.Name, t.Shape)
		}
		if d > 0 && n > math.MaxInt64/int64(size)/int64(d) {
			return fmt.Errorf("tensor %q: shape %v overflows", t.Name, t.Shape)
		}
		n *= int64(d)
	}
	if n*int64(size) != int64(len(t.Data)) {
		return fmt.Errorf("tensor %q: shape %v of %s needs %d bytes, has %d", t.Name, t.Shape, t.DType, n*int64(size), len(t.Data))
	}
	return nil
}

// layout checks f's tensors and returns them in file order with the JSON
// header (padded to a multiple of 8). The order is Hugging Face's writer's:
// by element size, largest first, then by name. Since the header length
// is a multiple of 8 and every tensor's byte length a multiple of its
// element size, each tensor then starts at a file offset that is a
// multiple of its element size, so readers can map tensors without
// copying them.
func layout(f *File) ([]*Tensor, []byte, error) {
	ts := make([]*Tensor, len(f.Tensors))
	seen := map[string]bool{}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if err := checkTensor(t); err != nil {
			return nil, nil, err
		}
		if seen[t.Name] {
			return nil, nil, fmt.Errorf("duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		ts[i] = t
	}
	sort.Slice(ts, func(i, j int) bool {
		if a, b := ts[i].DType.Size(), ts[j].DType.Size(); a != b {
			return a > b
		}
		return ts[i].Name < ts[j].Name
	})
	header := map[string]any{}
	if len(f.Metadata) > 0 {
		header["__metadata__"] = f.Metadata
	}
	var off int64
	for _, t := range ts {
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = entry{DType: t.DType, Shape: shape, DataOffsets: [2]int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return nil, nil, err
	}
	if pad := (8 - len(hj)%8) % 8; pad > 0 {
		hj = append(hj, strings.Repeat(" ", pad)...)
	}
	return ts, hj, nil
}

// Write encodes f (tensors laid out as layout says).
func Write(w io.Writer, f *File) error {
	ts, hj, err := layout(f)
	if err != nil {
		return err
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hj)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(hj); err != nil {
		return err
	}
	for _, t := range ts {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// EncodedSize returns the size in bytes of the file Write would write.
func EncodedSize(f *File) (int64, error) {
	ts, hj, err := layout(f)
	if err != nil {
		return 0, err
	}
	n := int64(8 + len(hj))
	for _, t := range ts {
		n += int64(len(t.Data))
	}
	return n, nil
}

// Read decodes a safetensors file of the given size from r. Every length in
// the file is checked against size before any allocation.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, fmt.Errorf("file too short (%d bytes) for a safetensors header", size)
	}
	var nb [8]byte
	if _, err := r.ReadAt(nb[:], 0); err != nil {
		return nil, fmt.Errorf("reading header length: %w", err)
	}
	hn := binary.LittleEndian.Uint64(nb[:])
	if hn > MaxHeaderBytes || int64(hn) > size-8 {
		return nil, fmt.Errorf("header length %d exceeds the file (%d bytes) or the %d-byte limit: not a safetensors file or truncated", hn, size, MaxHeaderBytes)
	}
	hj := make([]byte, hn)
	if _, err := r.ReadAt(hj, 8); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hj, &raw); err != nil {
		return nil, fmt.Errorf("header is not valid JSON: %v", err)
	}
	bufStart := 8 + int64(hn)
	bufLen := size - bufStart
	f := &File{}
	type span struct {
		begin, end int64
		name       string
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("__metadata__ must map strings to strings: %v", err)
			}
			continue
		}
		var e entry
		dec := json.NewDecoder(strings.NewReader(string(msg)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("tensor %q: bad header entry: %v", name, err)
		}
		es := e.DType.Size()
		if es == 0 {
			return nil, fmt.Errorf("tensor %q: unsupported dtype %q (supported: F64, F32, I64, I32, U8)", name, e.DType)
		}
		b, en := e.DataOffsets[0], e.DataOffsets[1]
		if b < 0 || en < b || en > bufLen {
			return nil, fmt.Errorf("tensor %q: data offsets [%d, %d] outside the %d-byte data buffer", name, b, en, bufLen)
		}
		n := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && n > bufLen/int64(d)) {
				return nil, fmt.Errorf("tensor %q: shape %v does not fit the %d-byte data buffer", name, e.Shape, bufLen)
			}
			n *= int64(d)
		}
		if n*int64(es) != en-b {
			return nil, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes, offsets give %d", name, e.Shape, e.DType, n*int64(es), en-b)
		}
		spans = append(spans, span{b, en, name})
		f.Tensors = append(f.Tensors, Tensor{Name: name, DType: e.DType, Shape: append([]int{}, e.Shape...)})
	}
	// The buffer must be covered exactly: sorted spans are contiguous from 0.
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	var at int64
	for _, s := range spans {
		if s.begin != at {
			return nil, fmt.Errorf("tensor %q: data starts at %d, expected %d (holes or overlaps in the data buffer)", s.name, s.begin, at)
		}
		at = s.end
	}
	if at != bufLen {
		return nil, fmt.Errorf("data buffer holds %d bytes but tensors cover %d", bufLen, at)
	}
	sort.Slice(f.Tensors, func(i, j int) bool { return f.Tensors[i].Name < f.Tensors[j].Name })
	offs := map[string]span{}
	for _, s := range spans {
		offs[s.name] = s
	}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		s := offs[t.Name]
		t.Data = make([]byte, s.end-s.begin)
		if _, err := r.ReadAt(t.Data, bufStart+s.begin); err != nil && !(errors.Is(err, io.EOF) && len(t.Data) == 0) {
			return nil, fmt.Errorf("tensor %q: reading data: %w", t.Name, err)
		}
	}
	return f, nil
}

// ReadFile reads path; errors name the file. Only a regular file is read:
// a FIFO or a device is refused without waiting on it.
func ReadFile(path string) (*File, error) {
	fh, st, err := inputfile.OpenRegular(path, "safetensors file")
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	f, err := Read(fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// ReadMetadata reads only the header of the safetensors file path and
// returns its metadata (nil when it has none): enough to tell what a file
// is without reading its tensors.
func ReadMetadata(path string) (map[string]string, error) {
	fh, st, err := inputfile.OpenRegular(path, "safetensors file")
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("%s: file too short (%d bytes) for a safetensors header", path, size)
	}
	var nb [8]byte
	if _, err := fh.ReadAt(nb[:], 0); err != nil {
		return nil, fmt.Errorf("%s: reading header length: %w", path, err)
	}
	hn := binary.LittleEndian.Uint64(nb[:])
	if hn > MaxHeaderBytes || int64(hn) > size-8 {
		return nil, fmt.Errorf("%s: header length %d exceeds the file (%d bytes) or the %d-byte limit: not a safetensors file", path, hn, size, MaxHeaderBytes)
	}
	hj := make([]byte, hn)
	if _, err := fh.ReadAt(hj, 8); err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", path, err)
	}
	var h struct {
		Metadata map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(hj, &h); err != nil {
		return nil, fmt.Errorf("%s: header is not valid safetensors JSON: %v", path, err)
	}
	return h.Metadata, nil
}

// WriteFileAtomic writes f to path so that a crash or kill at any moment
// leaves either the previous file or the new one, never a torn mix, with
// the previous file's mode (see package internal/atomicfile); a failed
// directory fsync is an error.
func WriteFileAtomic(path string, f *File) error {
	return atomicfile.WriteFile(path, func(w io.Writer) error { return Write(w, f) })
}

// CheckWritable reports whether a file can be created at path (so an
// unwritable checkpoint path is refused before training starts), refusing
// a destination that is not a regular file. It leaves no file behind.
func CheckWritable(path string) error {
	return atomicfile.CheckWritable(path)
}
