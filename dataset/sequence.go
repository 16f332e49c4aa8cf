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

// SequenceSet is a labelled set of sequences: the positions of all
// sequences, one after another, are the rows of Set (a label per
// position), and sequence s is the rows Offsets[s] .. Offsets[s+1]-1.
// Offsets[0] = 0, every sequence has at least one position and the last
// offset is N. IDs, when set, names each sequence (the sequence-id column
// of a CSV file).
type SequenceSet struct {
	*Set
	Offsets []int
	IDs     []string
}

// Len returns the number of sequences.
func (s *SequenceSet) Len() int { return len(s.Offsets) - 1 }

// SeqLen returns the length of sequence i.
func (s *SequenceSet) SeqLen(i int) int { return s.Offsets[i+1] - s.Offsets[i] }

// Validate checks the positions (Set.Validate) and the offsets.
func (s *SequenceSet) Validate() error {
	if s == nil || s.Set == nil {
		return errors.New("sequence set: nil")
	}
	if err := s.Set.Validate(); err != nil {
		return err
	}
	if len(s.Offsets) < 2 || s.Offsets[0] != 0 || s.Offsets[len(s.Offsets)-1] != s.N {
		return fmt.Errorf("%s: offsets must run from 0 to the %d positions over at least one sequence", s.Name, s.N)
	}
	for i := 0; i < s.Len(); i++ {
		if s.SeqLen(i) < 1 {
			return fmt.Errorf("%s: sequence %d is empty", s.Name, i)
		}
	}
	if s.IDs != nil && len(s.IDs) != s.Len() {
		return fmt.Errorf("%s: %d ids for %d sequences", s.Name, len(s.IDs), s.Len())
	}
	return nil
}

// Select returns a copy holding sequences idx[0], idx[1], ... in order.
func (s *SequenceSet) Select(idx []int) (*SequenceSet, error) {
	var rows []int
	off := []int{0}
	var ids []string
	for j, i := range idx {
		if i < 0 || i >= s.Len() {
			return nil, fmt.Errorf("%s: sequence %d (position %d) outside [0, %d)", s.Name, i, j, s.Len())
		}
		for r := s.Offsets[i]; r < s.Offsets[i+1]; r++ {
			rows = append(rows, r)
		}
		off = append(off, len(rows))
		if s.IDs != nil {
			ids = append(ids, s.IDs[i])
		}
	}
	set, err := s.Set.Select(rows)
	if err != nil {
		return nil, err
	}
	return &SequenceSet{Set: set, Offsets: off, IDs: ids}, nil
}

// Subset returns a copy of the first n sequences.
func (s *SequenceSet) Subset(n int) (*SequenceSet, error) {
	if n < 0 || n > s.Len() {
		return nil, fmt.Errorf("%s: subset of %d sequences out of %d", s.Name, n, s.Len())
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return s.Select(idx)
}

// Split shuffles the sequences (seeded) and returns the first
// round(frac*Len) as a and the rest as b; a sequence is never cut.
func (s *SequenceSet) Split(frac float64, seed uint64) (a, b *SequenceSet, err error) {
	if !(frac >= 0 && frac <= 1) {
		return nil, nil, fmt.Errorf("%s: split fraction %v outside [0, 1]", s.Name, frac)
	}
	perm := Permutation(s.Len(), seed)
	na := int(math.Round(frac * float64(s.Len())))
	if a, err = s.Select(perm[:na]); err != nil {
		return nil, nil, err
	}
	if b, err = s.Select(perm[na:]); err != nil {
		return nil, nil, err
	}
	return a, b, nil
}

// SequenceCSVOptions configures LoadSequenceCSV (docs/SEQUENCE.md).
type SequenceCSVOptions struct {
	// SeqColumn names the sequence-id column (header name or 0-based
	// index); empty means "seq".
	SeqColumn string
	// Label names the label column; empty means "label". With NoLabels
	// the column may be absent (inputs to predict); when present it is
	// skipped, never read as a feature.
	Label    string
	NoLabels bool
	// Comma is the field separator; 0 means ',' (a .tsv file: tab).
	Comma rune
	// Classes, when not nil, are the class names the labels must come
	// from (a checkpoint's), in their order; nil: the labels define them.
	Classes []string
}

// LoadSequenceCSV reads sequences from a CSV file with a header row
// (docs/SEQUENCE.md): a sequence-id column, a label column, and numeric
// feature columns. Every row is one position; the rows of a sequence are
// consecutive and in order, and an id that reappears after another id is an
// error (the rows are not sorted: sequences may not be interleaved). Labels
// are non-negative integers (class = the integer), or strings (the classes
// are the distinct strings in sorted order, in ClassNames). Errors name
// file:line.
func LoadSequenceCSV(path string, opts SequenceCSVOptions) (*SequenceSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if opts.Comma == 0 && strings.EqualFold(filepath.Ext(path), ".tsv") {
		opts.Comma = '\t'
	}
	s, err := DecodeSequenceCSV(f, path, opts)
	if err != nil {
		return nil, err
	}
	s.Name = filepath.Base(path)
	return s, nil
}

// DecodeSequenceCSV is LoadSequenceCSV on a stream; name is used in errors.
func DecodeSequenceCSV(r io.Reader, name string, opts SequenceCSVOptions) (*SequenceSet, error) {
	cr := csv.NewReader(r)
	if opts.Comma != 0 {
		cr.Comma = opts.Comma
	}
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty file: want a header row naming the columns", name)
	}
	if err != nil {
		return nil, csvError(name, err)
	}
	seqName, labelName := opts.SeqColumn, opts.Label
	if seqName == "" {
		seqName = "seq"
	}
	if labelName == "" {
		labelName = "label"
	}
	seqCol, err := findColumn(header, seqName)
	if err != nil {
		return nil, fmt.Errorf("%s: sequence-id column: %w (name it with --seq-column)", name, err)
	}
	labelCol, err := findColumn(header, labelName)
	if err != nil && !opts.NoLabels {
		return nil, fmt.Errorf("%s: label column: %w (name it with --label)", name, err)
	}
	if err != nil {
		labelCol = -1
	}
	if labelCol == seqCol {
		return nil, fmt.Errorf("%s: the sequence-id and label columns are the same column %d (%q)", name, seqCol, header[seqCol])
	}
	var feat []int
	for j := range header {
		if j != seqCol && j != labelCol {
			feat = append(feat, j)
		}
	}
	if len(feat) == 0 {
		return nil, fmt.Errorf("%s: no feature columns besides the sequence id and the label", name)
	}
	s := &SequenceSet{Set: &Set{Name: name, D: len(feat), Shape: []int{len(feat)}}, Offsets: []int{0}}
	for _, j := range feat {
		s.FeatureNames = append(s.FeatureNames, strings.TrimSpace(header[j]))
	}
	var labels []string
	seen := map[string]int{} // id -> line of its first row
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			return nil, fmt.Errorf("%s:%d: %d fields, the header has %d", name, line, len(rec), len(header))
		}
		id := rec[seqCol]
		if n := len(s.IDs); n == 0 || s.IDs[n-1] != id {
			if first, ok := seen[id]; ok {
				return nil, fmt.Errorf("%s:%d: sequence %q continues here after other sequences (it started on line %d): the rows of a sequence must be consecutive", name, line, id, first)
			}
			seen[id] = line
			if len(s.IDs) > 0 {
				s.Offsets = append(s.Offsets, s.N)
			}
			s.IDs = append(s.IDs, id)
		}
		for _, j := range feat {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[j]), 32)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%s:%d:%d: %q (column %q) is not a finite number", name, line, j+1, rec[j], header[j])
			}
			s.X = append(s.X, float32(v))
		}
		if labelCol >= 0 {
			labels = append(labels, strings.TrimSpace(rec[labelCol]))
		}
		s.N++
	}
	if s.N == 0 {
		return nil, fmt.Errorf("%s: a header and no rows", name)
	}
	s.Offsets = append(s.Offsets, s.N)
	if labelCol >= 0 && !opts.NoLabels {
		if s.Y, s.Classes, s.ClassNames, err = sequenceLabels(labels, opts.Classes); err != nil {
			return nil, fmt.Errorf("%s: column %q: %w", name, header[labelCol], err)
		}
	}
	return s, nil
}

