package twitch_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/waddlebot/waddlebot/collectors/conformance"
	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// rig is one Twitch collector replica running against the fake, with one
// connected broadcaster and the bot account.
type rig struct {
	fake        *twitchtest.Server
	broadcaster twitchtest.User
	bot         twitchtest.User
	collector   *twitch.Collector
	cancel      context.CancelFunc
	done        chan struct{}
	sockets     *countingDialer
	conn        *natsx.Conn
}

type rigOptions struct {
	broadcaster  twitchtest.User
	budget       int
	window       time.Duration
	fake         *twitchtest.Server // shared fake for several replicas
	skipAccounts bool               // accounts already saved by another replica's rig
	// transport (default websocket); webhook needs a web server for the
	// collector's routes, whose URL is the public URL.
	transport     string
	webhookSecret string
	web           *http.ServeMux
	publicURL     string
}

var (
	defaultBroadcaster = twitchtest.User{ID: "141981764", Login: "twitchdev", DisplayName: "TwitchDev",
		Category: "Science & Technology", Title: "Building bots"}
	theBot = twitchtest.User{ID: "900900", Login: "waddlebot", DisplayName: "WaddleBot"}
)

// startRig connects the broadcaster and the bot in st and runs a
// collector on conn until t ends.
func startRig(t *testing.T, conn *natsx.Conn, st *store.Store, o rigOptions) *rig {
	t.Helper()
	if o.broadcaster.ID == "" {
		o.broadcaster = defaultBroadcaster
	}
	if o.budget == 0 {
		o.budget = 1000
	}
	if o.window == 0 {
		o.window = time.Minute
	}
	fake := o.fake
	if fake == nil {
		fake = twitchtest.New(t)
	}
	fake.AddUser(o.broadcaster)
	fake.AddUser(theBot)
	if !o.skipAccounts {
		accounts := twitch.NewStore(st)
		for _, a := range []struct {
			user   twitchtest.User
			kind   string
			scopes []string
		}{{o.broadcaster, twitch.KindBroadcaster, eventsub.BroadcasterScopes()}, {theBot, twitch.KindBot, eventsub.BotScopes()}} {
			tok := fake.IssueToken(a.user.ID, 4*time.Hour, a.scopes...)
			err := accounts.Save(t.Context(), twitch.Account{UserID: a.user.ID, Login: a.user.Login,
				DisplayName: a.user.DisplayName, Kind: a.kind, Scopes: a.scopes, Status: twitch.StatusConnected},
				twitch.OAuthToken{Access: tok.Access, Refresh: tok.Refresh, Scopes: a.scopes, ExpiresAt: tok.ExpiresAt})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	sockets := &countingDialer{}
	c, err := twitch.New(twitch.Config{
		ClientID: fake.ClientID, ClientSecret: fake.ClientSecret, Endpoints: fake.Endpoints(),
		PublicURL: cmp.Or(o.publicURL, "http://localhost:1"), Transport: cmp.Or(o.transport, twitch.TransportWebSocket),
		WebhookSecret: o.webhookSecret,
		Budget:        o.budget, ModeratorBudget: o.budget, SendWindow: o.window,
		Backoff: []time.Duration{20 * time.Millisecond}, Conn: conn, Store: st,
		Holder: fmt.Sprintf("replica-%p", &o), Dialer: sockets.dialer(), Logger: logging.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.web != nil {
		c.Mount(o.web)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{fake: fake, broadcaster: o.broadcaster, bot: theBot, collector: c, cancel: cancel, done: make(chan struct{}), sockets: sockets, conn: conn}
	errs := make(chan error, 2)
	go func() { errs <- c.RunIntake(ctx) }()
	go func() { errs <- c.Sender().Run(ctx) }()
	go func() {
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("twitch collector: %v", err)
			}
		}
		close(r.done)
	}()
	t.Cleanup(r.stop)
	natstest.Eventually(t, 20*time.Second, "the sender to be ready", c.Sender().Ready)
	return r
}

// holds reports whether this replica has an EventSub socket open.
func (r *rig) holds() bool { return r.sockets.open.Load() > 0 }

// countingDialer counts the WebSocket connections a replica has open.
type countingDialer struct{ open atomic.Int64 }

func (d *countingDialer) dialer() *websocket.Dialer {
	return &websocket.Dialer{HandshakeTimeout: 10 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			d.open.Add(1)
			return &countedConn{Conn: c, open: &d.open}, nil
		}}
}

type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

func (r *rig) stop() {
	r.cancel()
	<-r.done
}

// waitSubscribed waits until the broadcaster's socket holds every
// subscription.
func (r *rig) waitSubscribed(t *testing.T) {
	t.Helper()
	natstest.Eventually(t, 20*time.Second, "the EventSub session to hold every subscription", func() bool {
		for _, s := range r.fake.Sessions() {
			if s.Connected && s.Subscriptions == len(eventsub.Specs()) {
				return true
			}
		}
		return false
	})
}

// chatEvent is a channel.chat.message event as Twitch's reference shows it.
func chatEvent(broadcaster, chatter twitchtest.User, messageID, text string, badges ...string) map[string]any {
	var b []map[string]any
	for _, set := range badges {
		b = append(b, map[string]any{"set_id": set, "id": "1", "info": ""})
	}
	return map[string]any{
		"broadcaster_user_id": broadcaster.ID, "broadcaster_user_login": broadcaster.Login, "broadcaster_user_name": broadcaster.DisplayName,
		"chatter_user_id": chatter.ID, "chatter_user_login": chatter.Login, "chatter_user_name": chatter.DisplayName,
		"message_id": messageID,
		"message":    map[string]any{"text": text, "fragments": []map[string]any{{"type": "text", "text": text}}},
		"color":      "#00FF00", "badges": b, "message_type": "text",
		"cheer": nil, "reply": nil, "channel_points_custom_reward_id": nil,
	}
}

// TestPingThroughTwitch: welcome → subscriptions → a chat notification →
// the router and core module → the reply sent through Helix as the bot,
// threaded under the message that asked.
func TestPingThroughTwitch(t *testing.T) {
	t.Parallel()
	p := pipelinetest.Start(t, pipelinetest.Options{})
	r := startRig(t, p.Env.Connect(t), p.Store, rigOptions{})
	r.waitSubscribed(t)

	viewer := twitchtest.User{ID: "5551", Login: "viewer", DisplayName: "Viewer"}
	r.fake.Notify(r.broadcaster.ID, "channel.chat.message", chatEvent(r.broadcaster, viewer, "msg-ping-1", "!ping"))
	var sent []twitchtest.SentChat
	natstest.Eventually(t, 20*time.Second, "pong in the broadcaster's chat", func() bool {
		sent = r.fake.Chat()
		return len(sent) > 0
	})
	got := sent[0]
	if got.Text != "pong" || got.BroadcasterID != r.broadcaster.ID || got.SenderID != theBot.ID || got.ReplyParentID != "msg-ping-1" {
		t.Fatalf("sent %+v; want pong from the bot in %s replying to msg-ping-1", got, r.broadcaster.ID)
	}

	// The bot's own message comes back through EventSub: it must not be
	// routed (pong would otherwise answer itself if it were a command).
	r.fake.Notify(r.broadcaster.ID, "channel.chat.message", chatEvent(r.broadcaster, theBot, "msg-bot-1", "!ping"))
	r.fake.Notify(r.broadcaster.ID, "channel.chat.message", chatEvent(r.broadcaster, viewer, "msg-ping-2", "!ping"))
	natstest.Eventually(t, 20*time.Second, "the second pong", func() bool { return len(r.fake.Chat()) >= 2 })
	p.Settle()
	if n := len(r.fake.Chat()); n != 2 {
		t.Fatalf("want 2 messages sent (the bot's own !ping ignored), got %d: %+v", n, r.fake.Chat())
	}
	for _, e := range natstest.Decode[schemas.Event](t, p.Client.JS, schemas.StreamEvents, "wb.events.twitch.>") {
		if e.User.ID == theBot.ID {
			t.Fatalf("the bot's own message was published: %+v", e)
		}
	}
}

// TestSendBudgetBurst: 200 replies at once to one channel never put more
// than the budget into any window at Twitch.
func TestSendBudgetBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a few seconds")
	}
	env := natstest.Start(t, nil)
	st := storeFor(t)
	const budget, window = 20, 700 * time.Millisecond
	r := startRig(t, env.Connect(t), st, rigOptions{budget: budget, window: window})
	client := env.Connect(t)
	const n = 200
	for i := range n {
		reply := schemas.Reply{Version: schemas.Version, ID: schemas.NewEventID(), InvocationID: schemas.NewEventID(),
			Target: schemas.Target{Platform: schemas.PlatformTwitch, ChannelID: r.broadcaster.ID},
			Text:   fmt.Sprintf("burst %03d", i), Part: 1, Parts: 1, CreatedAt: time.Now().UTC()}
		body, _ := json.Marshal(reply)
		if _, err := client.JS.Publish(t.Context(), schemas.ReplySubject(schemas.PlatformTwitch, r.broadcaster.ID), body); err != nil {
			t.Fatal(err)
		}
	}
	var sent []twitchtest.SentChat
	natstest.Eventually(t, 60*time.Second, "all 200 replies sent", func() bool {
		sent = r.fake.Chat()
		return len(sent) >= n
	})
	if len(sent) != n {
		t.Fatalf("sent %d messages, want %d", len(sent), n)
	}
	// Each exactly once. (Order is not kept for replies that waited for
	// the budget: docs/architecture.md, delivery rules.)
	seen := map[string]bool{}
	for _, m := range sent {
		if seen[m.Text] {
			t.Fatalf("%q sent twice", m.Text)
		}
		seen[m.Text] = true
	}
	for i := range sent {
		// The (i+budget)th message must come at least a window after the
		// ith: otherwise some window held budget+1 messages.
		if j := i + budget; j < len(sent) {
			if gap := sent[j].At.Sub(sent[i].At); gap < window {
				t.Fatalf("messages %d and %d were %v apart: %d messages inside one %v window (budget %d)",
					i, j, gap, budget+1, window, budget)
			}
		}
	}
}

