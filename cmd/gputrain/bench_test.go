package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
)

// tinyBench are sizes awkward for any tiling that finish in milliseconds.
var tinyBench = []string{"bench", "--backend", "cpu", "--m", "7", "--n", "33", "--k", "31", "--rows", "33", "--cols", "257",
	"--batch", "31", "--inputs", "33", "--classes", "7", "--model", "mlp:7", "--reps", "3", "--warmup", "1"}

var benchOps = []string{"gemm NN", "gemm NT", "gemm TN", "energy-loss nll(beta=1)", "argmin-rows", "add-row-vector",
	"column-sums", "activate relu", "activate tanh", "activation-grad relu", "activation-grad tanh", "gather-rows",
	"adam-step", "step: forward", "step: energy-loss", "step: backward", "step: adam", "step: total"}

var benchRateRE = regexp.MustCompile(`^([0-9.]+) (GFLOP/s|GB/s)$`)
var benchTimeRE = regexp.MustCompile(`^([0-9.]+) (s|ms|us)$`)

func TestBenchTable(t *testing.T) {
	code, out, errs := runArgs(tinyBench...)
	if code != 0 {
		t.Fatalf("exit status %d; stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "# backend cpu") || !strings.HasPrefix(lines[1], "op ") {
		t.Fatalf("no header:\n%s", out)
	}
	rows := lines[2:]
	if len(rows) != len(benchOps) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(benchOps), out)
	}
	unit := map[string]float64{"s": 1, "ms": 1e-3, "us": 1e-6}
	seconds := func(f string) float64 {
		m := benchTimeRE.FindStringSubmatch(f)
		if m == nil {
			t.Errorf("%q is not a time", f)
			return 0
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v * unit[m[2]]
	}
	split := regexp.MustCompile(`  +`)
	width := len(lines[1])
	for i, l := range rows {
		if len(l) != width {
			t.Errorf("row %d is %d wide, the header %d: not aligned", i, len(l), width)
		}
		f := split.Split(strings.TrimSpace(l), -1)
		if len(f) != 5 {
			t.Errorf("row %q has %d fields, want 5", l, len(f))
			continue
		}
		if f[0] != benchOps[i] {
			t.Errorf("row %d is %q, want %q", i, f[0], benchOps[i])
		}
		med, mn := seconds(f[2]), seconds(f[3])
		m := benchRateRE.FindStringSubmatch(f[4])
		if m == nil {
			t.Errorf("row %q: rate %q does not parse", l, f[4])
			continue
		}
		rate, _ := strconv.ParseFloat(m[1], 64)
		if !(med > 0 && mn > 0 && rate > 0) || mn > med*1.001 {
			t.Errorf("row %q: median %g, min %g, rate %g", l, med, mn, rate)
		}
	}
}

