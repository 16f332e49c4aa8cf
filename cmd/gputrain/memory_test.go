package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestHugeSizesFromFlags reproduces issue 13, item 3: --batch
// 9223372036854775807 (train and eval) panicked in newBatcher; --batch
// 1000000000 and --model mlp:100000000 died in the Go runtime (fatal out
// of memory, ~130-line goroutine dumps), exit 2. A batch beyond the data
// is one step over all of it; a model that cannot fit is refused before
// anything is allocated, in one line, exit 1.
func TestHugeSizesFromFlags(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck.safetensors")
	out := mustRun(t, "train", "--batch", "9223372036854775807", "--limit", "200", "--epochs", "1", "--quiet", "--save", ck)
	if !strings.Contains(out, "epoch 1/1") {
		t.Errorf("no epoch line:\n%s", out)
	}
	mustRun(t, "train", "--batch", "1000000000", "--limit", "200", "--epochs", "1", "--quiet", "--save", "")
	mustRun(t, "eval", "--model", ck, "--batch", "9223372036854775807")
	expectExit(t, exitRuntime, []string{"train", "--model", "mlp:100000000", "--limit", "100", "--epochs", "1", "--quiet", "--save", ""}, "of memory")
	expectExit(t, exitRuntime, []string{"train", "--model", "mlp:4096,100000000", "--limit", "100", "--epochs", "1", "--quiet", "--save", ""}, "use a smaller --model or --batch")
	expectExit(t, exitRuntime, []string{"bench", "--m", "4000000", "--n", "4000000", "--k", "4000000", "--backend", "cpu"}, "of memory")
	expectExit(t, exitUsage, []string{"demo", "robot", "--train", "9000000000000000", "--backend", "cpu"}, "of memory")
}
