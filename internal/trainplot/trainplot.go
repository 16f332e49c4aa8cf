package trainplot

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/gputrain/gputrain/internal/atomicfile"
	"github.com/gputrain/gputrain/internal/metrics"
)

// The PNG is Width x Height pixels at DPI dots per inch (font sizes are in
// points, so the DPI sets how large text is relative to the image).
const (
	Width  = 1200
	Height = 900
	DPI    = 100
)

// Figure is what one picture shows.
type Figure struct {
	// Title heads the figure: the model, loss, optimizer, backend.
	Title string
	// Epochs are the per-epoch records, ascending by epoch.
	Epochs []metrics.Record
	// Margins are E_I - E_C of every test row at the last epoch; the
	// non-finite ones are left out of the histogram.
	Margins []float32
	// LossMargin is the loss's margin m, marked on the histogram when > 0:
	// rows left of it are violations.
	LossMargin float64
}

// Colors from the Okabe-Ito palette, which color-blind readers tell apart.
var (
	blue   = color.RGBA{0, 114, 178, 255}
	orange = color.RGBA{230, 159, 0, 255}
	green  = color.RGBA{0, 158, 115, 255}
	red    = color.RGBA{213, 94, 0, 255}
	grey   = color.RGBA{110, 110, 110, 255}
)

// WriteFile renders f as a PNG at path atomically: into a temporary file in
// the same directory, synced, then renamed over path, so a reader (an image
// viewer refreshing each epoch) or a crash never sees a half-written file.
func WriteFile(path string, f Figure) error {
	var buf bytes.Buffer
	if err := Write(&buf, f); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	err := atomicfile.WriteFile(path, func(w io.Writer) error { _, err := w.Write(buf.Bytes()); return err })
	if err != nil {
		return fmt.Errorf("plot %w", err)
	}
	return nil
}

// CheckWritable reports whether a plot can be written at path, by creating
// and removing a file beside it; a destination that is not a regular file
// is refused.
func CheckWritable(path string) error {
	if err := atomicfile.CheckWritable(path); err != nil {
		return fmt.Errorf("plot %w", err)
	}
	return nil
}

// Write renders f as a PNG to w.
func Write(w io.Writer, f Figure) (err error) {
	if len(f.Epochs) == 0 {
		return errors.New("no epochs to plot")
	}
	// gonum/plot panics on some degenerate inputs; a picture must never
	// take the training run down with it.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("drawing the figure: %v", r)
		}
	}()
	panels := [][]*plot.Plot{
		{lossPanel(f), accuracyPanel(f)},
		{marginPanel(f), energyPanel(f)},
	}
	c := vgimg.NewWith(vgimg.UseWH(Width*vg.Inch/DPI, Height*vg.Inch/DPI), vgimg.UseDPI(DPI))
	dc := draw.New(c)
	// White background: the default is transparent, which image viewers
	// with a dark theme show as black behind black text.
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	title := plot.New().Title.TextStyle
	title.Font.Size = vg.Points(15)
	title.XAlign = draw.XCenter
	title.YAlign = draw.YTop
	top := dc.Max.Y - vg.Points(8)
	dc.FillText(title, vg.Point{X: (dc.Min.X + dc.Max.X) / 2, Y: top}, f.Title)

	tiles := draw.Tiles{
		Rows: 2, Cols: 2,
		PadTop: title.Font.Size + vg.Points(22), PadBottom: vg.Points(8),
		PadLeft: vg.Points(8), PadRight: vg.Points(16),
		PadX: vg.Points(28), PadY: vg.Points(24),
	}
	canvases := plot.Align(panels, tiles, dc)
	for i, row := range panels {
		for j, p := range row {
			p.Draw(canvases[i][j])
		}
	}
	_, err = vgimg.PngCanvas{Canvas: c}.WriteTo(w)
	return err
}

func newPanel(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Y.Tick.Marker = plainTicks{}
	return p
}

// plainTicks are gonum's default tick positions labelled with the shortest
// decimal that names them ("750", not "750.00").
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', 6, 64)
		}
	}
	return ts
}

// headroom raises the top of the y axis above the data, so the legend of
// that many entries, drawn in the top corner, does not cover it.
func headroom(p *plot.Plot, entries int) {
	lo, hi := p.Y.Min, p.Y.Max
	if !(hi > lo) {
		// One value (one epoch): center it rather than let the axis
		// default put it anywhere in a range of no meaning.
		pad := math.Max(math.Abs(hi)*0.05, 0.05)
		lo, hi = lo-pad, hi+pad
	}
	span := hi - lo
	p.Y.Min, p.Y.Max = lo-0.04*span, hi+span*(0.04+0.09*float64(entries))
}

// series is one quantity per epoch; non-finite values (a diverged epoch)
// are left out, since plotter refuses them.
func series(rs []metrics.Record, get func(metrics.Record) metrics.Float) plotter.XYs {
	var xy plotter.XYs
	for _, r := range rs {
		v := float64(get(r))
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			xy = append(xy, plotter.XY{X: float64(r.Epoch), Y: v})
		}
	}
	return xy
}

// addLine adds a line with a point per epoch (one epoch is a point, not an
// invisible zero-length line), and its legend entry.
func addLine(p *plot.Plot, name string, xy plotter.XYs, c color.Color, dashed bool) {
	if len(xy) == 0 {
		return
	}
	l, s, err := plotter.NewLinePoints(xy)
	if err != nil {
		return // non-finite values were filtered; nothing else fails
	}
	l.Color, l.Width = c, vg.Points(2)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	}
	s.Color, s.Radius = c, vg.Points(3)
	p.Add(l, s)
	p.Legend.Add(name, l, s)
}

