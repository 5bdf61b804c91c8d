package twitch_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

const (
	wsBroadcaster = "1971641"
	wsLogin       = "streamer"
)

func TestSessionsDeliverNotifications(t *testing.T) {
	e := newWSEnv(t)
	e.broadcaster(wsBroadcaster, wsLogin)
	e.runSessions(t, "replica-a")
	e.subscribedSession(t)

	chat, chatID := wsChatEvent(wsBroadcaster, wsLogin, "!hello")
	if e.fake.Notify(wsBroadcaster, "channel.chat.message", chat) == "" {
		t.Fatal("the fake sent nothing")
	}
	e.waitEvent(t, chatID)
	var got *schemas.Event
	for _, ev := range e.events(t) {
		if ev.ID == schemas.EventID("twitch", chatID) {
			got = &ev
		}
	}
	if got.Kind != schemas.KindChat || got.Channel.ID != wsBroadcaster || got.Subject() != schemas.EventSubject("twitch", wsBroadcaster, schemas.KindChat) {
		t.Errorf("event = %+v", got)
	}

	// Twitch's at-least-once delivery: the same message id twice, and the
	// same chat message under a new message id, publish once.
	online := e.fake.Notify(wsBroadcaster, "stream.online", wsOnlineEvent(wsBroadcaster, wsLogin))
	e.fake.NotifyWithID(online, wsBroadcaster, "stream.online", wsOnlineEvent(wsBroadcaster, wsLogin))
	e.fake.Notify(wsBroadcaster, "channel.chat.message", chat)
	marker, markerID := wsChatEvent(wsBroadcaster, wsLogin, "after the duplicates")
	e.fake.Notify(wsBroadcaster, "channel.chat.message", marker)
	e.waitEvent(t, markerID)
	if n := e.countEvents(t, online); n != 1 {
		t.Errorf("stream.online sent twice was published %d times", n)
	}
	if n := e.countEvents(t, chatID); n != 1 {
		t.Errorf("chat message sent twice was published %d times", n)
	}
}

func TestSessionsReconnectWhenSocketEnds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		breakIt func(e *wsEnv, id string)
	}{
		{"close 4000 internal error", func(e *wsEnv, id string) { e.fake.CloseSession(id, twitchtest.CloseInternalError) }},
		{"close 4005 network timeout", func(e *wsEnv, id string) { e.fake.CloseSession(id, twitchtest.CloseNetworkTimeout) }},
		{"keepalives stop", func(e *wsEnv, _ string) { e.fake.SilenceKeepalives(true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newWSEnv(t)
			e.broadcaster(wsBroadcaster, wsLogin)
			e.runSessions(t, "replica-a")
			first := e.subscribedSession(t)

			tt.breakIt(e, first)
			// A new socket with every subscription made again.
			e.subscribedSession(t, first)
			e.fake.SilenceKeepalives(false)
			natstest.Eventually(t, 20*time.Second, "the old socket closed", func() bool { return e.fake.Connections() == 1 })
			chat, chatID := wsChatEvent(wsBroadcaster, wsLogin, "after the reconnect")
			e.fake.Notify(wsBroadcaster, "channel.chat.message", chat)
			e.waitEvent(t, chatID)
		})
	}
}

func TestSessionsFollowSessionReconnect(t *testing.T) {
	e := newWSEnv(t)
	e.fake.HoldRetired(true)
	e.broadcaster(wsBroadcaster, wsLogin)
	e.runSessions(t, "replica-a")
	id := e.subscribedSession(t)
	created := len(e.fake.Subscriptions())

	var ids []string
	send := func(text string) string {
		ev, chatID := wsChatEvent(wsBroadcaster, wsLogin, text)
		if e.fake.Notify(wsBroadcaster, "channel.chat.message", ev) == "" {
			t.Fatalf("%q went to no session", text)
		}
		ids = append(ids, chatID)
		return chatID
	}
	send("before")
	if !e.fake.Reconnect(id) {
		t.Fatal("no session to reconnect")
	}
	// Sent before the client's new socket got its welcome: the old one has
	// them.
	send("during 1")
	send("during 2")
	natstest.Eventually(t, 10*time.Second, "the new socket's welcome", func() bool {
		s := e.fake.Sessions()
		return len(s) == 1 && s[0].Connected && s[0].Retired
	})
	// Delivered from the new socket: the client reads it now.
	e.waitPublished(t, send("after"))

	// What Twitch still sends on the old socket after the new welcome
	// (retiredDrain) is delivered, once.
	late, lateID := wsChatEvent(wsBroadcaster, wsLogin, "late on the old socket")
	if e.fake.NotifyRetired("late-message", wsBroadcaster, "channel.chat.message", late) != 1 {
		t.Fatal("the old socket is gone")
	}
	ids = append(ids, lateID)
	// One notification on both sockets with the same message id, as Twitch
	// may: its event id is the message id, so only the collector's own
	// dedupe keeps it from a second publish.
	both := "both-" + id
	e.fake.NotifyWithID(both, wsBroadcaster, "stream.online", wsOnlineEvent(wsBroadcaster, wsLogin))
	if e.fake.NotifyRetired(both, wsBroadcaster, "stream.online", wsOnlineEvent(wsBroadcaster, wsLogin)) != 1 {
		t.Fatal("the old socket is gone")
	}
	ids = append(ids, both)
	e.fake.ReleaseRetired()
	natstest.Eventually(t, 10*time.Second, "the old socket closed with 4004", func() bool {
		return e.fake.Connections() == 1 && len(e.fake.Sessions()) == 1 && e.fake.Sessions()[0].Connected
	})
	send("last")
	for _, eventID := range ids {
		e.waitPublished(t, eventID)
	}
	for i, eventID := range ids {
		if n := e.publishes(eventID); n != 1 {
			t.Errorf("message %d (%s) published %d times", i, eventID, n)
		}
	}
	if s := e.fake.Sessions(); s[0].ID != id || s[0].Subscriptions != 10 {
		t.Errorf("session after reconnect = %+v, want %s with its 10 subscriptions", s[0], id)
	}
	if n := len(e.fake.Subscriptions()); n != created {
		t.Errorf("%d subscriptions after session_reconnect, want the %d from before (they move)", n, created)
	}
	if n := e.fake.SessionsOpened(); n != 1 {
		t.Errorf("%d sessions opened, want 1 (the reconnect keeps it)", n)
	}
}

