package dataset

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// randomCSV writes n rows of d random features with an integer label in
// column labelCol, with or without a header, and returns the path and the
// expected features and labels.
func randomCSV(t *testing.T, rng *rand.Rand, n, d, labelCol, classes int, header bool) (string, []float32, []int32) {
	var b strings.Builder
	ncols := d + 1
	if header {
		for c := range ncols {
			if c > 0 {
				b.WriteByte(',')
			}
			if c == labelCol {
				b.WriteString("target")
			} else {
				fmt.Fprintf(&b, "f%d", c)
			}
		}
		b.WriteByte('\n')
	}
	x := make([]float32, 0, n*d)
	y := make([]int32, n)
	for i := range n {
		y[i] = int32(rng.IntN(classes))
		for c := range ncols {
			if c > 0 {
				b.WriteByte(',')
			}
			if c == labelCol {
				fmt.Fprint(&b, y[i])
				continue
			}
			v := float32(rng.NormFloat64() * 100)
			x = append(x, v)
			b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
		}
		b.WriteByte('\n')
	}
	return writeFile(t, "data.csv", b.String()), x, y
}

func TestLoadCSVRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 7, 33, 257} {
		for _, d := range []int{1, 3, 31} {
			for _, header := range []bool{false, true} {
				labelCol := rng.IntN(d + 1)
				p, x, y := randomCSV(t, rng, n, d, labelCol, 5, header)
				opts := CSVOptions{Label: strconv.Itoa(labelCol)}
				if header && rng.IntN(2) == 0 {
					opts.Label = "target"
				}
				s, err := LoadCSV(p, opts)
				if err != nil {
					t.Fatalf("n=%d d=%d header=%v label=%q: %v", n, d, header, opts.Label, err)
				}
				if err := s.Validate(); err != nil {
					t.Fatal(err)
				}
				if s.N != n || s.D != d || len(s.Shape) != 1 || s.Shape[0] != d {
					t.Fatalf("n=%d d=%d header=%v: got N=%d D=%d Shape=%v", n, d, header, s.N, s.D, s.Shape)
				}
				maxY := int32(1)
				for i := range y {
					maxY = max(maxY, y[i])
					if s.Y[i] != y[i] {
						t.Fatalf("row %d: label %d, want %d", i, s.Y[i], y[i])
					}
				}
				if s.Classes != int(maxY)+1 || s.ClassNames != nil {
					t.Errorf("Classes %d (names %v), want %d", s.Classes, s.ClassNames, maxY+1)
				}
				for i := range x {
					if s.X[i] != x[i] {
						t.Fatalf("feature %d: %v, want %v", i, s.X[i], x[i])
					}
				}
			}
		}
	}
}

