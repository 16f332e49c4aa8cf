package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fixture is the path of a file in the repository's top-level testdata/.
func fixture(parts ...string) string {
	return filepath.Join(append([]string{"..", "testdata"}, parts...)...)
}

// randomValues draws n values representable in t, covering its extremes.
func randomValues(rng *rand.Rand, t IDXType, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		switch t {
		case IDXUint8:
			v[i] = float64(rng.IntN(256))
		case IDXInt8:
			v[i] = float64(rng.IntN(256) - 128)
		case IDXInt16:
			v[i] = float64(rng.IntN(1<<16) - 1<<15)
		case IDXInt32:
			v[i] = float64(int32(rng.Uint32()))
		case IDXFloat32:
			v[i] = float64(float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10))))
		case IDXFloat64:
			v[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(200)-100))
		}
	}
	// The extremes of the type, where sign handling goes wrong.
	if n >= 2 {
		switch t {
		case IDXUint8:
			v[0], v[1] = 0, 255
		case IDXInt8:
			v[0], v[1] = -128, 127
		case IDXInt16:
			v[0], v[1] = math.MinInt16, math.MaxInt16
		case IDXInt32:
			v[0], v[1] = math.MinInt32, math.MaxInt32
		case IDXFloat32:
			v[0], v[1] = -math.MaxFloat32, math.SmallestNonzeroFloat32
		case IDXFloat64:
			v[0], v[1] = math.Inf(-1), math.Copysign(0, -1)
		}
	}
	return v
}

func TestIDXRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	shapes := [][]int{{1}, {7}, {33}, {1, 31}, {3, 5, 2}, {257, 3}, {2, 1, 1, 7}, {0}, {4, 0, 3}}
	for _, typ := range IDXTypes {
		for _, dims := range shapes {
			for _, ext := range []string{"", ".gz"} {
				n := 1
				for _, d := range dims {
					n *= d
				}
				vals := randomValues(rng, typ, n)
				path := filepath.Join(dir, fmt.Sprintf("x-%s-%v%s", typ, len(dims), ext))
				if err := WriteIDX(path, typ, dims, vals); err != nil {
					t.Fatal(err)
				}
				raw, _ := os.ReadFile(path)
				if isGz := bytes.HasPrefix(raw, gzipMagic); isGz != (ext == ".gz") {
					t.Fatalf("%s: gzip = %v", path, isGz)
				}
				x, err := ReadIDX(path)
				if err != nil {
					t.Fatalf("%s %v: %v", typ, dims, err)
				}
				if x.Type != typ || fmt.Sprint(x.Dims) != fmt.Sprint(dims) || x.Len() != n {
					t.Fatalf("%s %v%s: read type %s dims %v len %d", typ, dims, ext, x.Type, x.Dims, x.Len())
				}
				got := x.Float64s()
				for i := range vals {
					if math.Float64bits(got[i]) != math.Float64bits(vals[i]) {
						t.Fatalf("%s %v%s: element %d = %v, wrote %v", typ, dims, ext, i, got[i], vals[i])
					}
				}
			}
		}
	}
}

// TestIDXDetectsGzipByContent renames a gzip file without .gz and a plain
// one with it: the reader must not care.
func TestIDXDetectsGzipByContent(t *testing.T) {
	dir := t.TempDir()
	vals := []float64{3, 1, 4, 1, 5, 9, 2}
	gz, plain := filepath.Join(dir, "a.gz"), filepath.Join(dir, "b")
	if err := WriteIDX(gz, IDXInt16, []int{7}, vals); err != nil {
		t.Fatal(err)
	}
	if err := WriteIDX(plain, IDXInt16, []int{7}, vals); err != nil {
		t.Fatal(err)
	}
	swappedGz, swappedPlain := filepath.Join(dir, "gz-no-suffix"), filepath.Join(dir, "plain.gz")
	os.Rename(gz, swappedGz)
	os.Rename(plain, swappedPlain)
	for _, p := range []string{swappedGz, swappedPlain} {
		x, err := ReadIDX(p)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(x.Float64s()) != fmt.Sprint(vals) {
			t.Errorf("%s: got %v", p, x.Float64s())
		}
	}
}

func TestWriteIDXRejects(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		typ  IDXType
		dims []int
		vals []float64
		want string
	}{
		{IDXUint8, []int{1}, []float64{256}, "not representable"},
		{IDXUint8, []int{1}, []float64{-1}, "not representable"},
		{IDXInt8, []int{1}, []float64{0.5}, "not representable"},
		{IDXInt32, []int{1}, []float64{math.NaN()}, "not representable"},
		{IDXUint8, []int{2}, []float64{1}, "hold 2 values"},
		{IDXUint8, nil, nil, "dimensions"},
		{IDXUint8, []int{-1}, nil, "outside"},
		{0x0A, []int{1}, []float64{1}, "unknown"},
	}
	for _, c := range cases {
		p := filepath.Join(dir, "w")
		err := WriteIDX(p, c.typ, c.dims, c.vals)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("WriteIDX(%s, %v, %v) = %v, want error with %q and the path", c.typ, c.dims, c.vals, err, c.want)
		}
	}
}

