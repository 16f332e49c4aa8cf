package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestShortens(t *testing.T) {
	if got := Quote("abc"); got != `"abc"` {
		t.Errorf("Quote(abc) = %s", got)
	}
	if got := String("abc"); got != "abc" {
		t.Errorf("String(abc) = %s", got)
	}
	long := strings.Repeat("x", 100<<20)
	for _, got := range []string{Quote(long), String(long)} {
		if len(got) > Max+40 || !strings.Contains(got, "(104857600 bytes)") {
			t.Errorf("a 100 MB value became %d bytes: %.100s", len(got), got)
		}
	}
	// Cut on a rune boundary: never half a UTF-8 character.
	s := strings.Repeat("é", 100)
	if got := String(s); !utf8.ValidString(got) {
		t.Errorf("String cut inside a rune: %q", got)
	}
}
