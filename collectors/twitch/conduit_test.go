package twitch_test

import (
	"context"
	"testing"
	"time"

	"github.com/nicklaw5/helix/v2"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
)

// runConduit starts a Conduit for a holder, with the app subscriber on its
// transport, as the collector wires it.
func (e *wsEnv) runConduit(t *testing.T, holder string, shards int) (*twitch.Conduit, func()) {
	t.Helper()
	var cd *twitch.Conduit
	sub, err := twitch.NewAppSubscriber(twitch.AppSubscriberConfig{Helix: e.helix, Tokens: e.tokens, Accounts: e.accounts,
		Transport: func(ctx context.Context) (helix.EventSubTransport, error) {
			id, err := cd.ID(ctx)
			return helix.EventSubTransport{Method: "conduit", SessionID: id}, err
		}, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	cd, err = twitch.NewConduit(twitch.ConduitConfig{Endpoints: e.fake.Endpoints(), Helix: e.helix, Tokens: e.tokens,
		Subscriber: sub, Intake: e.intake, Leases: e.leases(t, holder), Shards: shards, Conn: e.nats.Conn,
		Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cd.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}
	t.Cleanup(stop)
	return cd, stop
}

// enabledShards counts the conduit's shards assigned to a live session.
func (e *wsEnv) enabledShards() int {
	live := map[string]bool{}
	for _, s := range e.fake.Sessions() {
		live[s.ID] = s.Connected
	}
	n := 0
	for _, c := range e.fake.Conduits() {
		for _, sh := range c.Shards {
			if sh.Status == "enabled" && sh.Method == "websocket" && live[e.fake.ShardSession(c.ID, sh.ID)] {
				n++
			}
		}
	}
	return n
}

func TestConduitShardsDeliver(t *testing.T) {
	e := newWSEnv(t)
	e.broadcaster(wsBroadcaster, wsLogin)
	e.fake.AddUser(wsBot)
	e.accounts.set(twitch.Account{UserID: wsBot.ID, Login: wsBot.Login, Kind: twitch.KindBot, Status: twitch.StatusConnected})
	_, stopA := e.runConduit(t, "replica-a", 2)
	e.runConduit(t, "replica-b", 2)

	natstest.Eventually(t, 20*time.Second, "both shards on live sessions", func() bool { return e.enabledShards() == 2 })
	if n := len(e.fake.Conduits()); n != 1 {
		t.Fatalf("%d conduits from two replicas, want 1", n)
	}
	if n := e.fake.Connections(); n != 2 {
		t.Errorf("%d sockets for 2 shards, want 2", n)
	}
	natstest.Eventually(t, 20*time.Second, "the conduit subscriptions", func() bool {
		n := 0
		for _, s := range e.fake.Subscriptions() {
			if s.Method == "conduit" {
				n++
			}
		}
		return n == 10
	})

	chat, chatID := wsChatEvent(wsBroadcaster, wsLogin, "through the conduit")
	if e.fake.NotifyConduit(wsBroadcaster, "channel.chat.message", chat) == "" {
		t.Fatal("no shard took the notification")
	}
	e.waitEvent(t, chatID)

	// One replica goes: its shards move to the other.
	stopA()
	natstest.Eventually(t, 20*time.Second, "both shards back on live sessions", func() bool {
		return e.fake.Connections() == 2 && e.enabledShards() == 2
	})
	chat, chatID = wsChatEvent(wsBroadcaster, wsLogin, "after the hand-over")
	natstest.Eventually(t, 10*time.Second, "a shard taking the notification", func() bool {
		return e.fake.NotifyConduit(wsBroadcaster, "channel.chat.message", chat) != ""
	})
	e.waitEvent(t, chatID)
	if n := e.countEvents(t, chatID); n != 1 {
		t.Errorf("chat published %d times", n)
	}
}
