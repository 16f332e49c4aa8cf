package main

import (
	"strings"
	"testing"
	"time"

	"github.com/gputrain/gputrain/internal/inputfile"
)

// GPUTRAIN_INPUT_TIMEOUT sets how long a piped input may stay silent; a
// value that is not a duration is a usage error naming the variable, and
// nothing runs.
func TestInputTimeoutEnv(t *testing.T) {
	old := inputfile.IdleTimeout
	defer func() { inputfile.IdleTimeout = old }()

	t.Setenv(inputfile.TimeoutEnv, "ten minutes")
	code, out, errs := runArgs("train", "--epochs", "1")
	if code != exitUsage || out != "" || !strings.Contains(errs, inputfile.TimeoutEnv) || strings.Count(errs, "\n") != 1 {
		t.Errorf("bad %s: exit %d, stdout %q, stderr %q; want exit 2 and one line naming it", inputfile.TimeoutEnv, code, out, errs)
	}
	t.Setenv(inputfile.TimeoutEnv, "3m")
	if code, _, errs := runArgs("--version"); code != 0 || inputfile.IdleTimeout != 3*time.Minute {
		t.Errorf("%s=3m: exit %d (%s), IdleTimeout %v", inputfile.TimeoutEnv, code, errs, inputfile.IdleTimeout)
	}
}