func csvError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d:%d: %v", name, pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("%s: %v", name, err)
}

// findColumn returns the index of the column spec names: a header field,
// or else a 0-based index.
func findColumn(header []string, spec string) (int, error) {
	for j, h := range header {
		if strings.TrimSpace(h) == spec {
			return j, nil
		}
	}
	if j, err := strconv.Atoi(spec); err == nil && j >= 0 && j < len(header) {
		return j, nil
	}
	return 0, fmt.Errorf("no column %q in the header (%s)", spec, strings.Join(header, ", "))
}

// sequenceLabels turns label strings into classes: all non-negative
// integers (class = the integer, classes = max + 1, at least 2), else
// strings (sorted distinct, or those of classes when given).
func sequenceLabels(labels []string, classes []string) (y []int32, k int, names []string, err error) {
	y = make([]int32, len(labels))
	if classes == nil {
		numeric := true
		for i, l := range labels {
			v, err := strconv.Atoi(l)
			if err != nil || v < 0 {
				numeric = false
				break
			}
			if v >= MaxClasses {
				return nil, 0, nil, fmt.Errorf("label %d of position %d: more than %d classes (a wrong column?)", v, i, MaxClasses)
			}
			y[i] = int32(v)
			k = max(k, v+1)
		}
		if numeric {
			return y, max(k, 2), nil, nil
		}
		names = slices.Clone(labels)
		slices.Sort(names)
		names = slices.Compact(names)
		if len(names) > MaxClasses {
			return nil, 0, nil, fmt.Errorf("%d distinct labels: more than %d classes (a wrong column?)", len(names), MaxClasses)
		}
	} else {
		names = classes
	}
	index := make(map[string]int32, len(names))
	for i, n := range names {
		index[n] = int32(i)
	}
	for i, l := range labels {
		c, ok := index[l]
		if !ok {
			return nil, 0, nil, fmt.Errorf("label %q of position %d is not one of the classes (%s)", l, i, strings.Join(names[:min(len(names), 10)], ", "))
		}
		y[i] = c
	}
	return y, max(len(names), 2), names, nil
}

// WriteSequenceCSV writes s in the format LoadSequenceCSV reads: a header
// "seq,label,x0,x1,...", then one row per position. Sequence ids are
// s.IDs or the sequence numbers; labels are class names when s has them.
func WriteSequenceCSV(w io.Writer, s *SequenceSet) error {
	cw := csv.NewWriter(w)
	head := []string{"seq", "label"}
	for j := range s.D {
		head = append(head, "x"+strconv.Itoa(j))
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	rec := make([]string, len(head))
	for i := 0; i < s.Len(); i++ {
		id := strconv.Itoa(i)
		if s.IDs != nil {
			id = s.IDs[i]
		}
		for r := s.Offsets[i]; r < s.Offsets[i+1]; r++ {
			rec[0] = id
			y := int(s.Y[r])
			rec[1] = strconv.Itoa(y)
			if y < len(s.ClassNames) {
				rec[1] = s.ClassNames[y]
			}
			for j := range s.D {
				rec[2+j] = strconv.FormatFloat(float64(s.X[r*s.D+j]), 'g', -1, 32)
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
