package dataset

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gputrain/gputrain/internal/clip"
	"github.com/gputrain/gputrain/internal/sysmem"
)

// HeaderMode says whether the first row of a CSV file names the columns.
type HeaderMode int

const (
	// HeaderAuto recognizes scikit-learn's layout (a first line
	// "n_samples,n_features,class names..." over rows whose last column is
	// the integer label), and otherwise treats the first row as a header
	// when it has a field that is not a number in a column whose
	// second-row value is one (a string label column is text in every row,
	// so it alone proves nothing), or, in a one-row file, when no field is a
	// number. A label column given by name implies a header.
	HeaderAuto HeaderMode = iota
	HeaderYes
	HeaderNo
)

// Limits on one CSV record (a line, or several when a quoted field holds
// newlines): a record beyond them is refused with its line number before
// it is held in memory whole. 1 MiB of text holds some 100,000 features
// written with their full float32 digits, beyond any table a model here
// trains on; a file that breaks the limit is almost certainly not CSV (a
// binary file, a quote left open that swallows the rest of the file). The
// limit also bounds what refusing costs: encoding/csv still splits the
// part it was given, some 50 MB of allocations at most.
const (
	MaxCSVRecordBytes = 1 << 20
	MaxCSVFields      = 1 << 18
)

// CSVOptions configures LoadCSV. The zero value reads a comma-separated
// file, detecting a header row or scikit-learn's layout, whose label is
// the column LabelDefault picks.
type CSVOptions struct {
	// Label selects the label column: a header name; a 0-based column
	// index ("0", "4"), negative counting from the end ("-1" is the last
	// column); or "last". With a header, a name that matches a header field
	// wins over the index reading ("4" is the column named 4 if there is
	// one); without one, a number is always an index. Empty: LabelDefault.
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

// LabelNames are the header names that LabelDefault takes for the label
// column when no Label is given (compared without case).
var LabelNames = []string{"label", "labels", "target", "class", "y", "species", "category", "outcome"}

// LabelDefault is how the label column is chosen when CSVOptions gives
// none; the first that applies:
//
//   - scikit-learn's layout: the last column (its header line names the
//     classes, which become ClassNames);
//   - a header with exactly one column named as in LabelNames: that one;
//   - otherwise column 0.
//
// Set.Layout says which applied.
const LabelDefault = "scikit-learn layout: last column; header naming one of LabelNames: that column; else column 0"

// LoadCSV reads a labelled data set from a CSV file, gzip'd or not (the
// magic bytes decide, not the name), with or without a UTF-8 byte order
// mark. Every column that is not a label column is a feature and must hold
// finite numbers. Labels may be integers 0..K-1 (class = the integer,
// written one way: "1" and "1.0" in one column are refused) or strings
// (classes are the distinct strings in sorted order, kept in ClassNames /
// VarClassNames); numbers that are not integers are refused, since a label
// column of measurements is a wrong column. Errors name file:line:column
// (column counts fields from 1) and the bad value, cut short.
func LoadCSV(path string, opts CSVOptions) (*Set, error) {
	in, err := openInput(path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	if opts.Name == "" {
		opts.Name = filepath.Base(path)
	}
	return decodeCSV(in, path, opts)
}

// DecodeCSV is LoadCSV on a stream (plain or gzip'd); name is used in error
// messages.
func DecodeCSV(r io.Reader, name string, opts CSVOptions) (*Set, error) {
	in, err := newInput(r, -1, name)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	return decodeCSV(in, name, opts)
}

// errRecordTooLong is returned through the csv reader by recordLimiter.
type errRecordTooLong struct{ line int }

func (e *errRecordTooLong) Error() string {
	return fmt.Sprintf("line %d: a record longer than %d bytes (MaxCSVRecordBytes): not a CSV table, or a quote left open", e.line, MaxCSVRecordBytes)
}

// recordLimiter passes bytes through and fails once one record (newlines
// inside double quotes do not end it) exceeds MaxCSVRecordBytes, so the
// csv reader never holds a huge line.
type recordLimiter struct {
	r        io.Reader
	comment  byte
	n        int  // bytes of the current record
	line     int  // 1-based physical line
	inQuote  bool // inside a quoted field
	start    bool // at the start of a record
	skipping bool // in a comment line
}

func (l *recordLimiter) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for i := 0; i < n; i++ {
		c := p[i]
		if l.start && l.comment != 0 && c == l.comment {
			l.skipping = true
		}
		l.start = false
		switch {
		case c == '\n':
			l.line++
			if !l.inQuote {
				l.n, l.start, l.skipping = 0, true, false
				continue
			}
		case c == '"' && !l.skipping:
			l.inQuote = !l.inQuote
		}
		l.n++
		if l.n > MaxCSVRecordBytes {
			return i, &errRecordTooLong{line: l.line}
		}
	}
	return n, err
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// stripBOM drops a UTF-8 byte order mark at the start of r: spreadsheet
// programs write one, and it would otherwise become part of the first
// field (the first header name, or the first row's label).
func stripBOM(r io.Reader) io.Reader {
	head := make([]byte, 3)
	n, err := io.ReadFull(r, head)
	if n == 3 && bytes.Equal(head, utf8BOM) {
		return r
	}
	rest := io.MultiReader(bytes.NewReader(head[:n]), r)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return io.MultiReader(rest, errReader{err})
	}
	return rest
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type csvRow struct {
	fields []string
	line   int
}

// sklearnHeader is scikit-learn's first line: n_samples, n_features, then
// the class names.
type sklearnHeader struct {
	rows, features int
	classNames     []string
}

// parseSklearn recognizes scikit-learn's layout from the first two rows:
// the first starts with two positive integers n and d, the rest of it are
// names (not numbers), and the second row has d+1 fields.
func parseSklearn(first, second []string, haveSecond bool) (sklearnHeader, bool) {
	if len(first) < 2 || !haveSecond {
		return sklearnHeader{}, false
	}
	n, err1 := strconv.Atoi(strings.TrimSpace(first[0]))
	d, err2 := strconv.Atoi(strings.TrimSpace(first[1]))
	if err1 != nil || err2 != nil || n < 1 || d < 1 || len(second) != d+1 {
		return sklearnHeader{}, false
	}
	var names []string
	for _, f := range first[2:] {
		f = strings.TrimSpace(f)
		if f == "" || isNumber(f) {
			return sklearnHeader{}, false
		}
		names = append(names, f)
	}
	return sklearnHeader{rows: n, features: d, classNames: names}, true
}

func decodeCSV(in *input, name string, opts CSVOptions) (*Set, error) {
	lim := &recordLimiter{r: stripBOM(in), line: 1, start: true}
	if opts.Comment > 0 && opts.Comment < 128 {
		lim.comment = byte(opts.Comment)
	}
	cr := csv.NewReader(lim)
	if opts.Comma != 0 {
		cr.Comma = opts.Comma
	}
	cr.Comment = opts.Comment
	cr.FieldsPerRecord = -1 // ragged rows are reported below, with both counts
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = false

	read := func() (csvRow, error) {
		rec, err := cr.Read()
		if err != nil {
			var pe *csv.ParseError
			var tl *errRecordTooLong
			switch {
			case errors.As(err, &tl):
				return csvRow{}, fmt.Errorf("%s:%v", name, tl)
			case errors.As(err, &pe):
				return csvRow{}, fmt.Errorf("%s:%d:%d: %v", name, pe.Line, pe.Column, pe.Err)
			case err == io.EOF:
				return csvRow{}, err
			}
			return csvRow{}, fmt.Errorf("%s: %v", name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) > MaxCSVFields {
			return csvRow{}, fmt.Errorf("%s:%d: %d fields, more than the %d a row may have (MaxCSVFields)", name, line, len(rec), MaxCSVFields)
		}
		return csvRow{rec, line}, nil
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
	var sk sklearnHeader
	sklearn := false
	switch opts.Header {
	case HeaderYes:
		header = true
	case HeaderNo:
	case HeaderAuto:
		if sk, sklearn = parseSklearn(first.fields, second.fields, haveSecond); sklearn {
			header = true
			break
		}
		header = detectHeader(first.fields, second.fields, haveSecond)
		for _, s := range specs {
			if s != "" && !isIndex(s) && s != "last" {
				header = true // only a header can supply names
			}
		}
	default:
		return nil, fmt.Errorf("%s: unknown header mode %d", name, opts.Header)
	}

	ncols := len(first.fields)
	var colNames []string
	layout := "no header row"
	switch {
	case sklearn:
		ncols = sk.features + 1
		layout = fmt.Sprintf("scikit-learn layout (first line %s: %d rows, %d features, %d class names)",
			clip.Quote(strings.Join(first.fields, ",")), sk.rows, sk.features, len(sk.classNames))
	case header:
		colNames = make([]string, ncols)
		for i, f := range first.fields {
			colNames[i] = strings.TrimSpace(f)
		}
		layout = "header row"
	}
	labelCols := make([]int, len(specs))
	isLabel := make([]bool, ncols)
	var notes []string
	for v, s := range specs {
		c, note, err := resolveColumn(s, colNames, ncols, sklearn)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		if note != "" {
			notes = append(notes, note)
		}
		if isLabel[c] {
			return nil, fmt.Errorf("%s: label column %s selected twice", name, clip.Quote(s))
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
			return fmt.Sprintf(" (column %s)", clip.Quote(colNames[c]))
		}
		return ""
	}

	budget := memoryBudget()
	var x []float32
	rawLabels := make([][]string, len(labelCols)) // per variable, per row
	labelLines := []int{}
	n := 0
	expectLine := first.line
	add := func(r csvRow) error {
		if len(r.fields) != ncols {
			return fmt.Errorf("%s:%d: row has %d fields, expected %d like line %d", name, r.line, len(r.fields), ncols, expectLine)
		}
		if int64(len(x)+d)*4 > budget {
			return fmt.Errorf("%s:%d: the data set outgrows the memory available (%s): use a smaller file", name, r.line, bytesString(budget))
		}
		for c, s := range r.fields {
			if isLabel[c] {
				continue
			}
			t := strings.TrimSpace(s)
			v, err := strconv.ParseFloat(t, 32)
			if err != nil && !errors.Is(err, strconv.ErrRange) || t == "" {
				return fmt.Errorf("%s:%d:%d%s: bad number %s", name, r.line, c+1, colDesc(c), clip.Quote(s))
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("%s:%d:%d%s: value %s is not a finite float32", name, r.line, c+1, colDesc(c), clip.Quote(s))
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
	} else if haveSecond {
		expectLine = second.line
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
	if sklearn && n != sk.rows {
		return nil, fmt.Errorf("%s: the scikit-learn header says %d rows, the file has %d (truncated or appended to?)", name, sk.rows, n)
	}

	s := &Set{Name: opts.Name, X: x, N: n, D: d, Shape: []int{d}}
	if s.Name == "" {
		s.Name = name
	}
	if colNames != nil {
		for c, cn := range colNames {
			if !isLabel[c] {
				s.FeatureNames = append(s.FeatureNames, cn)
			}
		}
	}
	nv := len(labelCols)
	ids := make([][]int32, nv)
	varClasses := make([]int, nv)
	varClassNames := make([][]string, nv)
	varNames := make([]string, nv)
	var labelDescs []string
	for v, c := range labelCols {
		varNames[v] = strconv.Itoa(c)
		desc := fmt.Sprintf("column %d", c)
		if colNames != nil {
			varNames[v] = colNames[c]
			desc = fmt.Sprintf("column %d %s", c, clip.Quote(colNames[c]))
		}
		labelDescs = append(labelDescs, desc)
		var err error
		ids[v], varClasses[v], varClassNames[v], err = encodeLabels(rawLabels[v], labelLines, name, c, colDesc(c))
		if err != nil {
			return nil, err
		}
	}
	if sklearn && len(sk.classNames) > 0 && nv == 1 && labelCols[0] == ncols-1 && varClassNames[0] == nil {
		// The header names the classes of the integer labels.
		if varClasses[0] > len(sk.classNames) {
			return nil, fmt.Errorf("%s: label %d, but the scikit-learn header names only %d classes (%s)", name, varClasses[0]-1, len(sk.classNames), clip.String(strings.Join(sk.classNames, ", ")))
		}
		varClasses[0], varClassNames[0] = len(sk.classNames), sk.classNames
	}
	s.Layout = layout + "; label " + strings.Join(labelDescs, ", ")
	if len(notes) > 0 {
		s.Layout += " (" + strings.Join(notes, "; ") + ")"
	}
	s.LabelColumns = labelCols
	if colNames != nil {
		s.LabelNames = slices.Clone(varNames)
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

func bytesString(n int64) string { return sysmem.Bytes(n) }

// encodeLabels turns one label column into class ids: integers when every
// value is a number with an integer value (written one way each), the
// sorted distinct strings when some value is not a number; numbers that
// are not integers are refused.
func encodeLabels(raw []string, lines []int, name string, col int, desc string) ([]int32, int, []string, error) {
	ids := make([]int32, len(raw))
	// Mixed spellings of one number ("1" and "1.0", "01"): two classes for
	// one label, or a label column someone edited by hand. Refused wherever
	// the values are numbers.
	spelling := map[float64]int{} // value -> first row index
	allNumbers := true
	for i, t := range raw {
		v, err := strconv.ParseFloat(t, 64)
		if err != nil {
			allNumbers = false
			continue
		}
		if j, ok := spelling[v]; ok && raw[j] != t {
			return nil, 0, nil, fmt.Errorf("%s:%d:%d%s: label %s is label %s of line %d written another way: write each label one way", name, lines[i], col+1, desc, clip.Quote(t), clip.Quote(raw[j]), lines[j])
		} else if !ok {
			spelling[v] = i
		}
	}
	if allNumbers {
		classes := 0
		for i, t := range raw {
			v, _ := strconv.ParseFloat(t, 64)
			if v != math.Trunc(v) || math.IsInf(v, 0) {
				return nil, 0, nil, fmt.Errorf("%s:%d:%d%s: label %s is not an integer: a column of measurements is no label column; name the label column with --label (a header name, an index, -1 or last)", name, lines[i], col+1, desc, clip.Quote(t))
			}
			if v < 0 || v >= MaxClasses {
				return nil, 0, nil, fmt.Errorf("%s:%d:%d%s: label %s outside [0, %d)", name, lines[i], col+1, desc, clip.Quote(t), MaxClasses)
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
	return ids, len(names), names, nil
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

// resolveColumn finds the column a label spec names (see CSVOptions.Label
// and LabelDefault) and, when the reading is worth saying, a note.
func resolveColumn(spec string, header []string, ncols int, sklearn bool) (int, string, error) {
	if spec == "" {
		switch {
		case sklearn:
			return ncols - 1, "", nil
		case header != nil:
			found := -1
			for i, h := range header {
				if slices.ContainsFunc(LabelNames, func(n string) bool { return strings.EqualFold(n, h) }) {
					if found >= 0 {
						return 0, "", fmt.Errorf("columns %s and %s could both be the label: name it with --label", clip.Quote(header[found]), clip.Quote(h))
					}
					found = i
				}
			}
			if found >= 0 {
				return found, "found by its name", nil
			}
		}
		return 0, "column 0 by default", nil
	}
	if i := slices.Index(header, spec); i >= 0 {
		note := ""
		if j, err := strconv.Atoi(spec); err == nil && j != i {
			note = fmt.Sprintf("%s is the header field of that name, not column index %d", clip.Quote(spec), j)
		}
		return i, note, nil
	}
	if spec == "last" {
		return ncols - 1, "", nil
	}
	if i, err := strconv.Atoi(spec); err == nil {
		j := i
		if i < 0 {
			j = ncols + i
		}
		if j < 0 || j >= ncols {
			return 0, "", fmt.Errorf("label column index %d outside [%d, %d)", i, -ncols, ncols)
		}
		return j, "", nil
	}
	if header == nil {
		return 0, "", fmt.Errorf("label column %s: no header row to find it in (give an index, -1 or last)", clip.Quote(spec))
	}
	return 0, "", fmt.Errorf("label column %s not in header %s", clip.Quote(spec), clip.String(fmt.Sprintf("%q", header)))
}
