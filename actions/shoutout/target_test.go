package shoutout

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/waddlebot/waddlebot/schemas"
)

func TestParseTarget(t *testing.T) {
	login := func(l string) target { return target{kind: kindTwitchLogin, login: l} }
	cases := []struct {
		name     string
		platform string
		arg      string
		want     target
		problem  problem
	}{
		{"at login", schemas.PlatformTwitch, "@Bob_99", login("bob_99"), problemNone},
		{"bare login", schemas.PlatformTwitch, "bob", login("bob"), problemNone},
		{"extra words ignored", schemas.PlatformTwitch, "  @bob thanks for the raid", login("bob"), problemNone},
		{"trailing punctuation", schemas.PlatformTwitch, "@bob!", login("bob"), problemNone},
		{"channel url", schemas.PlatformTwitch, "https://www.twitch.tv/Bob/", login("bob"), problemNone},
		{"bare url", schemas.PlatformConsole, "twitch.tv/bob", login("bob"), problemNone},
		{"mobile url", schemas.PlatformSlack, "http://m.twitch.tv/bob", login("bob"), problemNone},
		{"twitch prefix", schemas.PlatformDiscord, "twitch:@bob", login("bob"), problemNone},
		{"nothing", schemas.PlatformTwitch, "   ", target{}, problemNoTarget},
		{"too short for a login", schemas.PlatformTwitch, "@ab", target{}, problemNotLogin},
		{"too long for a login", schemas.PlatformTwitch, strings.Repeat("a", 26), target{}, problemNotLogin},
		{"not a login on twitch", schemas.PlatformTwitch, "bob-the-builder", target{}, problemNotLogin},
		{"explicit but bad", schemas.PlatformConsole, "twitch.tv/a-b", target{}, problemNotLogin},
		{"discord mention", schemas.PlatformDiscord, "<@123456>", target{kind: kindMention, userID: "123456", shown: "<@123456>"}, problemNone},
		{"discord nick mention", schemas.PlatformDiscord, "<@!42>", target{kind: kindMention, userID: "42", shown: "<@!42>"}, problemNone},
		{"discord role mention refused", schemas.PlatformDiscord, "<@&42>", target{}, problemBadName},
		{"discord everyone is a plain login", schemas.PlatformDiscord, "@everyone", login("everyone"), problemNone},
		{"slack mention", schemas.PlatformSlack, "<@U123ABC|bob>", target{kind: kindMention, userID: "U123ABC", shown: "<@U123ABC>"}, problemNone},
		{"slack broadcast refused", schemas.PlatformSlack, "<!channel>", target{}, problemBadName},
		{"mention on twitch", schemas.PlatformTwitch, "<@123>", target{}, problemNotLogin},
		{"plain name off twitch", schemas.PlatformConsole, "@Zoë", target{kind: kindName, shown: "Zoë"}, problemNone},
		{"dotted name off twitch", schemas.PlatformDiscord, "bob.the-builder", target{kind: kindName, shown: "bob.the-builder"}, problemNone},
		{"embedded at refused", schemas.PlatformDiscord, "x@everyone", target{}, problemBadName},
		{"markup refused", schemas.PlatformSlack, "*bold*", target{}, problemBadName},
		{"long name refused", schemas.PlatformConsole, strings.Repeat("é", MaxNameLength+1), target{}, problemBadName},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, prob := parseTarget(c.platform, c.arg)
			if got != c.want || prob != c.problem {
				t.Errorf("parseTarget(%s, %q) = %+v, %v; want %+v, %v", c.platform, c.arg, got, prob, c.want, c.problem)
			}
		})
	}
}

// FuzzParseTarget: whatever is typed, the parser never panics, and what it
// accepts is something the bot may repeat in a channel.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"@bob", "https://www.twitch.tv/bob/", "twitch:bob", "<@!123>", "<@U1|x>", "<!here>",
		"@everyone", "Zoë", "", " \t\n", "bob\x00", "@@bob", "twitch.tv/", "<@>", "\xff\xfe"} {
		for _, p := range []string{schemas.PlatformTwitch, schemas.PlatformDiscord, schemas.PlatformSlack, schemas.PlatformConsole} {
			f.Add(p, s)
		}
	}
	f.Fuzz(func(t *testing.T, platform, arg string) {
		got, prob := parseTarget(platform, arg)
		if prob != problemNone {
			if got != (target{}) {
				t.Fatalf("problem %v with a target %+v", prob, got)
			}
			return
		}
		switch got.kind {
		case kindTwitchLogin:
			if !loginRe.MatchString(got.login) {
				t.Fatalf("login %q is not a Twitch login", got.login)
			}
		case kindMention:
			if platform != schemas.PlatformDiscord && platform != schemas.PlatformSlack {
				t.Fatalf("a mention %q on %s", got.shown, platform)
			}
			if strings.ContainsAny(got.shown, "&!|") && !strings.HasPrefix(got.shown, "<@!") {
				t.Fatalf("mention %q carries more than a user", got.shown)
			}
		case kindName:
			if platform == schemas.PlatformTwitch {
				t.Fatalf("a plain name %q on Twitch", got.shown)
			}
			if !safeName(got.shown) || strings.ContainsAny(got.shown, "@<>*`!") {
				t.Fatalf("unsafe name %q", got.shown)
			}
		default:
			t.Fatalf("no kind: %+v", got)
		}
		if text := textShoutout(got); !utf8.ValidString(text) || utf8.RuneCountInString(text) > schemas.TextLimit(schemas.PlatformTwitch) {
			t.Fatalf("shoutout %q does not fit a message", text)
		}
	})
}

