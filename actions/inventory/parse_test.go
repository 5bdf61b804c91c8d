package inventory

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/waddlebot/waddlebot/router"
)

// quoteArg must give back what the router's splitter reads as that one
// argument, or next-page hints would name another item.
func TestQuoteArgRoundTrips(t *testing.T) {
	for _, s := range []string{"mic", "xlr cable", `a "b" c`, `back\slash`, `"`, `\`, "tab\there", "🎤 mic", "2024", "\u202Eevil"} {
		got := router.SplitArgs(quoteArg(s) + " 2")
		if want := []string{s, "2"}; !slices.Equal(got, want) {
			t.Errorf("quoteArg(%q) = %s splits into %q", s, quoteArg(s), got)
		}
	}
}

func FuzzQuoteArg(f *testing.F) {
	for _, s := range []string{"mic", "a b", `"x"`, `\\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.TrimSpace(s) != s || s == "" || !utf8.ValidString(s) {
			t.Skip() // names are trimmed and valid UTF-8 before they are quoted
		}
		if got := router.SplitArgs(quoteArg(s)); len(got) != 1 || got[0] != s {
			t.Fatalf("quoteArg(%q) = %s splits into %q", s, quoteArg(s), got)
		}
	})
}

func TestQuantity(t *testing.T) {
	for _, c := range []struct {
		arg   string
		n     int
		isQty bool
		bad   bool
	}{
		{"1", 1, true, false},
		{"100000", 100000, true, false},
		{"007", 7, true, false},
		{"0", 0, true, true},
		{"100001", 0, true, true},
		{"-1", 0, true, true},
		{"+3", 0, true, true},
		{"1.5", 0, true, true},
		{"1,000", 0, true, true},
		{"99999999999999999999", 0, true, true},
		{"audio", 0, false, false},
		{"x2", 0, false, false},
		{"-", 0, false, false},
	} {
		n, isQty, err := quantity(c.arg)
		if n != c.n || isQty != c.isQty || (err != nil) != c.bad {
			t.Errorf("quantity(%q) = %d, %v, %v", c.arg, n, isQty, err)
		}
	}
}

func TestLikePatternEscapes(t *testing.T) {
	if got := likePattern(`50%_off\`); got != `%50\%\_off\\%` {
		t.Fatalf("likePattern: %s", got)
	}
}

func TestUser(t *testing.T) {
	for _, c := range []struct{ arg, name, key string }{
		{"@Bob", "Bob", "bob"},
		{"bob", "bob", "bob"},
		{"@zoë.k-9_", "zoë.k-9_", "zoë.k-9_"},
		{"<@123456>", "123456", "123456"},
		{"<@!U12AB>", "U12AB", "u12ab"},
	} {
		name, key, err := user(c.arg)
		if err != nil || name != c.name || key != c.key {
			t.Errorf("user(%q) = %q, %q, %v", c.arg, name, key, err)
		}
	}
	for _, arg := range []string{"@", "@a b", "@" + strings.Repeat("a", 65), "@bob!", "@b\x00b"} {
		if _, _, err := user(arg); err == nil {
			t.Errorf("user(%q) accepted", arg)
		}
	}
}

func TestItemName(t *testing.T) {
	if got, err := itemName("  mic  "); err != nil || got != "mic" {
		t.Fatalf("itemName trims: %q, %v", got, err)
	}
	if _, err := itemName(strings.Repeat("🎤", MaxNameLength)); err != nil {
		t.Fatalf("64 emoji refused: %v", err)
	}
	for _, bad := range []string{"", " ", "a\x00", "a\nb", "\x7f", "x\u0085y", strings.Repeat("a", MaxNameLength+1)} {
		if _, err := itemName(bad); err == nil {
			t.Errorf("itemName(%q) accepted", bad)
		}
	}
}
