package actions

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestSplitText(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		limit int
		want  []string
	}{
		{"empty", "", 10, nil},
		{"white space only", " \n\t ", 10, nil},
		{"short", "pong", 500, []string{"pong"}},
		{"exactly the limit", "hello", 5, []string{"hello"}},
		{"trims the ends", "  hello  ", 5, []string{"hello"}},
		{"breaks at a space", "hello world foo", 11, []string{"hello world", "foo"}},
		{"space right after the window", "hello world", 5, []string{"hello", "world"}},
		{"collapses the break's white space", "a    b", 1, []string{"a", "b"}},
		{"prefers a late line end", "aaaa bbbb\ncc dd", 12, []string{"aaaa bbbb", "cc dd"}},
		{"ignores an early line end", "a\nbbbb cccc dddd", 12, []string{"a\nbbbb cccc", "dddd"}},
		{"counts runes, not bytes", "héllo wörld ünïcode", 5, []string{"héllo", "wörld", "ünïco", "de"}},
		{"emoji", "🐧🐧🐧🐧🐧🐧", 4, []string{"🐧🐧🐧🐧", "🐧🐧"}},
		{"cuts a word longer than the limit", "abcdefghij", 3, []string{"abc", "def", "ghi", "j"}},
		{"long word between short ones", "hi abcdefgh yo", 4, []string{"hi", "abcd", "efgh", "yo"}},
		{"ideographic space breaks", "你好\u3000世界", 2, []string{"你好", "世界"}},
		{"no limit", "a b c", 0, []string{"a b c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitText(tt.text, tt.limit)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("SplitText(%q, %d) = %q, want %q", tt.text, tt.limit, got, tt.want)
			}
		})
	}
}

func TestSplitTextKeepsWordsWhole(t *testing.T) {
	text := strings.Repeat("The quick brown fox jumps over the lazy dog.\n", 40) + "Ünïcödé wörds 🐧 too."
	for _, limit := range []int{12, 25, 80, 500} {
		parts := SplitText(text, limit)
		for i, p := range parts {
			if n := utf8.RuneCountInString(p); n > limit || n == 0 {
				t.Fatalf("limit %d: part %d has %d characters", limit, i, n)
			}
		}
		if got, want := strings.Fields(strings.Join(parts, " ")), strings.Fields(text); !slices.Equal(got, want) {
			t.Fatalf("limit %d: words changed", limit)
		}
	}
	if parts := SplitText(text, 500); len(parts) != 4 {
		t.Fatalf("a %d-character text at 500 took %d parts, want 4", utf8.RuneCountInString(text), len(parts))
	}
}

// nonSpace is s without its white space, decoded the way SplitText decodes
// (an invalid byte is one character of its own).
func nonSpace(s string) string {
	var b strings.Builder
	for i, r := range s {
		if !unicode.IsSpace(r) {
			_, size := utf8.DecodeRuneInString(s[i:])
			b.WriteString(s[i : i+size])
		}
	}
	return b.String()
}

func FuzzSplitText(f *testing.F) {
	f.Add("hello world", 5)
	f.Add("a\nbbbb cccc dddd", 12)
	f.Add("🐧🐧🐧 🐧🐧🐧🐧", 2)
	f.Add("  \t\n ", 3)
	f.Add("abc\xe2\x82 \xacdef", 3)
	f.Add(strings.Repeat("word ", 30), 40)
	f.Fuzz(func(t *testing.T, text string, limit int) {
		if limit < 0 {
			limit = -limit
		}
		limit = limit%600 + 1
		parts := SplitText(text, limit)
		if (len(parts) == 0) != (strings.TrimSpace(text) == "") {
			t.Fatalf("%d parts for %q", len(parts), text)
		}
		var joined strings.Builder
		longest := 0
		for i, p := range parts {
			if n := utf8.RuneCountInString(p); n > limit {
				t.Fatalf("part %d has %d characters, limit %d", i, n, limit)
			}
			if p == "" || strings.TrimSpace(p) != p {
				t.Fatalf("part %d is %q: empty or padded", i, p)
			}
			joined.WriteString(nonSpace(p))
		}
		if joined.String() != nonSpace(text) {
			t.Fatalf("content changed:\n got %q\nwant %q", joined.String(), nonSpace(text))
		}
		for _, w := range strings.Fields(text) {
			longest = max(longest, utf8.RuneCountInString(w))
		}
		if longest <= limit && utf8.ValidString(text) {
			if got, want := strings.Fields(strings.Join(parts, " ")), strings.Fields(text); !slices.Equal(got, want) {
				t.Fatalf("words changed although none is longer than %d:\n got %q\nwant %q", limit, got, want)
			}
		}
	})
}
