package main

import (
	"slices"
	"testing"
)

// The text confusion matrix is labelled by class name where the data named
// the classes, shortened to fit; by index where a label would be ambiguous.
func TestConfusionLabels(t *testing.T) {
	rep := func(names ...string) (int, []classResult) {
		var pc []classResult
		for j, n := range names {
			pc = append(pc, classResult{Class: j, Name: n})
		}
		return len(names), pc
	}
	for _, tc := range []struct {
		names, want []string
	}{
		{[]string{"setosa", "versicolor", "virginica"}, []string{"setosa", "versicolor", "virginica"}},
		{[]string{"", "", ""}, []string{"0", "1", "2"}},
		{[]string{"cat", "", "dog"}, []string{"cat", "1", "dog"}},
		{[]string{"sea lion", "x"}, []string{"sea_lion", "x"}},
		{[]string{"a much longer name", "b"}, []string{"a_much_lo~", "b"}},
		// Two names that shorten to the same label, and a name that reads
		// as another class's index: numbers everywhere.
		{[]string{"abcdefghijK1", "abcdefghijK2"}, []string{"0", "1"}},
		{[]string{"1", ""}, []string{"0", "1"}},
	} {
		if got := confusionLabels(rep(tc.names...)); !slices.Equal(got, tc.want) {
			t.Errorf("names %q: labels %q, want %q", tc.names, got, tc.want)
		}
	}
}
