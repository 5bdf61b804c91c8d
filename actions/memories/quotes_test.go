package memories_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
)

var day = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func TestQuotes(t *testing.T) {
	t.Parallel()
	p := start(t, clock.NewFake(day))
	testQuotes(t, p)
	t.Run("search", func(t *testing.T) { testQuoteSearch(t, p) })
}

// testQuotes leaves quotes #1–#45 (#3 removed) for testQuoteSearch.
func testQuotes(t *testing.T, p *pipelinetest.Pipeline) {
	const usage = "Usage: !quote [number] · !quote add <text> [- author] · !quote search <term> [page] · !quote remove <number>"

	t.Run("no quotes yet", func(t *testing.T) {
		expect(t, p, "alice", "", "!quote", "There are no quotes yet. Moderators add them with !quote add <text> [- author].")
	})

	t.Run("writers only", func(t *testing.T) {
		for _, role := range []string{"", "member", "subscriber", "vip"} {
			expect(t, p, "bob", role, "!quote add I am not allowed",
				`Sorry bob, only moderators or people with the "memories" label can add quotes.`)
		}
		if n := p.Count(`SELECT count(*) FROM memories_quotes`); n != 0 {
			t.Fatalf("%d quotes stored by people who may not", n)
		}
	})

	t.Run("add and show", func(t *testing.T) {
		expect(t, p, "mod", "moderator", "!quote add Hello world", "Quote #1 added.")
		expect(t, p, "owner", "broadcaster", "!quote add To be, or not to be - Shakespeare", "Quote #2 added.")
		expect(t, p, "alice", "", "!quote 1", "#1: “Hello world” (added by mod, 2026-11-28)")
		expect(t, p, "alice", "", "!quote #2", "#2: “To be, or not to be” — Shakespeare (added by owner, 2026-11-28)")
		random := regexp.MustCompile(`^#[12]: “`)
		for range 3 {
			if got := p.SayText("alice", "", "!quote"); !random.MatchString(got) {
				t.Errorf("!quote: %q is not one of the quotes", got)
			}
		}
		if got := p.SayText("alice", "", "!quote random"); !random.MatchString(got) {
			t.Errorf("!quote random: %q is not one of the quotes", got)
		}
	})

	t.Run("the memories label makes a writer", func(t *testing.T) {
		p.GiveLabel("bob", "memories")
		// The router reloads the community when it hears the notice.
		eventually(t, "bob's label to reach the router", func() bool {
			return p.SayText("bob", "member", "!quote add Labelled - bob") == "Quote #3 added."
		})
		expect(t, p, "bob", "member", "!quote remove 3", "Sorry bob, only moderators can remove quotes.")
	})

	t.Run("bad syntax and unknown numbers", func(t *testing.T) {
		expect(t, p, "alice", "", "!quote 99", "There is no quote #99.")
		expect(t, p, "alice", "", "!quote banana", usage)
		expect(t, p, "alice", "", "!quote 1 2", usage)
		expect(t, p, "alice", "", "!quote random please", usage)
		expect(t, p, "mod", "moderator", "!quote add", "Usage: !quote add <text> [- author]")
		expect(t, p, "mod", "moderator", "!quote add  - nobody", "Usage: !quote add <text> [- author]")
		expect(t, p, "mod", "moderator", "!quote remove", "Usage: !quote remove <number>")
		expect(t, p, "mod", "moderator", "!quote remove one", "Usage: !quote remove <number>")
		expect(t, p, "mod", "moderator", "!quote remove 99", "There is no quote #99.")
	})

	t.Run("numbers are never reused", func(t *testing.T) {
		expect(t, p, "mod", "moderator", "!quote remove 3", "Quote #3 removed.")
		expect(t, p, "alice", "", "!quote 3", "There is no quote #3.")
		expect(t, p, "mod", "moderator", "!quote remove #3", "There is no quote #3.")
		expect(t, p, "mod", "moderator", "!quote add After the removal", "Quote #4 added.")
	})

	t.Run("limits", func(t *testing.T) {
		before := p.Count(`SELECT count(*) FROM memories_quotes`)
		max := strings.Repeat("é", 400)
		expect(t, p, "mod", "moderator", "!quote add "+max+"x", "That quote is 401 characters long; the most is 400.")
		expect(t, p, "mod", "moderator", "!quote add "+strings.Repeat("0123456789", 1024), "That quote is 10240 characters long; the most is 400.")
		expect(t, p, "mod", "moderator", "!quote add fine - "+strings.Repeat("a", 51), "That author name is 51 characters long; the most is 50.")
		expect(t, p, "mod", "moderator", "!quote add nul\x00byte", "That quote contains a control character (U+0000); please send plain text.")
		expect(t, p, "mod", "moderator", "!quote add \x1b[31mred", "That quote contains a control character (U+001B); please send plain text.")
		expect(t, p, "mod", "moderator", "!quote add bell\u0007 - x", "That quote contains a control character (U+0007); please send plain text.")
		expect(t, p, "mod", "moderator", "!quote add fine - a\u0085b", "That author name contains a control character (U+0085); please send plain text.")
		if n := p.Count(`SELECT count(*) FROM memories_quotes`); n != before {
			t.Fatalf("refused quotes were stored: %d quotes, want %d", n, before)
		}
		// The longest allowed quote is stored whole; shown on the console
		// (2,000 characters) it still carries who added it.
		expect(t, p, "mod", "moderator", "!quote add "+max, "Quote #5 added.")
		expect(t, p, "alice", "", "!quote 5", "#5: “"+max+"” (added by mod, 2026-11-28)")
	})

	t.Run("injection-shaped text round-trips exactly", func(t *testing.T) {
		texts := []string{
			`'; drop table memories_quotes; --`,
			`Robert'); DELETE FROM memories_counters;--`,
			`{{ .Secret }} {{template "x"}} ${HOME} $(id) %s %d %%`,
			"\u202Eevil RTL\u202C and \u200F marks \u200B",
			"emoji 🐧🎉 👩‍👩‍👧 🇳🇱 and  two  spaces\tand a tab",
			`back\slash "double" 'single' <b>html</b> &amp; \u0000`,
			"日本語のことわざ、猿も木から落ちる",
		}
		for _, text := range texts {
			reply := p.SayText("mod", "moderator", "!quote add "+text)
			var n int
			if _, err := fmt.Sscanf(reply, "Quote #%d added.", &n); err != nil {
				t.Fatalf("adding %q: %q", text, reply)
			}
			expect(t, p, "alice", "", fmt.Sprintf("!quote %d", n), fmt.Sprintf("#%d: “%s” (added by mod, 2026-11-28)", n, text))
			var stored string
			p.Must(p.Store.Pool().QueryRow(context.Background(), `SELECT text FROM memories_quotes WHERE number = $1`, n).Scan(&stored))
			if stored != text {
				t.Errorf("stored %q, want %q", stored, text)
			}
		}
		expect(t, p, "mod", "moderator", "!quote add a'b - O'Brien; DROP TABLE x", "Quote #13 added.")
		expect(t, p, "alice", "", "!quote 13", "#13: “a'b” — O'Brien; DROP TABLE x (added by mod, 2026-11-28)")
		if n := p.Count(`SELECT count(*) FROM memories_counters`); n != 1 {
			t.Errorf("counters: %d rows", n)
		}
	})

	t.Run("redelivered add adds nothing and names the same number", func(t *testing.T) {
		expect(t, p, "mod", "moderator", "!quote add Said once", "Quote #14 added.")
		inv := lastInvocation(t, p, "quote", "add Said once")
		quotes := p.Count(`SELECT count(*) FROM memories_quotes`)
		replies := redeliver(t, p, inv)
		if len(replies) != 1 || replies[0].Text != "Quote #14 added." {
			t.Fatalf("replies after redelivery: %+v", replies)
		}
		if n := p.Count(`SELECT count(*) FROM memories_quotes`); n != quotes {
			t.Errorf("redelivery changed the quotes: %d, want %d", n, quotes)
		}
		if n := p.Count(`SELECT last FROM memories_counters WHERE kind = 'quote'`); n != 14 {
			t.Errorf("redelivery moved the counter to %d", n)
		}
		expect(t, p, "mod", "moderator", "!quote add Said twice", "Quote #15 added.")
	})

	t.Run("concurrent adds take distinct numbers", func(t *testing.T) {
		var texts []string
		for i := range 30 {
			texts = append(texts, fmt.Sprintf("!quote add paging quote number %02d %s", i, strings.Repeat("padding ", 10)))
		}
		sayAll(t, p, "mod", "moderator", texts)
		if n := p.Count(`SELECT count(DISTINCT number) FROM memories_quotes WHERE text LIKE 'paging quote%'`); n != 30 {
			t.Fatalf("30 concurrent adds stored %d distinct numbers", n)
		}
		if n := p.Count(`SELECT count(*) FROM memories_quotes WHERE text LIKE 'paging quote%' AND number BETWEEN 16 AND 45`); n != 30 {
			t.Fatalf("concurrent adds left gaps: %d of 30 in #16–#45", n)
		}
	})
}

