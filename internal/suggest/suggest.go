// Package suggest finds the intended word behind a typo ("epoch" for
// "epochs", "hnge" for "hinge"), for the "did you mean" part of the
// command's error messages.
package suggest

import "strings"

// Closest returns the candidate nearest to word by edit distance
// (insertions, deletions, substitutions and swaps of neighbours, case
// ignored), or "" when none is close enough to be a likely typo: at most
// one edit for words of up to four letters, two up to eight, three beyond.
// A candidate of which word is a prefix of at least three letters counts
// as close too ("epo" for "epochs"). Ties go to the earlier candidate.
func Closest(word string, candidates []string) string {
	w := strings.ToLower(word)
	if w == "" {
		return ""
	}
	limit := 1
	switch {
	case len(w) > 8:
		limit = 3
	case len(w) > 4:
		limit = 2
	}
	best, bestD := "", limit+1
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if lc == w {
			return c
		}
		d := Distance(w, lc)
		if len(w) >= 3 && strings.HasPrefix(lc, w) {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// Mean returns " (did you mean X?)" for the closest candidate, or "".
func Mean(word string, candidates []string) string {
	if c := Closest(word, candidates); c != "" {
		return " (did you mean " + c + "?)"
	}
	return ""
}

// Distance is the optimal string alignment distance between a and b
// (Levenshtein plus transpositions of adjacent characters), on bytes.
func Distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		// Flag and choice names are short; a long input is no typo of one
		// and must not cost quadratic time.
		return max(len(a), len(b))
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