func TestLoadCSVStringLabels(t *testing.T) {
	s, err := LoadCSV(fixture("csv", "species.csv"), CSVOptions{Label: "species"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(s.ClassNames) != "[setosa versicolor virginica]" || s.Classes != 3 ||
		fmt.Sprint(s.Y) != "[0 1 2 0]" || s.D != 2 || s.X[2] != 7.0 {
		t.Errorf("got names %v classes %d Y %v D %d X %v", s.ClassNames, s.Classes, s.Y, s.D, s.X)
	}
	// Same file, label by index; header detected from the numeric columns.
	s2, err := LoadCSV(fixture("csv", "species.csv"), CSVOptions{Label: "2"})
	if err != nil || fmt.Sprint(s2.Y) != fmt.Sprint(s.Y) || s2.N != 4 {
		t.Errorf("by index: %v %v", s2, err)
	}
	// A single class is one class (training refuses it; an evaluation
	// file may have one).
	p := writeFile(t, "one.csv", "cat,1\ncat,2\n")
	s3, err := LoadCSV(p, CSVOptions{})
	if err != nil || s3.Classes != 1 || len(s3.ClassNames) != 1 || s3.N != 2 {
		t.Errorf("one class: %+v %v", s3, err)
	}
	// Without --label, a header column named like a label is the label.
	s4, err := LoadCSV(fixture("csv", "species.csv"), CSVOptions{})
	if err != nil || fmt.Sprint(s4.Y) != fmt.Sprint(s.Y) || !strings.Contains(s4.Layout, `label column 2 "species" (found by its name)`) {
		t.Errorf("default label by name: %+v %v", s4, err)
	}
}

func TestLoadCSVHeaderModes(t *testing.T) {
	// "1,2,3" looks numeric, but the caller says it is a header.
	p := writeFile(t, "h.csv", "1,2,3\n0,5,6\n1,7,8\n")
	s, err := LoadCSV(p, CSVOptions{Header: HeaderYes})
	if err != nil || s.N != 2 {
		t.Fatalf("HeaderYes: %+v %v", s, err)
	}
	s, err = LoadCSV(p, CSVOptions{})
	if err != nil || s.N != 3 {
		t.Fatalf("auto: %+v %v", s, err)
	}
	// A header forced off makes its names bad numbers.
	p = writeFile(t, "h2.csv", "y,a\n0,1\n")
	_, err = LoadCSV(p, CSVOptions{Header: HeaderNo})
	if err == nil || !strings.Contains(err.Error(), p+":1:2: bad number \"a\"") {
		t.Errorf("HeaderNo: %v", err)
	}
	// Semicolons, comments, spaces after separators.
	p = writeFile(t, "semi.csv", "# a comment\ny; a; b\n1; 2.5; -3\n0; 1e3; 4\n")
	s, err = LoadCSV(p, CSVOptions{Comma: ';', Comment: '#', Label: "y"})
	if err != nil || s.N != 2 || s.X[1] != -3 || s.X[2] != 1000 || fmt.Sprint(s.Y) != "[1 0]" {
		t.Errorf("semicolons: %+v %v", s, err)
	}
}

func TestLoadCSVMultiLabel(t *testing.T) {
	p := writeFile(t, "m.csv", "colour,x,size,z\nred,1,3,2\nblue,4,0,5\nred,6,1,7\n")
	s, err := LoadCSV(p, CSVOptions{LabelColumns: []string{"colour", "size"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Y != nil || s.D != 2 || fmt.Sprint(s.X) != "[1 2 4 5 6 7]" ||
		fmt.Sprint(s.Labels) != "[[1 3] [0 0] [1 1]]" || fmt.Sprint(s.VarClasses) != "[2 4]" ||
		fmt.Sprint(s.VarNames) != "[colour size]" || fmt.Sprint(s.VarClassNames) != "[[blue red] []]" {
		t.Errorf("got %+v", s)
	}
	// One label column through LabelColumns: Y as usual, Labels as well.
	p = writeFile(t, "m1.csv", "x,size,z\n1,3,2\n4,0,5\n6,1,7\n")
	s, err = LoadCSV(p, CSVOptions{LabelColumns: []string{"1"}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(s.Y) != "[3 0 1]" || s.Classes != 4 || len(s.Labels) != 3 || fmt.Sprint(s.X) != "[1 2 4 5 6 7]" {
		t.Errorf("single via LabelColumns: %+v", s)
	}
	sub, err := s.Select([]int{2, 0})
	if err != nil || fmt.Sprint(sub.Labels) != "[[1] [3]]" {
		t.Errorf("Select keeps Labels: %+v %v", sub, err)
	}
}

func TestLoadCSVErrors(t *testing.T) {
	cases := []struct {
		file string
		opts CSVOptions
		want string
	}{
		{fixture("csv", "empty.csv"), CSVOptions{}, "empty file"},
		{fixture("csv", "header-only.csv"), CSVOptions{}, "no data rows"},
		{fixture("csv", "ragged.csv"), CSVOptions{}, ":3: row has 3 fields, expected 4"},
		{fixture("csv", "bad-number.csv"), CSVOptions{}, `:3:3 (column "x2"): bad number "abc"`},
		{fixture("csv", "bad-quote.csv"), CSVOptions{}, ":2:"},
		{writeFile(t, "colour.csv", "width,height,colour\n1,2,red\n"), CSVOptions{}, `:2:3 (column "colour"): bad number "red"`},
		{writeFile(t, "two.csv", "label,x,target\n1,2,0\n"), CSVOptions{}, `columns "label" and "target" could both be the label`},
		{fixture("csv", "species.csv"), CSVOptions{Label: "colour"}, `label column "colour" not in header`},
		{fixture("csv", "species.csv"), CSVOptions{Label: "9"}, "index 9 outside [-3, 3)"},
		{fixture("csv", "species.csv"), CSVOptions{LabelColumns: []string{"species", "2"}}, "selected twice"},
		{fixture("csv", "species.csv"), CSVOptions{LabelColumns: []string{"0", "1", "2"}}, "no feature columns"},
		{writeFile(t, "neg.csv", "-1,2\n"), CSVOptions{}, `:1:1: label "-1" outside`},
		{writeFile(t, "big.csv", "0,2\n99999999,3\n"), CSVOptions{}, `:2:1: label "99999999" outside`},
		{writeFile(t, "nan.csv", "0,NaN\n"), CSVOptions{}, `:1:2: value "NaN" is not a finite`},
		{writeFile(t, "inf.csv", "0,1e39\n"), CSVOptions{}, `:1:2: value "1e39" is not a finite`},
		{writeFile(t, "empty-field.csv", "0,1\n1,\n"), CSVOptions{}, `:2:2: bad number ""`},
		{writeFile(t, "empty-label.csv", "0,1\n ,2\n"), CSVOptions{}, `:2:1: empty label`},
		{writeFile(t, "noheader.csv", "0,1\n"), CSVOptions{Label: "y", Header: HeaderNo}, "no header row"},
		{filepath.Join(t.TempDir(), "missing.csv"), CSVOptions{}, "missing.csv"},
	}
	for _, c := range cases {
		_, err := LoadCSV(c.file, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s %+v: error %v, want the path and %q", filepath.Base(c.file), c.opts, err, c.want)
		}
	}
}
