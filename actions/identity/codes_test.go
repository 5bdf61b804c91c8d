package identity

import (
	"strings"
	"testing"
)

func TestNormalizeCode(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"K7Q2MX", "K7Q2MX", true},
		{"k7q-2mx", "K7Q2MX", true},
		{"  k7q 2mx ", "K7Q2MX", true},
		{"K7Q2M", "", false},
		{"K7Q2MXA", "", false},
		{"K7Q2M0", "", false}, // 0 is never drawn
		{"K7Q2MÉ", "", false},
		{"", "", false},
	} {
		got, ok := normalizeCode(c.in)
		if got != c.want && c.ok || ok != c.ok {
			t.Errorf("normalizeCode(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestNewCodeDrawsFromTheAlphabet(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		code, err := newCode()
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := normalizeCode(code); !ok || n != code {
			t.Fatalf("drew %q, which does not read back", code)
		}
		seen[code] = true
	}
	if len(seen) < 195 {
		t.Errorf("200 draws gave %d distinct codes", len(seen))
	}
}

// What a user types after !verify never panics, and whatever is accepted is
// a code of the alphabet.
func FuzzNormalizeCode(f *testing.F) {
	for _, s := range []string{"K7Q2MX", "k7q-2mx", "", "ÉÉÉÉÉÉ", "      ", "ABCDEFGHIJ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		code, ok := normalizeCode(s)
		if !ok {
			return
		}
		if len(code) != CodeLength {
			t.Fatalf("%q read as %q", s, code)
		}
		for _, r := range code {
			if !strings.ContainsRune(codeAlphabet, r) {
				t.Fatalf("%q read as %q, outside the alphabet", s, code)
			}
		}
	})
}