func TestBenchJSON(t *testing.T) {
	code, out, errs := runArgs(append(tinyBench, "--json", "--loss", "hinge")...)
	if code != 0 {
		t.Fatalf("exit status %d; stderr %q", code, errs)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if rep.Backend != "cpu" || rep.Reps != 3 || rep.Warmup != 1 || len(rep.Results) != len(benchOps) {
		t.Fatalf("report %+v", rep)
	}
	for i, r := range rep.Results {
		want := strings.Replace(benchOps[i], "nll(beta=1)", "hinge(m=1)", 1)
		if r.Op != want {
			t.Errorf("result %d is %q, want %q", i, r.Op, want)
		}
		if !(r.MedianS > 0 && r.MinS > 0 && r.MinS <= r.MedianS) {
			t.Errorf("%s: median %g min %g", r.Op, r.MedianS, r.MinS)
		}
		// Exactly one rate, from the work per call and the median.
		switch {
		case r.FLOPs > 0:
			if got := float64(r.FLOPs) / r.MedianS / 1e9; r.GFLOPs <= 0 || r.GBPerSec != 0 || abs(got-r.GFLOPs) > 1e-9*got {
				t.Errorf("%s: %d FLOPs in %g s gives %g GFLOP/s, reported %g (GB/s %g)", r.Op, r.FLOPs, r.MedianS, got, r.GFLOPs, r.GBPerSec)
			}
		case r.Bytes > 0:
			if got := float64(r.Bytes) / r.MedianS / 1e9; r.GBPerSec <= 0 || r.GFLOPs != 0 || abs(got-r.GBPerSec) > 1e-9*got {
				t.Errorf("%s: %d bytes in %g s gives %g GB/s, reported %g", r.Op, r.Bytes, r.MedianS, got, r.GBPerSec)
			}
		default:
			t.Errorf("%s: neither FLOPs nor bytes", r.Op)
		}
	}
	// 2*M*N*K for the GEMMs; the step's GEMMs: forward 2*31*(33*7+7*7),
	// backward twice that less the first layer's dX (2*31*33*7).
	if f := rep.Results[0].FLOPs; f != 2*7*33*31 {
		t.Errorf("gemm FLOPs %d, want %d", f, 2*7*33*31)
	}
	fwd := int64(2 * 31 * (33*7 + 7*7))
	if f := rep.Results[len(rep.Results)-1].FLOPs; f != fwd+2*fwd-2*31*33*7 {
		t.Errorf("step FLOPs %d, want %d", f, fwd+2*fwd-2*31*33*7)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestBenchInvalidFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--m", "0"}, "m must be >= 1"},
		{[]string{"bench", "--rows", "-3"}, "rows must be >= 1"},
		{[]string{"bench", "--reps", "0"}, "reps must be >= 1"},
		{[]string{"bench", "--warmup", "-1"}, "warmup must be >= 0"},
		{[]string{"bench", "--model", "cnn"}, "invalid model"},
		{[]string{"bench", "--loss", "squared"}, "valid: energy"},
		{[]string{"bench", "--backend", "tpu"}, "unknown backend"},
		{[]string{"bench", "--n", "x"}, "n"},
		{[]string{"bench", "extra"}, "unexpected argument"},
	} {
		code, out, errs := runArgs(tc.args...)
		if code != 2 || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: status %d, stdout %q, stderr %q (want %q)", tc.args, code, out, errs, tc.want)
		}
	}
}

// TestBenchDeviceEmu runs every benchmarked operation on the GPU backend
// through the CPU emulator: the kernels launch, the synchronization path
// (Driver.Synchronize) is taken, and everything allocated is freed.
func TestBenchDeviceEmu(t *testing.T) {
	drv, err := emu.New(emu.Options{})
	if err != nil {
		t.Skipf("no emulator in this build (it needs cgo): %v", err)
	}
	b, err := device.New(drv)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	spec, _ := model.ParseSpec("mlp:7")
	o := benchOptions{M: 7, N: 33, K: 31, Rows: 33, Cols: 257, Batch: 31, Inputs: 33, Classes: 7, Spec: spec,
		Loss: model.DefaultLoss(model.NLL), Reps: 2, Warmup: 1, Seed: 3}
	synced := 0
	sync := syncFunc(b)
	res, err := runBenchSync(b, o, func() error { synced++; return sync() })
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(benchOps) {
		t.Fatalf("%d results, want %d", len(res), len(benchOps))
	}
	for _, r := range res {
		if !(r.MedianS > 0 && r.MinS > 0 && r.GFLOPs+r.GBPerSec > 0) {
			t.Errorf("%+v", r)
		}
	}
	// Once per timed call and after the warmup of each operation, and four
	// times per training step.
	if want := 13*(o.Reps+1) + 4*(o.Reps+o.Warmup); synced != want {
		t.Errorf("synchronized %d times, want %d", synced, want)
	}
	// A second run on the same backend works: nothing was left allocated
	// or broken by the first.
	if _, err := runBench(b, o); err != nil {
		t.Fatal(err)
	}
}