// TestIDXCorruptFixtures reads the corrupt files in testdata/idx (written
// by make_fixtures.py) and checks each error names the file and the fault.
func TestIDXCorruptFixtures(t *testing.T) {
	cases := []struct{ file, want string }{
		{"truncated-labels-idx1-ubyte.gz", "truncated: header says 60000 ubyte values (60000 bytes), decompressed data holds 59000 values"},
		{"truncated-labels-idx1-ubyte", "truncated: header says 60000 ubyte values (60000 bytes), file holds 59000 values"},
		{"lying-images-idx3-ubyte.gz", "a gzip file of 33 bytes inflates to at most 34056: the header lies"},
		{"lying-images-idx3-ubyte", "truncated: header says 1000000000 ubyte items of 28x28"},
		{"lying-floats-idx1-double.gz", "inflates to at most"},
		{"bad-magic-idx1-ubyte", "bad magic 50 4B 03 04"},
		{"bad-type-idx1-ubyte", "unknown IDX element type 0x0A"},
		{"trailing-labels-idx1-ubyte", "2 bytes of trailing data"},
		{"bad-crc-labels-idx1-ubyte.gz", "checksum"},
		{"short-header-idx3-ubyte", "ends inside the dimension list"},
		{"empty-idx1-ubyte", "empty file"},
	}
	for _, c := range cases {
		p := fixture("idx", c.file)
		x, err := ReadIDX(p)
		if err == nil {
			t.Errorf("%s: read %v without error", c.file, x.Dims)
			continue
		}
		if !strings.HasPrefix(err.Error(), p+":") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want it to start with the path and contain %q", c.file, err, c.want)
		}
	}
}

// allocDuring returns the bytes allocated while f runs.
func allocDuring(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestIDXLyingHeaderAllocatesLittle checks that headers claiming gigabytes
// over tiny files fail without allocating what they claim: plain files are
// checked against their size, gzip streams grow their buffer only as data
// arrives.
func TestIDXLyingHeaderAllocatesLittle(t *testing.T) {
	const budget = 8 << 20 // one 1 MiB read chunk, gzip state, slack
	for _, f := range []string{"lying-images-idx3-ubyte", "lying-images-idx3-ubyte.gz", "lying-floats-idx1-double.gz"} {
		var err error
		n := allocDuring(func() { _, err = ReadIDX(fixture("idx", f)) })
		if err == nil {
			t.Fatalf("%s: no error", f)
		}
		if n > budget {
			t.Errorf("%s: allocated %d bytes before failing, budget %d", f, n, budget)
		}
	}
	// The same through a stream whose length the reader is not told: a
	// 2 GiB claim over 100 bytes.
	var b bytes.Buffer
	b.Write([]byte{0, 0, byte(IDXUint8), 2})
	b.Write(binary.BigEndian.AppendUint32(nil, 1<<16))
	b.Write(binary.BigEndian.AppendUint32(nil, 1<<15))
	b.Write(make([]byte, 100))
	var err error
	n := allocDuring(func() { _, err = DecodeIDX(bytes.NewReader(b.Bytes()), -1, "stream") })
	if err == nil || !strings.Contains(err.Error(), "stream: truncated") {
		t.Fatalf("unsized stream: error %v", err)
	}
	if n > budget {
		t.Errorf("unsized stream: allocated %d bytes, budget %d", n, budget)
	}
}

// TestIDXTruncatedEverywhere cuts a valid file (plain and gzip) at every
// length and checks each prefix fails with the file's name.
func TestIDXTruncatedEverywhere(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var plain bytes.Buffer
	if err := EncodeIDX(&plain, IDXInt16, []int{5, 3}, randomValues(rng, IDXInt16, 15)); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain.Bytes())
	zw.Close()
	for _, full := range [][]byte{plain.Bytes(), gz.Bytes()} {
		if _, err := DecodeIDX(bytes.NewReader(full), int64(len(full)), "whole"); err != nil {
			t.Fatalf("untruncated: %v", err)
		}
		for cut := range len(full) {
			for _, size := range []int64{int64(cut), -1} {
				x, err := DecodeIDX(bytes.NewReader(full[:cut]), size, "cut.idx")
				if err == nil {
					t.Fatalf("cut at %d of %d (size %d): read dims %v", cut, len(full), size, x.Dims)
				}
				if !strings.HasPrefix(err.Error(), "cut.idx: ") {
					t.Fatalf("cut at %d: error %q does not start with the name", cut, err)
				}
			}
		}
	}
}

func TestReadIDXMissingAndDir(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{filepath.Join(dir, "nope"), dir} {
		if _, err := ReadIDX(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("ReadIDX(%s) = %v, want an error naming it", p, err)
		}
	}
}
