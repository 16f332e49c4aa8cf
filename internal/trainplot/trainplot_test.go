package trainplot

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/internal/metrics"
)

func records(rng *rand.Rand, n int, loss string) []metrics.Record {
	var rs []metrics.Record
	for e := 1; e <= n; e++ {
		f := func(s float64) metrics.Float { return metrics.Float(s * (1 + 0.3*rng.Float64()) / float64(e)) }
		rs = append(rs, metrics.Record{Epoch: e, Loss: loss, TrainLoss: f(1), TestLoss: f(0.8), TestNLL: f(0.5),
			Accuracy: metrics.Float(1 - 0.5/float64(e)), Violations: f(0.3), MeanCorrect: f(-3), MeanOffending: f(-1)})
	}
	return rs
}

func margins(rng *rand.Rand, n int) []float32 {
	m := make([]float32, n)
	for i := range m {
		m[i] = float32(rng.NormFloat64()*2 + 3)
	}
	return m
}

// decode checks that b is a PNG of Width x Height that is not blank: the
// histogram's fill and the red zero line are both drawn.
func decode(t *testing.T, b []byte, wantHist bool) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if got := img.Bounds().Size(); got != (image.Point{Width, Height}) {
		t.Fatalf("PNG is %v, want %dx%d", got, Width, Height)
	}
	colors := map[color.RGBA]int{}
	for y := 0; y < Height; y += 2 {
		for x := 0; x < Width; x += 2 {
			r, g, b, a := img.At(x, y).RGBA()
			colors[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}]++
		}
	}
	if colors[color.RGBA{255, 255, 255, 255}] < Width*Height/8 {
		t.Errorf("background is not white")
	}
	if colors[blue] == 0 {
		t.Errorf("no training-loss line (blue) in the picture")
	}
	if hist := colors[color.RGBA{86, 180, 233, 255}]; wantHist != (hist > 0) {
		t.Errorf("histogram fill pixels: %d, want them: %v", hist, wantHist)
	}
}

func TestWriteShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	for _, tc := range []struct {
		name     string
		epochs   int
		loss     string
		margins  []float32
		m        float64
		wantHist bool
	}{
		{"one epoch", 1, "nll(beta=1)", margins(rng, 1), 1, true},
		{"seven epochs hinge", 7, "hinge(m=2)", margins(rng, 1000), 2, true},
		{"33 epochs, 257 rows, m 0", 33, "perceptron", margins(rng, 257), 0, true},
		{"all margins equal", 3, "nll(beta=1)", []float32{2, 2, 2, 2, 2, 2, 2}, 1, true},
		{"no finite margin (one answer)", 2, "nll(beta=1)", []float32{inf, inf, nan}, 1, false},
		{"no margins", 2, "nll(beta=1)", nil, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			f := Figure{Title: tc.name, Epochs: records(rng, tc.epochs, tc.loss), Margins: tc.margins, LossMargin: tc.m}
			if err := Write(&buf, f); err != nil {
				t.Fatal(err)
			}
			decode(t, buf.Bytes(), tc.wantHist)
		})
	}
}

// A diverged run has NaN and Inf values; the figure leaves them out.
func TestWriteNonFinite(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	rs := records(rng, 4, "nll(beta=1)")
	rs[3].TrainLoss, rs[3].TestLoss, rs[2].MeanOffending = metrics.Float(math.NaN()), metrics.Float(math.Inf(1)), metrics.Float(math.Inf(-1))
	var buf bytes.Buffer
	if err := Write(&buf, Figure{Epochs: rs, Margins: margins(rng, 31)}); err != nil {
		t.Fatal(err)
	}
	decode(t, buf.Bytes(), true)
	if err := Write(&buf, Figure{}); err == nil || !strings.Contains(err.Error(), "no epochs") {
		t.Errorf("no epochs: %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	dir := t.TempDir()
	path := filepath.Join(dir, "train.png")
	if err := CheckWritable(path); err != nil {
		t.Fatal(err)
	}
	for e := 1; e <= 2; e++ {
		if err := WriteFile(path, Figure{Epochs: records(rng, e, "nll"), Margins: margins(rng, 100)}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		decode(t, b, true)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("temporary files left behind: %v", names)
	}
	bad := filepath.Join(dir, "missing", "train.png")
	if err := CheckWritable(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("CheckWritable(%s): %v", bad, err)
	}
	if err := CheckWritable(dir); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("CheckWritable(dir): %v", err)
	}
	if err := WriteFile(bad, Figure{Epochs: records(rng, 1, "nll")}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("WriteFile(%s): %v", bad, err)
	}
}
