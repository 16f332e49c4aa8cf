package model_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

func TestScheduleValues(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }
	const base, total = 0.1, 1000
	w, _ := model.ParseSchedule("warmup:10")
	for step, want := range map[int]float64{0: 0.01, 4: 0.05, 9: 0.1, 10: 0.1, 999: 0.1} {
		if got := w.LR(base, step, total); !near(got, want) {
			t.Errorf("warmup:10 at step %d: %v, want %v", step, got, want)
		}
	}
	c, _ := model.ParseSchedule("warmup:100,cosine:0.1")
	// After warmup the cosine starts at base and ends at the floor.
	for step, want := range map[int]float64{100: base, 550: base * (0.1 + 0.9*0.5), 1000: base * 0.1, 5000: base * 0.1} {
		if got := c.LR(base, step, total); !near(got, want) {
			t.Errorf("cosine at step %d: %v, want %v", step, got, want)
		}
	}
	s, _ := model.ParseSchedule("step:300:0.5")
	for step, want := range map[int]float64{0: base, 299: base, 300: base / 2, 899: base / 4, 900: base / 8} {
		if got := s.LR(base, step, total); !near(got, want) {
			t.Errorf("step at %d: %v, want %v", step, got, want)
		}
	}
	var zero model.Schedule
	if !zero.IsConstant() || zero.LR(base, 123, total) != base || zero.String() != "constant" {
		t.Errorf("the zero schedule is not constant")
	}
	for _, spec := range []string{"constant", "cosine", "cosine:0.05", "step:10:0.5", "warmup:7", "warmup:7,cosine", "warmup:3,step:4:0.9"} {
		sc, err := model.ParseSchedule(spec)
		if err != nil || sc.String() != spec {
			t.Errorf("ParseSchedule(%q) = %v (%v), String %q", spec, sc, err, sc.String())
		}
	}
	for _, spec := range []string{"cosine:1", "step:0:0.5", "step:5:1.5", "warmup:0", "cosine,warmup:3", "linear", "step:5", "cosine,step:2:0.5", "warmup:x"} {
		if _, err := model.ParseSchedule(spec); err == nil || !strings.Contains(err.Error(), "valid:") {
			t.Errorf("ParseSchedule(%q): %v, want a refusal listing the forms", spec, err)
		}
	}
}

// TestScheduleReachesOptimizer: every step's rate is the schedule's at its
// global step (OnStep reports it), the weights differ from a constant rate,
// and a run resumed mid-schedule ends bitwise where an uninterrupted one
// does (the rate is a function of the restored step count alone).
func TestScheduleReachesOptimizer(t *testing.T) {
	train, test := resumeData(t)
	b := cpu.New()
	defer b.Close()
	cfg := resumeConfig("sgd")
	cfg.Optimizer.LR = 0.05
	cfg.Schedule, _ = model.ParseSchedule("warmup:5,cosine:0.1")
	run := func(cfg model.Config, stopAfter int) (map[string][]float32, []float64) {
		tr, err := model.NewTrainer(b, cfg, train, test)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		var lrs []float64
		total := cfg.Epochs * tr.StepsPerEpoch()
		tr.OnStep = func(s model.StepInfo) {
			want := cfg.Schedule.LR(cfg.Optimizer.LR, s.GlobalStep-1, total)
			if float32(s.LR) != float32(want) { // the optimizers step in float32
				t.Errorf("step %d: lr %v, want %v", s.GlobalStep, s.LR, want)
			}
			lrs = append(lrs, s.LR)
		}
		if stopAfter == 0 {
			if _, err := tr.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			return weights(t, b, tr.Model), lrs
		}
		ctx, cancel := context.WithCancel(context.Background())
		tr.OnStep = func(s model.StepInfo) {
			if s.GlobalStep == stopAfter {
				cancel()
			}
		}
		tr.Run(ctx)
		f, err := tr.Checkpoint(model.DataInfo{TrainRows: train.N})
		if err != nil {
			t.Fatal(err)
		}
		ck, err := model.DecodeCheckpoint(f)
		if err != nil {
			t.Fatal(err)
		}
		tr2, err := model.NewTrainer(b, cfg, train, test)
		if err != nil {
			t.Fatal(err)
		}
		defer tr2.Close()
		if err := ck.Restore(tr2); err != nil {
			t.Fatal(err)
		}
		if _, err := tr2.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		return weights(t, b, tr2.Model), nil
	}
	want, lrs := run(cfg, 0)
	if len(lrs) < 20 || math.Abs(lrs[0]-0.05/5) > 1e-8 || float32(lrs[5]) != 0.05 || !(lrs[len(lrs)-1] < 0.05*0.2) {
		t.Errorf("rates %v", lrs)
	}
	got, _ := run(cfg, 13) // mid-epoch, after the warmup
	sameBits(t, got, want)
	flat := cfg
	flat.Schedule = model.Schedule{}
	other, _ := run(flat, 0)
	if fmt.Sprint(other) == fmt.Sprint(want) {
		t.Error("the schedule changed nothing")
	}
}

