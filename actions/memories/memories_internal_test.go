package memories

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

var itemRe = regexp.MustCompile(`#\d+ “`)

func TestDueTime(t *testing.T) {
	ny := location("America/New_York")
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) // 07:00 in New York
	cases := []struct {
		how, when string
		want      time.Time
		refusal   string
	}{
		{"in", "90s", now.Add(90 * time.Second), ""},
		{"in", "10m", now.Add(10 * time.Minute), ""},
		{"in", "10M", now.Add(10 * time.Minute), ""},
		{"in", "2h30m", now.Add(150 * time.Minute), ""},
		{"in", "1d", now.Add(24 * time.Hour), ""},
		{"in", "1d2h", now.Add(26 * time.Hour), ""},
		{"in", "1w", now.Add(7 * 24 * time.Hour), ""},
		{"in", "10s", now.Add(10 * time.Second), ""},
		{"in", "365d", now.Add(365 * 24 * time.Hour), ""},
		{"in", "9s", time.Time{}, "That is too soon: a reminder is at least 10s away."},
		{"in", "0", time.Time{}, "That is too soon: a reminder is at least 10s away."},
		{"in", "365d1s", time.Time{}, "That is too far off: a reminder is at most 365 days away."},
		{"in", "99999999999999d", time.Time{}, `"99999999999999d" is not a duration; write it like 90s, 10m, 2h30m, 1d or 1d2h.`},
		{"in", "1d2", time.Time{}, `"1d2" is not a duration; write it like 90s, 10m, 2h30m, 1d or 1d2h.`},
		{"at", "18:00", time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC), ""},
		{"at", "07:01", time.Date(2026, 11, 28, 12, 1, 0, 0, time.UTC), ""},
		{"at", "7:00", time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), ""},
		{"at", "00:00", time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC), ""},
		{"at", "23:59", time.Date(2026, 11, 29, 4, 59, 0, 0, time.UTC), ""},
		{"at", "24:00", time.Time{}, `"24:00" is not a time of day; write it as HH:MM, like 18:00 or 9:30.`},
		{"at", "18:5", time.Time{}, `"18:5" is not a time of day; write it as HH:MM, like 18:00 or 9:30.`},
		{"at", "18", time.Time{}, `"18" is not a time of day; write it as HH:MM, like 18:00 or 9:30.`},
	}
	for _, c := range cases {
		got, refusal := dueTime(c.how, c.when, now, ny)
		if refusal != c.refusal || !got.Equal(c.want) {
			t.Errorf("%s %s: got %v %q, want %v %q", c.how, c.when, got, refusal, c.want, c.refusal)
		}
	}
}

