package twitch_test

import (
	"sort"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
)

// After Twitch closed a socket as unused (4003: no subscription within the
// window), the next session makes its subscriptions all at once. The fake
// holds each session's subscription calls until all of them came together
// (HoldSubscriptions), so a session that makes one alone first never
// subscribes and is closed with 4003 in its turn.
func TestSessionsHurryAfterConnectionUnused(t *testing.T) {
	t.Parallel()
	const window = time.Second
	specs := eventsub.Specs()
	tests := []struct {
		name string
		// closeFirst closes the first, subscribed, session with this code; 0: the first
		// session is held instead and the fake closes it after the window.
		closeFirst int
		wantOpened int
	}{
		{"4003 while subscribing", 0, 2},
		{"4003 after subscribing", twitchtest.CloseConnectionUnused, 2},
		// Not in a hurry after another close: the next session is held,
		// closed with 4003, and the one after it hurries.
		{"4000 after subscribing", twitchtest.CloseInternalError, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newWSEnv(t)
			e.broadcaster(wsBroadcaster, wsLogin)
			e.fake.SetSubscribeWindow(window)
			var not []string
			if tt.closeFirst == 0 {
				e.fake.HoldSubscriptions(len(specs))
				e.runSessions(t, "replica-a")
			} else {
				e.runSessions(t, "replica-a")
				first := e.subscribedSession(t)
				not = append(not, first)
				e.fake.HoldSubscriptions(len(specs))
				if !e.fake.CloseSession(first, tt.closeFirst) {
					t.Fatal("no session to close")
				}
			}
			id := e.subscribedSession(t, not...)
			if n := e.fake.SessionsOpened(); n != tt.wantOpened {
				t.Errorf("%d sessions opened, want %d", n, tt.wantOpened)
			}
			var got []string
			for _, sub := range e.fake.Subscriptions() {
				if sub.SessionID == id && sub.Status == "enabled" {
					got = append(got, sub.Type)
				}
			}
			var want []string
			for _, spec := range specs {
				want = append(want, spec.Type)
			}
			sort.Strings(got)
			sort.Strings(want)
			if len(got) != len(want) {
				t.Fatalf("session %s has subscriptions %v, want %v", id, got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("session %s has subscriptions %v, want %v", id, got, want)
				}
			}
			// The session works: a notification reaches the stream.
			chat, chatID := wsChatEvent(wsBroadcaster, wsLogin, "after the hurry")
			e.fake.Notify(wsBroadcaster, "channel.chat.message", chat)
			e.waitPublished(t, chatID)
		})
	}
}
