package actions

import "testing"

// A command's first word comes off, and the rest keeps its inner spacing.
func TestCutWordKeepsTheRest(t *testing.T) {
	word, rest := CutWord("  add   hug  !so  {1}  'x'\u202e ")
	if word != "add" || rest != "hug  !so  {1}  'x'\u202e" {
		t.Errorf("%q %q", word, rest)
	}
	if word, rest := CutWord(""); word != "" || rest != "" {
		t.Errorf("%q %q", word, rest)
	}
}
