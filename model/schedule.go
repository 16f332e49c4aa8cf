package model

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Schedule makes the learning rate a pure function of the global step
// (the number of optimizer steps taken before this one), so that a resumed
// run, which restores the step count, continues the schedule exactly, and
// the rate of any step can be computed ahead (on the device, for a captured
// step graph). The zero value is a constant rate.
//
//	lr(step) = LR * warmup(step) * decay(step)
//	warmup   = (step+1) / Warmup for step < Warmup, else 1 (linear, from LR/Warmup)
//	cosine   : decay = Floor + (1-Floor) * (1 + cos(pi * t)) / 2,  t = (step-Warmup) / (total-Warmup) in [0, 1]
//	step     : decay = Gamma ^ floor((step-Warmup) / Every)
//
// total is the run's Epochs x steps per epoch: a resumed run given more
// epochs stretches a cosine over the longer run. The trainer hands each
// step's rate to the built-in optimizers (Trainer.learningRate, one value
// per step planned ahead, so it reaches a GPU without a synchronization);
// an Optimizer of one's own keeps its own rate.
type Schedule struct {
	Decay  string  // "" (constant), "cosine" or "step"
	Warmup int     // steps of linear warmup, >= 0
	Floor  float64 // cosine: the final fraction of LR, in [0, 1)
	Every  int     // step: steps between decays, >= 1
	Gamma  float64 // step: the factor of each decay, in (0, 1]
}

// ScheduleForms lists what ParseSchedule accepts.
const ScheduleForms = `"constant", "cosine[:FLOOR]", "step:EVERY:GAMMA", each optionally after "warmup:STEPS,"`

// ParseSchedule reads a schedule in the form String writes: "constant",
// "cosine", "cosine:0.01", "step:1000:0.5", "warmup:500", "warmup:500,cosine".
// Counts are optimizer steps (the command line also takes epochs, "5e",
// and converts them).
func ParseSchedule(s string) (Schedule, error) {
	var sc Schedule
	bad := func(why string) (Schedule, error) {
		return Schedule{}, fmt.Errorf("invalid learning-rate schedule %q: %s (valid: %s)", s, why, ScheduleForms)
	}
	parts := strings.Split(strings.TrimSpace(s), ",")
	for i, p := range parts {
		f := strings.Split(strings.TrimSpace(p), ":")
		switch strings.ToLower(f[0]) {
		case "warmup":
			if i != 0 || len(f) != 2 {
				return bad("warmup:STEPS comes first")
			}
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 1 {
				return bad("warmup needs a number of steps >= 1")
			}
			sc.Warmup = n
			continue
		case "constant", "":
			if len(f) != 1 || sc.Decay != "" || f[0] == "" && len(parts) > 1 {
				return bad("constant takes no value")
			}
		case "cosine":
			if len(f) > 2 || sc.Decay != "" {
				return bad("cosine or cosine:FLOOR, once")
			}
			sc.Decay = "cosine"
			if len(f) == 2 {
				v, err := strconv.ParseFloat(f[1], 64)
				if err != nil {
					return bad("the cosine floor must be a number")
				}
				sc.Floor = v
			}
		case "step":
			if len(f) != 3 || sc.Decay != "" {
				return bad("step:EVERY:GAMMA, once")
			}
			n, err1 := strconv.Atoi(f[1])
			g, err2 := strconv.ParseFloat(f[2], 64)
			if err1 != nil || err2 != nil {
				return bad("step needs a number of steps and a factor")
			}
			sc.Decay, sc.Every, sc.Gamma = "step", n, g
		default:
			return bad(fmt.Sprintf("unknown part %q", f[0]))
		}
	}
	if err := sc.Validate(); err != nil {
		return bad(err.Error())
	}
	return sc, nil
}

// Validate reports a setting out of range.
func (s Schedule) Validate() error {
	switch {
	case s.Warmup < 0:
		return fmt.Errorf("warmup %d < 0", s.Warmup)
	case s.Decay == "cosine" && !(s.Floor >= 0 && s.Floor < 1):
		return fmt.Errorf("cosine floor %v outside [0, 1)", s.Floor)
	case s.Decay == "step" && s.Every < 1:
		return fmt.Errorf("step every %d < 1", s.Every)
	case s.Decay == "step" && !(s.Gamma > 0 && s.Gamma <= 1):
		return fmt.Errorf("step factor %v outside (0, 1]", s.Gamma)
	case s.Decay != "" && s.Decay != "cosine" && s.Decay != "step":
		return fmt.Errorf("unknown decay %q", s.Decay)
	}
	return nil
}

// String writes the schedule as ParseSchedule reads it.
func (s Schedule) String() string {
	var parts []string
	if s.Warmup > 0 {
		parts = append(parts, "warmup:"+strconv.Itoa(s.Warmup))
	}
	switch s.Decay {
	case "cosine":
		c := "cosine"
		if s.Floor != 0 {
			c += ":" + fmtFloat(s.Floor)
		}
		parts = append(parts, c)
	case "step":
		parts = append(parts, fmt.Sprintf("step:%d:%s", s.Every, fmtFloat(s.Gamma)))
	}
	if len(parts) == 0 {
		return "constant"
	}
	return strings.Join(parts, ",")
}

// IsConstant reports whether the rate never changes.
func (s Schedule) IsConstant() bool { return s.Warmup == 0 && s.Decay == "" }

// LR returns the learning rate of the step taken after step steps, for a
// base rate base and a run of total steps.
func (s Schedule) LR(base float64, step, total int) float64 {
	f := 1.0
	if step < s.Warmup {
		f = float64(step+1) / float64(s.Warmup)
	}
	after := max(step-s.Warmup, 0)
	switch s.Decay {
	case "cosine":
		span := max(total-s.Warmup, 1)
		t := min(float64(after)/float64(span), 1)
		f *= s.Floor + (1-s.Floor)*(1+math.Cos(math.Pi*t))/2
	case "step":
		f *= math.Pow(s.Gamma, float64(after/s.Every))
	}
	return base * f
}