func TestEarlyStopObserve(t *testing.T) {
	ev := func(acc ...float64) []model.EvalResult {
		var out []model.EvalResult
		for _, a := range acc {
			out = append(out, model.EvalResult{Accuracy: a, Loss: 1 - a, NLL: 1 - a})
		}
		return out
	}
	best, stop := model.ObserveEarlyStop(model.EarlyStop{Monitor: "accuracy", Patience: 2}, ev(0.5, 0.7, 0.6, 0.7, 0.65, 0.9))
	if fmt.Sprint(best) != "[true true false false]" || stop != 4 {
		t.Errorf("accuracy, patience 2: best %v, stopped after epoch %d", best, stop)
	}
	best, stop = model.ObserveEarlyStop(model.EarlyStop{Monitor: "loss", Patience: 2, MinDelta: 0.05}, ev(0.5, 0.52, 0.6, 0.61, 0.62))
	if fmt.Sprint(best) != "[true false true false false]" || stop != 5 {
		t.Errorf("loss, min delta 0.05: best %v, stopped after epoch %d", best, stop)
	}
	best, stop = model.ObserveEarlyStop(model.EarlyStop{Monitor: "nll", Patience: 2}, []model.EvalResult{{NLL: math.NaN()}, {NLL: 2}, {NLL: 1}})
	if fmt.Sprint(best) != "[false true true]" || stop != 0 {
		t.Errorf("NaN first: best %v, stop %d", best, stop)
	}
	for _, bad := range []model.EarlyStop{{Monitor: "acc", Patience: 1}, {Monitor: "loss", Patience: -1}, {Monitor: "loss", Patience: 1, MinDelta: -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestEarlyStoppingStopsAndResumes: a run that stops improving ends before
// its epochs, and its checkpoint says so, so a resumed run does not train
// on.
func TestEarlyStoppingStopsAndResumes(t *testing.T) {
	train, test := resumeData(t)
	b := cpu.New()
	defer b.Close()
	cfg := resumeConfig("adam")
	cfg.Optimizer.LR, cfg.Epochs = 0.05, 60
	cfg.EarlyStop = model.EarlyStop{Monitor: "accuracy", Patience: 3}
	tr, err := model.NewTrainer(b, cfg, train, test)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stopped, bestEpoch, best := tr.EarlyStopped()
	if !stopped || len(res) >= 60 || len(res) != bestEpoch+3 || !res[bestEpoch-1].Best || res[len(res)-1].Best {
		t.Fatalf("stopped %v after %d epochs, best epoch %d (%v)", stopped, len(res), bestEpoch, best)
	}
	for _, r := range res[bestEpoch:] {
		if r.Eval.Accuracy > best {
			t.Errorf("epoch %d accuracy %v beats the best %v", r.Epoch, r.Eval.Accuracy, best)
		}
	}
	f, err := tr.Checkpoint(model.DataInfo{TrainRows: train.N})
	if err != nil {
		t.Fatal(err)
	}
	ck, err := model.DecodeCheckpoint(f)
	if err != nil {
		t.Fatal(err)
	}
	if s, be := ck.EarlyStopped(); !s || be != bestEpoch {
		t.Errorf("checkpoint: stopped %v at best epoch %d", s, be)
	}
	tr2, _ := model.NewTrainer(b, cfg, train, test)
	defer tr2.Close()
	if err := ck.Restore(tr2); err != nil {
		t.Fatal(err)
	}
	if more, err := tr2.Run(context.Background()); err != nil || len(more) != 0 {
		t.Errorf("resumed an early-stopped run: %d more epochs, %v", len(more), err)
	}
}
