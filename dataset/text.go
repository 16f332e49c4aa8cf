package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text: word prediction from running text, for CBOW models (a window of
// context words in, the centre word out). LoadText reads a plain or gzipped
// text file (Debian's dict-gcide ships /usr/share/dictd/gcide.dict.dz, a
// dictzip file, which gzip reads), and turns it into examples:
//
// Tokenization (TokenizeLine): text between backslashes on one line is
// dropped (dictd pronunciations such as \A*ba"cus\), and so is text in
// square brackets ([1913 Webster], [WordNet 1.5]); a word is a maximal run
// of letters (any script), with apostrophes between letters kept ("don't"),
// lowercased; digits and every other character separate words. A sentence
// ends at '.', '!', '?', ';', ':' and at a blank line.
//
// Vocabulary: the words of the training sentences seen at least MinCount
// times, most frequent first (ties in byte order), at most MaxVocab of them
// with the unknown token: id 0 is UnknownWord, which every other word maps
// to (its own frequency makes it an ordinary answer to predict).
//
// Examples: every word of a sentence is a centre; its features are the
// ids of the Window words before it and the Window words after it (2 Window
// features, nearest first on each side: x_0 = the word just before, ...,
// x_{W-1} = the farthest before, then the same after), -1 where the
// sentence ends. Sentences of one word have no context and give no example.
// A fixed hash of the sentence's position puts TestFraction of the
// sentences in the test set.

// UnknownWord is the token of id 0, standing for every word outside the
// vocabulary.
const UnknownWord = "<unk>"

// TextOptions configure LoadText; zero fields take the defaults.
type TextOptions struct {
	Window       int     // context words on each side of the centre (default 4)
	MinCount     int     // fewer occurrences make a word unknown (default 3)
	MaxVocab     int     // words in the vocabulary, the unknown token included (default 200000)
	TestFraction float64 // sentences held out (default 0.02; in [0, 0.5])
	// MaxBytes bounds the decompressed text (default 1 GiB): a small
	// compressed file may expand without limit.
	MaxBytes int64
	// Vocab, when set, is the vocabulary to use (a trained model's:
	// Vocab[0] must be UnknownWord) instead of one built from the text;
	// MinCount and MaxVocab are then ignored.
	Vocab []string
}

func (o TextOptions) withDefaults() (TextOptions, error) {
	if o.Window == 0 {
		o.Window = 4
	}
	if o.MinCount == 0 {
		o.MinCount = 3
	}
	if o.MaxVocab == 0 {
		o.MaxVocab = 200000
	}
	if o.TestFraction == 0 {
		o.TestFraction = 0.02
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 1 << 30
	}
	switch {
	case o.Window < 1 || o.Window > 64:
		return o, fmt.Errorf("text: window %d: want 1..64 words on each side", o.Window)
	case o.MinCount < 1:
		return o, fmt.Errorf("text: min count %d: want >= 1", o.MinCount)
	case o.MaxVocab < 2 || o.MaxVocab > 1<<24:
		return o, fmt.Errorf("text: vocabulary of %d words: want 2..%d (ids are exact float32 features)", o.MaxVocab, 1<<24)
	case !(o.TestFraction >= 0 && o.TestFraction <= 0.5):
		return o, fmt.Errorf("text: test fraction %v: want 0..0.5", o.TestFraction)
	case o.MaxBytes < 1:
		return o, fmt.Errorf("text: byte limit %d: want > 0", o.MaxBytes)
	case o.Vocab != nil && (len(o.Vocab) < 2 || o.Vocab[0] != UnknownWord):
		return o, fmt.Errorf("text: a given vocabulary must start with %q and hold a word, got %d words", UnknownWord, len(o.Vocab))
	}
	return o, nil
}

// TextCorpus is a text turned into CBOW examples.
type TextCorpus struct {
	// Vocab names each id (Vocab[0] is UnknownWord); Train and Test use it
	// as their ClassNames.
	Vocab       []string
	Train, Test *Set
	Options     TextOptions
	// Tokens and Sentences count the text's words and sentences (both
	// splits); Unknown is the fraction of tokens mapped to UnknownWord.
	Tokens, Sentences int
	Unknown           float64
}

// IDs maps words to ids (UnknownWord's for words outside the vocabulary).
func (c *TextCorpus) IDs() map[string]int32 {
	m := make(map[string]int32, len(c.Vocab))
	for i, w := range c.Vocab {
		m[w] = int32(i)
	}
	return m
}

// TokenizeLine appends the words of one line to words and reports whether
// a sentence ended after each appended word (ends[k] for words[k]); it is
// the tokenizer LoadText and the predict command share.
func TokenizeLine(line string, words []string, ends []bool) ([]string, []bool) {
	var cur strings.Builder
	flush := func(end bool) {
		if cur.Len() > 0 {
			s := cur.String()
			s = strings.TrimRight(s, "'")
			if s != "" {
				words = append(words, s)
				ends = append(ends, false)
			}
			cur.Reset()
		}
		if end && len(ends) > 0 {
			ends[len(ends)-1] = true
		}
	}
	skipUntil := rune(0)
	for _, r := range line {
		if skipUntil != 0 {
			if r == skipUntil {
				skipUntil = 0
			}
			continue
		}
		switch {
		case r == '\\':
			flush(false)
			skipUntil = '\\'
		case r == '[':
			flush(false)
			skipUntil = ']'
		case unicode.IsLetter(r):
			cur.WriteRune(unicode.ToLower(r))
		case r == '\'' && cur.Len() > 0:
			cur.WriteRune(r) // trailing apostrophes are trimmed at the flush
		case r == '.' || r == '!' || r == '?' || r == ';' || r == ':':
			flush(true)
		default:
			flush(false)
		}
	}
	flush(false)
	return words, ends
}

// openText opens path, transparently decompressing gzip (and dictzip).
func openText(path string, limit int64) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(f)
	magic, _ := br.Peek(2)
	var r io.Reader = br
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = gz
	}
	return struct {
		io.Reader
		io.Closer
	}{&limitedText{r: r, left: limit, path: path}, f}, nil
}

