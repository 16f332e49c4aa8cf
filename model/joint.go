package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Joint answers: one energy over several output variables.
//
// A JointModel scores every tuple y = (y_0, ..., y_{n-1}) of n output
// variables, variable i taking K_i values, with one energy
//
//	E(y, X) = sum_i U_i(y_i, X) + sum_{i<j} P_ij(y_i, y_j)
//
// where the unary heads U_i(v, X) = -(w_{i,v} . h(X) + b_{i,v}) share one
// trunk h (the inputs themselves, or an MLP) and the pairwise tables P_ij
// are learned K_i x K_j parameters. Because the whole product space is one
// Gibbs distribution, log Z is summed exactly over all J = prod_i K_i joint
// answers, and the margin losses compare with the most offending incorrect
// joint answer: the model is trained by the ordinary losses and Trainer with
// Classes() = J and labels that are joint indices.
//
// Joint indices are mixed-radix, row-major: the last variable varies
// fastest, index = ((y_0*K_1 + y_1)*K_2 + y_2)... (see JointIndex). For two
// motors with 3 commands each, index = left*3 + right.
//
// # Joint kernels, and the indicator-matrix fallback
//
// A backend that implements the optional JointOps (jointops.go; cpu and
// device do) builds E and reduces dE onto the factors with dedicated
// kernels that decode each joint index into its digits: no indicator
// matrices, O(B J n^2) work. Otherwise the model needs no Backend operation
// beyond those a dense model uses, so it runs unchanged on any backend: two
// constant 0/1 matrices are built on the host and uploaded once:
//
//	A_u (J x sum_i K_i):          A_u[y, off_i + y_i] = 1
//	A_p (J x sum_{i<j} K_i K_j):  A_p[y, off_ij + y_i*K_j + y_j] = 1
//
// With S (B x sum K) the heads' outputs (already negated scores, so S holds
// the unary energies U_i) and p (1 x sum K_iK_j) the pairwise tables:
//
//	Forward:  E = S A_u^T + 1 (p A_p^T)          (Gemm, Gemm, AddRowVector)
//	Backward: dS = dE A_u                          (Gemm, then the trunk's Backward)
//	          dp = colsums(dE) A_p                 (ColumnSums, Gemm)
//
// GEMMs against 0/1 matrices are exact in the sense that matters (every
// product is a copy, every sum has n or n(n-1)/2 nonzero terms) and
// deterministic on every backend, but wasteful: A_p takes J * sum K_iK_j
// floats (400 MB for 5 variables of 10 values), which is why backends that
// can offer JointOps do.

// MaxJointStates bounds the product space of a JointModel. Every row of a
// batch holds J energies and the indicator matrices J rows; a million
// answers is far past the 10^5 the design targets, and past that exact
// enumeration is the wrong tool.
const MaxJointStates = 1 << 20

// maxIndicatorFloats bounds the size of the two indicator matrices together
// (2 GiB of float32) on the GEMM path: a model whose A_p alone would exceed it is refused
// with an error rather than an allocation that may take the machine down.
const maxIndicatorFloats = 1 << 29

// JointSpec describes a JointModel.
type JointSpec struct {
	// Vars holds the number of values K_i of each output variable (each >= 1).
	Vars []int
	// Trunk is the shared feature extractor: Spec{} (no hidden layer) makes
	// every head linear in the inputs; hidden layers make an MLP whose last
	// hidden layer feeds all heads.
	Trunk Spec
	// Pairwise adds the learned tables P_ij for every pair i < j. Without
	// them the joint distribution factorizes into independent variables.
	Pairwise bool
}

// JointStates returns prod_i vars[i], checking that every K_i >= 1 and the
// product is at most MaxJointStates.
func JointStates(vars []int) (int, error) {
	if len(vars) == 0 {
		return 0, errors.New("joint model: no output variables")
	}
	j := 1
	for i, k := range vars {
		if k < 1 {
			return 0, fmt.Errorf("joint model: variable %d has %d values, want >= 1", i, k)
		}
		if j > MaxJointStates/k {
			return 0, fmt.Errorf("joint model: the product space of %v has more than %d joint answers (exact enumeration is the design; reduce the variables or their values)", vars, MaxJointStates)
		}
		j *= k
	}
	return j, nil
}

