package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
)

// TestTwitchConnectAndChat is the README's "Connecting Twitch" against a
// fake Twitch: `waddlebot dev` with the application's variables set, the
// bot account and a channel connected through the OAuth links, then a
// !ping in that channel's chat answered through Helix, and a revoked grant
// shown as disconnected.
func TestTwitchConnectAndChat(t *testing.T) {
	t.Parallel()
	broadcaster := twitchtest.User{ID: "141981764", Login: "twitchdev", DisplayName: "TwitchDev"}
	bot := twitchtest.User{ID: "900900", Login: "waddlebot", DisplayName: "WaddleBot"}
	viewer := twitchtest.User{ID: "5551", Login: "viewer", DisplayName: "Viewer"}
	fake := fakeTwitch(t, broadcaster, bot, viewer)
	s := newSandbox(t)
	d := s.startDev(twitchEnv(t, fake))
	if !strings.Contains(d.output(), "/connect/twitch") {
		t.Errorf("dev's banner does not say where to connect a Twitch channel:\n%s", tail(d.output(), 2000))
	}
	base := "http://" + d.addr
	connect := twitchConnector(t, d, fake)
	connect("/connect/twitch/bot", bot, eventsub.BotScopes())
	connect("/connect/twitch", broadcaster, eventsub.BroadcasterScopes())

	eventually(t, 30*time.Second, "the channel's EventSub socket with every subscription", func() (bool, string) {
		for _, sess := range fake.Sessions() {
			if sess.Connected && sess.Subscriptions == len(eventsub.Specs()) {
				return true, ""
			}
		}
		return false, tail(d.output(), 2000)
	})
	fake.Notify(broadcaster.ID, "channel.chat.message", map[string]any{
		"broadcaster_user_id": broadcaster.ID, "broadcaster_user_login": broadcaster.Login, "broadcaster_user_name": broadcaster.DisplayName,
		"chatter_user_id": viewer.ID, "chatter_user_login": viewer.Login, "chatter_user_name": viewer.DisplayName,
		"message_id": "e2e-ping", "message": map[string]any{"text": "!ping", "fragments": []any{}},
		"color": "", "badges": []any{}, "message_type": "text",
	})
	eventually(t, 30*time.Second, "pong in the channel's chat, sent as the bot", func() (bool, string) {
		for _, m := range fake.Chat() {
			if m.Text == "pong" && m.SenderID == bot.ID && m.BroadcasterID == broadcaster.ID && m.ReplyParentID == "e2e-ping" {
				return true, ""
			}
		}
		return false, tail(d.output(), 2000)
	})

	// The broadcaster shouts the viewer out: a chat message with the
	// viewer's link, and Twitch's own shoutout.
	fake.Notify(broadcaster.ID, "channel.chat.message", map[string]any{
		"broadcaster_user_id": broadcaster.ID, "broadcaster_user_login": broadcaster.Login, "broadcaster_user_name": broadcaster.DisplayName,
		"chatter_user_id": broadcaster.ID, "chatter_user_login": broadcaster.Login, "chatter_user_name": broadcaster.DisplayName,
		"message_id": "e2e-so", "message": map[string]any{"text": "!so @viewer", "fragments": []any{}},
		"color": "", "badges": []any{map[string]any{"set_id": "broadcaster", "id": "1", "info": ""}}, "message_type": "text",
	})
	eventually(t, 30*time.Second, "the shoutout in chat and at Twitch", func() (bool, string) {
		inChat := false
		for _, m := range fake.Chat() {
			inChat = inChat || strings.Contains(m.Text, "twitch.tv/viewer")
		}
		native := false
		for _, so := range fake.Shoutouts() {
			native = native || so.FromBroadcasterID == broadcaster.ID && so.ToBroadcasterID == viewer.ID
		}
		return inChat && native, fmt.Sprintf("chat %+v shoutouts %+v\n%s", fake.Chat(), fake.Shoutouts(), tail(d.output(), 2000))
	})

	// The streamer revokes the app: the channel is marked disconnected
	// (the revocation on its socket), and dev keeps running.
	fake.Revoke(broadcaster.ID)
	eventually(t, 30*time.Second, "the revoked channel shown as disconnected", func() (bool, string) {
		code, body, err := httpGet(base + "/connect/twitch/status")
		if err != nil || code != http.StatusOK {
			return false, body
		}
		i := strings.Index(body, broadcaster.ID)
		return i >= 0 && strings.Contains(body[i:], "disconnected"), body
	})
	_, status, _ := httpGet(base + "/connect/twitch/status")
	t.Logf("status after the revocation: %s", status)
	if code, _, err := httpGet(base + "/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("dev unhealthy after a revoked grant: %d %v", code, err)
	}
	if code, graceful := d.stop(15 * time.Second); !graceful || code != 0 {
		t.Fatalf("dev exit %d (graceful %v) on SIGTERM\n%s", code, graceful, tail(d.output(), 3000))
	}
}