// limitedText fails, rather than truncates, past its limit.
type limitedText struct {
	r    io.Reader
	left int64
	path string
}

func (l *limitedText) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, fmt.Errorf("%s: more than the text limit of decompressed bytes (TextOptions.MaxBytes)", l.path)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// LoadText reads the text file at path and builds the corpus (see above).
func LoadText(path string, opts TextOptions) (*TextCorpus, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	rc, err := openText(path, o.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("text: %w", err)
	}
	defer rc.Close()
	// Sentences as word lists; words interned so the corpus holds each
	// string once.
	intern := map[string]string{}
	var sentences [][]string
	var cur []string
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	lineNo := 0
	var words []string
	var ends []bool
	var sniff binarySniff
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if err := sniff.add(line); err != nil {
			return nil, fmt.Errorf("text: %s %w", path, err)
		}
		if !utf8.ValidString(line) {
			line = strings.ToValidUTF8(line, " ")
		}
		if strings.TrimSpace(line) == "" {
			if len(cur) > 0 {
				sentences = append(sentences, cur)
				cur = nil
			}
			continue
		}
		words, ends = TokenizeLine(line, words[:0], ends[:0])
		for k, w := range words {
			s, ok := intern[w]
			if !ok {
				intern[w] = w
				s = w
			}
			cur = append(cur, s)
			if ends[k] {
				sentences = append(sentences, cur)
				cur = nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("text: %s, line %d: %w", path, lineNo+1, err)
	}
	if err := sniff.verdict(); err != nil {
		return nil, fmt.Errorf("text: %s %w", path, err)
	}
	if len(cur) > 0 {
		sentences = append(sentences, cur)
	}
	c := &TextCorpus{Options: o, Sentences: len(sentences)}
	test := make([]bool, len(sentences))
	for i := range sentences {
		test[i] = heldOut(i, o.TestFraction)
	}
	for _, s := range sentences {
		c.Tokens += len(s)
	}
	if c.Tokens == 0 {
		return nil, fmt.Errorf("text: %s has no words", path)
	}
	c.Vocab = o.Vocab
	if c.Vocab == nil {
		c.Vocab = buildVocab(sentences, test, o)
	}
	ids := make(map[string]int32, len(c.Vocab))
	for i, w := range c.Vocab[1:] {
		ids[w] = int32(i + 1)
	}
	if err := c.examples(sentences, test, ids, path); err != nil {
		return nil, err
	}
	return c, nil
}

// buildVocab counts the training sentences' words and keeps the most
// frequent (see the top of the file).
func buildVocab(sentences [][]string, test []bool, o TextOptions) []string {
	counts := map[string]int{}
	for i, s := range sentences {
		if !test[i] {
			for _, w := range s {
				counts[w]++
			}
		}
	}
	type wc struct {
		w string
		n int
	}
	var kept []wc
	for w, n := range counts {
		if n >= o.MinCount {
			kept = append(kept, wc{w, n})
		}
	}
	slices.SortFunc(kept, func(a, b wc) int {
		if a.n != b.n {
			return b.n - a.n
		}
		return strings.Compare(a.w, b.w)
	})
	if len(kept) > o.MaxVocab-1 {
		kept = kept[:o.MaxVocab-1]
	}
	vocab := append(make([]string, 0, len(kept)+1), UnknownWord)
	for _, k := range kept {
		vocab = append(vocab, k.w)
	}
	return vocab
}

// examples builds the training and test sets from the sentences.
func (c *TextCorpus) examples(sentences [][]string, test []bool, ids map[string]int32, path string) error {
	o := c.Options
	W := 2 * o.Window
	mk := func(name string) *Set {
		return &Set{Name: name, D: W, Shape: []int{W}, Classes: len(c.Vocab), ClassNames: c.Vocab}
	}
	c.Train, c.Test = mk(path+" (train)"), mk(path+" (test)")
	unknown := 0
	var row []int32
	for i, s := range sentences {
		row = row[:0]
		for _, w := range s {
			id := ids[w] // 0: unknown
			if id == 0 {
				unknown++
			}
			row = append(row, id)
		}
		if len(row) < 2 {
			continue
		}
		dst := c.Train
		if test[i] {
			dst = c.Test
		}
		for p, centre := range row {
			for k := 1; k <= o.Window; k++ {
				x := float32(-1)
				if p-k >= 0 {
					x = float32(row[p-k])
				}
				dst.X = append(dst.X, x)
			}
			for k := 1; k <= o.Window; k++ {
				x := float32(-1)
				if p+k < len(row) {
					x = float32(row[p+k])
				}
				dst.X = append(dst.X, x)
			}
			dst.Y = append(dst.Y, centre)
			dst.N++
		}
	}
	c.Unknown = float64(unknown) / float64(c.Tokens)
	if c.Train.N == 0 {
		return errors.New("text: " + path + ": no training example (every sentence has fewer than two words, or is held out)")
	}
	return nil
}

// heldOut reports whether sentence i is in the test split: a fixed hash
// of its index, so the split does not depend on any seed.
func heldOut(i int, fraction float64) bool {
	if fraction == 0 {
		return false
	}
	h := fnv.New64a()
	var b [8]byte
	for k := range b {
		b[k] = byte(i >> (8 * k))
	}
	h.Write(b[:])
	return float64(h.Sum64()%1_000_000) < fraction*1_000_000
}

// ContextIDs returns the 2*window features of a CBOW query: the words
// before the blank (the last one nearest) and after it, as LoadText lays
// out a training example, each mapped through ids (unknown words to 0),
// -1 past either end.
func ContextIDs(before, after []string, window int, ids map[string]int32) []float32 {
	x := make([]float32, 2*window)
	for k := 1; k <= window; k++ {
		x[k-1] = -1
		if p := len(before) - k; p >= 0 {
			x[k-1] = float32(ids[before[p]])
		}
		x[window+k-1] = -1
		if k-1 < len(after) {
			x[window+k-1] = float32(ids[after[k-1]])
		}
	}
	return x
}

// binarySniff tells a binary file (an executable, an image, a compressed
// format gzip does not read) from text before it is trained on: such a
// file tokenizes into "words" as happily as English does, and a model of
// it is garbage with no error. Judged on the first sniffBytes (and on the
// whole of a shorter file): a NUL byte, or more than sniffInvalid of the
// bytes outside UTF-8, is not text. A few stray Latin-1 bytes in English
// pass (they read as blanks).
type binarySniff struct {
	bytes, nul, invalid int
	judged              bool
}

const (
	sniffBytes   = 64 << 10
	sniffInvalid = 0.10
)

func (b *binarySniff) add(line string) error {
	if b.judged {
		return nil
	}
	b.bytes += len(line) + 1
	b.nul += strings.Count(line, "\x00")
	if !utf8.ValidString(line) {
		for i := 0; i < len(line); {
			r, n := utf8.DecodeRuneInString(line[i:])
			if r == utf8.RuneError && n == 1 {
				b.invalid++
			}
			i += n
		}
	}
	if b.bytes >= sniffBytes {
		return b.verdict()
	}
	return nil
}

func (b *binarySniff) verdict() error {
	if b.judged {
		return nil
	}
	b.judged = true
	if b.nul > 0 || float64(b.invalid) > sniffInvalid*float64(b.bytes) {
		return fmt.Errorf("is not text: its first %d bytes hold %d NUL bytes and %d bytes that are not UTF-8 (a binary file, or compressed other than by gzip?)", b.bytes, b.nul, b.invalid)
	}
	return nil
}