// JointIndex returns the row-major joint index of the values vals of
// variables with vars[i] values each, checking every value's range.
func JointIndex(vars []int, vals []int32) (int32, error) {
	if len(vals) != len(vars) {
		return 0, fmt.Errorf("joint index: %d values for %d variables", len(vals), len(vars))
	}
	var idx int64
	for i, v := range vals {
		if v < 0 || int(v) >= vars[i] {
			return 0, fmt.Errorf("joint index: value %d of variable %d outside [0, %d)", v, i, vars[i])
		}
		idx = idx*int64(vars[i]) + int64(v)
	}
	if idx > math.MaxInt32 {
		return 0, fmt.Errorf("joint index: %d does not fit an int32 label", idx)
	}
	return int32(idx), nil
}

// JointValues decodes the joint index idx into one value per variable,
// written into out (len(vars)); the inverse of JointIndex.
func JointValues(vars []int, idx int, out []int) {
	for i := len(vars) - 1; i >= 0; i-- {
		out[i] = idx % vars[i]
		idx /= vars[i]
	}
}

// ParseVars parses "3,3" or "3x3" into variable sizes.
func ParseVars(s string) ([]int, error) {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == 'x' || r == 'X' })
	if len(f) == 0 {
		return nil, fmt.Errorf("invalid variable sizes %q: want numbers of values like 3,3", s)
	}
	vars := make([]int, len(f))
	for i, t := range f {
		k, err := strconv.Atoi(strings.TrimSpace(t))
		if err != nil || k < 1 {
			return nil, fmt.Errorf("invalid variable sizes %q: %q is not an integer >= 1", s, t)
		}
		vars[i] = k
	}
	return vars, nil
}

// JointModel is the EnergyModel over a product space described above.
type JointModel struct {
	b      Backend
	spec   JointSpec
	states int
	sumK   int
	offK   []int    // offset of variable i's values in the heads' outputs
	pairs  [][2]int // (i, j), i < j, in lexicographic order
	offP   []int    // offset of pair p's table in the pairwise vector
	sumP   int
	heads  *dense // trunk and all unary heads: B x sumK unary energies
	pair   *Param // 1 x sumP; nil without pairwise tables
	params []*Param
	// ops is the backend's JointOps when it has them: then the energies and
	// gradients come from its dedicated kernels and au, ap, q, dq are nil.
	ops    JointOps
	au, ap Mat // indicators, J x sumK and J x sumP (ap nil without pairs)
	q, dq  Mat // 1 x J: the pairwise energies of every joint answer, and colsums(dE)
	bufs   map[int]*jointBuffers
	last   *jointBuffers
	freed  bool
}

type jointBuffers struct {
	e  Mat // B x J energies
	dS Mat // B x sumK gradient of the heads' outputs
}