func storeFor(t *testing.T) *store.Store { return storetest.New(t) }

// conformanceHarness runs the whole collector against the fake for the
// collector conformance suite.
type conformanceHarness struct {
	r *rig
}

func (h *conformanceHarness) Platform() string { return schemas.PlatformTwitch }

func (h *conformanceHarness) Start(t *testing.T, conn *natsx.Conn, budget int, window time.Duration) {
	t.Helper()
	// The suite's channel id is the broadcaster's user id on Twitch.
	b := twitchtest.User{ID: "c0nf_chan-1", Login: "conformance_channel", DisplayName: "Conformance"}
	h.r = startRig(t, conn, storeFor(t), rigOptions{broadcaster: b, budget: budget, window: window})
	h.r.waitSubscribed(t)
}

func (h *conformanceHarness) InjectChat(t *testing.T, msg conformance.ChatMessage) {
	t.Helper()
	chatter := twitchtest.User{ID: msg.UserID, Login: msg.Login, DisplayName: msg.Login}
	if msg.FromBot {
		chatter = theBot
	}
	b := h.r.broadcaster
	if msg.ChannelID != b.ID {
		t.Fatalf("the harness serves channel %s, not %s", b.ID, msg.ChannelID)
	}
	h.r.fake.Notify(b.ID, "channel.chat.message", chatEvent(b, chatter, msg.ID, msg.Text))
}

