package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func sklearnFile(name string) string { return filepath.Join("testdata", "sklearn", name) }

// TestSklearnLayout reproduces issue 12: scikit-learn's iris file (first
// line "150,4,setosa,versicolor,virginica", integer label last) trained on
// column 0, 35 "classes" named 4.3, 4.4, ...; wine and breast cancer were
// refused ("row has 14 fields, expected 5"). Each now loads with no option:
// the label is the last column, the classes are named from the header, and
// the row count of the header is checked.
func TestSklearnLayout(t *testing.T) {
	for _, tc := range []struct {
		file             string
		n, d, k          int
		first, lastClass string
	}{
		{"iris.csv", 150, 4, 3, "setosa", "virginica"},
		{"wine_data.csv", 178, 13, 3, "class_0", "class_2"},
		{"breast_cancer.csv.gz", 569, 30, 2, "malignant", "benign"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			for _, label := range []string{"", "last", "-1", fmt.Sprint(tc.d)} {
				s, err := LoadCSV(sklearnFile(tc.file), CSVOptions{Label: label})
				if err != nil {
					t.Fatalf("--label %q: %v", label, err)
				}
				if s.N != tc.n || s.D != tc.d || s.Classes != tc.k || s.ClassNames[0] != tc.first || s.ClassNames[tc.k-1] != tc.lastClass {
					t.Fatalf("--label %q: N=%d D=%d classes %d names %v", label, s.N, s.D, s.Classes, s.ClassNames)
				}
				if !strings.Contains(s.Layout, "scikit-learn layout") || !strings.Contains(s.Layout, fmt.Sprintf("label column %d", tc.d)) {
					t.Errorf("layout %q", s.Layout)
				}
				if err := s.Validate(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	// iris row 0 is 5.1,3.5,1.4,0.2 -> class 0.
	s, _ := LoadCSV(sklearnFile("iris.csv"), CSVOptions{})
	if fmt.Sprint(s.X[:4]) != "[5.1 3.5 1.4 0.2]" || s.Y[0] != 0 || s.Y[149] != 2 {
		t.Errorf("iris rows: %v, labels %d %d", s.X[:4], s.Y[0], s.Y[149])
	}
	// A truncated file contradicts its header.
	b, _ := os.ReadFile(sklearnFile("iris.csv"))
	lines := strings.SplitAfter(string(b), "\n")
	cut := writeFile(t, "iris-cut.csv", strings.Join(lines[:100], ""))
	if _, err := LoadCSV(cut, CSVOptions{}); err == nil || !strings.Contains(err.Error(), "header says 150 rows, the file has 99") {
		t.Errorf("truncated iris: %v", err)
	}
	// The headerless digits file: --label last (column 0 is a pixel).
	d, err := LoadCSV(sklearnFile("digits.csv.gz"), CSVOptions{Label: "last"})
	if err != nil || d.N != 1797 || d.D != 64 || d.Classes != 10 {
		t.Fatalf("digits: %+v %v", d, err)
	}
}

// TestLabelSpecs: a label by name, index, negative index or "last"; with a
// header, a name wins over the index reading (and says so); without one a
// number is an index.
func TestLabelSpecs(t *testing.T) {
	named := writeFile(t, "n.csv", "a,4,b,c,label\n1,2,3,4,0\n5,6,7,8,1\n")
	for _, tc := range []struct {
		spec string
		col  int
		note string
	}{
		{"label", 4, ""}, {"", 4, "found by its name"}, {"last", 4, ""}, {"-1", 4, ""}, {"-5", 0, ""}, {"0", 0, ""},
		{"4", 1, `"4" is the header field of that name, not column index 4`},
	} {
		s, err := LoadCSV(named, CSVOptions{Label: tc.spec})
		if err != nil {
			t.Errorf("--label %q: %v", tc.spec, err)
			continue
		}
		if s.LabelColumns[0] != tc.col || !strings.Contains(s.Layout, tc.note) {
			t.Errorf("--label %q: column %d (%s), want %d", tc.spec, s.LabelColumns[0], s.Layout, tc.col)
		}
		if tc.col == 4 && fmt.Sprint(s.FeatureNames) != "[a 4 b c]" {
			t.Errorf("feature names %v", s.FeatureNames)
		}
	}
	bare := writeFile(t, "b.csv", "1,2,0\n3,4,1\n")
	for spec, col := range map[string]int{"-1": 2, "last": 2, "2": 2, "0": 0, "-3": 0} {
		s, err := LoadCSV(bare, CSVOptions{Label: spec})
		if err != nil || s.LabelColumns[0] != col || s.FeatureNames != nil {
			t.Errorf("no header, --label %q: %+v %v", spec, s, err)
		}
	}
	for spec, want := range map[string]string{"-4": "index -4 outside [-3, 3)", "3": "index 3 outside", "y": `label column "y" not in header`} {
		if _, err := LoadCSV(bare, CSVOptions{Label: spec}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--label %q: %v, want %q", spec, err, want)
		}
	}
}

// TestGzipAndBOM reproduces issue 12: a .csv.gz file was parsed as text
// ("bare \" in non-quoted-field") and a UTF-8 BOM ate the first row (or
// the first header name).
func TestGzipAndBOM(t *testing.T) {
	plain := "label,a,b\n0,1,2\n1,3,4\n"
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write([]byte("\xEF\xBB\xBF" + plain))
	zw.Close()
	for name, content := range map[string][]byte{"gz.csv.gz": z.Bytes(), "bom.csv": []byte("\xEF\xBB\xBF" + plain), "gz-named.txt": z.Bytes()} {
		s, err := LoadCSV(writeFile(t, name, string(content)), CSVOptions{})
		if err != nil || s.N != 2 || fmt.Sprint(s.Y) != "[0 1]" || fmt.Sprint(s.FeatureNames) != "[a b]" {
			t.Errorf("%s: %+v %v", name, s, err)
		}
	}
	// A headerless file with a BOM keeps its first row.
	s, err := LoadCSV(writeFile(t, "bom2.csv", "\xEF\xBB\xBF1,5\n0,6\n"), CSVOptions{})
	if err != nil || s.N != 2 || s.Y[0] != 1 {
		t.Errorf("BOM, no header: %+v %v", s, err)
	}
}

// TestLabelSpellings reproduces issue 13, item 9: "1" and "1.0" in one
// label column became two classes. Mixed spellings are refused; labels
// written consistently as "1.0" are integers; numbers that are not
// integers (a feature column taken for the label) are refused.
func TestLabelSpellings(t *testing.T) {
	for content, want := range map[string]string{
		"1,5\n1.0,6\n0,7\n": `label "1.0" is label "1" of line 1 written another way`,
		"01,5\n1,6\n":       `label "1" is label "01" of line 1 written another way`,
		"4.3,5\n4.4,6\n":    `label "4.3" is not an integer: a column of measurements is no label column`,
	} {
		if _, err := LoadCSV(writeFile(t, "l.csv", content), CSVOptions{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", content, err, want)
		}
	}
	s, err := LoadCSV(writeFile(t, "f.csv", "1.0,5\n0.0,6\n2.0,7\n"), CSVOptions{})
	if err != nil || fmt.Sprint(s.Y) != "[1 0 2]" || s.Classes != 3 || s.ClassNames != nil {
		t.Errorf("labels written 1.0: %+v %v", s, err)
	}
}

// TestCSVLimits reproduces issue 13, item 4: a CSV line with 50M fields took
// 4 GB before its error, and a 100 MB field was quoted whole in a
// 100M-character error line. A record beyond MaxCSVRecordBytes is refused
// naming its line, with little memory; a long bad value is quoted short.
func TestCSVLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: writes a 20 MB line")
	}
	var b bytes.Buffer
	b.WriteString("0,1\n1,")
	b.WriteString(strings.Repeat("1,", 10<<20)) // 10M fields, 20 MB
	b.WriteString("1\n")
	p := writeFile(t, "wide.csv", b.String())
	b = bytes.Buffer{}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := LoadCSV(p, CSVOptions{})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), p+":line 2: a record longer than") {
		t.Fatalf("wide line: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 128<<20 { // it was 4 GB for 50M fields
		t.Errorf("refusing a 20 MB line allocated %d MB", grew>>20)
	}
	huge := strings.Repeat("x", 512<<10) // a 512 kB field, under the record limit
	p = writeFile(t, "field.csv", "0,1\n1,"+huge+"\n")
	_, err = LoadCSV(p, CSVOptions{})
	if err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), "bad number") || !strings.Contains(err.Error(), "(524288 bytes)") {
		t.Errorf("a 512 kB bad field: %d-byte error %.200q", len(err.Error()), err)
	}
	// A quote left open swallows the file: refused at the limit.
	p = writeFile(t, "open.csv", "0,1\n1,\"2\n"+strings.Repeat("3,4\n", 3<<20))
	if _, err := LoadCSV(p, CSVOptions{}); err == nil || !strings.Contains(err.Error(), "a quote left open") {
		t.Errorf("open quote: %v", err)
	}
	old := MaxMemory
	MaxMemory = 64
	defer func() { MaxMemory = old }()
	if _, err := LoadCSV(sklearnFile("iris.csv"), CSVOptions{}); err == nil || !strings.Contains(err.Error(), "outgrows the memory available") {
		t.Errorf("memory budget: %v", err)
	}
}

