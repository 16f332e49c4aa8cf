package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestTensorsAligned: every tensor starts at a file offset that is a
// multiple of its element size (8 for F64/I64), as Hugging Face's writer
// lays them out (header padded to 8 bytes, tensors ordered by alignment,
// then name), so a reader can map them without copying (issue 12). A U8
// tensor of odd length sorted by name between F32 tensors used to shift
// every tensor after it off its alignment.
func TestTensorsAligned(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	f := randomFile(rng)
	f.Tensors = append(f.Tensors,
		Uint8Tensor("a.odd", []byte{1, 2, 3}),
		Int64Tensor("zz.step", []int{}, []int64{7}),
		Float32Tensor("b.bias", []int{3}, []float32{1, 2, 3}),
		Tensor{Name: "c.f64", DType: F64, Shape: []int{2}, Data: make([]byte, 16)})
	var buf bytes.Buffer
	if err := Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	n := binary.LittleEndian.Uint64(b)
	if n%8 != 0 {
		t.Fatalf("header length %d not a multiple of 8", n)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		t.Fatal(err)
	}
	for name, raw := range hdr {
		if name == "__metadata__" {
			continue
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		if abs := 8 + int64(n) + e.DataOffsets[0]; abs%int64(e.DType.Size()) != 0 {
			t.Errorf("tensor %s (%s) starts at file offset %d, not a multiple of %d", name, e.DType, abs, e.DType.Size())
		}
	}
	g, err := Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Tensors) != len(f.Tensors) {
		t.Fatalf("%d tensors read back, want %d", len(g.Tensors), len(f.Tensors))
	}
}

// TestReadFileRefusesFIFO: a FIFO named as a checkpoint is refused at once,
// not waited on (issue 13, item 5).
func TestReadFileRefusesFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "ck.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { _, err := ReadFile(fifo); done <- err }()
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "is a FIFO") {
		t.Fatalf("ReadFile(FIFO): %v", err)
	}
	if _, err := ReadMetadata(fifo); err == nil || !strings.Contains(err.Error(), "is a FIFO") {
		t.Fatalf("ReadMetadata(FIFO): %v", err)
	}
}

// TestEncodedSizeAndMetadata: EncodedSize is the file's real size, and
// ReadMetadata reads the header alone.
func TestEncodedSizeAndMetadata(t *testing.T) {
	f := randomFile(rand.New(rand.NewPCG(1, 1)))
	p := filepath.Join(t.TempDir(), "x.safetensors")
	if err := WriteFileAtomic(p, f); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	n, err := EncodedSize(f)
	if err != nil || n != st.Size() {
		t.Errorf("EncodedSize %d, %v; the file has %d bytes", n, err, st.Size())
	}
	md, err := ReadMetadata(p)
	if err != nil || md["model"] != "linear" {
		t.Errorf("ReadMetadata: %v, %v", md, err)
	}
}
