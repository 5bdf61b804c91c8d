package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/discord/discordtest"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

// TestDiscordInDev: `waddlebot dev` with the Discord application's
// variables set connects to the gateway (a fake), registers /waddlebot,
// answers !ping in a guild channel, and serves the install link.
func TestDiscordInDev(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t)
	guild := discordtest.Guild{ID: "200000000000000901", Name: "Penguins", OwnerID: "400000000000000901",
		Roles:    []discordtest.Role{{ID: "200000000000000901", Name: "@everyone", Permissions: 1 << 11}},
		Channels: []discordtest.Channel{{ID: "600000000000000901", Name: "general"}}}
	fake.AddGuild(guild)
	s := newSandbox(t)
	d := s.startDev([]string{
		"WADDLEBOT_DATABASE_URL=" + storetest.URL(t),
		"WADDLEBOT_DISCORD_BOT_TOKEN=" + fake.BotToken,
		"WADDLEBOT_DISCORD_APPLICATION_ID=" + fake.AppID,
		"WADDLEBOT_DISCORD_CLIENT_SECRET=" + fake.ClientSecret,
		"WADDLEBOT_DISCORD_API_URL=" + fake.APIURL(),
	})
	if !strings.Contains(d.output(), "/connect/discord") {
		t.Errorf("dev's banner does not say where to add the bot to a server:\n%s", tail(d.output(), 2000))
	}
	eventually(t, 30*time.Second, "the gateway connected and /waddlebot registered", func() (bool, string) {
		return len(fake.Connections()) == 1 && len(fake.Commands()) == 1, tail(d.output(), 2000)
	})
	fake.Dispatch("MESSAGE_CREATE", discordtest.MessageCreate(discordtest.Message{ID: "700000000000000901",
		ChannelID: "600000000000000901", GuildID: guild.ID,
		Author: discordtest.User{ID: "410000000000000901", Username: "alice"}, Content: "!ping"}))
	eventually(t, 30*time.Second, "pong in the channel", func() (bool, string) {
		for _, m := range fake.Messages() {
			if m.Content == "pong" && m.ChannelID == "600000000000000901" {
				return true, ""
			}
		}
		return false, tail(d.output(), 2000)
	})
	// The install link sends the browser to Discord's authorize page.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get("http://" + d.addr + "/connect/discord")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.Contains(loc, "client_id="+fake.AppID) ||
		!strings.Contains(loc, "applications.commands") {
		t.Fatalf("GET /connect/discord → %d Location %q", resp.StatusCode, loc)
	}
	if code, graceful := d.stop(15 * time.Second); !graceful || code != 0 {
		t.Fatalf("dev exit %d (graceful %v) on SIGTERM\n%s", code, graceful, tail(d.output(), 3000))
	}
}