// NewJointModel allocates a joint model on b for inputs of width inputs.
// The trunk and heads are initialized like NewEnergyModel's layers (the
// heads are its output layer, sum K_i wide), the pairwise tables at zero,
// so training starts from independent variables. The same rng state gives
// bitwise the same model.
func NewJointModel(b Backend, spec JointSpec, inputs int, rng *rand.Rand) (*JointModel, error) {
	if b == nil {
		return nil, errors.New("NewJointModel: nil backend")
	}
	states, err := JointStates(spec.Vars)
	if err != nil {
		return nil, err
	}
	if spec.Trunk.Embed > 0 {
		return nil, errors.New("NewJointModel: a joint model's trunk cannot have a CBOW input layer")
	}
	m := &JointModel{b: b, states: states, bufs: map[int]*jointBuffers{}}
	m.spec = JointSpec{Vars: append([]int(nil), spec.Vars...), Trunk: Spec{Hidden: append([]int(nil), spec.Trunk.Hidden...), Activation: spec.Trunk.Activation}, Pairwise: spec.Pairwise}
	for _, k := range spec.Vars {
		m.offK = append(m.offK, m.sumK)
		m.sumK += k
	}
	if spec.Pairwise {
		for i := range spec.Vars {
			for j := i + 1; j < len(spec.Vars); j++ {
				m.pairs = append(m.pairs, [2]int{i, j})
				m.offP = append(m.offP, m.sumP)
				m.sumP += spec.Vars[i] * spec.Vars[j]
			}
		}
	}
	m.ops, _ = b.(JointOps)
	if m.ops == nil && float64(states)*float64(m.sumK+m.sumP) > maxIndicatorFloats {
		return nil, fmt.Errorf("NewJointModel: the indicator matrices of %v would hold %d x %d floats, more than %d (this backend has no JointOps, so the model uses indicator matrices; see joint.go)", spec.Vars, states, m.sumK+m.sumP, maxIndicatorFloats)
	}
	heads, err := NewEnergyModel(b, spec.Trunk, inputs, m.sumK, rng)
	if err != nil {
		return nil, fmt.Errorf("NewJointModel: %w", err)
	}
	m.heads = heads.(*dense)
	m.params = append(m.params, m.heads.params...)
	ok := false
	defer func() {
		if !ok {
			_ = m.Free()
		}
	}()
	if m.sumP > 0 {
		if m.pair, err = newParam(b, "pairwise/P", 1, m.sumP, make([]float32, m.sumP)); err != nil {
			return nil, err
		}
		m.params = append(m.params, m.pair)
	}
	if m.ops != nil {
		ok = true
		return m, nil
	}
	if m.au, err = m.indicator(m.sumK, m.unaryColumns); err != nil {
		return nil, err
	}
	if m.sumP > 0 {
		if m.ap, err = m.indicator(m.sumP, m.pairColumns); err != nil {
			return nil, err
		}
		if m.q, err = b.Alloc(1, states); err != nil {
			return nil, err
		}
		if m.dq, err = b.Alloc(1, states); err != nil {
			return nil, err
		}
	}
	ok = true
	return m, nil
}

// unaryColumns calls set with the column of A_u that is 1 for each variable
// of the joint answer with digits d.
func (m *JointModel) unaryColumns(d []int, set func(col int)) {
	for i, v := range d {
		set(m.offK[i] + v)
	}
}

// pairColumns does the same for A_p.
func (m *JointModel) pairColumns(d []int, set func(col int)) {
	for p, ij := range m.pairs {
		set(m.offP[p] + d[ij[0]]*m.spec.Vars[ij[1]] + d[ij[1]])
	}
}

// indicator builds and uploads a J x cols 0/1 matrix whose row y has ones
// in the columns columns(digits of y) names.
func (m *JointModel) indicator(cols int, columns func(d []int, set func(col int))) (Mat, error) {
	host := make([]float32, m.states*cols)
	d := make([]int, len(m.spec.Vars))
	for y := 0; y < m.states; y++ {
		JointValues(m.spec.Vars, y, d)
		row := host[y*cols : (y+1)*cols]
		columns(d, func(c int) { row[c] = 1 })
	}
	a, err := m.b.Alloc(m.states, cols)
	if err != nil {
		return nil, fmt.Errorf("NewJointModel: allocating a %dx%d indicator matrix: %w", m.states, cols, err)
	}
	if err := m.b.Upload(a, host); err != nil {
		_ = m.b.Free(a)
		return nil, fmt.Errorf("NewJointModel: uploading a %dx%d indicator matrix: %w", m.states, cols, err)
	}
	return a, nil
}

// Inputs is the width of X.
func (m *JointModel) Inputs() int { return m.heads.inputs }

// Classes is the number of joint answers, prod_i K_i.
func (m *JointModel) Classes() int { return m.states }

