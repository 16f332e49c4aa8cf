//go:build unix

package main

import (
	"runtime"
	"syscall"
)

// peakRSS returns the peak resident memory of the process in bytes (0 if
// unknown): getrusage's ru_maxrss, in KiB on Linux, bytes on macOS.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) * 1024
}
