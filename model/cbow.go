package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// The CBOW model (continuous bag of words, Mikolov et al. 2013): the
// input is a window of word ids around a missing word, the answer is that
// word. The input layer averages the ids' rows of an embedding table T
// (V x E, V the vocabulary = the answers), and the layers of the spec
// (hidden layers, then the linear energy head over the V answers) take it
// from there:
//
//	h0(x) = (1/n) sum_{j : x_j a word} T[x_j],   E(y, x) = dense layers on h0
//
// x_j is a word id as a float32 feature (Data.X), or -1 (anything that is
// not an id: EmbedID) for a window position with no word (the edge of a
// sentence); n counts the words. The gradient reaches the table through
// EmbeddingOps.EmbedMeanGrad: dT[v] = sum over the window positions
// holding v of dL/dh0 / n, in a fixed order. A backend without
// EmbeddingOps cannot run it (cpu and device have them).

// cbowModel is a CBOW input layer under a dense model of Embed inputs.
type cbowModel struct {
	b      Backend
	ops    EmbeddingOps
	spec   Spec
	window int
	table  *Param // Classes x Embed
	inner  *dense
	params []*Param
	emb    map[int]Mat // the mean embeddings of a batch size (B x Embed)
	lastX  Mat
	freed  bool
}

// CBOWTable is the name of the embedding table parameter.
const CBOWTable = "embed/table"

// parseCBOWSpec parses "cbow:E" and "cbow:E+<dense spec>"; ok says the
// string is of that form.
func parseCBOWSpec(s string) (sp Spec, ok bool, err error) {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(strings.ToLower(t), "cbow:") {
		return Spec{}, false, nil
	}
	bad := func(why string) (Spec, bool, error) {
		return Spec{}, true, fmt.Errorf("invalid model %q: %s (valid: %s)", s, why, SpecForms)
	}
	rest := t[len("cbow:"):]
	width, inner, hasInner := strings.Cut(rest, "+")
	e, err := strconv.Atoi(strings.TrimSpace(width))
	if err != nil || e < 1 {
		return bad(fmt.Sprintf("embedding width %q is not an integer > 0", width))
	}
	sp = Spec{Activation: ReLU}
	if hasInner {
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(inner)), "cbow:") {
			return bad("one CBOW layer only")
		}
		if sp, err = ParseSpec(inner); err != nil {
			return bad(err.Error())
		}
	}
	sp.Embed = e
	return sp, true, nil
}

// cbowSpecString is the String of a Spec with a CBOW layer.
func cbowSpecString(s Spec) string {
	out := "cbow:" + strconv.Itoa(s.Embed)
	if len(s.Hidden) > 0 {
		inner := s
		inner.Embed = 0
		out += "+" + inner.String()
	}
	return out
}

// newCBOW builds a CBOW model: a window of inputs word ids, classes
// answers (the vocabulary), the table initialized uniform in
// +-0.5/sqrt(Embed) from rng, then the dense layers as NewEnergyModel
// initializes them.
func newCBOW(b Backend, spec Spec, inputs, classes int, rng *rand.Rand) (EnergyModel, error) {
	ops, ok := b.(EmbeddingOps)
	if !ok {
		return nil, fmt.Errorf("NewEnergyModel: model %v needs a backend with model.EmbeddingOps; %s has none", spec, b.Name())
	}
	e := spec.Embed
	init := make([]float32, classes*e)
	lim := 0.5 / math.Sqrt(float64(e))
	for i := range init {
		init[i] = float32((2*rng.Float64() - 1) * lim)
	}
	table, err := newParam(b, CBOWTable, classes, e, init)
	if err != nil {
		return nil, err
	}
	innerSpec := spec
	innerSpec.Embed = 0
	im, err := NewEnergyModel(b, innerSpec, e, classes, rng)
	if err != nil {
		_ = freeAll(b, table.Value, table.Grad)
		return nil, err
	}
	inner := im.(*dense)
	inner.inputGrad = true
	m := &cbowModel{b: b, ops: ops, spec: spec, window: inputs, table: table, inner: inner, emb: map[int]Mat{}}
	m.params = append([]*Param{table}, inner.params...)
	return m, nil
}

