package metrics

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func randomRecord(rng *rand.Rand, epoch int) Record {
	f := func() Float { return Float(rng.NormFloat64() * 10) }
	return Record{Time: "2026-01-02T03:04:05Z", Epoch: epoch, Steps: epoch * 7, Backend: "cpu", Model: "linear", Loss: "nll(beta=1)",
		Optim: "adam", LR: f(), Batch: 33, TrainLoss: f(), TestLoss: f(), TestNLL: f(), Accuracy: f(), Violations: f(),
		Stalled: f(), MarginMean: f(), MarginP10: f(), MarginMedian: f(), MarginP90: f(), MeanCorrect: f(),
		MeanOffending: f(), TestRows: rng.IntN(1000) + 1, TrainSeconds: f(), EvalSeconds: f()}
}

// TestWriteReadAppend writes a fresh file, appends as a resumed run would,
// and reads everything back: one strict-JSON line per record, in order.
func TestWriteReadAppend(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	path := filepath.Join(t.TempDir(), "m.jsonl")
	if err := os.WriteFile(path, []byte("stale content of an older run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var want []Record
	w, err := Create(path, false)
	if err != nil {
		t.Fatal(err)
	}
	for e := 1; e <= 3; e++ {
		r := randomRecord(rng, e)
		want = append(want, r)
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
		// Written through before Write returns: a reader sees it now.
		got, err := Read(path)
		if err != nil || len(got) != e {
			t.Fatalf("after epoch %d: %d records, %v", e, len(got), err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = Create(path, true)
	if err != nil {
		t.Fatal(err)
	}
	for e := 3; e <= 5; e++ { // epoch 3 again: resumed from the checkpoint of epoch 2
		r := randomRecord(rng, e)
		want = append(want, r)
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines for %d records:\n%s", len(lines), len(want), data)
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v", i+1, err)
		}
		if m["epoch"] != float64(want[i].Epoch) || m["test_nll"] != float64(want[i].TestNLL) {
			t.Errorf("line %d: epoch %v test_nll %v, want %d %v", i+1, m["epoch"], m["test_nll"], want[i].Epoch, want[i].TestNLL)
		}
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	latest := Latest(got)
	if len(latest) != 5 || latest[2] != want[3] {
		t.Errorf("Latest kept %d records, epoch 3 = %+v; want 5 and the resumed run's epoch 3", len(latest), latest[2])
	}
	for i, r := range latest {
		if r.Epoch != i+1 {
			t.Errorf("Latest[%d].Epoch = %d", i, r.Epoch)
		}
	}
}

// TestTornLine: a crash mid-write leaves a partial last line; reading
// ignores it and a resumed run truncates it before appending.
func TestTornLine(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	path := filepath.Join(t.TempDir(), "m.jsonl")
	w, err := Create(path, false)
	if err != nil {
		t.Fatal(err)
	}
	r1 := randomRecord(rng, 1)
	if err := w.Write(r1); err != nil {
		t.Fatal(err)
	}
	w.Close()
	full, _ := json.Marshal(randomRecord(rng, 2))
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(full[:len(full)/2])
	f.Close()
	got, err := Read(path)
	if err != nil || len(got) != 1 || got[0] != r1 {
		t.Fatalf("Read of a torn file: %v, %v", got, err)
	}
	w, err = Create(path, true)
	if err != nil {
		t.Fatal(err)
	}
	r2 := randomRecord(rng, 2)
	if err := w.Write(r2); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got, err = Read(path)
	if err != nil || len(got) != 2 || got[1] != r2 {
		t.Fatalf("after resume: %v, %v", got, err)
	}
}

func TestNonFiniteIsNull(t *testing.T) {
	r := Record{Epoch: 1, TrainLoss: Float(math.NaN()), MeanOffending: Float(math.Inf(1)), TestNLL: Float(math.Inf(-1))}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"train_loss":null`, `"test_mean_offending":null`, `"test_nll":null`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(float64(back.TrainLoss)) || !math.IsNaN(float64(back.MeanOffending)) {
		t.Errorf("null did not read back as NaN: %+v", back)
	}
}

func TestReadErrorsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"garbage.jsonl":   "{\"epoch\":1}\nnot json\n",
		"epoch0.jsonl":    "{\"epoch\":1}\n{\"epoch\":0}\n",
		"wrongtype.jsonl": "{\"epoch\":1}\n{\"epoch\":\"two\"}\n",
	} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(content), 0o644)
		_, err := Read(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%s: error %v does not name the file and line 2", name, err)
		}
	}
	if _, err := Read(filepath.Join(dir, "missing.jsonl")); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Create(filepath.Join(dir, "no", "such", "dir.jsonl"), false); err == nil || !strings.Contains(err.Error(), "dir.jsonl") {
		t.Errorf("unwritable path: %v", err)
	}
}

func TestQuantileAndSetMargins(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 7, 31, 1000} {
		ms := make([]float32, n)
		for i := range ms {
			ms[i] = float32(rng.NormFloat64()*3 + 1)
		}
		ms = append(ms, float32(math.Inf(1)), float32(math.NaN())) // left out
		var r Record
		r.SetMargins(ms)
		s := make([]float64, n)
		for i := range s {
			s[i] = float64(ms[i])
		}
		sort.Float64s(s)
		// The median by its definition: the middle value, or the mean of the two.
		med := s[n/2]
		if n%2 == 0 {
			med = (s[n/2-1] + s[n/2]) / 2
		}
		if math.Abs(float64(r.MarginMedian)-med) > 1e-12 {
			t.Errorf("n=%d: median %g, want %g", n, r.MarginMedian, med)
		}
		if !(r.MarginP10 <= r.MarginMedian && r.MarginMedian <= r.MarginP90) || float64(r.MarginP10) < s[0] || float64(r.MarginP90) > s[n-1] {
			t.Errorf("n=%d: quantiles %g %g %g outside order or [%g, %g]", n, r.MarginP10, r.MarginMedian, r.MarginP90, s[0], s[n-1])
		}
	}
	var r Record
	r.SetMargins(nil)
	if !math.IsNaN(float64(r.MarginMedian)) {
		t.Errorf("median of nothing: %g", r.MarginMedian)
	}
}

// TestResumeAgreesWithCheckpoint reproduces issue 13, item 8: a run killed
// after writing epoch 3's line but before its checkpoint resumes from
// epoch 2's checkpoint; the file must then hold epochs 1 and 2 only (the
// resumed run writes 3 again), and a torn line is dropped.
func TestResumeAgreesWithCheckpoint(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.jsonl")
	w, err := Create(p, false)
	if err != nil {
		t.Fatal(err)
	}
	for e := 1; e <= 3; e++ {
		if err := w.Write(Record{Epoch: e, TrainLoss: Float(e)}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"epoch":4,"train_lo`)
	f.Close()
	w, kept, err := Resume(p, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 || kept[1].Epoch != 2 {
		t.Fatalf("kept %+v", kept)
	}
	if err := w.Write(Record{Epoch: 3, TrainLoss: 33}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	rs, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].Epoch != 1 || rs[1].Epoch != 2 || rs[2].Epoch != 3 || rs[2].TrainLoss != 33 {
		t.Errorf("after resuming: %+v", rs)
	}
	if !IsMetricsFile(p) {
		t.Error("IsMetricsFile false for a metrics file")
	}
	csv := filepath.Join(t.TempDir(), "data.csv")
	os.WriteFile(csv, []byte("label,x\n1,2\n"), 0o644)
	if IsMetricsFile(csv) {
		t.Error("IsMetricsFile true for a CSV file")
	}
}

// FuzzRead feeds arbitrary bytes to the metrics reader and to Resume: never
// a panic, and a file Resume rewrote reads back.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"epoch":1,"train_loss":0.5}`+"\n"+`{"epoch":2,"train_lo`), 1)
	f.Add([]byte("\n\n{}\n"), 0)
	f.Add([]byte(`{"epoch":3,"test_accuracy":null}`+"\n"), 5)
	f.Fuzz(func(t *testing.T, data []byte, keep int) {
		p := filepath.Join(t.TempDir(), "m.jsonl")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(p); err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		w, _, err := Resume(p, keep)
		if err != nil {
			t.Fatalf("Resume of a file Read accepts: %v", err)
		}
		w.Close()
		rs, err := Read(p)
		if err != nil {
			t.Fatalf("after Resume: %v", err)
		}
		for _, r := range rs {
			if r.Epoch > keep {
				t.Fatalf("Resume(%d) kept epoch %d", keep, r.Epoch)
			}
		}
	})
}
