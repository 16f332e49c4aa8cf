package dataset

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// HeaderMode says whether the first row of a CSV file names the columns.
type HeaderMode int

const (
	// HeaderAuto treats the first row as a header when it has a field that
	// is not a number in a column whose second-row value is one (a string
	// label column is text in every row, so it alone proves nothing), or,
	// in a one-row file, when no field is a number. A label column given by
	// name implies a header.
	HeaderAuto HeaderMode = iota
	HeaderYes
	HeaderNo
)

// CSVOptions configures LoadCSV. The zero value reads a comma-separated
// file whose first column is the label and whose other columns are numeric
// features, detecting a header row.
type CSVOptions struct {
	// Label selects the label column: a header name, or a 0-based column
	// index written as a decimal ("0", "4"). Empty means column 0. A name
	// that matches a header field wins over the index reading.
	Label string
	// LabelColumns selects several label columns (each as in Label) for a
	// joint answer; the set then has Labels and VarClasses (and Y, Classes
	// as usual when there is exactly one). Overrides Label when non-empty.
	LabelColumns []string
	// Header says whether the first row is a header (default HeaderAuto).
	Header HeaderMode
	// Comma is the field separator; 0 means ','.
	Comma rune
	// Comment, if not 0, starts comment lines that are skipped.
	Comment rune
	// Name names the set; empty means the file's base name.
	Name string
}

// LoadCSV reads a labelled data set from a CSV file. Every column that is
// not a label column is a feature and must hold finite numbers. Labels may
// be non-negative integers (class = the integer) or strings (classes are the
// distinct strings in sorted order, kept in ClassNames / VarClassNames).
// Errors name file:line:column (column counts fields from 1) and the bad
// value.
func LoadCSV(path string, opts CSVOptions) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if opts.Name == "" {
		opts.Name = filepath.Base(path)
	}
	return DecodeCSV(f, path, opts)
}

// DecodeCSV is LoadCSV on a stream; name is used in error messages.
func DecodeCSV(r io.Reader, name string, opts CSVOptions) (*Set, error) {
	cr := csv.NewReader(r)
	if opts.Comma != 0 {
		cr.Comma = opts.Comma
	}
	cr.Comment = opts.Comment
	cr.FieldsPerRecord = -1 // ragged rows are reported below, with both counts
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = false

	type row struct {
		fields []string
		line   int
	}
	read := func() (row, error) {
		rec, err := cr.Read()
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return row{}, fmt.Errorf("%s:%d:%d: %v", name, pe.Line, pe.Column, pe.Err)
			}
			if err == io.EOF {
				return row{}, err
			}
			return row{}, fmt.Errorf("%s: %v", name, err)
		}
		line, _ := cr.FieldPos(0)
		return row{rec, line}, nil
	}

	first, err := read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty file, no CSV rows", name)
	}
	if err != nil {
		return nil, err
	}
	second, err := read()
	if err != nil && err != io.EOF {
		return nil, err
	}
	haveSecond := err == nil

	specs := opts.LabelColumns
	multi := len(specs) > 0
	if !multi {
		specs = []string{opts.Label}
	}

	header := false
	switch opts.Header {
	case HeaderYes:
		header = true
	case HeaderNo:
	case HeaderAuto:
		header = detectHeader(first.fields, second.fields, haveSecond)
		for _, s := range specs {
			if s != "" && !isIndex(s) {
				header = true // only a header can supply names
			}
		}
	default:
		return nil, fmt.Errorf("%s: unknown header mode %d", name, opts.Header)
	}

	ncols := len(first.fields)
	var colNames []string
	if header {
		colNames = first.fields
	}
	labelCols := make([]int, len(specs))
	isLabel := make([]bool, ncols)
	for v, s := range specs {
		c, err := resolveColumn(s, colNames, ncols)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		if isLabel[c] {
			return nil, fmt.Errorf("%s: label column %q selected twice", name, s)
		}
		isLabel[c] = true
		labelCols[v] = c
	}
	d := ncols - len(labelCols)
	if d == 0 {
		return nil, fmt.Errorf("%s: no feature columns: all %d columns are labels", name, ncols)
	}
	colDesc := func(c int) string {
		if colNames != nil {
			return fmt.Sprintf(" (column %q)", colNames[c])
		}
		return ""
	}

	var x []float32
	rawLabels := make([][]string, len(labelCols)) // per variable, per row
	labelLines := []int{}
	n := 0
	add := func(r row) error {
		if len(r.fields) != ncols {
			return fmt.Errorf("%s:%d: row has %d fields, expected %d like line %d", name, r.line, len(r.fields), ncols, first.line)
		}
		for c, s := range r.fields {
			if isLabel[c] {
				continue
			}
			t := strings.TrimSpace(s)
			v, err := strconv.ParseFloat(t, 32)
			if err != nil && !errors.Is(err, strconv.ErrRange) || t == "" {
				return fmt.Errorf("%s:%d:%d%s: bad number %q", name, r.line, c+1, colDesc(c), s)
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("%s:%d:%d%s: value %q is not a finite float32", name, r.line, c+1, colDesc(c), s)
			}
			x = append(x, float32(v))
		}
		for v, c := range labelCols {
			t := strings.TrimSpace(r.fields[c])
			if t == "" {
				return fmt.Errorf("%s:%d:%d%s: empty label", name, r.line, c+1, colDesc(c))
			}
			rawLabels[v] = append(rawLabels[v], t)
		}
		labelLines = append(labelLines, r.line)
		n++
		return nil
	}
	if !header {
		if err := add(first); err != nil {
			return nil, err
		}
	}
	if haveSecond {
		if err := add(second); err != nil {
			return nil, err
		}
		for {
			r, err := read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			if err := add(r); err != nil {
				return nil, err
			}
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: header only, no data rows", name)
	}

	s := &Set{Name: opts.Name, X: x, N: n, D: d, Shape: []int{d}}
	if s.Name == "" {
		s.Name = name
	}
	nv := len(labelCols)
	ids := make([][]int32, nv)
	varClasses := make([]int, nv)
	varClassNames := make([][]string, nv)
	varNames := make([]string, nv)
	for v, c := range labelCols {
		varNames[v] = strconv.Itoa(c)
		if colNames != nil {
			varNames[v] = colNames[c]
		}
		var err error
		ids[v], varClasses[v], varClassNames[v], err = encodeLabels(rawLabels[v], labelLines, name, c, colDesc(c))
		if err != nil {
			return nil, err
		}
	}
	if nv == 1 {
		s.Y, s.Classes, s.ClassNames = ids[0], varClasses[0], varClassNames[0]
	}
	if multi {
		s.Labels = make([][]int32, n)
		flat := make([]int32, n*nv) // one backing array, not n small ones
		for i := range n {
			for v := range nv {
				flat[i*nv+v] = ids[v][i]
			}
			s.Labels[i] = flat[i*nv : (i+1)*nv : (i+1)*nv]
		}
		s.VarClasses, s.VarNames = varClasses, varNames
		if slices.ContainsFunc(varClassNames, func(a []string) bool { return a != nil }) {
			s.VarClassNames = varClassNames
		}
	}
	return s, nil
}

