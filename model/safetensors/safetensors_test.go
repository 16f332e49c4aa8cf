package safetensors

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func randomFile(rng *rand.Rand) *File {
	f := &File{Metadata: map[string]string{"model": "linear", "classes": "10"}}
	for i, shape := range [][]int{{3, 5}, {1}, {7}, {2, 3, 4}, {0, 4}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for j := range v {
			v[j] = rng.Float32()*2 - 1
		}
		f.Tensors = append(f.Tensors, Float32Tensor(string(rune('a'+i))+".weight", shape, v))
	}
	f.Tensors = append(f.Tensors, Int64Tensor("step", []int{}, []int64{rng.Int64()}))
	f.Tensors = append(f.Tensors, Uint8Tensor("rng", []byte("state-bytes")))
	return f
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	f := randomFile(rng)
	var buf bytes.Buffer
	if err := Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	g, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if g.Metadata["model"] != "linear" || g.Metadata["classes"] != "10" {
		t.Errorf("metadata = %v", g.Metadata)
	}
	if len(g.Tensors) != len(f.Tensors) {
		t.Fatalf("%d tensors, want %d", len(g.Tensors), len(f.Tensors))
	}
	for _, want := range f.Tensors {
		got, ok := g.Tensor(want.Name)
		if !ok {
			t.Fatalf("missing %q", want.Name)
		}
		if got.DType != want.DType || !bytes.Equal(got.Data, want.Data) || len(got.Shape) != len(want.Shape) {
			t.Errorf("%q differs after round trip", want.Name)
		}
	}
	w, _ := g.Tensor("a.weight")
	v, err := w.Float32s()
	if err != nil || len(v) != 15 {
		t.Fatalf("Float32s: %v %d", err, len(v))
	}
	f0, _ := f.Tensor("a.weight")
	v0, _ := f0.Float32s()
	for i := range v {
		if v[i] != v0[i] {
			t.Fatalf("value %d: %v != %v", i, v[i], v0[i])
		}
	}
}

// TestLayout checks the bytes a reader in another language sees: the
// header length, 8-byte padding, JSON entries and data offsets, per the
// published format.
func TestLayout(t *testing.T) {
	f := &File{Tensors: []Tensor{Float32Tensor("b", []int{2}, []float32{1, 2}), Float32Tensor("a", []int{1}, []float32{3})}}
	var buf bytes.Buffer
	if err := Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	n := binary.LittleEndian.Uint64(b)
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	hdr := strings.TrimRight(string(b[8:8+n]), " ")
	want := `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`
	if hdr != want {
		t.Errorf("header\n got %s\nwant %s", hdr, want)
	}
	data := b[8+n:]
	if len(data) != 12 || binary.LittleEndian.Uint32(data[0:]) != 0x40400000 /* 3.0 */ || binary.LittleEndian.Uint32(data[4:]) != 0x3f800000 /* 1.0 */ {
		t.Errorf("data bytes % x", data)
	}
}

func TestCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var buf bytes.Buffer
	if err := Write(&buf, randomFile(rng)); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	hn := int(binary.LittleEndian.Uint64(good))
	cases := map[string][]byte{
		"empty":     {},
		"truncated": good[:len(good)-3],
		"long":      append(append([]byte(nil), good...), 0),
		"huge header": func() []byte {
			b := append([]byte(nil), good...)
			binary.LittleEndian.PutUint64(b, 1<<62)
			return b
		}(),
		"not json": func() []byte {
			b := append([]byte(nil), good...)
			b[8] = 'x'
			return b
		}(),
		"lying shape": func() []byte {
			h := strings.Replace(string(good[8:8+hn]), `"shape":[3,5]`, `"shape":[300000000,5000000]`, 1)
			out := make([]byte, 8)
			binary.LittleEndian.PutUint64(out, uint64(len(h)))
			return append(append(out, h...), good[8+hn:]...)
		}(),
	}
	for name, b := range cases {
		if _, err := Read(bytes.NewReader(b), int64(len(b))); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ckpt.safetensors")
	rng := rand.New(rand.NewPCG(5, 6))
	f := randomFile(rng)
	if err := WriteFileAtomic(p, f); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(p); err != nil {
		t.Fatal(err)
	}
	// Overwriting leaves no temporary files behind.
	if err := WriteFileAtomic(p, f); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries after two writes, want 1", len(ents))
	}
	if err := CheckWritable(filepath.Join(dir, "nope", "x.safetensors")); err == nil {
		t.Error("CheckWritable accepted a path in a missing directory")
	}
	if err := CheckWritable(dir); err == nil {
		t.Error("CheckWritable accepted a directory")
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("ReadFile of a missing file: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 8))
	var buf bytes.Buffer
	Write(&buf, randomFile(rng))
	f.Add(buf.Bytes())
	f.Add([]byte{})
	f.Add([]byte("\x10\x00\x00\x00\x00\x00\x00\x00{}              "))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		// Whatever parses must write back and parse to the same tensors.
		var out bytes.Buffer
		if err := Write(&out, file); err != nil {
			t.Fatalf("re-encoding a parsed file: %v", err)
		}
		g, err := Read(bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil || len(g.Tensors) != len(file.Tensors) {
			t.Fatalf("round trip of a parsed file: %v", err)
		}
	})
}
