package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"

	"github.com/gputrain/gputrain/internal/atomicfile"
)

// Float is a float64 that encodes NaN and ±Inf as JSON null: strict JSON
// has no literal for them, and a diverged run (NaN losses) or a one-answer
// model (E_I = +Inf) must still leave a file every JSON reader parses.
type Float float64

// MarshalJSON writes null for a non-finite value.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads null as NaN, so a value that was not finite stays
// recognizably so.
func (f *Float) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = Float(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Float(v)
	return nil
}

// Record is one epoch of a training run. Test fields are measured on the
// held-out set after the epoch; the margin is E_I - E_C (positive: the
// correct answer has the lowest energy, by that much).
type Record struct {
	Time    string `json:"time"` // RFC 3339, when the epoch's evaluation finished
	Epoch   int    `json:"epoch"`
	Steps   int    `json:"steps"` // optimizer steps since the start of training
	Backend string `json:"backend"`
	Model   string `json:"model"`
	Loss    string `json:"loss"` // the training loss and its parameters, e.g. "hinge(m=1)"
	Optim   string `json:"optimizer"`
	LR      Float  `json:"lr"`
	Batch   int    `json:"batch"`

	TrainLoss Float `json:"train_loss"` // mean training loss per row over the epoch
	TestLoss  Float `json:"test_loss"`  // mean training loss on the test set
	TestNLL   Float `json:"test_nll"`   // mean NLL at the loss's beta, comparable across losses
	Accuracy  Float `json:"test_accuracy"`
	// Violations is the fraction of test rows with E_C + m >= E_I.
	Violations    Float `json:"test_violations"`
	Stalled       Float `json:"test_stalled"` // misclassified rows that get (almost) no gradient
	MarginMean    Float `json:"test_margin_mean"`
	MarginP10     Float `json:"test_margin_p10"` // quantiles of E_I - E_C over the test rows
	MarginMedian  Float `json:"test_margin_median"`
	MarginP90     Float `json:"test_margin_p90"`
	MeanCorrect   Float `json:"test_mean_correct"`   // mean E_C
	MeanOffending Float `json:"test_mean_offending"` // mean E_I
	TestRows      int   `json:"test_rows"`

	TrainSeconds Float `json:"train_seconds"`
	EvalSeconds  Float `json:"eval_seconds"`
}

// Quantile returns the q-quantile (0 <= q <= 1) of the finite values in
// sorted, which must be sorted ascending, by linear interpolation; NaN when
// there are none.
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	f := pos - float64(i)
	return sorted[i]*(1-f) + sorted[i+1]*f
}

// SetMargins fills the margin quantiles from the per-row margins; the
// non-finite ones (E_I = +Inf with one answer) are left out.
func (r *Record) SetMargins(margins []float32) {
	s := make([]float64, 0, len(margins))
	for _, m := range margins {
		if v := float64(m); !math.IsNaN(v) && !math.IsInf(v, 0) {
			s = append(s, v)
		}
	}
	sort.Float64s(s)
	r.MarginP10 = Float(Quantile(s, 0.1))
	r.MarginMedian = Float(Quantile(s, 0.5))
	r.MarginP90 = Float(Quantile(s, 0.9))
}

// Writer appends Records to a metrics file.
type Writer struct {
	f    *os.File
	path string
}

// Create opens path for writing Records. A fresh run (appendTo false)
// starts the file empty; a resumed run (appendTo true) keeps what is there,
// minus a last line torn by a crash mid-write, so new records start on a
// line of their own. Opening first lets a caller refuse an unwritable path
// before any training.
func Create(path string, appendTo bool) (*Writer, error) {
	flag := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flag = os.O_CREATE | os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metrics file: %w", err)
	}
	w := &Writer{f: f, path: path}
	if appendTo {
		if err := w.dropTornLine(); err != nil {
			f.Close()
			return nil, err
		}
	}
	return w, nil
}

// dropTornLine truncates the file after its last newline and positions the
// writer at the end.
func (w *Writer) dropTornLine() error {
	data, err := io.ReadAll(w.f)
	if err != nil {
		return fmt.Errorf("metrics file %s: %w", w.path, err)
	}
	keep := int64(bytes.LastIndexByte(data, '\n') + 1)
	if keep != int64(len(data)) {
		if err := w.f.Truncate(keep); err != nil {
			return fmt.Errorf("metrics file %s: %w", w.path, err)
		}
	}
	if _, err := w.f.Seek(keep, io.SeekStart); err != nil {
		return fmt.Errorf("metrics file %s: %w", w.path, err)
	}
	return nil
}

// Write appends r as one line and forces it to disk (fsync) before
// returning: the record survives a crash or a kill right after.
func (w *Writer) Write(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("metrics file %s: %w", w.path, err)
	}
	// One write call per line, so a crash tears at most this line.
	if _, err := w.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("metrics file %s: %w", w.path, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("metrics file %s: %w", w.path, err)
	}
	return nil
}

// Close closes the file.
func (w *Writer) Close() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("metrics file %s: %w", w.path, err)
	}
	return nil
}

// Read parses a metrics file. A last line without its newline (torn by a
// crash) is ignored; any other line that is not a Record is an error naming
// the file and the line.
func Read(path string) ([]Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("metrics file: %w", err)
	}
	if i := bytes.LastIndexByte(data, '\n'); i+1 != len(data) {
		data = data[:i+1]
	}
	var out []Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r Record
		// Unknown fields are accepted: a newer gputrain may add some.
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("metrics file %s line %d: %w", path, line, err)
		}
		if r.Epoch < 1 {
			return nil, fmt.Errorf("metrics file %s line %d: epoch %d, want >= 1", path, line, r.Epoch)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics file %s: %w", path, err)
	}
	return out, nil
}

// Latest returns one record per epoch, ascending, the last written winning:
// a run resumed from an older checkpoint writes the epochs it redoes again.
func Latest(rs []Record) []Record {
	by := map[int]Record{}
	for _, r := range rs {
		by[r.Epoch] = r
	}
	out := make([]Record, 0, len(by))
	for _, r := range by {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Epoch < out[j].Epoch })
	return out
}

// Resume opens the metrics file of a run resumed from a checkpoint taken
// after epoch lastEpoch: it keeps the records up to that epoch, drops the
// later ones (epochs the killed run finished after its last checkpoint,
// which the resumed run trains again) and a torn last line, and appends
// after them. The file then always agrees with the checkpoint: no epoch
// twice, none lost, whatever moment the previous run was killed at. The
// kept records are returned (for the plot). A missing file starts empty.
func Resume(path string, lastEpoch int) (*Writer, []Record, error) {
	var kept []Record
	if _, err := os.Stat(path); err == nil {
		old, err := Read(path)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range old {
			if r.Epoch <= lastEpoch {
				kept = append(kept, r)
			}
		}
		err = atomicfile.WriteFile(path, func(w io.Writer) error {
			for _, r := range kept {
				b, err := json.Marshal(r)
				if err != nil {
					return err
				}
				if _, err := w.Write(append(b, '\n')); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("metrics file: %w", err)
		}
	}
	w, err := Create(path, true)
	if err != nil {
		return nil, nil, err
	}
	return w, kept, nil
}

// IsMetricsFile reports whether path holds a metrics file (every complete
// line a Record) or nothing at all: the only files a run may write its
// metrics over.
func IsMetricsFile(path string) bool {
	_, err := Read(path)
	return err == nil
}
