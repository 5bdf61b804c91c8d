package shoutout_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/actions/shoutout"
	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
)

// The Twitch channel the tests chat in, and its people.
const twitchChannelID = "1001"

var (
	broadcaster = schemas.User{ID: twitchChannelID, Login: "streamer", DisplayName: "Streamer", Roles: []schemas.Role{schemas.RoleBroadcaster}}
	moddy       = schemas.User{ID: "2001", Login: "moddy", DisplayName: "Moddy", Roles: []schemas.Role{schemas.RoleModerator}}
	viewer      = schemas.User{ID: "2002", Login: "viewer", DisplayName: "Viewer"}
)

// streamer is a Twitch user the fake API knows.
type streamer struct {
	id, login, display, category, title string
}

var bob = streamer{id: "3001", login: "bob", display: "Bob", category: "Celeste", title: "any% practice"}
var raider = streamer{id: "3002", login: "raidy", display: "Raidy", category: "Just Chatting", title: "raid train"}

// fakeTwitch answers wb.api.twitch.* as the Twitch collector does, from a
// table of users.
type fakeTwitch struct {
	mu      sync.Mutex
	users   map[string]streamer
	failing bool // answer every lookup with Twitch being unavailable
	sub     *nats.Subscription
	lookups atomic.Int64
}

func (f *fakeTwitch) serve(t *testing.T, nc *nats.Conn) {
	t.Helper()
	sub, err := nc.QueueSubscribe(schemas.APISubject(schemas.PlatformTwitch, "*"), "twitch-api", func(msg *nats.Msg) {
		f.lookups.Add(1)
		var req schemas.APIRequest
		resp := schemas.APIResponse{Version: schemas.Version}
		if err := json.Unmarshal(msg.Data, &req); err != nil || req.Validate() != nil {
			resp.Error = &schemas.APIError{Code: "invalid", Message: "bad request"}
		} else {
			resp.ID = req.ID
			data, apiErr := f.answer(req)
			resp.Data, resp.Error = data, apiErr
		}
		body, _ := json.Marshal(resp)
		_ = msg.Respond(body)
	})
	if err != nil {
		t.Fatal(err)
	}
	f.sub = sub
}

func (f *fakeTwitch) answer(req schemas.APIRequest) (json.RawMessage, *schemas.APIError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return nil, &schemas.APIError{Code: "unavailable", Message: "Get Users: 503 Service Unavailable"}
	}
	var found *streamer
	for _, u := range f.users {
		if u.login == req.Args["login"] || (req.Args["broadcaster_id"] != "" && u.id == req.Args["broadcaster_id"]) {
			found = &u
		}
	}
	if found == nil {
		return nil, &schemas.APIError{Code: "not_found", Message: "no such Twitch user"}
	}
	var data any
	switch req.Operation {
	case "user_by_login":
		data = map[string]string{"id": found.id, "login": found.login, "display_name": found.display}
	case "channel_info":
		data = map[string]string{"broadcaster_id": found.id, "login": found.login, "display_name": found.display,
			"category": found.category, "title": found.title}
	default:
		return nil, &schemas.APIError{Code: "invalid", Message: "unknown operation"}
	}
	b, _ := json.Marshal(data)
	return b, nil
}

func (f *fakeTwitch) setFailing(v bool) {
	f.mu.Lock()
	f.failing = v
	f.mu.Unlock()
}

type harness struct {
	t       *testing.T
	p       *pipelinetest.Pipeline
	twitch  *fakeTwitch
	clock   *clock.Fake
	publish *collectors.Publisher
}

func start(t *testing.T) *harness {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 3, 1, 18, 0, 0, 0, time.UTC))
	req := &actionstest.LazyRequester{}
	p := pipelinetest.Start(t, pipelinetest.Options{
		Modules: []func(*store.Store) actions.Module{func(st *store.Store) actions.Module {
			return shoutout.New(shoutout.Config{Store: st, Requester: req, Clock: clk, LookupTimeout: 5 * time.Second})
		}},
		Clock: clk,
		// These tests type more commands a minute than a person may.
		TuneRouter: func(c *router.Config) { c.UserRateLimit, c.ChannelRateLimit = 100000, 100000 },
	})
	req.Connect(p.Env.Connect(t).NC)
	h := &harness{t: t, p: p, clock: clk, publish: collectors.NewPublisher(p.Client.JS, logging.Discard()),
		twitch: &fakeTwitch{users: map[string]streamer{bob.login: bob, raider.login: raider,
			broadcaster.Login: {id: broadcaster.ID, login: broadcaster.Login, display: broadcaster.DisplayName}}}}
	h.twitch.serve(t, p.Env.Connect(t).NC)
	return h
}

