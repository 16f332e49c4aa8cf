package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestSequenceDemoChainBeatsPerPosition runs the sequence demo on a
// smaller budget (cpu) and checks what it exists to show: on strings of
// MNIST digits that count upwards, the chain energy gets whole strings
// right far more often than a per-position classifier on the same trunk
// (by at least 0.2), is better per position too, and has learned the
// counting (most rows of P point to the next digit); on the HMM the
// trained chain is within a few points of the Bayes decision computed
// from the true parameters, and well above the per-position classifier.
func TestSequenceDemoChainBeatsPerPosition(t *testing.T) {
	o := defaultSeqDemoOptions()
	o.train, o.test, o.epochs, o.hmmTrain, o.backend = 2000, 500, 3, 1500, "cpu"
	res, err := runSequenceDemo(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s\n%s", seqDemoTable(res.digits), seqDemoTable(res.hmm))
	cls, chain := res.digits[0], res.digits[1]
	if chain.seqAcc < cls.seqAcc+0.2 {
		t.Errorf("digit strings: chain sequence accuracy %.4f, per-position classifier %.4f; want a margin of at least 0.2", chain.seqAcc, cls.seqAcc)
	}
	if chain.posAcc <= cls.posAcc {
		t.Errorf("digit strings: chain per-position accuracy %.4f, classifier %.4f", chain.posAcc, cls.posAcc)
	}
	if chain.transitionsLearnt < 0.8 {
		t.Errorf("digit strings: only %.0f%% of the learned transitions point to the next digit", 100*chain.transitionsLearnt)
	}
	hcls, hchain, bayes := res.hmm[0], res.hmm[1], res.hmm[2]
	if hchain.margAcc < bayes.margAcc-0.03 || hchain.seqAcc < bayes.seqAcc-0.05 {
		t.Errorf("HMM: chain %.4f per position (max marginal), %.4f per sequence; the Bayes decision %.4f and %.4f", hchain.margAcc, hchain.seqAcc, bayes.margAcc, bayes.seqAcc)
	}
	if hchain.margAcc < hcls.posAcc+0.05 {
		t.Errorf("HMM: chain %.4f per position, per-position classifier %.4f", hchain.margAcc, hcls.posAcc)
	}
	if bayes.margAcc < bayes.posAcc-1e-9 {
		t.Errorf("HMM: the max-marginal decision (%.4f) is the per-position Bayes decision and cannot lose to Viterbi's positions (%.4f) in expectation by this much", bayes.margAcc, bayes.posAcc)
	}
}

func TestSequenceDemoCommand(t *testing.T) {
	code, out, errs := runArgs("demo", "sequence", "--train", "200", "--test", "50", "--length", "5", "--hmm-train", "100", "--epochs", "1", "--backend", "cpu", "--quiet")
	if code != 0 {
		t.Fatalf("exit status %d; stderr %q", code, errs)
	}
	rows := regexp.MustCompile(`(?m)^\| (per-position classifier|chain energy|Bayes decision|expected Bayes)[^|]* \|( ([01]\.[0-9]{4}|-) \|){3} ([0-9]+%|-) \| ([0-9.]+|-) \|$`).FindAllString(out, -1)
	if len(rows) != 6 {
		t.Fatalf("want 6 table rows, got %d:\n%s", len(rows), out)
	}
	if !strings.Contains(out, "200 training and 50 held-out strings of 5 digits") {
		t.Errorf("header does not show the settings:\n%s", out)
	}
	for _, bad := range [][]string{{"--length", "0"}, {"--p", "1.5"}, {"--train", "0"}, {"--lr", "0"}} {
		code, _, errs := runArgs(append([]string{"demo", "sequence", "--backend", "cpu"}, bad...)...)
		if code != exitUsage || errs == "" {
			t.Errorf("%v: exit %d, stderr %q", bad, code, errs)
		}
	}
}
