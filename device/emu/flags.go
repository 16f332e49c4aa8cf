//go:build cgo && !race

package emu

// The checked build: -fsanitize=thread makes g++ call __tsan_read<n> and
// __tsan_write<n> before every memory access of the checked units, and
// check.cpp implements them (no sanitizer runtime is linked).

/*
#cgo CXXFLAGS: -fsanitize=thread -DGT_EMU_CHECKS=1
*/
import "C"

const checksAvailable = true