func (h *conformanceHarness) Sent() []conformance.SentMessage {
	var out []conformance.SentMessage
	for _, m := range h.r.fake.Chat() {
		out = append(out, conformance.SentMessage{ChannelID: m.BroadcasterID, Text: m.Text})
	}
	return out
}

func (h *conformanceHarness) FailNextSends(n int) { h.r.fake.FailNextChat(n, 503, 0) }

func TestConformance(t *testing.T) {
	t.Parallel()
	conformance.Run(t, func(t *testing.T) conformance.Harness { return &conformanceHarness{} })
}

// TestFailover: two replicas, one EventSub connection; when its holder
// dies the other connects within the lease time and events keep flowing.
func TestFailover(t *testing.T) {
	t.Parallel()
	env := natstest.Start(t, func(c *streams.Config) { c.LeaseTTL = 3 * time.Second })
	st := storeFor(t)
	fake := twitchtest.New(t)
	first := startRig(t, env.Connect(t), st, rigOptions{fake: fake})
	second := startRig(t, env.Connect(t), st, rigOptions{fake: fake, skipAccounts: true})
	first.waitSubscribed(t)
	// Both replicas run; only one may hold the broadcaster's socket.
	time.Sleep(2 * time.Second)
	if n := fake.Connections(); n != 1 {
		t.Fatalf("%d EventSub connections with two replicas; want 1", n)
	}
	holder, standby := first, second
	if !first.holds() {
		holder, standby = second, first
	}
	// Killed, not stopped: its NATS connection drops, so it can neither
	// release the lease nor renew it; the standby must wait out the lease,
	// and the holder must give up its socket before that (fencing).
	holder.conn.NC.Close()
	killed := time.Now()
	// The standby's dial counts as holding as soon as TCP connects; the
	// fake counts the socket once the WebSocket handshake is done.
	natstest.Eventually(t, 15*time.Second, "the standby replica to take the connection", func() bool {
		return standby.holds() && !holder.holds() && fake.Connections() == 1
	})
	t.Logf("failover took %v (lease TTL 3s)", time.Since(killed).Round(10*time.Millisecond))
	standby.waitSubscribed(t)

	pub := env.Connect(t)
	viewer := twitchtest.User{ID: "5551", Login: "viewer"}
	fake.Notify(defaultBroadcaster.ID, "channel.chat.message", chatEvent(defaultBroadcaster, viewer, "after-failover", "still here"))
	natstest.Eventually(t, 10*time.Second, "the message after failover on WB_EVENTS", func() bool {
		for _, e := range natstest.Decode[schemas.Event](t, pub.JS, schemas.StreamEvents, "wb.events.twitch.>") {
			if e.Text == "still here" {
				return true
			}
		}
		return false
	})
}

