package memories_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
)

func TestBookmarks(t *testing.T) {
	t.Parallel()
	p := start(t, clock.NewFake(day))
	testBookmarks(t, p)
}

func testBookmarks(t *testing.T, p *pipelinetest.Pipeline) {
	const usage = "Usage: !url <name> · !url add <name> <url> · !url remove <name> · !urls [page]"
	const docs = "https://example.com/docs?q=a%20b&x=1#top"

	t.Run("none yet", func(t *testing.T) {
		expect(t, p, "alice", "", "!urls", "There are no bookmarks yet. Moderators add them with !url add <name> <url>.")
		expect(t, p, "alice", "", "!url docs", "There is no bookmark named docs; !urls lists them.")
	})

	t.Run("writers only", func(t *testing.T) {
		for _, role := range []string{"", "member", "vip"} {
			expect(t, p, "carol", role, "!url add docs "+docs, `Sorry carol, only moderators or people with the "memories" label can add bookmarks.`)
		}
		expect(t, p, "carol", "member", "!url remove docs", `Sorry carol, only moderators or people with the "memories" label can remove bookmarks.`)
	})

	t.Run("add and show", func(t *testing.T) {
		expect(t, p, "mod", "moderator", "!url add docs "+docs, "Bookmark docs added; !url docs shows it.")
		expect(t, p, "alice", "", "!url docs", "docs: "+docs)
		expect(t, p, "alice", "", "!url DOCS", "docs: "+docs)
		expect(t, p, "bob", "member", "!url add vod-2_b HTTP://Example.org", `Sorry bob, only moderators or people with the "memories" label can add bookmarks.`)
		p.GiveLabel("bob", "memories")
		// The router reloads the community when it hears the notice.
		eventually(t, "bob's label to reach the router", func() bool {
			return p.SayText("bob", "member", "!url add Vod-2_b HTTP://Example.org") == "Bookmark vod-2_b added; !url vod-2_b shows it."
		})
		expect(t, p, "alice", "", "!url vod-2_b", "vod-2_b: HTTP://Example.org")
		expect(t, p, "alice", "", "!urls", "Bookmarks: docs: "+docs+" · vod-2_b: HTTP://Example.org")
		expect(t, p, "alice", "", "!url list", "Bookmarks: docs: "+docs+" · vod-2_b: HTTP://Example.org")
	})

	t.Run("duplicate name", func(t *testing.T) {
		expect(t, p, "mod", "moderator", "!url add docs https://other.example", "There is already a bookmark named docs. Remove it first with !url remove docs.")
		expect(t, p, "mod", "moderator", "!url add Docs https://other.example", "There is already a bookmark named docs. Remove it first with !url remove docs.")
		expect(t, p, "alice", "", "!url docs", "docs: "+docs)
	})

	t.Run("refusals", func(t *testing.T) {
		cases := []struct{ text, want string }{
			{"!url", usage},
			{"!url docs extra", usage},
			{"!url no.such", usage},
			{"!url add", "Usage: !url add <name> <url>"},
			{"!url add docs", "Usage: !url add <name> <url>"},
			{"!url add bad.name https://example.com", "A bookmark name is 1 to 32 letters, digits, '_' or '-'."},
			{"!url add " + strings.Repeat("a", 33) + " https://example.com", "A bookmark name is 1 to 32 letters, digits, '_' or '-'."},
			{"!url add list https://example.com", `"list" is one of !url's own words; pick another name.`},
			{"!url add js javascript:alert(1)", "Only http:// and https:// URLs can be bookmarked."},
			{"!url add ftp ftp://example.com/file", "Only http:// and https:// URLs can be bookmarked."},
			{"!url add bare example.com/page", "Give the whole address, starting with https:// (or http://)."},
			{"!url add nohost https:///path", "That URL has no host; give a whole address such as https://example.com/page."},
			{"!url add nohost2 http:", "That URL has no host; give a whole address such as https://example.com/page."},
			{"!url add bad http://[::1", "That is not a valid URL; give a whole address such as https://example.com/page."},
			{"!url add spaced https://example.com/a b", "A URL may not contain spaces or control characters."},
			{"!url add ctl https://example.com/\x00", "A URL may not contain spaces or control characters."},
			{"!url add long https://example.com/" + strings.Repeat("a", 382), "That URL is 402 characters long; the most is 400."},
			{"!url remove", "Usage: !url remove <name>"},
			{"!url remove a b", "Usage: !url remove <name>"},
			{"!url remove nothing", "There is no bookmark named nothing."},
			{"!urls two", "Usage: !urls [page]"},
		}
		for _, c := range cases {
			expect(t, p, "mod", "moderator", c.text, c.want)
		}
		if n := p.Count(`SELECT count(*) FROM memories_bookmarks`); n != 2 {
			t.Errorf("%d bookmarks after the refusals, want 2", n)
		}
		// A long URL is kept whole.
		long := "https://example.com/" + strings.Repeat("a", 380)
		expect(t, p, "mod", "moderator", "!url add long "+long, "Bookmark long added; !url long shows it.")
		expect(t, p, "alice", "", "!url long", "long: "+long)
	})

	t.Run("redelivered add adds nothing", func(t *testing.T) {
		expect(t, p, "mod", "moderator", "!url add once https://once.example", "Bookmark once added; !url once shows it.")
		inv := lastInvocation(t, p, "url", "add once https://once.example")
		n := p.Count(`SELECT count(*) FROM memories_bookmarks`)
		replies := redeliver(t, p, inv)
		if len(replies) != 1 || replies[0].Text != "Bookmark once added; !url once shows it." {
			t.Fatalf("replies after redelivery: %+v", replies)
		}
		if got := p.Count(`SELECT count(*) FROM memories_bookmarks`); got != n {
			t.Errorf("redelivery changed the bookmarks: %d, want %d", got, n)
		}
	})

	t.Run("remove", func(t *testing.T) {
		expect(t, p, "bob", "member", "!url remove vod-2_b", "Bookmark vod-2_b removed.")
		expect(t, p, "mod", "moderator", "!url remove LONG", "Bookmark long removed.")
		expect(t, p, "alice", "", "!url long", "There is no bookmark named long; !urls lists them.")
		expect(t, p, "mod", "moderator", "!url remove long", "There is no bookmark named long.")
	})

	t.Run("pages", func(t *testing.T) {
		var adds []string
		for i := range 40 {
			adds = append(adds, fmt.Sprintf("!url add b%02d https://example.com/%02d/%s", i, i, strings.Repeat("x", 50)))
		}
		sayAll(t, p, "mod", "moderator", adds)
		if n := p.Count(`SELECT count(*) FROM memories_bookmarks WHERE name LIKE 'b__'`); n != 40 {
			t.Fatalf("%d of 40 bookmarks added", n)
		}
		first := expectContains(t, p, "alice", "", "!urls", "Bookmarks: b00: https://example.com/00/", "(page 1/2; next: !urls 2)")
		second := expectContains(t, p, "alice", "", "!urls 2", "Bookmarks: ", "once: https://once.example (page 2/2)")
		if n := strings.Count(first+second, "https://example.com/"); n != 40+1 {
			t.Errorf("the pages show %d bookmarks, want 41:\n%s\n%s", n, first, second)
		}
		expect(t, p, "alice", "", "!urls 3", "There are only 2 pages.")
	})
}
