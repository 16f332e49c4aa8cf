// Package clip shortens user input before an error message repeats it: a
// message names the bad value so it can be found, but a 100 MB CSV field
// must not become a 100-million-character line on stderr.
package clip

import (
	"strconv"
	"unicode/utf8"
)

// Max is how many bytes of a value a message repeats.
const Max = 64

// String returns s, or its first Max bytes (cut on a rune boundary)
// followed by "..." and the full length when it is longer.
func String(s string) string {
	if len(s) <= Max {
		return s
	}
	cut := Max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "... (" + strconv.Itoa(len(s)) + " bytes)"
}

// Quote is strconv.Quote of s, shortened as String does: the quoted part
// holds at most Max bytes of s.
func Quote(s string) string {
	if len(s) <= Max {
		return strconv.Quote(s)
	}
	cut := Max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}
