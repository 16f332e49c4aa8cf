package dataset

import (
	"bufio"

	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/gputrain/gputrain/internal/clip"
)

// Reading unlabelled inputs for a trained model (gputrain predict): a CSV
// file of feature rows, or one in the training file's own layout, label
// column and all.

// InputLayout describes the CSV file a model was trained on, so that an
// input file can be read the way the model expects.
type InputLayout struct {
	// Features names the model's inputs in order (nil when the training
	// file had no header).
	Features []string
	// Labels are the names (with a header) of the training file's label
	// columns; LabelIndex their 0-based positions in it, and Columns its
	// number of columns (0 when the model was not trained on CSV).
	Labels     []string
	LabelIndex []int
	Columns    int
	// D is the number of inputs the model takes.
	D int
}

// ReadInputs reads a file of inputs for a model trained on the layout l:
// an IDX file (returned as is, for the caller to match its shape to the
// model's) or a CSV file (read by LoadCSVInputs' rules). The content
// decides, not the name, and the file is opened once, so a FIFO or pipe
// works too: "x.csv.gz" and "images-idx3-ubyte.gz" are each read for what
// they are.
func ReadInputs(path string, l InputLayout) (idx *IDX, x []float32, n int, note string, err error) {
	in, err := openInput(path)
	if err != nil {
		return nil, nil, 0, "", err
	}
	defer in.Close()
	br := bufio.NewReader(in.r)
	in.r = br
	head, _ := br.Peek(4)
	if len(head) == 4 && head[0] == 0 && head[1] == 0 && IDXType(head[2]).Size() > 0 && head[3] > 0 {
		h, err := readIDXHeader(in, path)
		if err != nil {
			return nil, nil, 0, "", err
		}
		if err := checkIDXMemory(h.need+4*h.count, path); err != nil {
			return nil, nil, 0, "", err
		}
		idx, err := h.readPayload()
		return idx, nil, 0, "", err
	}
	x, n, note, err = decodeCSVInputs(in, path, l)
	return nil, x, n, note, err
}

// LoadCSVInputs reads the rows of a CSV file (plain or gzip'd, with or
// without a BOM) as inputs for a model trained on the layout l:
//
//   - a header of column names (when the model has feature names) is
//     matched by name: columns may come in any order, the label columns
//     (by name) are dropped, and a column the model does not know, or a
//     feature missing, is refused;
//   - scikit-learn's first line is skipped, and the last column dropped
//     when it is the label;
//   - without a header, a row holds the model's D features, or the
//     training file's Columns fields from which the label columns are
//     dropped; any other width is refused.
//
// note says how the columns were read, for the command's header line.
func LoadCSVInputs(path string, l InputLayout) (x []float32, n int, note string, err error) {
	in, err := openInput(path)
	if err != nil {
		return nil, 0, "", err
	}
	defer in.Close()
	return decodeCSVInputs(in, path, l)
}

