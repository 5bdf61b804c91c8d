package router

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	tests := []struct {
		text     string
		prefixes []string
		want     Command
		ok       bool
	}{
		{"!ping", []string{"!"}, Command{Prefix: "!", Name: "ping"}, true},
		{"  !PING  ", []string{"!"}, Command{Prefix: "!", Name: "ping"}, true},
		{"!so @bob", []string{"!"}, Command{Prefix: "!", Name: "so", Args: []string{"@bob"}, ArgText: "@bob"}, true},
		{`!quote add "the penguin waddles" now`, []string{"!"}, Command{Prefix: "!", Name: "quote",
			Args: []string{"add", "the penguin waddles", "now"}, ArgText: `add "the penguin waddles" now`}, true},
		{`!say "a \"quoted\" word"`, []string{"!"}, Command{Prefix: "!", Name: "say",
			Args: []string{`a "quoted" word`}, ArgText: `"a \"quoted\" word"`}, true},
		{`!say "unterminated words`, []string{"!"}, Command{Prefix: "!", Name: "say",
			Args: []string{"unterminated words"}, ArgText: `"unterminated words`}, true},
		{`!say ""`, []string{"!"}, Command{Prefix: "!", Name: "say", Args: []string{""}, ArgText: `""`}, true},
		{"?help ping", []string{"!", "?"}, Command{Prefix: "?", Name: "help", Args: []string{"ping"}, ArgText: "ping"}, true},
		{"#weather berlin", []string{"#"}, Command{Prefix: "#", Name: "weather", Args: []string{"berlin"}, ArgText: "berlin"}, true},
		{"!!ping", []string{"!!"}, Command{Prefix: "!!", Name: "ping"}, true},
		{"!ai\twhy\nnow", []string{"!"}, Command{Prefix: "!", Name: "ai", Args: []string{"why", "now"}, ArgText: "why\nnow"}, true},
		{"hello !ping", []string{"!"}, Command{}, false},
		{"!", []string{"!"}, Command{}, false},
		{"! ping", []string{"!"}, Command{}, false},
		{"!1 more round", []string{"!"}, Command{}, false},
		{"!ping, everyone", []string{"!"}, Command{}, false},
		{"!" + strings.Repeat("a", 33), []string{"!"}, Command{}, false},
		{"!5€", []string{"!"}, Command{}, false},
		{"ping", []string{"!"}, Command{}, false},
		{"!ping", nil, Command{}, false},
	}
	for _, tt := range tests {
		got, ok := Parse(tt.text, tt.prefixes...)
		if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", tt.text, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseBare(t *testing.T) {
	got, ok := ParseBare("quote add hi")
	if !ok || got.Name != "quote" || got.ArgText != "add hi" || got.Prefix != "" {
		t.Fatalf("ParseBare = %+v, %v", got, ok)
	}
	if _, ok := ParseBare(""); ok {
		t.Fatal("empty slash command parsed")
	}
}

// FuzzParse feeds arbitrary chat text to the parser: it must never panic,
// and what it accepts must be a well-formed command taken from the text.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"!ping", `!q add "a b" c`, "!", "#x y", `!a "\`, "!!b", " \t!c\u00a0d", "!ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, ok := Parse(text, "!", "#", "!!")
		if !ok {
			return
		}
		if c.Name == "" || len(c.Name) > maxCommandName || strings.ToLower(c.Name) != c.Name {
			t.Fatalf("bad name %q from %q", c.Name, text)
		}
		if !strings.Contains(strings.ToLower(text), c.Prefix+c.Name) {
			t.Fatalf("name %q not in %q", c.Name, text)
		}
		if c.ArgText != strings.TrimSpace(c.ArgText) || !strings.HasSuffix(text, c.ArgText) && c.ArgText != "" &&
			!strings.Contains(text, c.ArgText) {
			t.Fatalf("arg text %q not from %q", c.ArgText, text)
		}
		if utf8.ValidString(text) {
			for _, a := range c.Args {
				if !utf8.ValidString(a) {
					t.Fatalf("invalid UTF-8 arg %q from valid text %q", a, text)
				}
			}
		}
		if c.ArgText == "" && len(c.Args) != 0 {
			t.Fatalf("args %q without arg text", c.Args)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for _, text := range []string{"that was a great play, well done everyone", `!quote add "the penguin waddles" now`} {
		b.Run(strings.Fields(text)[0], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Parse(text, "!", "#")
			}
		})
	}
}
