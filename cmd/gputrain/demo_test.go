package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestRobotJointWinsWhereCoordinationMatters trains the four approaches of
// the robot demo on a modest simulated set (cpu) and checks the outcome the
// demo exists to show: on the blocked situations, where either turn is
// right, the joint energy almost never gives an incoherent command, while
// two separately trained per-motor models (both seeing both sensors) often
// do; and the joint model's exact-match accuracy is the best of all.
func TestRobotJointWinsWhereCoordinationMatters(t *testing.T) {
	o := defaultRobotOptions()
	o.train, o.test, o.epochs, o.backend, o.seed = 3000, 1000, 25, "cpu", 7
	rows, err := runRobotDemo(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("want 4 approaches, got %d", len(rows))
	}
	t.Logf("\n%s", robotTable(rows))
	a, b, c := rows[0], rows[1], rows[2]
	if c.blockedN < 200 {
		t.Fatalf("only %d blocked rows out of %d: the simulator no longer makes coordination matter", c.blockedN, o.test)
	}
	if c.blockedIncoherent > 0.05 {
		t.Errorf("joint model: %.3f of blocked commands incoherent, want <= 0.05", c.blockedIncoherent)
	}
	if b.blockedIncoherent < 0.10 || b.blockedIncoherent < 4*c.blockedIncoherent {
		t.Errorf("separate models on both sensors: %.3f of blocked commands incoherent, joint %.3f; want >= 0.10 and >= 4x the joint's", b.blockedIncoherent, c.blockedIncoherent)
	}
	if a.blockedIncoherent < 0.3 {
		t.Errorf("separate models on their own sensor: %.3f of blocked commands incoherent, want >= 0.3", a.blockedIncoherent)
	}
	for _, r := range []robotRow{a, b, rows[3]} {
		if c.exact < r.exact {
			t.Errorf("joint exact match %.4f below %s's %.4f", c.exact, r.name, r.exact)
		}
	}
	if !c.hasProb || !(c.meanProbBlocked > 0.3 && c.meanProbBlocked <= 1) {
		t.Errorf("joint model: mean P(answer) on blocked rows %v, want in (0.3, 1]", c.meanProbBlocked)
	}
}

func TestRobotDemoCommand(t *testing.T) {
	code, out, errs := runArgs("demo", "robot", "--train", "300", "--test", "101", "--epochs", "2", "--backend", "cpu", "--quiet")
	if code != 0 {
		t.Fatalf("exit status %d; stderr %q", code, errs)
	}
	rows := regexp.MustCompile(`(?m)^\| \([a-d]\) [a-z ,+]+ \|( [01]\.[0-9]{4} \|){7} ([01]\.[0-9]{3}|-) \|$`).FindAllString(out, -1)
	if len(rows) != 4 {
		t.Fatalf("want 4 table rows, got %d:\n%s", len(rows), out)
	}
	if !strings.Contains(out, "300 training rows, 101 held-out rows") || !strings.Contains(out, "backend cpu") {
		t.Errorf("header does not show the settings:\n%s", out)
	}
	if errs != "" {
		t.Errorf("--quiet, yet stderr %q", errs)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"demo"}, "valid: robot"},
		{[]string{"demo", "car"}, "valid: robot"},
		{[]string{"demo", "robot", "--train", "0"}, "train must be >= 1"},
		{[]string{"demo", "robot", "--test", "-3"}, "test must be >= 1"},
		{[]string{"demo", "robot", "--noise", "-1"}, "noise"},
		{[]string{"demo", "robot", "--epochs", "0"}, "epochs"},
		{[]string{"demo", "robot", "--backend", "tpu"}, "unknown backend"},
		{[]string{"demo", "robot", "--loss", "squared"}, "valid: energy"},
		{[]string{"demo", "robot", "extra"}, "unexpected argument"},
	} {
		code, out, errs := runArgs(tc.args...)
		if code != 2 || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2, nothing, one line with %q", tc.args, code, out, errs, tc.want)
		}
	}
}