func decodeCSVInputs(in *input, path string, l InputLayout) (x []float32, n int, note string, err error) {
	lim := &recordLimiter{r: stripBOM(in), line: 1, start: true}
	cr := csv.NewReader(bufio.NewReader(lim))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	if strings.HasSuffix(strings.TrimSuffix(strings.ToLower(path), ".gz"), ".tsv") {
		cr.Comma = '\t'
	}
	read := func() ([]string, int, error) {
		rec, err := cr.Read()
		if err != nil {
			var pe *csv.ParseError
			var tl *errRecordTooLong
			switch {
			case errors.As(err, &tl):
				return nil, 0, fmt.Errorf("%s:%v", path, tl)
			case errors.As(err, &pe):
				return nil, 0, fmt.Errorf("%s:%d:%d: %v", path, pe.Line, pe.Column, pe.Err)
			case err == io.EOF:
				return nil, 0, err
			}
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := cr.FieldPos(0)
		return rec, line, nil
	}
	first, firstLine, err := read()
	if err == io.EOF {
		return nil, 0, "", fmt.Errorf("%s: no inputs", path)
	}
	if err != nil {
		return nil, 0, "", err
	}
	second, _, err2 := read()
	if err2 != nil && err2 != io.EOF {
		return nil, 0, "", err2
	}
	rows := [][]string{}
	lines := []int{}
	numeric := !slices.ContainsFunc(first, func(f string) bool { return !isNumber(f) })
	// pick maps a row to the model's inputs; nil keeps it as it is.
	var pick []int
	switch sk, isSk := parseSklearn(first, second, err2 == nil); {
	case isSk:
		if sk.features != l.D {
			return nil, 0, "", fmt.Errorf("%s: a scikit-learn file of %d features; the model takes %d", path, sk.features, l.D)
		}
		pick, note = identity(l.D), "scikit-learn layout: its label (last) column dropped"
	case !numeric && l.Features != nil:
		names := make([]string, len(first))
		for i, f := range first {
			names[i] = strings.TrimSpace(f)
		}
		// Drop the training file's label columns, by name.
		var have []string
		var at []int
		dropped := []string{}
		for i, nm := range names {
			if slices.Contains(l.Labels, nm) && !slices.Contains(l.Features, nm) {
				dropped = append(dropped, nm)
				continue
			}
			have, at = append(have, nm), append(at, i)
		}
		perm, err := matchColumns(path, have, l.Features)
		if err != nil {
			return nil, 0, "", err
		}
		pick = make([]int, len(perm))
		for j, p := range perm {
			pick[j] = at[p]
		}
		note = "columns matched to the model's features by header name"
		if len(dropped) > 0 {
			note += "; label column " + strings.Join(dropped, ", ") + " dropped"
		}
	case !numeric:
		note = "first row taken for a header"
	default:
		rows, lines = append(rows, first), append(lines, firstLine)
	}
	if err2 == nil {
		rows, lines = append(rows, second), append(lines, 0)
	}
	var labelDrop []bool
	if l.Columns > 0 {
		labelDrop = make([]bool, l.Columns)
		for _, i := range l.LabelIndex {
			labelDrop[i] = true
		}
	}
	budget := memoryBudget()
	emit := func(rec []string, line int) error {
		if line == 0 {
			line, _ = cr.FieldPos(0)
		}
		cols := pick
		if cols == nil {
			switch {
			case len(rec) == l.D:
			case l.Columns > 0 && len(rec) == l.Columns && l.Columns != l.D:
				if !strings.Contains(note, "dropped") {
					note = strings.TrimPrefix(note+"; ", "; ") + "the training layout: its label columns dropped"
				}
				for i := range rec {
					if !labelDrop[i] {
						cols = append(cols, i)
					}
				}
			default:
				want := fmt.Sprintf("%d", l.D)
				if l.Columns > 0 && l.Columns != l.D {
					want += fmt.Sprintf(" (or %d, the training file's columns with its label)", l.Columns)
				}
				return fmt.Errorf("%s:%d: %d features; the model takes %s", path, line, len(rec), want)
			}
		}
		if cols != nil && len(rec) <= slices.Max(cols) {
			return fmt.Errorf("%s:%d: %d fields, fewer than the header's", path, line, len(rec))
		}
		if int64(len(x)+l.D)*4 > budget {
			return fmt.Errorf("%s:%d: the inputs outgrow the memory available (%s)", path, line, bytesString(budget))
		}
		for j := 0; j < l.D; j++ {
			c := j
			if cols != nil {
				c = cols[j]
			}
			s := strings.TrimSpace(rec[c])
			v, err := strconv.ParseFloat(s, 32)
			if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("%s:%d:%d: %s is not a finite number", path, line, c+1, clip.Quote(rec[c]))
			}
			x = append(x, float32(v))
		}
		n++
		return nil
	}
	for i, r := range rows {
		if err := emit(r, lines[i]); err != nil {
			return nil, 0, "", err
		}
	}
	if err2 == nil {
		for {
			rec, line, err := read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, 0, "", err
			}
			if err := emit(rec, line); err != nil {
				return nil, 0, "", err
			}
		}
	}
	if n == 0 {
		return nil, 0, "", fmt.Errorf("%s: no inputs", path)
	}
	return x, n, note, nil
}
