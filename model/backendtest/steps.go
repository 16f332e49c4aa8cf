package backendtest

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/model"
)

// checkEnergyStats runs ForwardLoss.EnergyStats, where the backend has it,
// on a fresh copy of c's energies and requires what EnergyLoss gave (out)
// bitwise, with the energies left unchanged. callEnergyLoss calls it, so
// every EnergyLoss case of the suite (sizes, plans, huge energies) checks
// the forward-only path too.
func checkEnergyStats(t *testing.T, h *helper, c *elCase, out elOutputs) {
	t.Helper()
	f, ok := h.b.(model.ForwardLoss)
	if !ok {
		return
	}
	me := h.mat(c.b, c.k, c.e)
	ml := h.ints(c.labels)
	stats := h.poisoned(c.b, model.NumStats)
	am := h.poisonedInts(c.b)
	must(t, "EnergyStats", func() error { return f.EnergyStats(me, ml, c.loss, stats, am) })
	mm := newMismatches(t, "EnergyStats of %v", c)
	mm.checkBits("energies (must be left unchanged)", h.get(me), c.e, c.k)
	mm.checkBits("stats (EnergyLoss's)", h.get(stats), out.stats, model.NumStats)
	mm.checkInts("argmin (EnergyLoss's)", h.getInts(am), out.argmin)
	mm.report()
}

// TestStepOps checks model.StepOps, on a backend that has it, against the
// per-operation Backend methods: FusedOptimizerStep bitwise equal to
// SGDStep, MomentumStep and AdamStep parameter by parameter, over several
// steps with a learning rate per step and step bases 0 and 997 (Adam's
// bias corrections), parameters of awkward and empty shapes; the
// non-finite weight check (the step and the parameter named, no later
// update) and the non-finite loss halt (that step's update skipped);
// RecordStep's loss sums and cursor; GatherStep equal to GatherRows and
// GatherInts; the read-back bookkeeping; and argument errors.
func TestStepOps(t *testing.T, newBackend func(t *testing.T) model.Backend) {
	b := open(t, newBackend)
	ops, ok := b.(model.StepOps)
	if !ok {
		t.Skipf("%s has no StepOps (optional): the trainer runs host-synchronized steps on it", b.Name())
	}
	for _, kind := range []model.OptimizerKind{model.OptSGD, model.OptMomentum, model.OptAdam} {
		for _, wd := range []float32{0, 0.1} {
			for _, base := range []int{0, 997} {
				t.Run(fmt.Sprintf("fused/%v/weightDecay=%v/base=%d", kind, wd, base), func(t *testing.T) {
					testFusedOptimizer(t, b, ops, kind, wd, base)
				})
			}
		}
	}
	t.Run("nonfinite-weights", func(t *testing.T) { testNonFinite(t, b, ops, false) })
	t.Run("nonfinite-loss", func(t *testing.T) { testNonFinite(t, b, ops, true) })
	t.Run("record", func(t *testing.T) { testRecordStep(t, b, ops) })
	t.Run("gather", func(t *testing.T) { testGatherStep(t, b, ops) })
	t.Run("errors", func(t *testing.T) { testStepErrors(t, b, ops) })
}

// stepShapes are the parameter shapes of the fused tests: one element, the
// suite's awkward sizes, an empty matrix, and one longer than a virtual
// block of the device's multi-tensor kernel (1024 elements).
var stepShapes = [][2]int{{1, 1}, {7, 33}, {0, 5}, {31, 257}, {1, 1000}, {3, 2}}

// stepLRs is the learning rate of each step: different, so a backend that
// reads another step's rate fails.
var stepLRs = []float32{0.05, 0.03, 0.1, 0.01, 0.07}

var stepHyper = model.OptimizerSpec{Mu: 0.9, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}

// paramSet is one copy of the parameters of a fused test.
type paramSet struct {
	slots []model.ParamSlots
}

func newParamSet(h *helper, kind model.OptimizerKind, w0 [][]float32) paramSet {
	var ps paramSet
	for i, s := range stepShapes {
		n := s[0] * s[1]
		p := model.ParamSlots{Name: fmt.Sprintf("p%d", i), W: h.mat(s[0], s[1], w0[i]), G: h.mat(s[0], s[1], make([]float32, n))}
		for range kind.StateTensors() {
			p.State = append(p.State, h.mat(s[0], s[1], make([]float32, n)))
		}
		ps.slots = append(ps.slots, p)
	}
	return ps
}

