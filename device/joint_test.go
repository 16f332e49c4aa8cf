package device_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
)

// jointResult is what one backend computes for a joint case.
type jointResult struct{ e, ds, dp []float32 }

// runJoint runs JointEnergies and JointGradients on be with outputs
// poisoned with NaN; p and dp are absent when hp is nil.
func runJoint(t *testing.T, be model.Backend, vars []int, B int, hs, hp, hde []float32) jointResult {
	t.Helper()
	_, sumK, _, sumP, err := model.JointLayout(vars)
	must(t, err)
	j, _ := model.JointStates(vars)
	nan := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(math.NaN())
		}
		return v
	}
	var p, dp model.Mat
	if hp != nil {
		p, dp = alloc(t, be, 1, sumP, hp), alloc(t, be, 1, sumP, nan(sumP))
	}
	e := alloc(t, be, B, j, nan(B*j))
	must(t, be.(model.JointOps).JointEnergies(alloc(t, be, B, sumK, hs), p, vars, e))
	ds := alloc(t, be, B, sumK, nan(B*sumK))
	must(t, be.(model.JointOps).JointGradients(alloc(t, be, B, j, hde), vars, ds, dp))
	r := jointResult{e: download(t, be, e), ds: download(t, be, ds)}
	if dp != nil {
		r.dp = download(t, be, dp)
	}
	return r
}

func jointInputs(vars []int, B int, pairwise bool, seed uint64) (hs, hp, hde []float32) {
	_, sumK, _, sumP, _ := model.JointLayout(vars)
	j, _ := model.JointStates(vars)
	rng := rand.New(rand.NewPCG(seed, uint64(B)))
	r := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	hs, hde = r(B*sumK), r(B*j)
	if pairwise {
		hp = r(sumP)
	}
	return hs, hp, hde
}

// TestJointOpsMatchCPU: the joint kernels on the emulator (both thread
// orders, and a grid capped at 3 blocks so every grid-stride loop runs
// more than once) agree with cpu within float32 rounding, for the awkward
// shapes and a batch of 200 rows (three row ranges in the pairwise
// gradient's first stage); the emulator's runs are bitwise reproducible
// and bitwise the same in both thread orders.
func TestJointOpsMatchCPU(t *testing.T) {
	cases := [][]int{{1}, {2, 3}, {3, 1, 4}, {7, 5}, {2, 2, 2, 2, 2}, {40, 30}}
	ref := cpu.New()
	for ci, vars := range cases {
		for _, B := range []int{1, 7, 33, 200} {
			for _, pairwise := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/B%d/pairwise=%v", vars, B, pairwise), func(t *testing.T) {
					hs, hp, hde := jointInputs(vars, B, pairwise, uint64(ci))
					want := runJoint(t, ref, vars, B, hs, hp, hde)
					var first *jointResult
					for _, cfg := range []struct {
						eo emu.Options
						do device.Options
					}{
						{emu.Options{}, device.Options{}},
						{emu.Options{Mode: emu.Permuted, Seed: 3}, device.Options{}},
						{emu.Options{Mode: emu.Permuted, Seed: 3}, device.Options{MaxBlocks: 3}},
					} {
						be := newDevice(t, cfg.eo, cfg.do)
						got := runJoint(t, be, vars, B, hs, hp, hde)
						again := runJoint(t, be, vars, B, hs, hp, hde)
						must(t, be.Close())
						for _, c := range []struct {
							name    string
							g, a, w []float32
						}{{"E", got.e, again.e, want.e}, {"dS", got.ds, again.ds, want.ds}, {"dP", got.dp, again.dp, want.dp}} {
							if len(c.g) != len(c.w) {
								t.Fatalf("%s: %d values, cpu %d", c.name, len(c.g), len(c.w))
							}
							for i := range c.w {
								if !(math.Abs(float64(c.g[i]-c.w[i])) <= 1e-5*(1+math.Abs(float64(c.w[i])))) {
									t.Fatalf("%v %+v: %s[%d] = %v, cpu %v", cfg.eo.Mode, cfg.do, c.name, i, c.g[i], c.w[i])
								}
								if math.Float32bits(c.g[i]) != math.Float32bits(c.a[i]) {
									t.Fatalf("%v: %s[%d] = %v, then %v on the same inputs", cfg.eo.Mode, c.name, i, c.g[i], c.a[i])
								}
							}
						}
						if first == nil {
							first = &got
							continue
						}
						for _, c := range []struct {
							name string
							a, b []float32
						}{{"E", first.e, got.e}, {"dS", first.ds, got.ds}, {"dP", first.dp, got.dp}} {
							for i := range c.a {
								if math.Float32bits(c.a[i]) != math.Float32bits(c.b[i]) {
									t.Fatalf("%v %+v: %s[%d] = %v, deterministic mode gave %v", cfg.eo.Mode, cfg.do, c.name, i, c.b[i], c.a[i])
								}
							}
						}
					}
				})
			}
		}
	}
}