// publishTwitch publishes an event on the Twitch channel as the Twitch
// collector would.
func (h *harness) publishTwitch(ev *schemas.Event) {
	h.t.Helper()
	ev.Platform = schemas.PlatformTwitch
	ev.Channel = schemas.Channel{ID: twitchChannelID, Name: broadcaster.Login}
	if ev.ID == "" {
		ev.ID = schemas.NewEventID()
		ev.PlatformEventID = ev.ID
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = time.Now().UTC()
	}
	if err := h.publish.Publish(context.Background(), ev); err != nil {
		h.t.Fatal(err)
	}
}

// twitchReplies returns the replies on the Twitch channel's reply subject
// to one event, in order.
func (h *harness) twitchReplies(eventID string) []schemas.Reply {
	h.t.Helper()
	var out []schemas.Reply
	for _, r := range natstest.Decode[schemas.Reply](h.t, h.p.Client.JS, schemas.StreamReplies, schemas.ReplySubject(schemas.PlatformTwitch, twitchChannelID)) {
		if r.EventID == eventID {
			out = append(out, r)
		}
	}
	return out
}

// twitchSay types text on the Twitch channel and returns the replies (text
// and platform actions) once the pipeline has caught up.
func (h *harness) twitchSay(user schemas.User, text string) []schemas.Reply {
	h.t.Helper()
	ev := &schemas.Event{Kind: schemas.KindChat, User: user, Text: text}
	h.publishTwitch(ev)
	natstest.Eventually(h.t, pipelinetest.Wait, "a reply to "+text, func() bool { return len(h.twitchReplies(ev.ID)) > 0 })
	h.p.Settle()
	return h.twitchReplies(ev.ID)
}

// raid publishes a raid by s into the Twitch channel and returns the
// replies once the pipeline has caught up (none when cooling down).
func (h *harness) raid(s streamer, eventID string) []schemas.Reply {
	h.t.Helper()
	u := schemas.User{ID: s.id, Login: s.login, DisplayName: s.display}
	ev := &schemas.Event{ID: eventID, PlatformEventID: eventID, Kind: schemas.KindRaid, User: u, Data: &schemas.EventData{Viewers: 12, Target: &u}}
	h.publishTwitch(ev)
	h.p.Settle()
	return h.twitchReplies(ev.ID)
}

// expectShoutout checks replies are the text want and, when native, then
// Twitch's native shoutout of s.
func expectShoutout(t *testing.T, replies []schemas.Reply, want string, s *streamer) {
	t.Helper()
	n := 1
	if s != nil {
		n = 2
	}
	if len(replies) != n {
		t.Fatalf("got %d replies %+v, want %d", len(replies), replies, n)
	}
	if replies[0].Action != schemas.ActionMessage || replies[0].Text != want {
		t.Errorf("reply %s %q, want message %q", replies[0].Action, replies[0].Text, want)
	}
	if s == nil {
		return
	}
	a := replies[1]
	if a.Action != schemas.ActionShoutout || a.ActionData == nil || a.ActionData.TargetUserID != s.id || a.ActionData.TargetLogin != s.login {
		t.Errorf("second reply %s %+v, want a native shoutout of %s (%s)", a.Action, a.ActionData, s.login, s.id)
	}
	if a.Target.ChannelID != twitchChannelID {
		t.Errorf("native shoutout goes to channel %q", a.Target.ChannelID)
	}
}

func replyText(t *testing.T, replies []schemas.Reply) string {
	t.Helper()
	if len(replies) != 1 || replies[0].Action != schemas.ActionMessage {
		t.Fatalf("got %+v, want one message", replies)
	}
	return replies[0].Text
}