// TestFIFOInput reproduces issue 13, item 5 for data files: a FIFO with no
// writer reads as empty at once (it used to block forever); one with a
// writer is read as a stream.
func TestFIFOInput(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "in.csv")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := LoadCSV(fifo, CSVOptions{}); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "empty file") {
			t.Errorf("FIFO without a writer: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LoadCSV blocked on a FIFO without a writer")
	}
	go func() { _, err := ReadIDX(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "empty file") {
			t.Errorf("IDX FIFO without a writer: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadIDX blocked on a FIFO without a writer")
	}
	go func() {
		s, err := LoadCSV(fifo, CSVOptions{})
		if err == nil && s.N != 2 {
			err = fmt.Errorf("%d rows", s.N)
		}
		done <- err
	}()
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "0,1\n1,2\n")
	w.Close()
	if err := <-done; err != nil {
		t.Errorf("FIFO with a writer: %v", err)
	}
}

// gzipIDX writes a gzip'd IDX file with header dims and payloadBytes zero
// bytes of payload.
func gzipIDX(t *testing.T, name string, typ IDXType, dims []int, payloadBytes int) string {
	t.Helper()
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	h := []byte{0, 0, byte(typ), byte(len(dims))}
	for _, d := range dims {
		h = binary.BigEndian.AppendUint32(h, uint32(d))
	}
	zw.Write(h)
	zeros := make([]byte, 1<<20)
	for left := payloadBytes; left > 0; left -= len(zeros) {
		zw.Write(zeros[:min(left, len(zeros))])
	}
	zw.Close()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestIDXHeadersCheckedBeforeInflating reproduces issue 13, item 4: a 4 MB
// gzip'd IDX declaring 1 x 65535 x 65535 images grew to 8.2 GB before
// "image shapes differ"; a label file declaring 2^32-1 labels to 8.3 GB.
// The sizes are in the headers: a declared payload a gzip file of its size
// cannot inflate to is refused at once, and the four files of a directory
// are checked against each other before any payload is read.
func TestIDXHeadersCheckedBeforeInflating(t *testing.T) {
	bomb := gzipIDX(t, "bomb-idx3-ubyte.gz", IDXUint8, []int{1, 65535, 65535}, 4<<20)
	labels := gzipIDX(t, "labels-idx1-ubyte.gz", IDXUint8, []int{1<<32 - 1}, 1<<20)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for p, want := range map[string]string{bomb: "inflates to at most", labels: "inflates to at most"} {
		if _, err := ReadIDX(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", filepath.Base(p), err)
		}
	}
	// A directory whose test images have another shape: refused from the
	// headers, with the test file a real (honest) 1 x 4000 x 4000 stream.
	dir := t.TempDir()
	link := func(src, name string) {
		b, _ := os.ReadFile(src)
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	link(gzipIDX(t, "a", IDXUint8, []int{2, 28, 28}, 2*784), "train-images-idx3-ubyte.gz")
	link(gzipIDX(t, "b", IDXUint8, []int{2}, 2), "train-labels-idx1-ubyte.gz")
	link(gzipIDX(t, "c", IDXUint8, []int{1, 4000, 4000}, 4000*4000), "t10k-images-idx3-ubyte.gz")
	link(gzipIDX(t, "d", IDXUint8, []int{1}, 1), "t10k-labels-idx1-ubyte.gz")
	if _, _, err := LoadIDXDir(dir); err == nil || !strings.Contains(err.Error(), "image shapes differ") {
		t.Errorf("shapes: %v", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 48<<20 {
		t.Errorf("refusing from the headers allocated %d MB", grew>>20)
	}
	old := MaxMemory
	MaxMemory = 1000
	defer func() { MaxMemory = old }()
	mn := t.TempDir()
	link2 := func(src, name string) {
		b, _ := os.ReadFile(src)
		os.WriteFile(filepath.Join(mn, name), b, 0o644)
	}
	link2(gzipIDX(t, "a", IDXUint8, []int{20, 28, 28}, 20*784), "train-images-idx3-ubyte.gz")
	link2(gzipIDX(t, "b", IDXUint8, []int{20}, 20), "train-labels-idx1-ubyte.gz")
	link2(gzipIDX(t, "c", IDXUint8, []int{2, 28, 28}, 2*784), "t10k-images-idx3-ubyte.gz")
	link2(gzipIDX(t, "d", IDXUint8, []int{2}, 2), "t10k-labels-idx1-ubyte.gz")
	if _, _, err := LoadIDXDir(mn); err == nil || !strings.Contains(err.Error(), "bytes of memory") {
		t.Errorf("memory: %v", err)
	}
}
