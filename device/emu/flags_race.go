//go:build cgo && race

package emu

// A -race build links Go's race runtime, which defines the __tsan_*
// callbacks the checked build implements for itself: there the kernels are
// compiled without the instrumentation and only the plain build runs
// (Checked is false; ChecksOn is an error).

/*
#cgo CXXFLAGS: -DGT_EMU_CHECKS=0
*/
import "C"

const checksAvailable = false