// Vars returns the number of values of each output variable.
func (m *JointModel) Vars() []int { return append([]int(nil), m.spec.Vars...) }

// Spec returns the model's description.
func (m *JointModel) Spec() JointSpec { return m.spec }

// Params lists the trunk's layers (the last one holds all heads, sum K_i
// outputs, variable i's at rows off_i..off_i+K_i-1), then "pairwise/P",
// the tables P_ij for i < j in lexicographic order, each K_i x K_j
// row-major.
func (m *JointModel) Params() []*Param { return m.params }

func (m *JointModel) String() string {
	s := fmt.Sprintf("joint%v trunk %v", m.spec.Vars, m.spec.Trunk)
	if m.spec.Pairwise {
		return s + " + pairwise"
	}
	return s + ", unary only"
}

func (m *JointModel) buffers(rows int) (*jointBuffers, error) {
	if bf := m.bufs[rows]; bf != nil {
		return bf, nil
	}
	e, err := m.b.Alloc(rows, m.states)
	if err != nil {
		return nil, fmt.Errorf("joint model: allocating %dx%d energies: %w", rows, m.states, err)
	}
	dS, err := m.b.Alloc(rows, m.sumK)
	if err != nil {
		_ = m.b.Free(e)
		return nil, fmt.Errorf("joint model: allocating %dx%d head gradients: %w", rows, m.sumK, err)
	}
	bf := &jointBuffers{e: e, dS: dS}
	m.bufs[rows] = bf
	return bf, nil
}

// Forward computes the B x J joint energies of x.
func (m *JointModel) Forward(x Mat) (Mat, error) {
	if m.freed {
		return nil, errors.New("joint model: Forward after Free")
	}
	if x == nil || x.Cols() != m.Inputs() || x.Rows() < 1 {
		return nil, fmt.Errorf("joint model %v: Forward needs a B x %d input (B >= 1), got %s", m, m.Inputs(), shapeOf(x))
	}
	s, err := m.heads.Forward(x)
	if err != nil {
		return nil, err
	}
	bf, err := m.buffers(x.Rows())
	if err != nil {
		return nil, err
	}
	if m.ops != nil {
		var p Mat
		if m.pair != nil {
			p = m.pair.Value
		}
		if err := m.ops.JointEnergies(s, p, m.spec.Vars, bf.e); err != nil {
			return nil, fmt.Errorf("joint model: energies: %w", err)
		}
		m.last = bf
		return bf.e, nil
	}
	// E = S A_u^T: each joint answer sums its variables' unary energies.
	if err := m.b.Gemm(false, true, 1, s, m.au, 0, bf.e); err != nil {
		return nil, fmt.Errorf("joint model: unary energies: %w", err)
	}
	if m.pair != nil {
		// q = p A_p^T (1 x J) does not depend on the row: computed once per
		// batch and added to every row.
		if err := m.b.Gemm(false, true, 1, m.pair.Value, m.ap, 0, m.q); err != nil {
			return nil, fmt.Errorf("joint model: pairwise energies: %w", err)
		}
		if err := m.b.AddRowVector(bf.e, 1, m.q); err != nil {
			return nil, fmt.Errorf("joint model: pairwise energies: %w", err)
		}
	}
	m.last = bf
	return bf.e, nil
}

