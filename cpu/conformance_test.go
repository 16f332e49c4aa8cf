package cpu

import (
	"testing"

	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/backendtest"
)

// TestConformance runs the shared suite every backend must pass, with the
// default thread count and with one thread (the row split must not matter).
func TestConformance(t *testing.T) {
	backendtest.TestBackend(t, func(t *testing.T) model.Backend { return New() })
}

func TestConformanceOneThread(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the suite already ran with the default thread count")
	}
	backendtest.TestBackend(t, func(t *testing.T) model.Backend { return NewWithThreads(1) })
}