func TestIsSelf(t *testing.T) {
	ev := &schemas.Event{User: schemas.User{ID: "42", Login: "alice", DisplayName: "Alice"}}
	cases := []struct {
		target target
		want   bool
	}{
		{target{kind: kindTwitchLogin, login: "alice"}, true},
		{target{kind: kindTwitchLogin, login: "bob"}, false},
		{target{kind: kindMention, userID: "42"}, true},
		{target{kind: kindMention, userID: "43"}, false},
		{target{kind: kindName, shown: "ALICE"}, true},
		{target{kind: kindName, shown: "Zoë"}, false},
	}
	for _, c := range cases {
		if got := isSelf(ev, c.target); got != c.want {
			t.Errorf("isSelf(%+v) = %v, want %v", c.target, got, c.want)
		}
	}
}

func TestReadSettings(t *testing.T) {
	def := settings{AutoOnRaid: true, Cooldown: time.Hour}
	cases := []struct {
		raw  string
		want settings
	}{
		{``, def},
		{`{}`, def},
		{`not json`, def},
		{`{"auto_on_raid": false}`, settings{AutoOnRaid: false, Cooldown: time.Hour}},
		{`{"auto_cooldown_minutes": 5}`, settings{AutoOnRaid: true, Cooldown: 5 * time.Minute}},
		{`{"auto_cooldown_minutes": 0}`, settings{AutoOnRaid: true, Cooldown: 0}},
		{`{"auto_cooldown_minutes": -3}`, def},
		{`{"auto_cooldown_minutes": 100000}`, def},
	}
	for _, c := range cases {
		if got := readSettings(json.RawMessage(c.raw)); got != c.want {
			t.Errorf("readSettings(%s) = %+v, want %+v", c.raw, got, c.want)
		}
	}
	if !json.Valid([]byte(settingsSchema)) {
		t.Error("the settings schema is not JSON")
	}
}

func TestTwitchShoutoutText(t *testing.T) {
	cases := []struct {
		ch   twitchChannel
		want string
	}{
		{twitchChannel{Category: "Celeste", Title: "any% practice"},
			"Go check out Bob at https://twitch.tv/bob — last seen playing Celeste: any% practice"},
		{twitchChannel{Category: "Celeste"}, "Go check out Bob at https://twitch.tv/bob — last seen playing Celeste"},
		{twitchChannel{Title: "just chatting\nabout things"},
			"Go check out Bob at https://twitch.tv/bob — last seen streaming: just chatting about things"},
		{twitchChannel{}, "Go check out Bob at https://twitch.tv/bob"},
	}
	for _, c := range cases {
		if got := twitchShoutout("Go check out Bob", "bob", c.ch); got != c.want {
			t.Errorf("twitchShoutout(%+v) = %q, want %q", c.ch, got, c.want)
		}
	}
	// The longest Twitch can make it still fits one Twitch message.
	long := twitchShoutout("Thanks for the raid, "+displayName(strings.Repeat("W", 300), "x")+"! Go check them out",
		strings.Repeat("w", 25), twitchChannel{Category: strings.Repeat("C", 1000), Title: strings.Repeat("T", 1000)})
	if n := utf8.RuneCountInString(long); n > schemas.TextLimit(schemas.PlatformTwitch) {
		t.Errorf("the longest shoutout is %d characters", n)
	}
}

func TestRecordDecisions(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { at := now.Add(-d); return &at }
	cases := []struct {
		name    string
		rec     record
		cooling bool
		native  bool
	}{
		{"never", record{}, false, true},
		{"within the cooldown", record{lastAt: ago(59 * time.Minute), nativeAt: ago(59 * time.Minute)}, true, false},
		{"after the cooldown", record{lastAt: ago(time.Hour), nativeAt: ago(time.Hour)}, false, true},
		{"channel shouted someone out just now", record{channelNativeAt: ago(time.Minute)}, false, false},
		{"channel's last native long ago", record{channelNativeAt: ago(2 * time.Minute)}, false, true},
	}
	for _, c := range cases {
		if got := c.rec.coolingDown(now, time.Hour); got != c.cooling {
			t.Errorf("%s: coolingDown = %v, want %v", c.name, got, c.cooling)
		}
		if got := c.rec.nativeAllowed(now); got != c.native {
			t.Errorf("%s: nativeAllowed = %v, want %v", c.name, got, c.native)
		}
	}
}

func TestManifestValid(t *testing.T) {
	m := Manifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if spec, ok := m.Command(CommandAlias); !ok || spec.Name != Command || spec.Permission != string(schemas.RoleModerator) {
		t.Errorf("!%s resolves to %+v", CommandAlias, spec)
	}
}
