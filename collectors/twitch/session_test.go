package twitch_test

import (
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
	e.broadcaster(wsBroadcaster, wsLogin)
	e.runSessions(t, "replica-a")
	id := e.subscribedSession(t)
	created := len(e.fake.Subscriptions())

	var ids []string
	send := func(text string) {
		ev, chatID := wsChatEvent(wsBroadcaster, wsLogin, text)
		if e.fake.Notify(wsBroadcaster, "channel.chat.message", ev) == "" {
			t.Fatalf("%q went to no session", text)
		}
		ids = append(ids, chatID)
	}
	send("before")
	if !e.fake.Reconnect(id) {
		t.Fatal("no session to reconnect")
	}
	// Sent before the client reached the new URL: the old socket has them.
	send("during 1")
	send("during 2")
	natstest.Eventually(t, 10*time.Second, "the old socket closed with 4004", func() bool {
		return e.fake.Connections() == 1 && len(e.fake.Sessions()) == 1 && e.fake.Sessions()[0].Connected
	})
	send("after")
	for _, chatID := range ids {
		e.waitEvent(t, chatID)
	}
	for i, chatID := range ids {
		if n := e.countEvents(t, chatID); n != 1 {
			t.Errorf("message %d published %d times", i, n)
		}
	}
	if s := e.fake.Sessions(); s[0].ID != id || s[0].Subscriptions != 10 {
		t.Errorf("session after reconnect = %+v, want %s with its 10 subscriptions", s[0], id)
	}
	if n := len(e.fake.Subscriptions()); n != created {
		t.Errorf("%d subscriptions after session_reconnect, want the %d from before (they move)", n, created)
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
