package dataset

import (
	"bytes"
	"compress/gzip"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadIDX feeds arbitrary bytes to the IDX decoder, with the stream
// length known (as for a plain file) and unknown (as inside gzip). It must
// never panic, errors must start with the stream's name, and whatever it
// accepts must re-encode to the same bytes. Seeds: f.Add below and
// testdata/fuzz/FuzzReadIDX.
func FuzzReadIDX(f *testing.F) {
	for _, typ := range IDXTypes {
		var b bytes.Buffer
		EncodeIDX(&b, typ, []int{2, 3}, []float64{0, 1, 2, 3, 4, 5})
		f.Add(b.Bytes())
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(b.Bytes())
		zw.Close()
		f.Add(z.Bytes())
	}
	for _, name := range []string{"truncated-labels-idx1-ubyte.gz", "lying-images-idx3-ubyte", "lying-floats-idx1-double.gz", "bad-crc-labels-idx1-ubyte.gz", "trailing-labels-idx1-ubyte"} {
		if b, err := os.ReadFile(fixture("idx", name)); err == nil {
			f.Add(b)
		}
	}
	// Bound what a fuzzed gzip stream may inflate to: inputs are small, so
	// anything near this is a reader that allocates from the header.
	old := MaxIDXBytes
	MaxIDXBytes = 64 << 20
	defer func() { MaxIDXBytes = old }()
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz-input.idx"
		for _, size := range []int64{int64(len(data)), -1} {
			x, err := DecodeIDX(bytes.NewReader(data), size, name)
			if err != nil {
				if !strings.HasPrefix(err.Error(), name+": ") {
					t.Fatalf("error does not name the input: %v", err)
				}
				continue
			}
			n := 1
			for _, d := range x.Dims {
				n *= d
			}
			if x.Len() != n || len(x.Data) != n*x.Type.Size() {
				t.Fatalf("dims %v but %d elements, %d bytes", x.Dims, x.Len(), len(x.Data))
			}
			var b bytes.Buffer
			if err := EncodeIDX(&b, x.Type, x.Dims, x.Float64s()); err != nil {
				t.Fatalf("decoded file does not re-encode: %v", err)
			}
			if bytes.HasPrefix(data, gzipMagic) || bytes.Equal(b.Bytes(), data) {
				continue
			}
			// Only NaNs may differ: float conversions quiet signalling
			// NaNs, so their bits need not survive At.
			hdr := 4 + 4*len(x.Dims)
			if !bytes.Equal(b.Bytes()[:hdr], data[:hdr]) || !bytes.Equal(x.Data, data[hdr:]) {
				t.Fatalf("decoded header or data differ from the input")
			}
			y, err := DecodeIDX(bytes.NewReader(b.Bytes()), -1, name)
			if err != nil {
				t.Fatalf("re-encoded file does not decode: %v", err)
			}
			for i := range x.Len() {
				if a, c := x.At(i), y.At(i); a != c && !(math.IsNaN(a) && math.IsNaN(c)) {
					t.Fatalf("element %d re-encodes as %v, was %v", i, c, a)
				}
			}
		}
	})
}

// FuzzLoadCSV feeds arbitrary text and label options to the CSV loader. It
// must never panic, errors must name the input, and accepted sets must be
// valid.
func FuzzLoadCSV(f *testing.F) {
	f.Add([]byte("label,a,b\n0,1.5,2\n1,3,4\n"), "", uint8(0))
	f.Add([]byte("a,b,species\n1,2,setosa\n3,4,virginica\n"), "species", uint8(0))
	f.Add([]byte("1,2\n0,3\n"), "1", uint8(2))
	f.Add([]byte("x;y\n1;2\n"), "y", uint8(1))
	f.Add([]byte("y,a\n0,\"1\n2\"\n"), "0", uint8(0))
	f.Add([]byte("c,x,s,z\nred,1,3,2\nblue,4,0,5\n"), "c|s", uint8(0))
	f.Add([]byte("3,2,setosa,versicolor\n5.1,3.5,0\n4.9,3,1\n6,3,0\n"), "", uint8(0))
	f.Add([]byte("\xEF\xBB\xBFlabel,a\n1,2\n1.0,3\n"), "last", uint8(0))
	f.Add([]byte("a,b\n1,2\n3,4\n"), "-1", uint8(0))
	for _, name := range []string{"ragged.csv", "bad-number.csv", "bad-quote.csv", "species.csv"} {
		if b, err := os.ReadFile(fixture("csv", name)); err == nil {
			f.Add(b, "", uint8(0))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, label string, mode uint8) {
		const name = "fuzz-input.csv"
		opts := CSVOptions{Header: HeaderMode(mode % 3)}
		if strings.Contains(label, "|") {
			opts.LabelColumns = strings.Split(label, "|")
		} else {
			opts.Label = label
		}
		if mode&4 != 0 {
			opts.Comma = ';'
		}
		s, err := DecodeCSV(bytes.NewReader(data), name, opts)
		if err != nil {
			if !strings.HasPrefix(err.Error(), name) {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted an invalid set: %v", err)
		}
		if s.N < 1 || s.D < 1 {
			t.Fatalf("accepted N=%d D=%d", s.N, s.D)
		}
	})
}

// TestLoadCSVFromFileNamesFile checks the file path (not only the stream
// name) reaches errors, which the fuzzers exercise through DecodeCSV.
func TestLoadCSVFromFileNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.csv")
	os.WriteFile(p, []byte("0,zz\n"), 0o644)
	if _, err := LoadCSV(p, CSVOptions{}); err == nil || !strings.HasPrefix(err.Error(), p+":1:2") {
		t.Errorf("error %v", err)
	}
}

// FuzzReadInputs feeds arbitrary bytes to predict's input reader (CSV in
// any layout, or IDX) for models of a few layouts: it must never panic,
// and what it accepts has D finite values per row.
func FuzzReadInputs(f *testing.F) {
	f.Add([]byte("a,b,label\n1,2,0\n3,4,1\n"), uint8(0))
	f.Add([]byte("150,2,x,y\n1,2,0\n3,4,1\n"), uint8(1))
	f.Add([]byte("1,2\n3,4\n"), uint8(2))
	f.Add([]byte("\xEF\xBB\xBFb,a\n1,2\n"), uint8(0))
	f.Add([]byte{0, 0, 8, 2, 0, 0, 0, 1, 0, 0, 0, 2, 7, 9}, uint8(2))
	layouts := []InputLayout{
		{Features: []string{"a", "b"}, Labels: []string{"label"}, LabelIndex: []int{2}, Columns: 3, D: 2},
		{LabelIndex: []int{2}, Columns: 3, D: 2},
		{D: 2},
	}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		l := layouts[int(which)%len(layouts)]
		in, err := newInput(bytes.NewReader(data), -1, "fuzz-input")
		if err != nil {
			return
		}
		x, n, _, err := decodeCSVInputs(in, "fuzz-input", l)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz-input") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		if n < 1 || len(x) != n*l.D {
			t.Fatalf("accepted %d rows of %d values for D=%d", n, len(x), l.D)
		}
		for _, v := range x {
			if v-v != 0 {
				t.Fatalf("accepted a non-finite value %v", v)
			}
		}
	})
}
