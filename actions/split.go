package actions

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// SplitText cuts text into parts of at most limit characters (runes) each,
// for platforms that refuse longer messages. It breaks at a line end when one
// falls in the second half of a part, else at the last white space, so words
// stay whole; only a word longer than limit is cut inside. Parts carry no
// leading or trailing white space and are never empty; a text of white space
// only gives no parts. A limit below 1 means no limit.
//
// It works on the bytes as they are: an invalid UTF-8 byte counts as one
// character and is kept, so the parts always rejoin to the original content.
func SplitText(text string, limit int) []string {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil
	}
	if limit < 1 {
		return []string{text}
	}
	var parts []string
	for text != "" {
		end, fits := afterRunes(text, limit)
		if fits {
			parts = append(parts, text)
			break
		}
		cut := breakBefore(text, end)
		if cut <= 0 {
			// One word longer than the limit: cut it where the limit falls.
			cut = end
		}
		parts = append(parts, strings.TrimRightFunc(text[:cut], unicode.IsSpace))
		text = strings.TrimLeftFunc(text[cut:], unicode.IsSpace)
	}
	return parts
}

// afterRunes returns the byte offset just past the first n runes of s, and
// whether s has no more than n runes.
func afterRunes(s string, n int) (int, bool) {
	offset := 0
	for range n {
		if offset >= len(s) {
			return len(s), true
		}
		_, size := utf8.DecodeRuneInString(s[offset:])
		offset += size
	}
	return offset, offset >= len(s)
}

// breakBefore finds where to end a part that may hold s[:end]: the offset of
// a white space rune at or before end (the rune at end itself counts, since
// breaking there keeps the whole window). It prefers a line end in the
// second half of the window, since it usually ends a thought. It returns -1
// when the window holds no white space after its first rune.
func breakBefore(s string, end int) int {
	lastSpace, lastNewline := -1, -1
	for i, r := range s {
		if i > end {
			break
		}
		if i == 0 {
			continue
		}
		if r == '\n' {
			lastNewline = i
		}
		if unicode.IsSpace(r) {
			lastSpace = i
		}
	}
	if lastNewline > end/2 {
		return lastNewline
	}
	return lastSpace
}