// Backward takes dL/dE (B x J) of the last Forward and writes every
// parameter's gradient; dE is not modified.
func (m *JointModel) Backward(dE Mat) error {
	if m.freed {
		return errors.New("joint model: Backward after Free")
	}
	if m.last == nil {
		return errors.New("joint model: Backward before Forward")
	}
	rows := m.last.e.Rows()
	if dE == nil || dE.Rows() != rows || dE.Cols() != m.states {
		return fmt.Errorf("joint model %v: Backward needs dE of shape %dx%d (the last Forward's batch), got %s", m, rows, m.states, shapeOf(dE))
	}
	if m.ops != nil {
		var dp Mat
		if m.pair != nil {
			dp = m.pair.Grad
		}
		if err := m.ops.JointGradients(dE, m.spec.Vars, m.last.dS, dp); err != nil {
			return fmt.Errorf("joint model: gradients: %w", err)
		}
		return m.heads.Backward(m.last.dS)
	}
	// dS = dE A_u: each unary energy collects the gradient of every joint
	// answer it appears in.
	if err := m.b.Gemm(false, false, 1, dE, m.au, 0, m.last.dS); err != nil {
		return fmt.Errorf("joint model: unary gradients: %w", err)
	}
	if err := m.heads.Backward(m.last.dS); err != nil {
		return err
	}
	if m.pair == nil {
		return nil
	}
	// dp = colsums(dE) A_p: the tables are shared by all rows.
	if err := m.b.ColumnSums(m.dq, 1, dE, 0); err != nil {
		return fmt.Errorf("joint model: pairwise gradients: %w", err)
	}
	if err := m.b.Gemm(false, false, 1, m.dq, m.ap, 0, m.pair.Grad); err != nil {
		return fmt.Errorf("joint model: pairwise gradients: %w", err)
	}
	return nil
}

// Free releases everything the model holds on its backend.
func (m *JointModel) Free() error {
	if m.freed {
		return nil
	}
	m.freed = true
	var errs []error
	if m.heads != nil {
		errs = append(errs, m.heads.Free())
	}
	if m.pair != nil {
		errs = append(errs, freeAll(m.b, m.pair.Value, m.pair.Grad))
	}
	for _, x := range []Mat{m.au, m.ap, m.q, m.dq} {
		if x != nil {
			errs = append(errs, m.b.Free(x))
		}
	}
	for _, bf := range m.bufs {
		errs = append(errs, freeAll(m.b, bf.e, bf.dS))
	}
	m.bufs, m.last = nil, nil
	return errors.Join(errs...)
}

// JointPrediction is what PredictJoint infers for each row.
type JointPrediction struct {
	Vars []int
	// Answer is the argmin joint index of each row (ties to the lowest).
	Answer []int32
	// Prob is P(Answer | X) at the given beta.
	Prob []float64
	// LogZ is log sum_y exp(-beta E(y, X)) over all joint answers.
	LogZ []float64
	// Marginals holds, for row r, P(y_i = v | X) at
	// Marginals[r*sumK + off_i + v], variables in order (see Marginal).
	Marginals []float64
	sumK      int
	offK      []int
}

// Values returns the variables' values of row r's answer.
func (p *JointPrediction) Values(r int) []int {
	d := make([]int, len(p.Vars))
	JointValues(p.Vars, int(p.Answer[r]), d)
	return d
}

// Marginal returns P(y_i = v | X) for v in [0, K_i), row r (a slice of
// Marginals).
func (p *JointPrediction) Marginal(r, i int) []float64 {
	o := r*p.sumK + p.offK[i]
	return p.Marginals[o : o+p.Vars[i]]
}

