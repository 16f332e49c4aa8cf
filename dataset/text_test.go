package dataset

import (
	"bytes"
	"compress/gzip"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestTokenizeLine(t *testing.T) {
	for _, c := range []struct {
		line  string
		words []string
		ends  []bool
	}{
		{`Feel \Feel\, n.`, []string{"feel", "n"}, []bool{false, true}},
		{`   1. Feeling; perception. [R.]`, []string{"feeling", "perception"}, []bool{true, true}},
		{`      [1913 Webster]`, nil, nil},
		{`Don't ABANDON it, 'twas Café-au-lait's!`, []string{"don't", "abandon", "it", "twas", "café", "au", "lait's"}, []bool{false, false, false, false, false, false, true}},
		{`a1b 22 c--d`, []string{"a", "b", "c", "d"}, []bool{false, false, false, false}},
		{`unclosed \pronunciation`, []string{"unclosed"}, []bool{false}},
		{`x: y? z!`, []string{"x", "y", "z"}, []bool{true, true, true}},
	} {
		w, e := TokenizeLine(c.line, nil, nil)
		if !reflect.DeepEqual(w, c.words) || !reflect.DeepEqual(e, c.ends) {
			t.Errorf("TokenizeLine(%q) = %q %v, want %q %v", c.line, w, e, c.words, c.ends)
		}
	}
}

func writeText(t *testing.T, name, text string, gz bool) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	data := []byte(text)
	if gz {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(data)
		zw.Close()
		data = b.Bytes()
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLoadTextLayout checks vocabulary order, the unknown token and the
// exact features of a hand-made text, plain and gzipped.
func TestLoadTextLayout(t *testing.T) {
	text := "the cat sat on the mat. the dog\nsat.\n\nrare cat the\n"
	for _, gz := range []bool{false, true} {
		p := writeText(t, "tiny.txt", text, gz)
		c, err := LoadText(p, TextOptions{Window: 2, MinCount: 2, TestFraction: 1e-9})
		if err != nil {
			t.Fatal(err)
		}
		// Counts: the 4, cat 2, sat 2, others 1: the, cat, sat (ties in byte order).
		if want := []string{UnknownWord, "the", "cat", "sat"}; !reflect.DeepEqual(c.Vocab, want) {
			t.Fatalf("gz=%v: vocab %q, want %q", gz, c.Vocab, want)
		}
		if c.Tokens != 12 || c.Sentences != 3 {
			t.Errorf("tokens %d sentences %d, want 12 and 3", c.Tokens, c.Sentences)
		}
		if got, want := c.Unknown, 4.0/12; got != want { // on, mat, dog, rare
			t.Errorf("unknown fraction %v, want %v", got, want)
		}
		tr := c.Train
		if tr.N != 12 || tr.D != 4 || tr.Classes != 4 || c.Test.N != 0 {
			t.Fatalf("train N=%d D=%d classes %d, test N=%d", tr.N, tr.D, tr.Classes, c.Test.N)
		}
		// Sentence 1: the cat sat on the mat -> ids 1 2 3 0 1 0.
		// Example "sat" (p=2): before = cat, the; after = on, the.
		if got, want := tr.Row(2), []float32{2, 1, 0, 1}; !reflect.DeepEqual(got, want) {
			t.Errorf("features of 'sat' %v, want %v", got, want)
		}
		if tr.Y[2] != 3 {
			t.Errorf("label of 'sat' %d, want 3", tr.Y[2])
		}
		// Example "the" (p=0): nothing before.
		if got, want := tr.Row(0), []float32{-1, -1, 2, 3}; !reflect.DeepEqual(got, want) {
			t.Errorf("features of the first word %v, want %v", got, want)
		}
		// Sentence 2 "the dog sat" spans a line break: "sat" (index 8) has
		// dog (unknown) and the before it, nothing after.
		if got, want := tr.Row(8), []float32{0, 1, -1, -1}; !reflect.DeepEqual(got, want) {
			t.Errorf("features of 'sat' after a line break %v, want %v", got, want)
		}
		if err := tr.Validate(); err != nil {
			t.Error(err)
		}
	}
}

// TestLoadTextExcerpt loads the GCIDE excerpt: a deterministic split
// (the same twice), every feature a word id or -1, both splits non-empty.
func TestLoadTextExcerpt(t *testing.T) {
	const p = "../testdata/text/gcide-excerpt.txt"
	a, err := LoadText(p, TextOptions{MinCount: 2, TestFraction: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadText(p, TextOptions{MinCount: 2, TestFraction: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Vocab, b.Vocab) || !reflect.DeepEqual(a.Train.X, b.Train.X) || !reflect.DeepEqual(a.Test.Y, b.Test.Y) {
		t.Error("two loads of the same file differ")
	}
	if a.Train.N < 10000 || a.Test.N < 500 || len(a.Vocab) < 500 {
		t.Errorf("train %d, test %d examples, vocabulary %d: too few for the excerpt", a.Train.N, a.Test.N, len(a.Vocab))
	}
	frac := float64(a.Test.N) / float64(a.Train.N+a.Test.N)
	if frac < 0.05 || frac > 0.15 {
		t.Errorf("test fraction %.3f of the examples, asked 0.1 of the sentences", frac)
	}
	for _, s := range []*Set{a.Train, a.Test} {
		for i, x := range s.X {
			if x != -1 && (x < 0 || int(x) >= len(a.Vocab) || x != float32(int(x))) {
				t.Fatalf("%s: feature %d = %v is not a word id", s.Name, i, x)
			}
		}
	}
	for _, w := range []string{"feel", "the", "feeling"} {
		if !slicesContains(a.Vocab, w) {
			t.Errorf("vocabulary misses %q", w)
		}
	}
	for _, w := range []string{"1913", "webster"} { // "[1913 Webster]" is a source note
		if slicesContains(a.Vocab, w) {
			t.Errorf("%q in the vocabulary", w)
		}
	}
}

func slicesContains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestLoadTextHostile: empty files, binary garbage, a gzip bomb past the
// byte limit, bad options; each an error naming the problem.
func TestLoadTextHostile(t *testing.T) {
	empty := writeText(t, "empty.txt", "", false)
	if _, err := LoadText(empty, TextOptions{}); err == nil || !strings.Contains(err.Error(), "no words") {
		t.Errorf("empty file: %v", err)
	}
	one := writeText(t, "one.txt", "word. other.\n", false)
	if _, err := LoadText(one, TextOptions{MinCount: 1}); err == nil || !strings.Contains(err.Error(), "no training example") {
		t.Errorf("one-word sentences: %v", err)
	}
	bomb := writeText(t, "bomb.gz", strings.Repeat("a b c ", 400000), true)
	if _, err := LoadText(bomb, TextOptions{MaxBytes: 1 << 20}); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("past the byte limit: %v", err)
	}
	// A few stray bytes outside UTF-8 (Latin-1 accents in English) are
	// read around; a file that is not text at all (a NUL byte, or mostly
	// bytes outside UTF-8: an executable, random or compressed data) is
	// refused, naming the file, instead of trained on as words.
	latin1 := writeText(t, "latin1.txt", "the caf\xe9 was open. ok words here. and more words here.", false)
	if _, err := LoadText(latin1, TextOptions{MinCount: 1}); err != nil {
		t.Errorf("a stray byte outside UTF-8 should be read around, got %v", err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	random := make([]byte, 200<<10)
	for i := range random {
		random[i] = byte(rng.IntN(256))
		if random[i] == 0 { // no NUL: the share of bytes outside UTF-8 alone decides
			random[i] = 'x'
		}
	}
	for name, content := range map[string]string{
		"nul.bin":    "\xff\xfe\x00\x01 ok words here. and more words here.",
		"random.bin": string(random),
	} {
		p := writeText(t, name, content, false)
		if _, err := LoadText(p, TextOptions{MinCount: 1}); err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "is not text") {
			t.Errorf("%s: %v, want it refused as not text", name, err)
		}
	}
	if _, err := LoadText(filepath.Join(t.TempDir(), "missing.txt"), TextOptions{}); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("missing file: %v", err)
	}
	for _, o := range []TextOptions{{Window: -1}, {Window: 65}, {MinCount: -2}, {MaxVocab: 1}, {TestFraction: 0.7}} {
		if _, err := LoadText(one, o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

// TestLoadTextGivenVocab maps a text through a trained model's
// vocabulary: its words to its ids, the rest to the unknown token.
func TestLoadTextGivenVocab(t *testing.T) {
	p := writeText(t, "v.txt", "the cat sat on the mat.\n", false)
	c, err := LoadText(p, TextOptions{Window: 1, Vocab: []string{UnknownWord, "mat", "the"}, TestFraction: 1e-9})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{2, 0, 0, 0, 2, 1}; !reflect.DeepEqual(c.Train.Y, want) {
		t.Errorf("labels %v, want %v", c.Train.Y, want)
	}
	if _, err := LoadText(p, TextOptions{Vocab: []string{"the", "cat"}}); err == nil {
		t.Error("a vocabulary without the unknown token first was accepted")
	}
}

func TestContextIDs(t *testing.T) {
	ids := map[string]int32{"a": 1, "b": 2, "c": 3}
	got := ContextIDs([]string{"x", "a", "b"}, []string{"c"}, 2, ids)
	if want := []float32{2, 1, 3, -1}; !reflect.DeepEqual(got, want) {
		t.Errorf("ContextIDs = %v, want %v", got, want)
	}
}
