package actions

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Listing is a list a module answers with, paged so that every page is one
// message on the platform (`!quote search x 2` shows page 2).
type Listing struct {
	// Header starts every page ("Quotes matching \"x\":").
	Header string
	Items  []string
	// Sep joins items; default " · ".
	Sep string
	// Empty is the whole answer when there are no items.
	Empty string
	// More, when set, names the command that shows page n, for the footer.
	More func(page int) string
}

// Page renders page n (from 1) of the listing to fit limit characters, and
// the number of pages. Asking past the last page answers with where the
// list ends.
func (l Listing) Page(n, limit int) (string, int) {
	if len(l.Items) == 0 {
		return l.Empty, 0
	}
	pages := l.split(limit)
	if n < 1 {
		n = 1
	}
	if n > len(pages) {
		return fmt.Sprintf("There %s only %d %s.", plural(len(pages), "is", "are"), len(pages), plural(len(pages), "page", "pages")), len(pages)
	}
	return l.render(pages[n-1], n, len(pages)), len(pages)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (l Listing) sep() string {
	if l.Sep == "" {
		return " · "
	}
	return l.Sep
}

func (l Listing) footer(n, pages int) string {
	if pages <= 1 {
		return ""
	}
	f := fmt.Sprintf(" (page %d/%d", n, pages)
	if l.More != nil && n < pages {
		f += "; next: " + l.More(n+1)
	}
	return f + ")"
}

func (l Listing) render(items []string, n, pages int) string {
	text := strings.TrimSpace(l.Header + " " + strings.Join(items, l.sep()))
	return text + l.footer(n, pages)
}

// split packs items into pages greedily, keeping room for the footer of
// the page count it ends with (computed with a generous page number).
func (l Listing) split(limit int) [][]string {
	room := limit - runes(l.Header) - 1 - runes(l.footer(99998, 99999))
	if room < 10 {
		room = 10
	}
	var pages [][]string
	var cur []string
	used := 0
	for _, item := range l.Items {
		item = Clip(item, room)
		cost := runes(item)
		if len(cur) > 0 {
			cost += runes(l.sep())
		}
		if len(cur) > 0 && used+cost > room {
			pages = append(pages, cur)
			cur, used, cost = nil, 0, runes(item)
		}
		cur = append(cur, item)
		used += cost
	}
	return append(pages, cur)
}

func runes(s string) int { return utf8.RuneCountInString(s) }

// Clip shortens s to n characters (runes), marking the cut with "…".
func Clip(s string, n int) string {
	if runes(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
