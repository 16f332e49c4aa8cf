package suggest

import "testing"

func TestClosest(t *testing.T) {
	losses := []string{"energy", "perceptron", "hinge", "log", "lvq2", "mce", "square-square", "square-exp", "nll", "mee"}
	flags := []string{"model", "epochs", "batch", "lr", "optimizer", "seed", "data", "save", "resume", "label", "labels"}
	for _, tc := range []struct {
		word string
		in   []string
		want string
	}{
		{"hnge", losses, "hinge"},
		{"HINGE", losses, "hinge"},
		{"nl", losses, "nll"},
		{"sqaure-exp", losses, "square-exp"},
		{"epoch", flags, "epochs"},
		{"epohcs", flags, "epochs"},
		{"optimiser", flags, "optimizer"},
		{"lable", flags, "label"},
		{"epo", flags, "epochs"},
		{"xyzzy", losses, ""},
		{"", losses, ""},
		{"rmsprop", []string{"sgd", "momentum", "adam"}, ""},
		{"a-very-long-word-that-is-no-typo-of-anything-at-all-in-the-list-really", flags, ""},
	} {
		if got := Closest(tc.word, tc.in); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
	if got := Mean("hnge", losses); got != " (did you mean hinge?)" {
		t.Errorf("Mean: %q", got)
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"a", "", 1}, {"abc", "abc", 0}, {"abc", "acb", 1}, {"kitten", "sitting", 3}, {"ca", "abc", 3},
	} {
		if got := Distance(tc.a, tc.b); got != tc.d {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}
