package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchEnergyHead: bench --op energy-head (and its materializing
// twin) print one result whose op starts with "energy-head", with a
// median, a rate and the peak memory; on a backend without the head, and
// with bad sizes, a one-line error.
func TestBenchEnergyHead(t *testing.T) {
	for _, op := range []string{"energy-head", "energy-head-materializing"} {
		code, out, errs := runArgs("bench", "--backend", "cpu", "--op", op, "--batch", "33", "--dim", "7", "--answers", "1001",
			"--reps", "3", "--warmup", "1", "--json", "--loss", "hinge")
		if code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", op, code, errs)
		}
		var rep benchReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%s: %v\n%s", op, err, out)
		}
		if len(rep.Results) != 1 {
			t.Fatalf("%s: %d results, want 1", op, len(rep.Results))
		}
		r := rep.Results[0]
		if !strings.HasPrefix(r.Op, "energy-head") || r.Op != op+" hinge(m=1)" || r.Shape != "B=33 D=7 K=1001" ||
			!(r.MedianS > 0) || !(r.MinS <= r.MedianS) || r.FLOPs != 6*33*7*1001 || !(r.GFLOPs > 0) || r.PeakRSSBytes < 1<<20 {
			t.Errorf("%s: result %+v", op, r)
		}
	}
	code, out, errs := runArgs("bench", "--backend", "cpu", "--op", "energy-head", "--batch", "5", "--dim", "3", "--answers", "9", "--reps", "1")
	if code != 0 || !strings.Contains(out, "energy-head nll(beta=1)") || !strings.Contains(out, "peak resident memory") {
		t.Errorf("table: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--op", "energy-headd"}, "valid: all, energy-head, energy-head-materializing"},
		{[]string{"--op", "energy-head", "--dim", "0"}, "dim and answers must be >= 1"},
		{[]string{"--op", "energy-head", "--answers", "-3"}, "dim and answers must be >= 1"},
	} {
		code, _, errs := runArgs(append([]string{"bench", "--backend", "cpu", "--reps", "1"}, tc.args...)...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("bench %v: exit %d, stderr %q (want %q)", tc.args, code, errs, tc.want)
		}
	}
}