// A subscription that fails for a while is tried again on the same
// session: without it the channel would miss that event type until the
// next reconnect.
func TestSessionsRetrySubscriptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		subType    string
		times      int
		status     int
		retryAfter time.Duration
		hurry      bool // the last socket was closed unused (4003)
		refreshes  int32
		wantOpened int
	}{
		{"503 twice", "channel.follow", 2, http.StatusServiceUnavailable, 0, false, 0, 1},
		{"500 once", "stream.offline", 1, http.StatusInternalServerError, 0, false, 0, 1},
		{"429 until Ratelimit-Reset", "channel.cheer", 1, http.StatusTooManyRequests, time.Second, false, 0, 1},
		{"401 refreshes the token", "", 1, http.StatusUnauthorized, 0, false, 1, 1},
		{"401 in a hurry refreshes the token", "", 1, http.StatusUnauthorized, 0, true, 1, 2},
		{"503 in a hurry", "channel.raid", 2, http.StatusServiceUnavailable, 0, true, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newWSEnv(t)
			e.broadcaster(wsBroadcaster, wsLogin)
			var not []string
			if tt.hurry {
				e.runSessions(t, "replica-a")
				first := e.subscribedSession(t)
				not = append(not, first)
				e.fake.FailNextSubscriptions(tt.subType, tt.times, tt.status, tt.retryAfter)
				e.fake.CloseSession(first, twitchtest.CloseConnectionUnused)
			} else {
				e.fake.FailNextSubscriptions(tt.subType, tt.times, tt.status, tt.retryAfter)
				e.runSessions(t, "replica-a")
			}
			e.subscribedSession(t, not...)
			if n := e.fake.SessionsOpened(); n != tt.wantOpened {
				t.Errorf("%d sessions opened, want %d", n, tt.wantOpened)
			}
			if n := e.tokens.refreshes.Load(); n != tt.refreshes {
				t.Errorf("%d token refreshes, want %d", n, tt.refreshes)
			}
		})
	}
}

// A subscription that still fails after the retries ends the session, so
// that it is made again on a new one, rather than the channel going on
// without that event type.
func TestSessionsReconnectWhenASubscriptionKeepsFailing(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t)
	e.broadcaster(wsBroadcaster, wsLogin)
	e.fake.FailNextSubscriptions("stream.offline", -1, http.StatusServiceUnavailable, 0)
	e.runSessions(t, "replica-a")
	natstest.Eventually(t, 20*time.Second, "a second session", func() bool { return e.fake.SessionsOpened() >= 2 })
	e.fake.FailNextSubscriptions("stream.offline", 0, 0, 0)
	e.subscribedSession(t)
	e.fake.Notify(wsBroadcaster, "stream.offline", map[string]any{"broadcaster_user_id": wsBroadcaster,
		"broadcaster_user_login": wsLogin, "broadcaster_user_name": wsLogin})
	chat, chatID := wsChatEvent(wsBroadcaster, wsLogin, "after the failures")
	e.fake.Notify(wsBroadcaster, "channel.chat.message", chat)
	e.waitPublished(t, chatID)
}