func (m *cbowModel) Inputs() int      { return m.window }
func (m *cbowModel) Classes() int     { return m.inner.classes }
func (m *cbowModel) Params() []*Param { return m.params }
func (m *cbowModel) String() string   { return m.spec.String() }

// embed computes the batch's mean embeddings.
func (m *cbowModel) embed(x Mat) (Mat, error) {
	if m.freed {
		return nil, errors.New("model: Forward after Free")
	}
	if x == nil || x.Cols() != m.window || x.Rows() < 1 {
		return nil, fmt.Errorf("model %v: Forward needs a B x %d matrix of word ids (B >= 1), got %s", m.spec, m.window, shapeOf(x))
	}
	emb := m.emb[x.Rows()]
	if emb == nil {
		var err error
		if emb, err = m.b.Alloc(x.Rows(), m.spec.Embed); err != nil {
			return nil, err
		}
		m.emb[x.Rows()] = emb
	}
	if err := m.ops.EmbedMean(m.table.Value, x, emb); err != nil {
		return nil, fmt.Errorf("CBOW layer: %w", err)
	}
	m.lastX = x
	return emb, nil
}

func (m *cbowModel) Forward(x Mat) (Mat, error) {
	emb, err := m.embed(x)
	if err != nil {
		return nil, err
	}
	return m.inner.Forward(emb)
}

func (m *cbowModel) Backward(dE Mat) error {
	if m.lastX == nil {
		return errors.New("model: Backward before Forward")
	}
	if err := m.inner.Backward(dE); err != nil {
		return err
	}
	return m.tableGrad()
}

// tableGrad scatters the inner model's input gradient onto the table.
func (m *cbowModel) tableGrad() error {
	if err := m.ops.EmbedMeanGrad(m.inner.last.dx, m.lastX, m.table.Grad); err != nil {
		return fmt.Errorf("CBOW layer: %w", err)
	}
	return nil
}

func (m *cbowModel) headForward(x Mat) (Mat, *Param, *Param, error) {
	emb, err := m.embed(x)
	if err != nil {
		return nil, nil, nil, err
	}
	return m.inner.headForward(emb)
}

func (m *cbowModel) headInputGrad() Mat { return m.inner.headInputGrad() }

func (m *cbowModel) headPrecision() Precision { return m.inner.headPrecision() }

func (m *cbowModel) headBackward() error {
	if err := m.inner.headBackward(); err != nil {
		return err
	}
	return m.tableGrad()
}

func (m *cbowModel) Free() error {
	if m.freed {
		return nil
	}
	m.freed = true
	errs := []error{freeAll(m.b, m.table.Value, m.table.Grad), m.inner.Free()}
	for _, e := range m.emb {
		errs = append(errs, m.b.Free(e))
	}
	m.emb, m.lastX = nil, nil
	return errors.Join(errs...)
}

// CheckWordIDs reports the first feature of d that is not a word id of a
// CBOW model over vocab words: an integer in [0, vocab) or -1. The model
// would read any other value as padding, which on training data is a bug
// of the data's producer, not a choice.
func CheckWordIDs(d *Data, vocab int) error {
	for i, x := range d.X {
		if x != -1 && EmbedID(x, vocab) < 0 {
			return fmt.Errorf("data: feature %d of row %d is %v, not a word id (an integer in [0, %d), or -1 for no word)", i%d.D, i/d.D, x, vocab)
		}
	}
	return nil
}

// cbowFormula is the checkpoint's "energy" metadata of a CBOW model.
const cbowFormula = denseFormula + "; a CBOW model's x is a window of word ids (an integer in [0, classes), else no word): " +
	"h' at l = 0 is the mean of the rows embed.table[x_j] over the positions j holding a word (0 if none)"

func isCBOW(cfg Config) bool {
	s, err := cfg.Spec()
	return err == nil && s.Embed > 0
}