func testQuoteSearch(t *testing.T, p *pipelinetest.Pipeline) {
	for _, q := range []string{
		"The quick brown fox jumps - Anon",    // 46
		"Jo said hi",                          // 47
		"I am 100% sure_thing",                // 48
		"Lorem ipsum dolor sit amet",          // 49
		"Ünïcödé wörds stay searchable",       // 50
		"A quote without the word - Jo Nesbø", // 51
	} {
		if got := p.SayText("mod", "moderator", "!quote add "+q); !strings.HasPrefix(got, "Quote #") {
			t.Fatalf("adding %q: %q", q, got)
		}
	}
	cases := []struct{ term, want string }{
		{"fox", "Quotes matching “fox”: #46 “The quick brown fox jumps”"},
		{"FOX quick", "Quotes matching “FOX quick”: #46 “The quick brown fox jumps”"},         // words, any order, any case
		{"\"brown fox\"", "Quotes matching “\"brown fox\"”: #46 “The quick brown fox jumps”"}, // a phrase
		{"anon", "Quotes matching “anon”: #46 “The quick brown fox jumps”"},                   // the author
		{"uic", "Quotes matching “uic”: #46 “The quick brown fox jumps”"},                     // part of a word
		{"Jo", "Quotes matching “Jo”: #47 “Jo said hi” · #51 “A quote without the word”"},     // short names
		{"nesbø", "Quotes matching “nesbø”: #51 “A quote without the word”"},
		{"wörds", "Quotes matching “wörds”: #50 “Ünïcödé wörds stay searchable”"},
		{"100%", "Quotes matching “100%”: #48 “I am 100% sure_thing”"},                               // % is no wildcard
		{"_t", "Quotes matching “_t”: #48 “I am 100% sure_thing”"},                                   // nor is _
		{"'; drop", "Quotes matching “'; drop”: #6 “'; drop table memories_quotes; --” · #13 “a'b”"}, // #13's author has "DROP"
		{"{{", "Quotes matching “{{”: #8 “{{ .Secret }} {{template \"x\"}} ${HOME} $(id) %s %d %%”"},
		{"🐧🎉", "Quotes matching “🐧🎉”: #10 “emoji 🐧🎉 👩‍👩‍👧 🇳🇱 and  two  spaces\tand a tab”"},
		{"\\", "Search for at least 2 characters: !quote search <term> [page]"},
		{"zzzz", "No quote matches “zzzz”."},
		{"-or-", "No quote matches “-or-”."}, // exclusions alone find nothing
		{"brown -quick", "No quote matches “brown -quick”."},
		{"Jo -hi", "Quotes matching “Jo -hi”: #51 “A quote without the word”"},
		{"x", "Search for at least 2 characters: !quote search <term> [page]"},
		{"", "Usage: !quote search <term> [page]"},
		{"a\u0001b", "That search term contains a control character (U+0001); please send plain text."},
		{strings.Repeat("ab", 51), "That search term is 102 characters long; the most is 100."},
	}
	for _, c := range cases {
		expect(t, p, "alice", "", strings.TrimSpace("!quote search "+c.term), c.want)
	}

	t.Run("pages", func(t *testing.T) {
		first := expectContains(t, p, "alice", "", "!quote search paging", "Quotes matching “paging”: #16 “paging quote number ",
			"(page 1/2; next: !quote search paging 2)")
		second := expectContains(t, p, "alice", "", "!quote search paging 2", "Quotes matching “paging”: ", "(page 2/2)")
		if len([]rune(first)) > 2000 || len([]rune(second)) > 2000 {
			t.Errorf("a page is longer than a console message")
		}
		if n := strings.Count(first, "“paging quote") + strings.Count(second, "“paging quote"); n != 30 {
			t.Errorf("the pages show %d of the 30 quotes:\n%s\n%s", n, first, second)
		}
		expect(t, p, "alice", "", "!quote search paging 3", "There are only 2 pages.")
		// A lone number is the term, not a page.
		expect(t, p, "alice", "", "!quote search 100", "Quotes matching “100”: #48 “I am 100% sure_thing”")
	})
}
