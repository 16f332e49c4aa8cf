package sysmem

import (
	"strings"
	"testing"
)

func TestAvailable(t *testing.T) {
	n, ok := Available()
	if !ok {
		t.Skip("no /proc/meminfo or cgroup memory files: Available cannot tell here")
	}
	if n <= 0 || n > 1<<50 {
		t.Errorf("Available = %d", n)
	}
	if err := Check(1<<10, "a kilobyte", "-"); err != nil {
		t.Errorf("1 kB: %v", err)
	}
	err := Check(1<<62, "the model", "use a smaller one")
	if err == nil || !strings.Contains(err.Error(), "the model needs 4611686.0 TB of memory") || !strings.Contains(err.Error(), "use a smaller one") {
		t.Errorf("4 EB: %v", err)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{12: "12 B", 3100: "3.1 kB", 7_500_000_000: "7.5 GB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %s", n, got)
		}
	}
}