// TestNewBotAccountIsKnownAtOnce: when another bot account connects, its
// messages count as the bot's own from the notice on, not a minute later.
func TestNewBotAccountIsKnownAtOnce(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storeFor(t)
	r := startRig(t, env.Connect(t), st, rigOptions{})
	r.waitSubscribed(t)
	viewer := twitchtest.User{ID: "5551", Login: "viewer"}
	// The old bot id is cached once a chat message was checked.
	r.fake.Notify(r.broadcaster.ID, "channel.chat.message", chatEvent(r.broadcaster, viewer, "warm-1", "hello"))
	watch := env.Connect(t)
	natstest.Eventually(t, 10*time.Second, "the first message", func() bool {
		return len(natstest.Decode[schemas.Event](t, watch.JS, schemas.StreamEvents, "wb.events.twitch.>")) == 1
	})

	newBot := twitchtest.User{ID: "777001", Login: "waddlebot2", DisplayName: "WaddleBot2"}
	r.fake.AddUser(newBot)
	tok := r.fake.IssueToken(newBot.ID, time.Hour, eventsub.BotScopes()...)
	if err := twitch.NewStore(st).Save(t.Context(), twitch.Account{UserID: newBot.ID, Login: newBot.Login,
		DisplayName: newBot.DisplayName, Kind: twitch.KindBot, Scopes: eventsub.BotScopes(), Status: twitch.StatusConnected},
		twitch.OAuthToken{Access: tok.Access, Refresh: tok.Refresh, Scopes: eventsub.BotScopes(), ExpiresAt: tok.ExpiresAt}); err != nil {
		t.Fatal(err)
	}
	notice, _ := json.Marshal(twitch.AccountChange{UserID: newBot.ID, Kind: twitch.KindBot, Status: twitch.StatusConnected})
	if err := watch.NC.Publish(twitch.ControlSubject, notice); err != nil {
		t.Fatal(err)
	}
	if err := watch.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	// The notice is handled asynchronously; give it a moment to land
	// before the new bot speaks (a minute is what is being ruled out).
	time.Sleep(300 * time.Millisecond)
	r.fake.Notify(r.broadcaster.ID, "channel.chat.message", chatEvent(r.broadcaster, newBot, "newbot-1", "!ping"))
	r.fake.Notify(r.broadcaster.ID, "channel.chat.message", chatEvent(r.broadcaster, viewer, "sentinel-1", "sentinel"))
	natstest.Eventually(t, 10*time.Second, "the sentinel", func() bool {
		for _, e := range natstest.Decode[schemas.Event](t, watch.JS, schemas.StreamEvents, "wb.events.twitch.>") {
			if e.Text == "sentinel" {
				return true
			}
		}
		return false
	})
	for _, e := range natstest.Decode[schemas.Event](t, watch.JS, schemas.StreamEvents, "wb.events.twitch.>") {
		if e.User.ID == newBot.ID {
			t.Fatalf("the new bot's own message was published: %+v", e)
		}
	}
}