func TestShoutoutOnTwitch(t *testing.T) {
	h := start(t)
	bobShout := "Go check out Bob at https://twitch.tv/bob — last seen playing Celeste: any% practice"

	t.Run("shoutout with the last category and Twitch's native shoutout", func(t *testing.T) {
		expectShoutout(t, h.twitchSay(moddy, "!so @bob"), bobShout, &bob)
	})
	t.Run("again within Twitch's limits: the message without the native shoutout", func(t *testing.T) {
		h.clock.Advance(5 * time.Minute)
		expectShoutout(t, h.twitchSay(broadcaster, "!shoutout bob"), bobShout, nil)
	})
	t.Run("self refused", func(t *testing.T) {
		if got := replyText(t, h.twitchSay(moddy, "!so @Moddy")); got != "You can't shout yourself out." {
			t.Errorf("got %q", got)
		}
	})
	t.Run("the channel's own broadcaster refused", func(t *testing.T) {
		if got := replyText(t, h.twitchSay(moddy, "!so streamer")); !strings.Contains(got, "this channel's own broadcaster") {
			t.Errorf("got %q", got)
		}
	})
	t.Run("unknown user refused", func(t *testing.T) {
		if got := replyText(t, h.twitchSay(moddy, "!so @nobody_here")); got != "No Twitch user named nobody_here." {
			t.Errorf("got %q", got)
		}
	})
	t.Run("not a login refused", func(t *testing.T) {
		if got := replyText(t, h.twitchSay(moddy, "!so @a")); !strings.HasPrefix(got, "That isn't a Twitch login") {
			t.Errorf("got %q", got)
		}
	})
	t.Run("no target: usage", func(t *testing.T) {
		if got := replyText(t, h.twitchSay(moddy, "!so")); !strings.HasPrefix(got, "Usage: !so @user") {
			t.Errorf("got %q", got)
		}
	})
	t.Run("Twitch failing: a clear reply", func(t *testing.T) {
		h.twitch.setFailing(true)
		defer h.twitch.setFailing(false)
		if got := replyText(t, h.twitchSay(moddy, "!so bob")); !strings.Contains(got, "couldn't reach Twitch right now") {
			t.Errorf("got %q", got)
		}
	})
	t.Run("nobody serving the API: a clear reply", func(t *testing.T) {
		h.p.Must(h.twitch.sub.Unsubscribe())
		if got := replyText(t, h.twitchSay(moddy, "!so bob")); !strings.Contains(got, "couldn't reach Twitch right now") {
			t.Errorf("got %q", got)
		}
		h.twitch.serve(t, h.p.Env.Connect(t).NC)
	})
	t.Run("a plain viewer is refused by the router, silently", func(t *testing.T) {
		ev := &schemas.Event{Kind: schemas.KindChat, User: viewer, Text: "!so @bob"}
		h.publishTwitch(ev)
		h.p.Settle()
		if r := h.twitchReplies(ev.ID); len(r) != 0 {
			t.Errorf("a viewer's !so got %+v", r)
		}
	})
}

func TestShoutoutElsewhere(t *testing.T) {
	h := start(t)
	cases := []struct{ user, role, text, want string }{
		{"alice", "moderator", "!so @bob", "Go check out bob — https://twitch.tv/bob"},
		{"alice", "moderator", "!shoutout https://www.twitch.tv/Bob", "Go check out bob — https://twitch.tv/bob"},
		{"alice", "broadcaster", "!so @Zoë", "Go check out Zoë!"},
		{"alice", "moderator", "!so @alice", "You can't shout yourself out."},
		{"alice", "moderator", "!so x@everyone", "I can only shout out a Twitch login, a mention, or a name of letters, digits, _, - and . (at most 32)."},
	}
	for _, c := range cases {
		if got := h.p.SayText(c.user, c.role, c.text); got != c.want {
			t.Errorf("%s (%s) says %q:\n got %q\nwant %q", c.user, c.role, c.text, got, c.want)
		}
	}
	h.p.Silent("carol", "", "!so @bob")
	h.p.Silent("carol", "vip", "!so @bob")
	if n := h.twitch.lookups.Load(); n != 0 {
		t.Errorf("%d Twitch lookups for console shoutouts, want none", n)
	}
}