// stepSpec is a spec over ps that gathers from one row (the fused tests
// gather nothing).
func stepSpec(kind model.OptimizerKind, wd float32, ps paramSet) model.StepSpec {
	o := stepHyper
	o.Kind, o.WeightDecay = kind, wd
	return model.StepSpec{Batch: 1, Steps: len(stepLRs), Rows: 1, Optimizer: o, Params: ps.slots}
}

func newState(t *testing.T, ops model.StepOps, spec model.StepSpec) model.StepState {
	t.Helper()
	var st model.StepState
	must(t, "NewStepState", func() (err error) { st, err = ops.NewStepState(spec); return })
	t.Cleanup(func() {
		if err := st.Free(); err != nil {
			t.Errorf("StepState.Free: %v", err)
		}
	})
	return st
}

func plan(spec model.StepSpec, base int) model.EpochPlan {
	return model.EpochPlan{Order: make([]int32, spec.Steps*spec.Batch), StepBase: base, LR: append([]float32(nil), stepLRs...)}
}

// perParam applies step s of the plan to ps with the per-parameter methods.
func perParam(b model.Backend, kind model.OptimizerKind, wd float32, ps paramSet, lr float32, t int) error {
	o := stepHyper
	for _, p := range ps.slots {
		var err error
		switch kind {
		case model.OptSGD:
			err = b.SGDStep(p.W, p.G, lr, wd)
		case model.OptMomentum:
			err = b.MomentumStep(p.W, p.G, p.State[0], lr, o.Mu, wd)
		case model.OptAdam:
			err = b.AdamStep(p.W, p.G, p.State[0], p.State[1], lr, o.Beta1, o.Beta2, o.Eps, wd, t)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	return nil
}

// setGrads uploads the same fresh gradients to both sets.
func setGrads(h *helper, sets ...paramSet) [][]float32 {
	var gs [][]float32
	for i, s := range stepShapes {
		g := h.uniform(s[0]*s[1], -1, 1)
		for _, ps := range sets {
			if err := h.b.Upload(ps.slots[i].G, g); err != nil {
				h.t.Fatalf("Upload: %v", err)
			}
		}
		gs = append(gs, g)
	}
	return gs
}

// zeroStats is a 1 x NumStats statistics matrix with the given loss.
func zeroStats(h *helper, loss float32) model.Mat {
	return h.mat(1, model.NumStats, []float32{loss, 0, 0, 0})
}

// compareSets requires the weights and state of got bitwise equal to want's.
func compareSets(t *testing.T, h *helper, what string, got, want paramSet) {
	t.Helper()
	mm := newMismatches(t, "%s", what)
	for i := range want.slots {
		g, w := got.slots[i], want.slots[i]
		c := stepShapes[i][1]
		mm.checkBits(g.Name+" w", h.get(g.W), h.get(w.W), c)
		for j := range w.State {
			mm.checkBits(fmt.Sprintf("%s state %d", g.Name, j), h.get(g.State[j]), h.get(w.State[j]), c)
		}
	}
	mm.report()
}

func initialWeights(h *helper) [][]float32 {
	var w0 [][]float32
	for _, s := range stepShapes {
		w0 = append(w0, h.uniform(s[0]*s[1], -1, 1))
	}
	return w0
}

func testFusedOptimizer(t *testing.T, b model.Backend, ops model.StepOps, kind model.OptimizerKind, wd float32, base int) {
	h := newHelper(t, b)
	w0 := initialWeights(h)
	fused, ref := newParamSet(h, kind, w0), newParamSet(h, kind, w0)
	spec := stepSpec(kind, wd, fused)
	st := newState(t, ops, spec)
	must(t, "PlanEpoch", func() error { return ops.PlanEpoch(st, plan(spec, base)) })
	stats := zeroStats(h, 0.5)
	for s, lr := range stepLRs {
		setGrads(h, fused, ref)
		must(t, "RecordStep", func() error { return ops.RecordStep(st, stats) })
		must(t, "FusedOptimizerStep", func() error { return ops.FusedOptimizerStep(st) })
		must(t, "per-parameter steps", func() error { return perParam(b, kind, wd, ref, lr, base+s+1) })
		compareSets(t, h, fmt.Sprintf("%v step %d (global %d, lr %v): fused vs per-parameter", kind, s, base+s+1, lr), fused, ref)
		if t.Failed() {
			return
		}
	}
	rep := readAll(t, ops, st)
	if rep.Cursor != len(stepLRs) || rep.WeightStep != 0 || rep.LossStep != 0 || rep.BadParams != nil {
		t.Errorf("report after %d finite steps: %+v", len(stepLRs), rep)
	}
}

// readAll starts a read-back and waits for it.
func readAll(t *testing.T, ops model.StepOps, st model.StepState) model.StepReport {
	t.Helper()
	var r model.StepReadback
	must(t, "ReadSteps", func() (err error) { r, err = ops.ReadSteps(st); return })
	var rep model.StepReport
	must(t, "StepReadback.Wait", func() (err error) { rep, err = r.Wait(); return })
	return rep
}

// testNonFinite makes step 3 (index 2) go wrong: a gradient element of
// +Inf in parameter 3 (momentum then writes -Inf there), or a NaN batch
// loss.
// The report must name the step (and the parameter); the weights must stay
// as that step left them (after its update for weights, before it for the
// loss) through two more steps.
func testNonFinite(t *testing.T, b model.Backend, ops model.StepOps, loss bool) {
	const base, bad, badParam = 40, 2, 3
	h := newHelper(t, b)
	w0 := initialWeights(h)
	fused := newParamSet(h, model.OptMomentum, w0)
	spec := stepSpec(model.OptMomentum, 0, fused)
	st := newState(t, ops, spec)
	must(t, "PlanEpoch", func() error { return ops.PlanEpoch(st, plan(spec, base)) })
	var frozen [][]float32
	for s := range stepLRs {
		setGrads(h, fused)
		stats := zeroStats(h, 1)
		if s == bad {
			if loss {
				stats = zeroStats(h, float32(math.NaN()))
			} else {
				g := h.get(fused.slots[badParam].G)
				g[5] = float32(math.Inf(1))
				must(t, "Upload", func() error { return b.Upload(fused.slots[badParam].G, g) })
			}
		}
		if s == bad && loss {
			frozen = snapshot(h, fused) // the update of this step must not happen
		}
		must(t, "RecordStep", func() error { return ops.RecordStep(st, stats) })
		must(t, "FusedOptimizerStep", func() error { return ops.FusedOptimizerStep(st) })
		if s == bad && !loss {
			frozen = snapshot(h, fused)
			if w := h.get(fused.slots[badParam].W); !math.IsInf(float64(w[5]), -1) {
				t.Fatalf("the +Inf gradient gave weight %v, want -Inf (the test's premise)", w[5])
			}
		}
		if s >= bad {
			got := snapshot(h, fused)
			mm := newMismatches(t, "after step %d (the %s went non-finite at step %d)", s, map[bool]string{true: "loss", false: "weights"}[loss], bad)
			for i := range got {
				mm.checkBits(fmt.Sprintf("tensor %d", i), got[i], frozen[i], 0)
			}
			mm.report()
		}
	}
	rep := readAll(t, ops, st)
	if rep.Cursor != len(stepLRs) {
		t.Errorf("cursor %d after %d steps", rep.Cursor, len(stepLRs))
	}
	if loss {
		if rep.LossStep != base+bad+1 || rep.WeightStep != 0 || rep.BadParams != nil {
			t.Errorf("NaN loss at global step %d: report %+v, want LossStep %d and no weight step", base+bad+1, rep, base+bad+1)
		}
		return
	}
	if rep.WeightStep != base+bad+1 || rep.LossStep != 0 || len(rep.BadParams) != 1 || rep.BadParams[0] != badParam {
		t.Errorf("-Inf weight at global step %d in parameter %d: report %+v", base+bad+1, badParam, rep)
	}
}

// snapshot downloads every weight and state tensor of ps.
func snapshot(h *helper, ps paramSet) [][]float32 {
	var out [][]float32
	for _, p := range ps.slots {
		out = append(out, h.get(p.W))
		for _, s := range p.State {
			out = append(out, h.get(s))
		}
	}
	return out
}

// testRecordStep records random per-row losses for the steps of a plan
// that starts at step 2 and checks each step's sum (float64, rounded once:
// within an ulp of float32 whatever the order of the float64 sum) and the
// cursor; a read-back in the middle sees only the steps recorded by then.
func testRecordStep(t *testing.T, b model.Backend, ops model.StepOps) {
	h := newHelper(t, b)
	const B, steps, first = 33, 6, 2
	spec := model.StepSpec{Batch: B, Steps: steps, Rows: 1, Optimizer: model.OptimizerSpec{Kind: model.OptSGD}}
	st := newState(t, ops, spec)
	p := model.EpochPlan{Order: make([]int32, B*steps), First: first, StepBase: 7, LR: make([]float32, steps)}
	must(t, "PlanEpoch", func() error { return ops.PlanEpoch(st, p) })
	want := make([]float64, steps)
	for s := first; s < steps; s++ {
		x := h.uniform(B*model.NumStats, -2, 10)
		for i := 0; i < B; i++ {
			want[s] += float64(x[i*model.NumStats+model.StatLoss])
		}
		stats := h.mat(B, model.NumStats, x)
		must(t, "RecordStep", func() error { return ops.RecordStep(st, stats) })
		if s == 3 {
			if rep := readAll(t, ops, st); rep.Cursor != 4 {
				t.Errorf("read back after recording steps 2 and 3: cursor %d, want 4", rep.Cursor)
			}
		}
	}
	rep := readAll(t, ops, st)
	if rep.Cursor != steps || rep.LossStep != 0 || rep.WeightStep != 0 {
		t.Errorf("report %+v, want cursor %d and no divergence", rep, steps)
	}
	for s := first; s < steps; s++ {
		w := float32(want[s])
		if got := rep.Losses[s]; math.Abs(float64(got-w)) > float64(ulp32(w)) {
			t.Errorf("loss of step %d = %v, want %v (float64 sum %v) within an ulp", s, got, w, want[s])
		}
	}
}

func ulp32(x float32) float32 {
	return math.Nextafter32(float32(math.Abs(float64(x))), float32(math.Inf(1))) - float32(math.Abs(float64(x)))
}

// testGatherStep plans 4 steps of 9 rows over 37 (the last an IgnoreLabel
// padding row, as the trainer's) and compares every step's GatherStep,
// into poisoned outputs, with GatherRows and GatherInts of that step's
// indices.
func testGatherStep(t *testing.T, b model.Backend, ops model.StepOps) {
	h := newHelper(t, b)
	const rows, d, B, steps = 37, 5, 9, 4
	srcX := h.mat(rows, d, h.uniform(rows*d, -3, 3))
	labels := make([]int32, rows)
	for i := range labels {
		labels[i] = int32(h.rng.IntN(10))
	}
	labels[rows-1] = model.IgnoreLabel
	srcY := h.ints(labels)
	order := make([]int32, B*steps)
	for i := range order {
		order[i] = int32(h.rng.IntN(rows))
	}
	order[len(order)-1] = rows - 1
	spec := model.StepSpec{Batch: B, Steps: steps, Rows: rows, Optimizer: model.OptimizerSpec{Kind: model.OptSGD}}
	st := newState(t, ops, spec)
	must(t, "PlanEpoch", func() error {
		return ops.PlanEpoch(st, model.EpochPlan{Order: order, LR: make([]float32, steps)})
	})
	stats := h.mat(B, model.NumStats, make([]float32, B*model.NumStats))
	for s := range steps {
		x, y := h.poisoned(B, d), h.poisonedInts(B)
		must(t, "GatherStep", func() error { return ops.GatherStep(st, x, y, srcX, srcY) })
		idx := h.ints(order[s*B : (s+1)*B])
		wx, wy := h.poisoned(B, d), h.poisonedInts(B)
		must(t, "GatherRows", func() error { return b.GatherRows(wx, srcX, idx) })
		must(t, "GatherInts", func() error { return b.GatherInts(wy, srcY, idx) })
		mm := newMismatches(t, "GatherStep of step %d", s)
		mm.checkBits("x", h.get(x), h.get(wx), d)
		mm.checkInts("y", h.getInts(y), h.getInts(wy))
		mm.report()
		must(t, "RecordStep", func() error { return ops.RecordStep(st, stats) })
	}
}

// testStepErrors checks that bad specs, plans and operands are refused
// with an error that says what is wrong, and that read-backs are bounded.
func testStepErrors(t *testing.T, b model.Backend, ops model.StepOps) {
	h := newHelper(t, b)
	w, g := h.mat(3, 4, make([]float32, 12)), h.mat(3, 4, make([]float32, 12))
	v, odd := h.mat(3, 4, make([]float32, 12)), h.mat(4, 3, make([]float32, 12))
	ok := model.StepSpec{Batch: 2, Steps: 3, Rows: 5, Optimizer: model.OptimizerSpec{Kind: model.OptMomentum, Mu: 0.9},
		Params: []model.ParamSlots{{Name: "w", W: w, G: g, State: []model.Mat{v}}}}
	for _, c := range []struct {
		name, want string
		mod        func(*model.StepSpec)
	}{
		{"no state", "state tensors", func(s *model.StepSpec) { s.Params[0].State = nil }},
		{"state shape", "4x3", func(s *model.StepSpec) { s.Params[0].State = []model.Mat{odd} }},
		{"aliased", "distinct", func(s *model.StepSpec) { s.Params[0].G = w }},
		{"batch 0", "batch", func(s *model.StepSpec) { s.Batch = 0 }},
		{"kind", "unknown optimizer", func(s *model.StepSpec) { s.Optimizer.Kind = 9 }},
		{"momentum 1", "momentum", func(s *model.StepSpec) { s.Optimizer.Mu = 1 }},
	} {
		s := ok
		s.Params = append([]model.ParamSlots(nil), ok.Params...)
		c.mod(&s)
		if st, err := ops.NewStepState(s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewStepState with %s: %v, want an error containing %q", c.name, err, c.want)
			if st != nil {
				st.Free()
			}
		}
	}
	st := newState(t, ops, ok)
	x, y := h.poisoned(2, 1), h.poisonedInts(2)
	srcX, srcY := h.mat(5, 1, h.uniform(5, 0, 1)), h.ints([]int32{0, 1, 2, 3, 4})
	if err := ops.GatherStep(st, x, y, srcX, srcY); err == nil || !strings.Contains(err.Error(), "PlanEpoch") {
		t.Errorf("GatherStep before PlanEpoch: %v, want an error saying to plan first", err)
	}
	good := model.EpochPlan{Order: []int32{0, 1, 2, 3, 4, 0}, LR: []float32{1, 1, 1}}
	for _, c := range []struct {
		name, want string
		p          model.EpochPlan
	}{
		{"index", "row index 5 of step 1", model.EpochPlan{Order: []int32{0, 1, 2, 5, 4, 0}, LR: good.LR}},
		{"length", "row indices", model.EpochPlan{Order: good.Order[:5], LR: good.LR}},
		{"lr", "learning rate NaN of step 2", model.EpochPlan{Order: good.Order, LR: []float32{1, 1, float32(math.NaN())}}},
		{"first", "first step", model.EpochPlan{Order: good.Order, LR: good.LR, First: 4}},
	} {
		if err := ops.PlanEpoch(st, c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("PlanEpoch with a bad %s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	must(t, "PlanEpoch", func() error { return ops.PlanEpoch(st, good) })
	if err := ops.GatherStep(st, h.poisoned(3, 1), y, srcX, srcY); err == nil || !strings.Contains(err.Error(), "3x1") {
		t.Errorf("GatherStep into a 3x1 x for batch 2: %v, want an error naming the shape", err)
	}
	if err := ops.RecordStep(st, h.poisoned(2, 3)); err == nil || !strings.Contains(err.Error(), "2x3") {
		t.Errorf("RecordStep of 2x3 stats: %v, want an error naming the shape", err)
	}
	var rs []model.StepReadback
	for range model.MaxReadbacks {
		r, err := ops.ReadSteps(st)
		if err != nil {
			t.Fatalf("ReadSteps with fewer than MaxReadbacks in flight: %v", err)
		}
		rs = append(rs, r)
	}
	if _, err := ops.ReadSteps(st); err == nil {
		t.Errorf("ReadSteps with MaxReadbacks (%d) in flight: no error", model.MaxReadbacks)
	}
	for _, r := range rs {
		if _, err := r.Wait(); err != nil {
			t.Errorf("Wait: %v", err)
		}
	}
	if _, err := rs[0].Wait(); err == nil {
		t.Error("a second Wait on one read-back: no error")
	}
}
