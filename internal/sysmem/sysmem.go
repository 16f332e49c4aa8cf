// Package sysmem tells how much memory this process may still allocate,
// so that a size read from a flag or a file header is refused with a clear
// message before the allocation, instead of the Go runtime dying with a
// "fatal error: out of memory" and a goroutine dump.
package sysmem

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Available returns the bytes this process can still allocate: the
// kernel's MemAvailable, lowered to the cgroup's memory limit minus its
// usage when a container limit is set (cgroup v2 or v1). ok is false when
// neither can be read (another OS): callers then impose no limit.
func Available() (bytes int64, ok bool) {
	avail, ok := meminfo("MemAvailable")
	if lim, ok2 := cgroupRoom(); ok2 && (!ok || lim < avail) {
		return lim, true
	}
	return avail, ok
}

func meminfo(key string) (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		return n, true
	}
	return 0, false
}

func readInt(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// cgroupRoom is the cgroup limit minus current usage, when a limit below
// "unlimited" is set.
func cgroupRoom() (int64, bool) {
	for _, p := range [][2]string{
		{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
		{"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"},
	} {
		lim, ok := readInt(p[0])
		if !ok || lim >= 1<<60 {
			continue
		}
		used, _ := readInt(p[1])
		return max(lim-used, 0), true
	}
	return 0, false
}

// Check refuses to allocate need bytes for what (a message fragment: "the
// 100000000-unit hidden layer") when that is more than the memory
// available; how says what to change. Unknown availability passes.
func Check(need int64, what, how string) error {
	avail, ok := Available()
	if !ok || need <= avail {
		return nil
	}
	return fmt.Errorf("%s needs %s of memory, %s is available: %s", what, Bytes(need), Bytes(avail), how)
}

// Bytes writes a size for people: "812 B", "3.1 MB", "7.5 GB".
func Bytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n < 1000*1000*1000*1000:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	}
	return fmt.Sprintf("%.1f TB", float64(n)/1e12)
}
