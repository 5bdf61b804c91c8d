package ai

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/waddlebot/waddlebot/schemas"
)

func TestStripMarkdown(t *testing.T) {
	cases := []struct{ in, want string }{
		{"# Title\nbody", "Title\nbody"},
		{"### deep heading", "deep heading"},
		{"**bold** and __also__", "bold and also"},
		{"*italic* and _this_", "italic and this"},
		{"***both***", "both"},
		{"keep snake_case_names and 2*3*4", "keep snake_case_names and 2*3*4"},
		{"~~gone~~ text", "gone text"},
		{"use `go test` now", "use go test now"},
		{"```go\nfmt.Println(1)\n```", "\nfmt.Println(1)\n"},
		{"see [the docs](https://example.com/a)", "see the docs (https://example.com/a)"},
		{"[https://x.io](https://x.io)", "https://x.io"},
		{"![a cat](https://x.io/cat.png)", "a cat (https://x.io/cat.png)"},
		{"<https://x.io>", "https://x.io"},
		{"> quoted", "quoted"},
		{"* one\n+ two\n- three", "- one\n- two\n- three"},
		{"---", ""},
		{"plain text stays", "plain text stays"},
	}
	for _, c := range cases {
		if got := StripMarkdown(c.in); got != c.want {
			t.Errorf("StripMarkdown(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNeutralize(t *testing.T) {
	cases := []struct{ in, want string }{
		{"hi @everyone", "hi @" + zwsp + "everyone"},
		{"@HERE now", "@" + zwsp + "HERE now"},
		{"ping <@123456> and <@!42> and <@&7>", "ping <" + zwsp + "@123456> and <" + zwsp + "@!42> and <" + zwsp + "@&7>"},
		{"<!channel> <!here> <!subteam^S1>", "<" + zwsp + "!channel> <" + zwsp + "!here> <" + zwsp + "!subteam^S1>"},
		{"email me@hereford.com", "email me@hereford.com"},
		{"@alice is fine", "@alice is fine"},
	}
	for _, c := range cases {
		if got := Neutralize(c.in); got != c.want {
			t.Errorf("Neutralize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestShape(t *testing.T) {
	long := strings.Repeat("word ", 200)
	cases := []struct {
		name, in, platform, prefix string
		limit                      int
		want                       string
	}{
		{"twitch joins lines and strips", "# Hi\n**there**\n\nfriend", schemas.PlatformTwitch, "🤖 ", 500, "🤖 Hi there friend"},
		{"discord keeps markdown", "**bold** @everyone", schemas.PlatformDiscord, "", 2000, "**bold** @" + zwsp + "everyone"},
		{"slack strips", "**bold** [a](https://b.c)", schemas.PlatformSlack, "", 4000, "bold a (https://b.c)"},
		{"command-looking answer defused", "/ban alice", schemas.PlatformTwitch, "", 500, zwsp + "/ban alice"},
		{"bang answer defused", "!ai loop", schemas.PlatformConsole, "", 500, zwsp + "!ai loop"},
		{"prefix makes it safe", "/me waves", schemas.PlatformTwitch, "🤖 ", 500, "🤖 /me waves"},
		{"empty stays empty", "  \n ", schemas.PlatformTwitch, "🤖 ", 500, ""},
		{"sentence cut", "First sentence here. Second sentence is much longer than the rest.", schemas.PlatformTwitch, "", 40, "First sentence here."},
		{"word cut", long, schemas.PlatformTwitch, "", 23, "word word word word…"},
		{"controls dropped", "a\x00b\x07c", schemas.PlatformConsole, "", 100, "abc"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Shape(c.in, c.platform, c.prefix, c.limit)
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
			if n := utf8.RuneCountInString(got); n > c.limit {
				t.Fatalf("%d runes over the limit %d", n, c.limit)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	cases := []struct {
		in    string
		limit int
		want  string
	}{
		{"short", 10, "short"},
		{"exactly ten", 11, "exactly ten"},
		{"Supercalifragilistic", 10, "Supercali…"},
		{"Hello there, general kenobi", 15, "Hello there…"},
		{"One. Two. Three four five six", 12, "One. Two."},
		{"héllo wörld ünïcode", 12, "héllo wörld…"},
	}
	for _, c := range cases {
		if got := Truncate(c.in, c.limit); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.limit, got, c.want)
		}
	}
}

var (
	rawMass    = regexp.MustCompile(`(?i)@(everyone|here|channel)\b`)
	rawMention = regexp.MustCompile(`<[@!#]`)
)

// FuzzShape checks what chat relies on whatever a model says: one message
// within the limit, valid UTF-8, and no mention that pings.
func FuzzShape(f *testing.F) {
	for _, s := range []string{"# hi", "**@everyone**", "<@123>", "[x](y)", "```\n<!here>\n```", "/ban", "a\nb", "@@here",
		"<<@1>>", "*_*_", "_@everyone_", "[<@1>](<!here>)"} {
		f.Add(s, 50)
	}
	f.Fuzz(func(t *testing.T, s string, limit int) {
		limit = 1 + abs(limit)%600
		for _, platform := range []string{schemas.PlatformTwitch, schemas.PlatformDiscord, schemas.PlatformSlack} {
			got := Shape(s, platform, "", limit)
			if utf8.RuneCountInString(got) > limit {
				t.Fatalf("%s: %d runes over %d: %q", platform, utf8.RuneCountInString(got), limit, got)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("%s: invalid UTF-8 %q", platform, got)
			}
			if rawMass.MatchString(got) || rawMention.MatchString(got) {
				t.Fatalf("%s: mention survived: %q from %q", platform, got, s)
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		if n == -n { // the smallest int
			return 0
		}
		return -n
	}
	return n
}

// FuzzStripMention feeds chat lines to the mention finder: it never panics,
// and what it keeps is no longer than the line.
func FuzzStripMention(f *testing.F) {
	for _, s := range []string{"@waddlebot hi", "waddlebot", "@", "wäddlebot @waddlebot:", "@WADDLEBOT!!", "x@waddlebot"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rest, ok := stripMention(s, "waddlebot")
		if !ok && rest != "" {
			t.Fatalf("no mention but rest %q", rest)
		}
		if len(rest) > len(s) {
			t.Fatalf("rest %q longer than %q", rest, s)
		}
	})
}