// A type Twitch refuses for good (a scope the broadcaster did not grant)
// is logged once and the channel keeps its other subscriptions.
func TestSessionsKeepChannelWithoutRefusedType(t *testing.T) {
	e := newWSEnv(t)
	e.broadcaster(wsBroadcaster, wsLogin)
	e.fake.FailNextSubscriptions("channel.follow", -1, http.StatusForbidden, 0)
	e.runSessions(t, "replica-a")
	natstest.Eventually(t, 20*time.Second, "a session with 9 subscriptions", func() bool {
		s := e.fake.Sessions()
		return len(s) == 1 && s[0].Connected && s[0].Subscriptions == 9
	})
	chat, chatID := wsChatEvent(wsBroadcaster, wsLogin, "without follows")
	e.fake.Notify(wsBroadcaster, "channel.chat.message", chat)
	e.waitPublished(t, chatID)
	if n := e.fake.SessionsOpened(); n != 1 {
		t.Errorf("%d sessions opened, want 1: a refused type does not end the session", n)
	}
	for _, sub := range e.fake.Subscriptions() {
		if sub.Type == "channel.follow" {
			t.Errorf("channel.follow subscribed although refused: %+v", sub)
		}
	}
	if n := e.logs.errorsWith("type", "channel.follow"); n != 1 {
		t.Errorf("the refused type was logged %d times as an error, want once", n)
	}
}

func TestSessionsStopOnRevocation(t *testing.T) {
	e := newWSEnv(t)
	e.broadcaster(wsBroadcaster, wsLogin)
	e.runSessions(t, "replica-a")
	e.subscribedSession(t)

	e.fake.Revoke(wsBroadcaster)
	natstest.Eventually(t, 10*time.Second, "the socket closed", func() bool { return e.fake.Connections() == 0 })
	if e.tokens.refreshes.Load() == 0 {
		t.Error("the grant was not checked after the revocation")
	}
	acc, _ := e.accounts.Account(t.Context(), wsBroadcaster)
	if acc.Status != twitch.StatusDisconnected {
		t.Errorf("account status = %s, want disconnected", acc.Status)
	}

	// Connected again (new grant, notice): the session comes back at once.
	e.accounts.setStatus(wsBroadcaster, twitch.StatusConnected)
	e.notice(t, wsBroadcaster, twitch.StatusConnected)
	e.subscribedSession(t)
}

func TestSessionsFollowAccountNotices(t *testing.T) {
	e := newWSEnv(t)
	e.runSessions(t, "replica-a")
	e.broadcaster(wsBroadcaster, wsLogin)
	// Without a notice the new account would wait for the minutely resync.
	e.notice(t, wsBroadcaster, twitch.StatusConnected)
	e.subscribedSession(t)

	e.accounts.setStatus(wsBroadcaster, twitch.StatusDisconnected)
	e.notice(t, wsBroadcaster, twitch.StatusDisconnected)
	natstest.Eventually(t, 10*time.Second, "the socket closed", func() bool { return e.fake.Connections() == 0 })
}

func TestSessionsOneHolderAtATime(t *testing.T) {
	t.Parallel()
	e := newWSEnv(t)
	e.broadcaster(wsBroadcaster, wsLogin)
	stopA := e.runSessions(t, "replica-a")
	first := e.subscribedSession(t)
	e.runSessions(t, "replica-b")

	// B polls the lease every TTL/5: give it several chances to go wrong.
	deadline := time.Now().Add(2 * wsLeaseTTL)
	for time.Now().Before(deadline) {
		if n := e.fake.Connections(); n != 1 {
			t.Fatalf("%d sockets with two replicas, want 1", n)
		}
		time.Sleep(20 * time.Millisecond)
	}

	stopA()
	e.subscribedSession(t, first)
	if n := e.fake.Connections(); n != 1 {
		t.Errorf("%d sockets after the hand-over, want 1", n)
	}
	chat, chatID := wsChatEvent(wsBroadcaster, wsLogin, "to replica b")
	e.fake.Notify(wsBroadcaster, "channel.chat.message", chat)
	e.waitEvent(t, chatID)
}

func TestNewSessionsRefusesBadConfig(t *testing.T) {
	e := newWSEnv(t)
	good := twitch.SessionsConfig{Endpoints: e.fake.Endpoints(), Helix: e.helix, Tokens: e.tokens,
		Accounts: e.accounts, Intake: e.intake, Leases: e.leases(t, "replica-a")}
	tests := []struct {
		name    string
		change  func(c *twitch.SessionsConfig)
		wantErr bool
	}{
		{"fine", func(*twitch.SessionsConfig) {}, false},
		{"keepalive 600", func(c *twitch.SessionsConfig) { c.KeepaliveSeconds = 600 }, false},
		{"keepalive 9", func(c *twitch.SessionsConfig) { c.KeepaliveSeconds = 9 }, true},
		{"keepalive 601", func(c *twitch.SessionsConfig) { c.KeepaliveSeconds = 601 }, true},
		{"http URL", func(c *twitch.SessionsConfig) { c.Endpoints.EventSub = "http://example.com/ws" }, true},
		{"no intake", func(c *twitch.SessionsConfig) { c.Intake = nil }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			if _, err := twitch.NewSessions(cfg); (err != nil) != tt.wantErr {
				t.Errorf("NewSessions = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
