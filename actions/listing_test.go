package actions

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestListingPages(t *testing.T) {
	var items []string
	for i := 1; i <= 60; i++ {
		items = append(items, fmt.Sprintf("#%d the penguin waddles again", i))
	}
	l := Listing{Header: "Quotes matching \"penguin\":", Items: items,
		More: func(p int) string { return fmt.Sprintf("!quote search penguin %d", p) }}
	for _, limit := range []int{500, 2000} {
		first, pages := l.Page(1, limit)
		if pages < 2 && limit == 500 {
			t.Fatalf("60 items on %d pages at 500 characters", pages)
		}
		seen := 0
		for p := 1; p <= pages; p++ {
			text, _ := l.Page(p, limit)
			if n := utf8.RuneCountInString(text); n > limit {
				t.Fatalf("page %d is %d characters, limit %d", p, n, limit)
			}
			if !strings.HasPrefix(text, "Quotes matching") {
				t.Fatalf("page %d lost its header: %q", p, text)
			}
			if p < pages && !strings.Contains(text, fmt.Sprintf("next: !quote search penguin %d", p+1)) {
				t.Fatalf("page %d does not say how to see the next: %q", p, text)
			}
			seen += strings.Count(text, "#")
		}
		if seen != 60 {
			t.Fatalf("pages hold %d items, want 60", seen)
		}
		_ = first
	}
	if text, _ := l.Page(99, 500); !strings.HasPrefix(text, "There are only") {
		t.Fatalf("past the end: %q", text)
	}
	if text, n := (Listing{Empty: "No quotes yet."}).Page(1, 500); text != "No quotes yet." || n != 0 {
		t.Fatalf("empty: %q %d", text, n)
	}
	long := Listing{Header: "x:", Items: []string{strings.Repeat("é", 3000)}}
	if text, _ := long.Page(1, 500); utf8.RuneCountInString(text) > 500 || !strings.HasSuffix(text, "…") {
		t.Fatalf("an item longer than a page was not clipped: %d", utf8.RuneCountInString(text))
	}
}