// encodeLabels turns one label column into class ids: integers when every
// value is a non-negative integer, otherwise the sorted distinct strings.
func encodeLabels(raw []string, lines []int, name string, col int, desc string) ([]int32, int, []string, error) {
	ids := make([]int32, len(raw))
	allInt := true
	for _, t := range raw {
		if _, err := strconv.ParseInt(t, 10, 64); err != nil {
			allInt = false
			break
		}
	}
	if allInt {
		classes := 2
		for i, t := range raw {
			v, _ := strconv.ParseInt(t, 10, 64)
			if v < 0 || v >= MaxClasses {
				return nil, 0, nil, fmt.Errorf("%s:%d:%d%s: label %s outside [0, %d)", name, lines[i], col+1, desc, t, MaxClasses)
			}
			ids[i] = int32(v)
			classes = max(classes, int(v)+1)
		}
		return ids, classes, nil, nil
	}
	seen := map[string]int32{}
	for _, t := range raw {
		seen[t] = 0
	}
	if len(seen) > MaxClasses {
		return nil, 0, nil, fmt.Errorf("%s: column %d%s has %d distinct labels, more than %d", name, col+1, desc, len(seen), MaxClasses)
	}
	names := make([]string, 0, len(seen))
	for k := range seen {
		names = append(names, k)
	}
	slices.Sort(names)
	for i, k := range names {
		seen[k] = int32(i)
	}
	for i, t := range raw {
		ids[i] = seen[t]
	}
	return ids, max(len(names), 2), names, nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return err == nil || errors.Is(err, strconv.ErrRange)
}

func isIndex(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

func detectHeader(first, second []string, haveSecond bool) bool {
	if !haveSecond {
		for _, f := range first {
			if isNumber(f) {
				return false
			}
		}
		return true
	}
	for c, f := range first {
		if !isNumber(f) && c < len(second) && isNumber(second[c]) {
			return true
		}
	}
	return false
}

// resolveColumn finds the column a label spec names: a header name first,
// then a 0-based index.
func resolveColumn(spec string, header []string, ncols int) (int, error) {
	if spec == "" {
		return 0, nil
	}
	if i := slices.Index(header, spec); i >= 0 {
		return i, nil
	}
	if i, err := strconv.Atoi(spec); err == nil {
		if i < 0 || i >= ncols {
			return 0, fmt.Errorf("label column index %d outside [0, %d)", i, ncols)
		}
		return i, nil
	}
	if header == nil {
		return 0, fmt.Errorf("label column %q: no header row to find it in", spec)
	}
	return 0, fmt.Errorf("label column %q not in header %q", spec, header)
}