// PredictJoint infers, for the n rows of x (n x Inputs, row-major), the
// argmin joint answer, its probability at beta and each variable's marginal
// P(y_i | X), in batches of batch rows. Everything but the final download
// runs on the backend: ArgminRows finds the answer a; EnergyLoss with NLL,
// label a and gradient scale -1 turns the energies into P(y|X) - 1[y == a]
// (the NLL gradient, so no exp is needed outside the fused operation) and
// gives log Z and E(a); JointGradients (or, without JointOps, one GEMM
// with A_u) sums those into marginals, and the host adds back the 1 of a's
// values.
func PredictJoint(b Backend, m *JointModel, x []float32, n int, beta float64, batch int) (*JointPrediction, error) {
	if b == nil || m == nil {
		return nil, errors.New("PredictJoint: nil backend or model")
	}
	if m.b != b {
		return nil, errors.New("PredictJoint: the model lives on another backend")
	}
	if n < 1 || batch < 1 || len(x) != n*m.Inputs() {
		return nil, fmt.Errorf("PredictJoint: need n >= 1, batch >= 1 and len(x) = n*%d; got n=%d batch=%d len(x)=%d", m.Inputs(), n, batch, len(x))
	}
	nll := Loss{Kind: NLL, Beta: beta, Margin: 1, Gamma: 1, Delta: 1}
	if err := nll.Validate(); err != nil {
		return nil, fmt.Errorf("PredictJoint: %w", err)
	}
	batch = min(batch, n)
	d := m.Inputs()
	var xb, stats, marg Mat
	var am, am2 Ints
	defer func() {
		var xs []any
		for _, v := range []Mat{xb, stats, marg} {
			if v != nil {
				xs = append(xs, v)
			}
		}
		for _, v := range []Ints{am, am2} {
			if v != nil {
				xs = append(xs, v)
			}
		}
		_ = freeAll(b, xs...)
	}()
	var err error
	alloc := func(r, c int) Mat {
		if err != nil {
			return nil
		}
		var v Mat
		v, err = b.Alloc(r, c)
		return v
	}
	allocInts := func(k int) Ints {
		if err != nil {
			return nil
		}
		var v Ints
		v, err = b.AllocInts(k)
		return v
	}
	xb, stats, marg = alloc(batch, d), alloc(batch, NumStats), alloc(batch, m.sumK)
	am, am2 = allocInts(batch), allocInts(batch)
	if err != nil {
		return nil, fmt.Errorf("PredictJoint: %w", err)
	}
	p := &JointPrediction{
		Vars: m.Vars(), Answer: make([]int32, n), Prob: make([]float64, n), LogZ: make([]float64, n),
		Marginals: make([]float64, n*m.sumK), sumK: m.sumK, offK: append([]int(nil), m.offK...),
	}
	hs := make([]float32, batch*NumStats)
	hm := make([]float32, batch*m.sumK)
	ha := make([]int32, batch)
	digits := make([]int, len(m.spec.Vars))
	err = forwardBatches("PredictJoint", b, m, xb, x, n, func(start, end int, e Mat) error {
		if err := b.ArgminRows(e, am); err != nil {
			return fmt.Errorf("PredictJoint: %w", err)
		}
		if err := b.EnergyLoss(e, am, nll, -1, stats, am2); err != nil {
			return fmt.Errorf("PredictJoint: %w", err)
		}
		var err error
		if m.ops != nil {
			err = m.ops.JointGradients(e, m.spec.Vars, marg, nil)
		} else {
			err = b.Gemm(false, false, 1, e, m.au, 0, marg)
		}
		if err != nil {
			return fmt.Errorf("PredictJoint: marginals: %w", err)
		}
		if err := b.Download(hs, stats); err != nil {
			return fmt.Errorf("PredictJoint: %w", err)
		}
		if err := b.Download(hm, marg); err != nil {
			return fmt.Errorf("PredictJoint: %w", err)
		}
		if err := b.DownloadInts(ha, am); err != nil {
			return fmt.Errorf("PredictJoint: %w", err)
		}
		for r := 0; r < end-start; r++ {
			i := start + r
			s := hs[r*NumStats : (r+1)*NumStats]
			p.Answer[i] = ha[r]
			p.LogZ[i] = float64(s[StatLogZ])
			p.Prob[i] = math.Exp(-beta*float64(s[StatCorrect]) - float64(s[StatLogZ]))
			row := p.Marginals[i*m.sumK : (i+1)*m.sumK]
			for c := range row {
				row[c] = float64(hm[r*m.sumK+c])
			}
			JointValues(m.spec.Vars, int(ha[r]), digits)
			for v, dv := range digits {
				row[m.offK[v]+dv]++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Answers returns the argmin answer of m for each of the n rows of x (n x
// Inputs, row-major), in batches of batch rows: what a model decides,
// without labels.
func Answers(b Backend, m EnergyModel, x []float32, n, batch int) ([]int32, error) {
	if b == nil || m == nil {
		return nil, errors.New("Answers: nil backend or model")
	}
	d := m.Inputs()
	if n < 1 || batch < 1 || len(x) != n*d {
		return nil, fmt.Errorf("Answers: need n >= 1, batch >= 1 and len(x) = n*%d; got n=%d batch=%d len(x)=%d", d, n, batch, len(x))
	}
	batch = min(batch, n)
	xb, err := b.Alloc(batch, d)
	if err != nil {
		return nil, fmt.Errorf("Answers: %w", err)
	}
	am, err := b.AllocInts(batch)
	if err != nil {
		_ = b.Free(xb)
		return nil, fmt.Errorf("Answers: %w", err)
	}
	defer freeAll(b, xb, am)
	out := make([]int32, n)
	ha := make([]int32, batch)
	err = forwardBatches("Answers", b, m, xb, x, n, func(start, end int, e Mat) error {
		if err := b.ArgminRows(e, am); err != nil {
			return fmt.Errorf("Answers: %w", err)
		}
		if err := b.DownloadInts(ha, am); err != nil {
			return fmt.Errorf("Answers: %w", err)
		}
		copy(out[start:end], ha[:end-start])
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// forwardBatches runs m forward over the n rows of x (n x xb.Cols(),
// row-major) in batches of xb.Rows() rows, uploading each batch into xb, and
// calls fn with the rows [start, end) the batch holds and their energies.
// A short last batch is padded with copies of its first row, so the buffers
// keep one shape; fn ignores the padding's results. op prefixes the errors
// of the upload and the forward pass; fn's errors are returned as they are.
func forwardBatches(op string, b Backend, m EnergyModel, xb Mat, x []float32, n int, fn func(start, end int, e Mat) error) error {
	batch, d := xb.Rows(), xb.Cols()
	hx := make([]float32, batch*d)
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		copy(hx, x[start*d:end*d])
		for r := end - start; r < batch; r++ {
			copy(hx[r*d:(r+1)*d], x[start*d:(start+1)*d])
		}
		if err := b.Upload(xb, hx); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		e, err := m.Forward(xb)
		if err != nil {
			return fmt.Errorf("%s rows %d..%d: %w", op, start, end-1, err)
		}
		if err := fn(start, end, e); err != nil {
			return err
		}
	}
	return nil
}

// validateJoint checks Config.Vars (Config.Validate calls it).
func (c Config) validateJoint() error {
	if len(c.Vars) == 0 {
		if c.NoPairwise {
			return errors.New("NoPairwise is set but Vars is empty: only a joint model has pairwise tables")
		}
		return nil
	}
	_, err := JointStates(c.Vars)
	return err
}

// newConfiguredModel builds the model cfg asks for: a ChainModel when
// cfg.Chain is set, a JointModel when cfg.Vars is, otherwise the dense
// model of spec.
func newConfiguredModel(b Backend, cfg Config, spec Spec, inputs, classes int, rng *rand.Rand) (EnergyModel, error) {
	if err := CheckPrecision(b, cfg.Precision); err != nil {
		return nil, err
	}
	if cfg.Chain {
		return withPrecision(NewChainModel(b, ChainSpec{States: classes, Trunk: spec}, inputs, rng))(cfg.Precision)
	}
	if len(cfg.Vars) == 0 {
		return withPrecision(NewEnergyModel(b, spec, inputs, classes, rng))(cfg.Precision)
	}
	j, err := JointStates(cfg.Vars)
	if err != nil {
		return nil, err
	}
	if j != classes {
		return nil, fmt.Errorf("joint model over %v has %d joint answers, the data %d classes (labels must be joint indices)", cfg.Vars, j, classes)
	}
	return withPrecision(NewJointModel(b, JointSpec{Vars: cfg.Vars, Trunk: spec, Pairwise: !cfg.NoPairwise}, inputs, rng))(cfg.Precision)
}
