package e2e

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/discord/discordtest"
	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

// twitchEnv is the environment that points dev at a fake Twitch, plus a
// throw-away database.
func twitchEnv(t *testing.T, fake *twitchtest.Server) []string {
	ep := fake.Endpoints()
	return []string{
		"WADDLEBOT_DATABASE_URL=" + storetest.URL(t),
		"WADDLEBOT_TWITCH_CLIENT_ID=" + fake.ClientID,
		"WADDLEBOT_TWITCH_CLIENT_SECRET=" + fake.ClientSecret,
		"WADDLEBOT_TWITCH_API_URL=" + ep.API,
		"WADDLEBOT_TWITCH_AUTH_URL=" + ep.Auth,
		"WADDLEBOT_TWITCH_EVENTSUB_URL=" + ep.EventSub,
	}
}

// fakeTwitch is a fake Twitch that knows users.
func fakeTwitch(t *testing.T, users ...twitchtest.User) *twitchtest.Server {
	fake := twitchtest.New(t)
	for _, u := range users {
		fake.AddUser(u)
	}
	return fake
}

// twitchConnector returns what a browser does with a /connect/twitch link
// of dev d: follow it to the fake's authorize page (which grants user the
// scopes) and back to the callback, which must name the user.
func twitchConnector(t *testing.T, d *dev, fake *twitchtest.Server) func(path string, user twitchtest.User, scopes []string) {
	// The browser keeps cookies: the connect link ties its state to the
	// browser that opened it.
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	// The browser opens the links where dev's banner says, the host of the
	// callback (the Helix redirect URI): a cookie set for 127.0.0.1 is not
	// sent to localhost.
	browserBase := "http://" + strings.Replace(d.addr, "127.0.0.1", "localhost", 1)
	return func(path string, user twitchtest.User, scopes []string) {
		t.Helper()
		fake.NextAuthorize(user.ID, scopes...)
		resp, err := browser.Get(browserBase + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), user.DisplayName) {
			t.Fatalf("GET %s → %d\n%s\n--- dev:\n%s", path, resp.StatusCode, body, tail(d.output(), 3000))
		}
	}
}

// TestLinkDiscordToTwitch: in `waddlebot dev` with Twitch and Discord, a
// Discord user links their Twitch account: the code arrives as a Twitch
// whisper from the bot (and nowhere in public), !verify on Discord links
// them, and !whoami shows it.
func TestLinkDiscordToTwitch(t *testing.T) {
	t.Parallel()
	bot := twitchtest.User{ID: "900901", Login: "waddlebot", DisplayName: "WaddleBot"}
	viewer := twitchtest.User{ID: "5561", Login: "viewer", DisplayName: "Viewer"}
	tw := fakeTwitch(t, bot, viewer)
	dc := discordtest.New(t)
	guild := discordtest.Guild{ID: "200000000000000911", Name: "Penguins", OwnerID: "400000000000000911",
		Roles:    []discordtest.Role{{ID: "200000000000000911", Name: "@everyone", Permissions: 1 << 11}},
		Channels: []discordtest.Channel{{ID: "600000000000000911", Name: "general"}}}
	dc.AddGuild(guild)
	s := newSandbox(t)
	d := s.startDev(append(twitchEnv(t, tw),
		"WADDLEBOT_DISCORD_BOT_TOKEN="+dc.BotToken,
		"WADDLEBOT_DISCORD_APPLICATION_ID="+dc.AppID,
		"WADDLEBOT_DISCORD_CLIENT_SECRET="+dc.ClientSecret,
		"WADDLEBOT_DISCORD_API_URL="+dc.APIURL(),
	))
	// Whispers go out as the bot account.
	twitchConnector(t, d, tw)("/connect/twitch/bot", bot, eventsub.BotScopes())
	eventually(t, 30*time.Second, "the Discord gateway connected", func() (bool, string) {
		return len(dc.Connections()) == 1, tail(d.output(), 2000)
	})
	alice := discordtest.User{ID: "410000000000000911", Username: "alice"}
	n := 0
	say := func(text string) string {
		t.Helper()
		n++
		id := "70000000000000091" + string(rune('0'+n))
		before := len(dc.Messages())
		dc.Dispatch("MESSAGE_CREATE", discordtest.MessageCreate(discordtest.Message{ID: id,
			ChannelID: "600000000000000911", GuildID: guild.ID, Author: alice, Content: text}))
		var got string
		eventually(t, 30*time.Second, "an answer to "+text, func() (bool, string) {
			for _, m := range dc.Messages()[before:] {
				if m.ChannelID == "600000000000000911" && m.Reference != nil && m.Reference.MessageID == id {
					got = m.Content
					return true, ""
				}
			}
			return false, tail(d.output(), 2000)
		})
		return got
	}

	if got := say("!link twitch viewer"); got != "I sent a code privately to Viewer on Twitch. Type !verify <code> here within 10 minutes." {
		t.Fatalf("!link: %q\n%s", got, tail(d.output(), 3000))
	}
	codeRE := regexp.MustCompile(`link code: ([A-Z0-9]{6})\.`)
	var code string
	eventually(t, 30*time.Second, "the code whispered to the viewer", func() (bool, string) {
		for _, w := range tw.Whispers() {
			if m := codeRE.FindStringSubmatch(w.Text); m != nil && w.ToUserID == viewer.ID && w.FromUserID == bot.ID {
				code = m[1]
				return true, ""
			}
		}
		return false, tail(d.output(), 2000)
	})
	for _, m := range dc.Messages() {
		if strings.Contains(m.Content, code) {
			t.Errorf("the code reached Discord: %+v", m)
		}
	}
	if got := say("!verify " + code); got != "Linked: Viewer on Twitch is you too. Your reputation and labels now follow you on both." {
		t.Fatalf("!verify: %q\n%s", got, tail(d.output(), 3000))
	}
	if got := say("!whoami"); got != "You are alice on Discord, linked with Viewer on Twitch." {
		t.Errorf("!whoami: %q", got)
	}
	if code, graceful := d.stop(15 * time.Second); !graceful || code != 0 {
		t.Fatalf("dev exit %d (graceful %v) on SIGTERM\n%s", code, graceful, tail(d.output(), 3000))
	}
}