// epochAxis shows whole epochs: ticks at integers only, and at least a
// unit-wide range so a single epoch sits in the middle.
func epochAxis(p *plot.Plot, rs []metrics.Record) {
	lo, hi := float64(rs[0].Epoch), float64(rs[len(rs)-1].Epoch)
	p.X.Min, p.X.Max = lo-0.25, hi+0.25
	p.X.Tick.Marker = epochTicks{}
}

type epochTicks struct{}

// Ticks labels integer epochs, at most about ten of them.
func (epochTicks) Ticks(min, max float64) []plot.Tick {
	lo, hi := math.Ceil(min), math.Floor(max)
	step := math.Max(1, math.Ceil((hi-lo+1)/10))
	var ts []plot.Tick
	for e := lo; e <= hi; e += step {
		ts = append(ts, plot.Tick{Value: e, Label: fmt.Sprintf("%.0f", e)})
	}
	return ts
}

func lossPanel(f Figure) *plot.Plot {
	rs := f.Epochs
	last := rs[len(rs)-1]
	p := newPanel("Loss per epoch: "+last.Loss, "epoch", "mean loss per row")
	addLine(p, "training", series(rs, func(r metrics.Record) metrics.Float { return r.TrainLoss }), blue, false)
	addLine(p, "test", series(rs, func(r metrics.Record) metrics.Float { return r.TestLoss }), orange, false)
	entries := 2
	if !isNLL(last.Loss) {
		// Another loss than NLL: show the NLL too, the scale on which
		// models trained with different losses compare.
		addLine(p, "test NLL", series(rs, func(r metrics.Record) metrics.Float { return r.TestNLL }), grey, true)
		entries++
	}
	epochAxis(p, rs)
	headroom(p, entries)
	return p
}

func isNLL(loss string) bool { return len(loss) >= 3 && loss[:3] == "nll" }

func accuracyPanel(f Figure) *plot.Plot {
	rs := f.Epochs
	// One line: the title says what it is, and no legend hides a point.
	p := newPanel("Test accuracy (lowest-energy answer = label)", "epoch", "accuracy")
	xy := series(rs, func(r metrics.Record) metrics.Float { return r.Accuracy })
	addLine(p, "", xy, green, false)
	p.Legend = plot.NewLegend()
	epochAxis(p, rs)
	headroom(p, 0)
	p.Y.Min, p.Y.Max = math.Max(p.Y.Min, 0), math.Min(p.Y.Max, 1) // a fraction
	return p
}

func energyPanel(f Figure) *plot.Plot {
	rs := f.Epochs
	p := newPanel("Mean test energies", "epoch", "energy")
	addLine(p, "E_C (correct answer)", series(rs, func(r metrics.Record) metrics.Float { return r.MeanCorrect }), blue, false)
	addLine(p, "E_I (most offending incorrect)", series(rs, func(r metrics.Record) metrics.Float { return r.MeanOffending }), red, false)
	epochAxis(p, rs)
	headroom(p, 2)
	return p
}

// histBins is the number of histogram bins.
const histBins = 60

func marginPanel(f Figure) *plot.Plot {
	last := f.Epochs[len(f.Epochs)-1]
	var vs plotter.Values
	for _, m := range f.Margins {
		if v := float64(m); !math.IsNaN(v) && !math.IsInf(v, 0) {
			vs = append(vs, v)
		}
	}
	p := newPanel(fmt.Sprintf("Margin E_I - E_C on %d test rows, epoch %d", len(vs), last.Epoch), "E_I - E_C", "rows")
	if len(vs) == 0 {
		p.Title.Text = fmt.Sprintf("Margin E_I - E_C, epoch %d: no finite margins", last.Epoch)
		return p
	}
	h, err := plotter.NewHist(vs, histBins)
	if err != nil {
		return p
	}
	h.FillColor = color.RGBA{86, 180, 233, 255}
	h.LineStyle.Color = color.RGBA{0, 90, 140, 255}
	h.LineStyle.Width = vg.Points(0.5)
	p.Add(h)
	p.X.Tick.Marker = plainTicks{}
	ymax := 0.0
	for _, b := range h.Bins {
		ymax = math.Max(ymax, b.Weight)
	}
	// Misclassified rows are left of 0; with a margin m, the rows between
	// 0 and m are right but still violations.
	// The shares come from the same evaluation as the margins (ties at 0
	// count as misclassified there only when the argmin is not the label).
	addVLine(p, fmt.Sprintf("0: %.1f%% misclassified", 100*(1-float64(last.Accuracy))), 0, ymax, red, false)
	if f.LossMargin > 0 {
		addVLine(p, fmt.Sprintf("m = %g: %.1f%% violations (E_I - E_C <= m)", f.LossMargin, 100*float64(last.Violations)), f.LossMargin, ymax, grey, true)
	}
	headroom(p, 2)
	p.Y.Min = 0
	return p
}

func addVLine(p *plot.Plot, name string, x, ymax float64, c color.Color, dashed bool) {
	l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: ymax}})
	if err != nil {
		return
	}
	l.Color, l.Width = c, vg.Points(1.5)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	}
	p.Add(l)
	p.Legend.Add(name, l)
}