func TestAtAcrossDaylightSaving(t *testing.T) {
	berlin := location("Europe/Berlin")
	// The evening before clocks go back (25 October 2026, 03:00 → 02:00).
	now := time.Date(2026, 10, 24, 20, 0, 0, 0, berlin)
	got, refusal := dueTime("at", "09:00", now, berlin)
	if refusal != "" || !got.Equal(time.Date(2026, 10, 25, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("09:00 the day winter time starts: %v %q", got, refusal)
	}
}

func TestLocation(t *testing.T) {
	for zone, want := range map[string]string{"": "UTC", "UTC": "UTC", "Mars/Olympus_Mons": "UTC", "../../etc/passwd": "UTC",
		"Europe/Berlin": "Europe/Berlin", "Asia/Kolkata": "Asia/Kolkata"} {
		if got := location(zone).String(); got != want {
			t.Errorf("location(%q) = %s, want %s", zone, got, want)
		}
	}
}

func TestCheckText(t *testing.T) {
	ok := []string{"plain", "tab\tand\nnew\r\n", "\u202Ertl", "🐧", strings.Repeat("é", 10), "\u200B\uFEFF"}
	for _, s := range ok {
		if why := checkText(s, "quote", 20); why != "" {
			t.Errorf("%q refused: %s", s, why)
		}
	}
	bad := map[string]string{
		"a\x00":                 "That quote contains a control character (U+0000); please send plain text.",
		"\x7f":                  "That quote contains a control character (U+007F); please send plain text.",
		"a\u009b":               "That quote contains a control character (U+009B); please send plain text.",
		strings.Repeat("é", 11): "That quote is 11 characters long; the most is 10.",
	}
	for s, want := range bad {
		if got := checkText(s, "quote", 10); got != want {
			t.Errorf("%q: %q, want %q", s, got, want)
		}
	}
}

func TestSplitPage(t *testing.T) {
	cases := []struct {
		in   string
		term string
		page int
	}{
		{"fox", "fox", 1}, {"fox 2", "fox", 2}, {"brown fox  3", "brown fox", 3}, {"1984", "1984", 1},
		{"catch 0", "catch 0", 1}, {"x -1", "x -1", 1}, {"", "", 1},
	}
	for _, c := range cases {
		if term, page := splitPage(c.in); term != c.term || page != c.page {
			t.Errorf("splitPage(%q) = %q, %d; want %q, %d", c.in, term, page, c.term, c.page)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, u := range []string{"https://example.com", "http://example.com:8080/a?b=c#d", "HTTPS://EXAMPLE.COM/",
		"https://[::1]:443/x", "https://user@example.com/", "https://xn--bcher-kva.example/ü"} {
		if why := checkURL(u); why != "" {
			t.Errorf("%s refused: %s", u, why)
		}
	}
	for _, u := range []string{"", "example.com", "//example.com", "mailto:a@example.com", "file:///etc/passwd",
		"javascript:alert(1)", "data:text/html,hi", "https://", "http://:80/", "https://exa mple.com", "https://example.com/\t"} {
		if why := checkURL(u); why == "" {
			t.Errorf("%q accepted", u)
		}
	}
}

// On Twitch (500 characters) lists page and a long quote drops its
// byline rather than split; the pipeline tests run on the console (2,000).
func TestTwitchSizedReplies(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	c, err := st.ResolveChannel(ctx, store.Channel{Platform: schemas.PlatformTwitch, ChannelID: "1234", Name: "streamer"})
	if err != nil {
		t.Fatal(err)
	}
	m := &module{st: st, clock: clock.NewFake(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))}
	say := func(role schemas.Role, command string, args ...string) string {
		t.Helper()
		inv := actionstest.Invocation(Name, command, args...)
		inv.Event.Platform = schemas.PlatformTwitch
		inv.Event.Channel = schemas.Channel{ID: "1234", Name: "streamer"}
		if role != "" {
			inv.Event.User.Roles = []schemas.Role{role}
		}
		inv.Community = c
		var res *schemas.Result
		if err := st.InTx(ctx, func(tx pgx.Tx) error {
			var err error
			res, err = m.handle(ctx, inv, tx)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(res.Replies) != 1 {
			t.Fatalf("%d replies", len(res.Replies))
		}
		return res.Replies[0].Text
	}
	fits := func(text string) string {
		t.Helper()
		if n := utf8.RuneCountInString(text); n > 500 {
			t.Errorf("%d characters, more than Twitch takes: %q", n, text)
		}
		return text
	}

	for i := range 10 {
		say("", "remind", "me", "in", fmt.Sprintf("%dh", i+1), fmt.Sprintf("reminder %d %s", i, strings.Repeat("words ", 12)))
	}
	var all string
	for page := 1; ; page++ {
		text := fits(say("", "remind", "list", fmt.Sprint(page)))
		if strings.HasPrefix(text, "There ") {
			break
		}
		if !strings.Contains(text, fmt.Sprintf("(page %d/", page)) {
			t.Errorf("page %d: %q", page, text)
		}
		all += text
	}
	for i := range 10 {
		if !strings.Contains(all, fmt.Sprintf(": reminder %d ", i)) {
			t.Errorf("reminder %d on no page", i)
		}
	}

	// The longest quote with the longest author fits one Twitch message; the
	// byline ("added by …") gives way first.
	long := strings.Repeat("ha", MaxQuoteLength/2)
	author := strings.Repeat("w", MaxAuthorLength)
	if got := say(schemas.RoleModerator, "quote", "add", long, "-", author); got != "Quote #1 added." {
		t.Fatal(got)
	}
	say(schemas.RoleModerator, "quote", "add", "short - someone")
	if got := fits(say("", "quote", "1")); !strings.HasPrefix(got, "#1: “"+long+"” — "+author) {
		t.Errorf("the longest quote on Twitch: %q", got)
	}
	long = strings.Repeat("ha", 150)
	say(schemas.RoleModerator, "quote", "add", long)
	if got := fits(say("", "quote", "3")); !strings.HasPrefix(got, "#3: “"+long+"”") {
		t.Errorf("a 300-character quote on Twitch: %q", got)
	}
	// The longest bookmark fits one message too.
	url := "https://example.com/" + strings.Repeat("a", MaxURLLength-len("https://example.com/"))
	say(schemas.RoleModerator, "url", "add", strings.Repeat("n", 32), url)
	fits(say("", "url", strings.Repeat("n", 32)))
	for i := range 20 {
		say(schemas.RoleModerator, "quote", "add", fmt.Sprintf("haha number %d", i))
	}
	var found int
	for page := 1; ; page++ {
		text := fits(say("", "quote", "search", "ha", fmt.Sprint(page)))
		if strings.HasPrefix(text, "There ") {
			break
		}
		found += len(itemRe.FindAllString(text, -1))
	}
	if found != 22 {
		t.Errorf("the pages of !quote search ha show %d of 22 quotes", found)
	}
	if got := fits(say("", "quote", "2")); got != "#2: “short” — someone (added by Alice, 2026-11-28)" {
		t.Errorf("a short quote on Twitch: %q", got)
	}
}