func TestAutoShoutoutOnRaid(t *testing.T) {
	h := start(t)
	want := "Thanks for the raid, Raidy! Go check them out at https://twitch.tv/raidy — last seen playing Just Chatting: raid train"

	first := schemas.NewEventID()
	expectShoutout(t, h.raid(raider, first), want, &raider)

	// The same raid delivered again (a collector's retry): one shoutout.
	if got := h.raid(raider, first); len(got) != 2 {
		t.Errorf("the raid delivered twice has %d replies, want the first 2", len(got))
	}
	// The raid's invocation redelivered (an ack lost after the commit): the
	// outbox answers with the stored shoutout, under the same reply ids.
	invs := natstest.Decode[schemas.Invocation](t, h.p.Client.JS, schemas.StreamCommands, schemas.CommandSubject(shoutout.Name))
	if len(invs) != 1 {
		t.Fatalf("%d invocations of the module, want the raid's 1", len(invs))
	}
	actionstest.PublishAs(t, h.p.Client.JS, &invs[0], invs[0].ID+"-again")
	h.p.Settle()
	if got := actionstest.RepliesTo(t, h.p.Client.JS, invs[0].ID); len(got) != 2 {
		t.Errorf("after a redelivery the raid has %d replies, want the first 2", len(got))
	}

	// Another raid by the same raider within the cooldown: nothing.
	h.clock.Advance(59 * time.Minute)
	if got := h.raid(raider, schemas.NewEventID()); len(got) != 0 {
		t.Errorf("a raid within the cooldown got %+v", got)
	}
	// Once the cooldown has passed: a shoutout again.
	h.clock.Advance(time.Minute)
	expectShoutout(t, h.raid(raider, schemas.NewEventID()), want, &raider)

	// A manual !so of the raider counts: a raid right after it is quiet.
	h.clock.Advance(2 * time.Hour)
	expectShoutout(t, h.twitchSay(moddy, "!so raidy"),
		"Go check out Raidy at https://twitch.tv/raidy — last seen playing Just Chatting: raid train", &raider)
	if got := h.raid(raider, schemas.NewEventID()); len(got) != 0 {
		t.Errorf("a raid right after a !so got %+v", got)
	}
	if n := h.p.Count(`SELECT count(*) FROM shoutout_targets WHERE target = $1`, raider.id); n != 1 {
		t.Errorf("%d records for the raider, want 1", n)
	}
}

func TestRaidSettings(t *testing.T) {
	h := start(t)
	// The community exists once the channel has seen an event.
	expectShoutout(t, h.raid(raider, schemas.NewEventID()), "Thanks for the raid, Raidy! Go check them out at https://twitch.tv/raidy — last seen playing Just Chatting: raid train", &raider)
	c, err := h.p.Store.ResolveChannel(context.Background(), store.Channel{Platform: schemas.PlatformTwitch, ChannelID: twitchChannelID})
	h.p.Must(err)
	setSettings := func(settings string) {
		h.p.Must(h.p.Store.SetModule(context.Background(), "test", c.ID, shoutout.Name, true, json.RawMessage(settings)))
		h.p.Must(h.p.Client.NC.Publish(schemas.ControlCommunity(c.ID), nil))
		h.p.Must(h.p.Client.NC.Flush())
	}

	// A short cooldown: the raider is shouted out again after 5 minutes,
	// with the message only (Twitch allows one native shoutout an hour).
	setSettings(`{"auto_cooldown_minutes": 5}`)
	h.clock.Advance(4 * time.Minute)
	if got := h.raid(raider, schemas.NewEventID()); len(got) != 0 {
		t.Errorf("a raid within the 5-minute cooldown got %+v", got)
	}
	h.clock.Advance(time.Minute)
	expectShoutout(t, h.raid(raider, schemas.NewEventID()), "Thanks for the raid, Raidy! Go check them out at https://twitch.tv/raidy — last seen playing Just Chatting: raid train", nil)

	// Turned off: raids pass quietly.
	setSettings(`{"auto_on_raid": false}`)
	h.clock.Advance(2 * time.Hour)
	if got := h.raid(raider, schemas.NewEventID()); len(got) != 0 {
		t.Errorf("a raid with auto_on_raid off got %+v", got)
	}
}

func TestRaidWhileTwitchFails(t *testing.T) {
	h := start(t)
	h.twitch.setFailing(true)
	// The raid still gets its shoutout, from what the raid event says.
	expectShoutout(t, h.raid(raider, schemas.NewEventID()), "Thanks for the raid, Raidy! Go check them out at https://twitch.tv/raidy", &raider)
}