func TestJointOpsErrorsDevice(t *testing.T) {
	be := newDevice(t, emu.Options{}, device.Options{})
	defer be.Close()
	s := alloc(t, be, 2, 5, make([]float32, 10))
	e := alloc(t, be, 2, 6, make([]float32, 12))
	ds := alloc(t, be, 2, 5, make([]float32, 10))
	x := alloc(t, be, 2, 2, make([]float32, 4))
	for _, c := range []struct {
		name string
		err  error
	}{
		{"no vars", be.JointEnergies(s, nil, nil, e)},
		{"s width", be.JointEnergies(s, nil, []int{3, 3}, e)},
		{"p width", be.JointEnergies(s, alloc(t, be, 1, 5, make([]float32, 5)), []int{2, 3}, e)},
		{"de is ds", be.JointGradients(x, []int{2}, x, nil)},
		{"dp width", be.JointGradients(e, []int{2, 3}, ds, alloc(t, be, 1, 7, make([]float32, 7)))},
		{"cpu matrix", be.JointGradients(e, []int{2, 3}, ds, alloc(t, cpu.New(), 1, 6, make([]float32, 6)))},
	} {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// allocCounter is a Driver that counts allocations and frees, and the
// bytes still allocated.
type allocCounter struct {
	device.Driver
	allocs, frees int
	live          map[device.Ptr]int64
}

func (c *allocCounter) Alloc(bytes int64) (device.Ptr, error) {
	p, err := c.Driver.Alloc(bytes)
	if err == nil {
		c.allocs++
		c.live[p] = bytes
	}
	return p, err
}

func (c *allocCounter) Free(p device.Ptr) error {
	c.frees++
	delete(c.live, p)
	return c.Driver.Free(p)
}

// TestJointScratchReused: the JointOps keep their scratch on the Backend.
// Once a shape has run, repeating it allocates and frees nothing; a larger
// shape grows the scratch (freeing the smaller one); a smaller one reuses it;
// Close frees everything, the scratch included.
func TestJointScratchReused(t *testing.T) {
	drv, err := emu.New(emu.Options{})
	must(t, err)
	c := &allocCounter{Driver: drv, live: map[device.Ptr]int64{}}
	be, err := device.New(c)
	must(t, err)
	count := func(vars []int, B int) (allocs, frees int) {
		t.Helper()
		_, sumK, _, sumP, err := model.JointLayout(vars)
		must(t, err)
		j, _ := model.JointStates(vars)
		hs, hp, hde := jointInputs(vars, B, true, 1)
		s, p, de := alloc(t, be, B, sumK, hs), alloc(t, be, 1, sumP, hp), alloc(t, be, B, j, hde)
		e, ds, dp := alloc(t, be, B, j, nil), alloc(t, be, B, sumK, nil), alloc(t, be, 1, sumP, nil)
		a0, f0 := c.allocs, c.frees
		must(t, be.JointEnergies(s, p, vars, e))
		must(t, be.JointGradients(de, vars, ds, dp))
		allocs, frees = c.allocs-a0, c.frees-f0
		for _, m := range []model.Mat{s, p, de, e, ds, dp} {
			must(t, be.Free(m))
		}
		return allocs, frees
	}
	if a, _ := count([]int{2, 3}, 7); a == 0 {
		t.Fatalf("the first JointOps calls allocated no scratch")
	}
	for i := 0; i < 3; i++ {
		if a, f := count([]int{2, 3}, 7); a != 0 || f != 0 {
			t.Fatalf("repeating the same JointOps calls: %d allocations, %d frees, want 0", a, f)
		}
	}
	// 200 rows of J = 1200 need several row ranges of doubles: more scratch.
	// (JointEnergies may grow it for J doubles, then JointGradients for
	// several row ranges of J: every growth frees the smaller buffer.)
	if a, f := count([]int{40, 30}, 200); a == 0 || a != f {
		t.Fatalf("a larger shape: %d allocations, %d frees, want the scratch grown (as many frees as allocations, > 0)", a, f)
	}
	if a, f := count([]int{40, 30}, 200); a != 0 || f != 0 {
		t.Fatalf("repeating the larger shape: %d allocations, %d frees, want 0", a, f)
	}
	if a, f := count([]int{2, 3}, 7); a != 0 || f != 0 {
		t.Fatalf("a smaller shape after a larger one: %d allocations, %d frees, want 0", a, f)
	}
	must(t, be.Close())
	if len(c.live) != 0 {
		t.Fatalf("after Close, %d device allocations are still live: %v", len(c.live), c.live)
	}
}
