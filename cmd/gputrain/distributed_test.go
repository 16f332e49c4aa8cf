package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/comm"
	"github.com/gputrain/gputrain/model"
)

func TestRankWriterPrefixesEveryLine(t *testing.T) {
	var b bytes.Buffer
	w := newRankWriter(&b, 2, 3)
	for _, s := range []string{"gputrain: one", " line\nsecond\n", "", "third\nfou", "rth\n"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	want := "[rank 2/3] gputrain: one line\n[rank 2/3] second\n[rank 2/3] third\n[rank 2/3] fourth\n"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}

func TestOnlyRankZeroSavesAndPrints(t *testing.T) {
	defer func() { world = nil }()
	o := runOptions{save: "x.safetensors", cfg: model.DefaultConfig()}
	rootOnly(&o)
	if o.save != "x.safetensors" || o.quiet || !isRoot() || distributedLine(o) != "" {
		t.Fatalf("alone: save %q quiet %v root %v line %q", o.save, o.quiet, isRoot(), distributedLine(o))
	}
	cs := comm.Local(3)
	world = cs[1]
	rootOnly(&o)
	if o.save != "" || !o.quiet || isRoot() || worldSize() != 3 {
		t.Fatalf("rank 1: save %q quiet %v root %v size %d", o.save, o.quiet, isRoot(), worldSize())
	}
	world = cs[0]
	if l := distributedLine(o); !strings.Contains(l, "3 ranks over in-process") || !strings.Contains(l, "each takes 42-43 rows of every global batch of 128") {
		t.Fatalf("line %q", l)
	}
	o.cfg.Batch = 129
	if l := distributedLine(o); !strings.Contains(l, "each takes 43 rows of every global batch of 129") {
		t.Fatalf("line %q", l)
	}
}