// TestWebhookTransport: in webhook mode the collector subscribes with the
// app token and its callback, and a notification Twitch signs and posts
// there becomes an event; a replay of it, once stale, is refused.
func TestWebhookTransport(t *testing.T) {
	t.Parallel()
	env := natstest.Start(t, nil)
	st := storeFor(t)
	mux := http.NewServeMux()
	web := httptest.NewServer(mux)
	t.Cleanup(web.Close)
	const secret = "a-webhook-secret-of-some-length"
	r := startRig(t, env.Connect(t), st, rigOptions{transport: twitch.TransportWebhook, webhookSecret: secret,
		web: mux, publicURL: web.URL})

	var chatSub twitchtest.Subscription
	natstest.Eventually(t, 20*time.Second, "every subscription made with the webhook transport", func() bool {
		n := 0
		for _, sub := range r.fake.Subscriptions() {
			if sub.Method == "webhook" && sub.Callback == web.URL+"/webhooks/twitch" && sub.Owner == "" {
				n++
				if sub.Type == "channel.chat.message" {
					chatSub = sub
				}
			}
		}
		return n == len(eventsub.Specs())
	})
	if chatSub.Condition["user_id"] != theBot.ID {
		t.Fatalf("app-token chat subscription reads as %q, want the bot %s", chatSub.Condition["user_id"], theBot.ID)
	}

	viewer := twitchtest.User{ID: "5551", Login: "viewer"}
	post := func(messageID string, at time.Time) int {
		body, _ := json.Marshal(map[string]any{
			"subscription": map[string]any{"id": chatSub.ID, "status": "enabled", "type": "channel.chat.message", "version": "1",
				"condition": chatSub.Condition, "transport": map[string]any{"method": "webhook", "callback": chatSub.Callback},
				"created_at": chatSub.CreatedAt.Format(time.RFC3339Nano), "cost": 0},
			"event": chatEvent(r.broadcaster, viewer, "hook-chat-1", "hello over a webhook"),
		})
		ts := at.UTC().Format(time.RFC3339Nano)
		req, _ := http.NewRequest(http.MethodPost, web.URL+"/webhooks/twitch", bytes.NewReader(body))
		req.Header.Set("Twitch-Eventsub-Message-Id", messageID)
		req.Header.Set("Twitch-Eventsub-Message-Timestamp", ts)
		req.Header.Set("Twitch-Eventsub-Message-Type", "notification")
		req.Header.Set("Twitch-Eventsub-Message-Signature", eventsub.Sign(secret, messageID, ts, body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("hook-msg-1", time.Now()); code != http.StatusNoContent {
		t.Fatalf("signed notification: %d, want 204", code)
	}
	if code := post("hook-msg-1", time.Now().Add(-11*time.Minute)); code != http.StatusForbidden {
		t.Fatalf("an 11-minute-old replay: %d, want 403", code)
	}
	watch := env.Connect(t)
	events := natstest.Decode[schemas.Event](t, watch.JS, schemas.StreamEvents, "wb.events.twitch.>")
	if len(events) != 1 || events[0].Text != "hello over a webhook" || events[0].User.ID != viewer.ID {
		t.Fatalf("events %+v; want the one chat message", events)
	}
}
