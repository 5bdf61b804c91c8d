package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

var ctx = context.Background()

var testModules = []schemas.Manifest{
	{Name: "core", Version: "1.0.0", DefaultEnabled: true, Commands: []schemas.CommandSpec{
		{Name: "ping", Permission: "everyone"},
		{Name: "slow", Permission: "everyone", UserCooldownMS: 60_000},
		{Name: "once", Permission: "everyone", GlobalCooldownMS: 60_000},
		{Name: "modonly", Aliases: []string{"mo"}, Permission: "moderator"},
		{Name: "both", Permission: "everyone", UserCooldownMS: 60_000, GlobalCooldownMS: 2_000},
	}},
	{Name: "rep", Version: "1.0.0", DefaultEnabled: true,
		Commands: []schemas.CommandSpec{{Name: "rep", Permission: "everyone"}},
		Triggers: []schemas.TriggerSpec{
			{Kind: schemas.KindChat, Per: schemas.ThrottleUser, WindowMS: 60_000},
			{Kind: schemas.KindFollow},
		}},
	{Name: "ai", Version: "1.0.0", DefaultEnabled: false, Commands: []schemas.CommandSpec{{Name: "ai", Permission: "everyone"}}},
	{Name: "weather", Version: "1.0.0", External: true, DefaultEnabled: true, Commands: []schemas.CommandSpec{{Name: "weather", Permission: "everyone"}}},
}

type rig struct {
	env   *natstest.Env
	store *store.Store
}

func newRig(t testing.TB) *rig {
	t.Helper()
	r := &rig{env: natstest.Start(t, nil), store: storetest.New(t)}
	for _, m := range testModules {
		if _, err := r.store.UpsertManifest(ctx, m, true); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *rig) config(conn *natsx.Conn) router.Config {
	return router.Config{Conn: conn, Store: r.store, Concurrency: 32, MaxFailures: 3,
		Backoff: []time.Duration{10 * time.Millisecond}, UserRateLimit: 60, UserRateWindow: time.Minute,
		ChannelRateLimit: 300, ChannelRateWindow: time.Minute, CacheTTL: time.Minute, Logger: logging.Discard()}
}

// start runs a router replica on its own connection until the test ends.
func (r *rig) start(t *testing.T, tune func(*router.Config)) {
	t.Helper()
	cfg := r.config(r.env.Connect(t))
	if tune != nil {
		tune(&cfg)
	}
	rt, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = rt.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !rt.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("router never became ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type chat struct {
	channel, user, text string
	roles               []schemas.Role
	kind                schemas.Kind
	id                  string
}

func (r *rig) send(t *testing.T, c chat) *schemas.Event {
	t.Helper()
	if c.kind == "" {
		c.kind = schemas.KindChat
	}
	if c.channel == "" {
		c.channel = "demo"
	}
	if c.id == "" {
		c.id = schemas.NewEventID()
	}
	now := time.Now().UTC()
	ev := &schemas.Event{Version: 1, ID: c.id, Platform: "console", Kind: c.kind,
		Channel: schemas.Channel{ID: c.channel, Name: c.channel},
		User:    schemas.User{ID: c.user, Login: c.user, Roles: c.roles},
		Text:    c.text, OccurredAt: now, ReceivedAt: now}
	r.publishEvent(t, ev, ev.ID)
	return ev
}

func (r *rig) publishEvent(t *testing.T, ev *schemas.Event, msgID string) {
	t.Helper()
	body, _ := json.Marshal(ev)
	if _, err := r.env.Conn.JS.Publish(ctx, ev.Subject(), body, jetstream.WithMsgID(msgID)); err != nil {
		t.Fatal(err)
	}
}

// invocations reads every invocation stored in WB_COMMANDS.
func (r *rig) invocations(t *testing.T) []schemas.Invocation {
	t.Helper()
	return readAll[schemas.Invocation](t, r.env.Conn.JS, schemas.StreamCommands)
}

// commands reads the command invocations only (chat triggers fire too).
func (r *rig) commands(t *testing.T) []schemas.Invocation {
	t.Helper()
	var out []schemas.Invocation
	for _, inv := range r.invocations(t) {
		if strings.HasPrefix(inv.Route, schemas.RouteCommand) {
			out = append(out, inv)
		}
	}
	return out
}

func readAll[T any](t *testing.T, js jetstream.JetStream, stream string) []T {
	t.Helper()
	return natstest.Decode[T](t, js, stream, "")
}

// settle waits until the router has acked everything published so far.
func (r *rig) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if done, err := streams.CaughtUp(ctx, r.env.Conn.JS, schemas.StreamEvents, streams.ConsumerRouter); err == nil && done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("router did not finish the events")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRoutesCommandToModule(t *testing.T) {
	r := newRig(t)
	r.start(t, nil)
	ev := r.send(t, chat{user: "alice", text: `!ping "a b" c`})
	r.settle(t)
	invs := r.commands(t)
	if len(invs) != 1 {
		t.Fatalf("%d invocations, want 1", len(invs))
	}
	inv := invs[0]
	if err := inv.Validate(); err != nil {
		t.Fatal(err)
	}
	want := schemas.InvocationID(ev.ID, "core", "cmd:ping")
	if inv.ID != want || inv.Module != "core" || inv.Route != "cmd:ping" || inv.Command != "ping" ||
		len(inv.Args) != 2 || inv.Args[0] != "a b" || inv.ArgText != `"a b" c` {
		t.Fatalf("invocation = %+v", inv)
	}
	if !inv.Community.Provisional || inv.Community.Prefix != "!" || inv.Event.ID != ev.ID {
		t.Fatalf("community/event = %+v / %s", inv.Community, inv.Event.ID)
	}
	if !inv.Deadline.After(ev.ReceivedAt) {
		t.Fatalf("deadline %v not after %v", inv.Deadline, ev.ReceivedAt)
	}
}

func TestDecisions(t *testing.T) {
	r := newRig(t)
	r.start(t, nil)
	mod := []schemas.Role{schemas.RoleModerator}
	cases := []struct {
		name string
		msg  chat
		want []string // routes expected, as module/route
	}{
		{"plain chat", chat{user: "u1", text: "hello there"}, nil},
		{"unknown command", chat{user: "u1", text: "!nosuch"}, nil},
		{"known command", chat{user: "u1", text: "!ping"}, []string{"core/cmd:ping"}},
		{"member denied moderator command", chat{user: "u1", text: "!modonly"}, nil},
		{"moderator by alias", chat{user: "m1", text: "!mo", roles: mod}, []string{"core/cmd:modonly"}},
		{"module off by default", chat{user: "u1", text: "!ai hi"}, nil},
		{"external prefix", chat{user: "u1", text: "#weather berlin"}, []string{"weather/cmd:weather"}},
		{"external needs #", chat{user: "u1", text: "!weather berlin"}, nil},
		{"slash command", chat{user: "u1", text: "ping", kind: schemas.KindCommand}, []string{"core/cmd:ping"}},
		{"follow trigger", chat{user: "u1", kind: schemas.KindFollow}, []string{"rep/on:follow"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(r.invocations(t))
			c.msg.channel = "decisions"
			// A chat trigger with a per-user throttle fires once per user;
			// burn it first so it does not blur the command cases.
			r.send(t, chat{channel: "decisions", user: c.msg.user, text: "warm up", roles: c.msg.roles})
			r.settle(t)
			before = len(r.invocations(t))
			r.send(t, c.msg)
			r.settle(t)
			got := []string{}
			for _, inv := range r.invocations(t)[before:] {
				got = append(got, inv.Module+"/"+inv.Route)
			}
			if fmt.Sprint(got) != fmt.Sprint(append([]string{}, c.want...)) {
				t.Fatalf("routes = %v, want %v", got, c.want)
			}
		})
	}
}

func TestChatTriggerThrottledPerUser(t *testing.T) {
	r := newRig(t)
	r.start(t, nil)
	for range 3 {
		r.send(t, chat{user: "alice", text: "hi"})
	}
	r.send(t, chat{user: "bob", text: "hi"})
	r.settle(t)
	count := map[string]int{}
	for _, inv := range r.invocations(t) {
		if inv.Route == "on:chat" {
			count[inv.Event.User.ID]++
		}
	}
	if count["alice"] != 1 || count["bob"] != 1 {
		t.Fatalf("chat triggers per user = %v, want one each", count)
	}
}

// TestCooldownHoldsAcrossRouterReplicas is the test: two router
// replicas share the consumer, and a per-user cooldown still lets exactly one
// command through.
func TestCooldownHoldsAcrossRouterReplicas(t *testing.T) {
	r := newRig(t)
	var routed [2]atomic.Int32
	for i := range routed {
		// A tiny cache TTL makes each replica go to the store per event, so
		// the counts show which replica routed what.
		r.start(t, func(c *router.Config) { c.Store = countingStore{c.Store, &routed[i]}; c.CacheTTL = time.Millisecond })
	}
	for range 20 {
		r.send(t, chat{user: "alice", text: "!slow"})
	}
	for range 5 {
		r.send(t, chat{user: "bob", text: "!slow"})
	}
	for range 5 {
		r.send(t, chat{user: "carol", text: "!once"})
		r.send(t, chat{user: "dave", text: "!once"})
	}
	r.settle(t)
	count := map[string]int{}
	for _, inv := range r.invocations(t) {
		if inv.Route == "cmd:slow" || inv.Route == "cmd:once" {
			count[inv.Route+"/"+inv.Event.User.ID]++
		}
	}
	if count["cmd:slow/alice"] != 1 || count["cmd:slow/bob"] != 1 {
		t.Fatalf("per-user cooldown broke: %v", count)
	}
	if count["cmd:once/carol"]+count["cmd:once/dave"] != 1 {
		t.Fatalf("global cooldown broke: %v", count)
	}
	// Both replicas did work, or the test proves nothing about sharing.
	for i := range routed {
		if routed[i].Load() == 0 {
			t.Fatalf("replica %d routed nothing", i)
		}
	}
}

// countingStore counts the events one replica resolved.
type countingStore struct {
	router.Store
	n *atomic.Int32
}

func (c countingStore) CommunityModules(ctx context.Context, id string) (map[string]store.ModuleChoice, error) {
	c.n.Add(1)
	return c.Store.CommunityModules(ctx, id)
}

// TestGlobalCooldownDoesNotSpendUserCooldown: a user refused by the global
// cooldown never ran the command, so their own cooldown must not hold them
// back once the global one ends.
func TestGlobalCooldownDoesNotSpendUserCooldown(t *testing.T) {
	r := newRig(t)
	r.start(t, nil)
	count := func(user string) int {
		n := 0
		for _, inv := range r.commands(t) {
			if inv.Route == "cmd:both" && inv.Event.User.ID == user {
				n++
			}
		}
		return n
	}
	r.send(t, chat{user: "alice", text: "!both"})
	r.settle(t)
	r.send(t, chat{user: "bob", text: "!both"}) // refused: global cooldown
	r.settle(t)
	if count("alice") != 1 || count("bob") != 0 {
		t.Fatalf("alice %d, bob %d", count("alice"), count("bob"))
	}
	// Once the 2 s global cooldown is over (KV expiry may lag by up to a
	// second), bob's next try runs.
	time.Sleep(3500 * time.Millisecond)
	r.send(t, chat{user: "bob", text: "!both"})
	r.settle(t)
	if count("bob") != 1 {
		t.Fatalf("bob still refused after the global cooldown: his own cooldown was spent (%d runs)", count("bob"))
	}
	r.send(t, chat{user: "alice", text: "!both"}) // alice is still in her own cooldown
	r.settle(t)
	if count("alice") != 1 {
		t.Fatalf("alice ran %d times inside her cooldown", count("alice"))
	}
}

func TestUserRateLimit(t *testing.T) {
	r := newRig(t)
	r.start(t, func(c *router.Config) { c.UserRateLimit = 3 })
	for range 6 {
		r.send(t, chat{user: "spammer", text: "!ping"})
	}
	r.send(t, chat{user: "calm", text: "!ping"})
	r.settle(t)
	count := map[string]int{}
	for _, inv := range r.invocations(t) {
		if inv.Route == "cmd:ping" {
			count[inv.Event.User.ID]++
		}
	}
	if count["spammer"] != 3 || count["calm"] != 1 {
		t.Fatalf("invocations per user = %v, want spammer 3, calm 1", count)
	}
}

// TestRedeliveredEventGivesSameInvocation publishes one event twice under
// different message ids (as a collector retry past the window would): the
// cooldown recognizes the event and the invocation id dedupes.
func TestRedeliveredEventGivesSameInvocation(t *testing.T) {
	r := newRig(t)
	r.start(t, nil)
	ev := r.send(t, chat{user: "alice", text: "!slow"})
	r.settle(t)
	r.publishEvent(t, ev, ev.ID+"-again")
	r.settle(t)
	invs := r.commands(t)
	if len(invs) != 1 || invs[0].ID != schemas.InvocationID(ev.ID, "core", "cmd:slow") {
		t.Fatalf("invocations after redelivery = %d", len(invs))
	}
}

func TestControlNoticesApplyWithoutRestart(t *testing.T) {
	r := newRig(t)
	r.start(t, nil)
	first := r.send(t, chat{channel: "ctl", user: "alice", text: "!ping"})
	r.settle(t)
	invs := r.commands(t)
	if len(invs) != 1 {
		t.Fatalf("%d invocations", len(invs))
	}
	community := invs[0].Community
	_ = first

	// Turn core off for the community and change the prefix.
	if err := r.store.SetModule(ctx, "owner", community.ID, "core", false, nil); err != nil {
		t.Fatal(err)
	}
	notify(t, r.env.Conn.NC, schemas.ControlCommunity(community.ID))
	r.send(t, chat{channel: "ctl", user: "alice", text: "!ping"})
	r.settle(t)
	if n := len(r.commands(t)); n != 1 {
		t.Fatalf("disabled module still routed (%d invocations)", n)
	}
	if err := r.store.SetModule(ctx, "owner", community.ID, "core", true, nil); err != nil {
		t.Fatal(err)
	}
	community.Prefix = "?"
	if err := r.store.UpdateCommunity(ctx, "owner", community); err != nil {
		t.Fatal(err)
	}
	notify(t, r.env.Conn.NC, schemas.ControlCommunity(community.ID))
	r.send(t, chat{channel: "ctl", user: "alice", text: "!ping"})
	r.send(t, chat{channel: "ctl", user: "alice", text: "?ping"})
	r.settle(t)
	invs = r.commands(t)
	if len(invs) != 2 || invs[1].Event.Text != "?ping" || invs[1].Community.Prefix != "?" {
		t.Fatalf("after prefix change: %d invocations", len(invs))
	}
	// A prefix of three characters that are more than one byte each.
	community.Prefix = "€€€"
	if err := r.store.UpdateCommunity(ctx, "owner", community); err != nil {
		t.Fatal(err)
	}
	notify(t, r.env.Conn.NC, schemas.ControlCommunity(community.ID))
	r.send(t, chat{channel: "ctl", user: "alice", text: "€€€ping"})
	r.settle(t)
	if invs = r.commands(t); len(invs) != 3 || invs[2].Event.Text != "€€€ping" {
		t.Fatalf("a multi-byte prefix never matched: %d invocations", len(invs))
	}
	community.Prefix = "?"
	if err := r.store.UpdateCommunity(ctx, "owner", community); err != nil {
		t.Fatal(err)
	}
	notify(t, r.env.Conn.NC, schemas.ControlCommunity(community.ID))

	// A module registered at run time is routed after a registry notice.
	m := schemas.Manifest{Name: "late", Version: "1.0.0", DefaultEnabled: true,
		Commands: []schemas.CommandSpec{{Name: "late", Permission: "everyone"}}}
	if _, err := r.store.UpsertManifest(ctx, m, false); err != nil {
		t.Fatal(err)
	}
	notify(t, r.env.Conn.NC, schemas.ControlRegistry)
	r.send(t, chat{channel: "ctl", user: "alice", text: "?late"})
	r.settle(t)
	invs = r.commands(t)
	if len(invs) != 4 || invs[3].Module != "late" {
		t.Fatalf("runtime module not routed: %d invocations", len(invs))
	}
}

func notify(t testing.TB, nc *nats.Conn, subject string) {
	t.Helper()
	if err := nc.Publish(subject, nil); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the notice travels to the router's own connection
}

func TestMalformedAndInvalidEventsAreDeadLettered(t *testing.T) {
	r := newRig(t)
	r.start(t, nil)
	if _, err := r.env.Conn.JS.Publish(ctx, "wb.events.console.demo.chat", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	bad := &schemas.Event{Version: 1, ID: "nope", Platform: "console", Kind: "chat", Channel: schemas.Channel{ID: "demo"}}
	body, _ := json.Marshal(bad)
	if _, err := r.env.Conn.JS.Publish(ctx, "wb.events.console.demo.chat", body); err != nil {
		t.Fatal(err)
	}
	r.send(t, chat{user: "alice", text: "!ping"})
	r.settle(t)
	dls := readAll[schemas.DeadLetter](t, r.env.Conn.JS, schemas.StreamDLQ)
	if len(dls) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dls))
	}
	for _, dl := range dls {
		if dl.Stream != schemas.StreamEvents || dl.Consumer != "router" || dl.Reason == "" {
			t.Fatalf("dead letter = %+v", dl)
		}
	}
	if string(dls[0].Body) != "not json" && string(dls[1].Body) != "not json" {
		t.Fatalf("no dead letter holds the malformed body: %q, %q", dls[0].Body, dls[1].Body)
	}
	if n := len(r.commands(t)); n != 1 {
		t.Fatalf("the good event after the bad ones gave %d invocations", n)
	}
}

func TestProvisionalCommunitiesPerChannel(t *testing.T) {
	r := newRig(t)
	r.start(t, nil)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.send(t, chat{channel: fmt.Sprintf("ch%d", i%3), user: fmt.Sprintf("u%d", i), text: "!ping"})
		}()
	}
	wg.Wait()
	r.settle(t)
	byChannel := map[string]string{}
	for _, inv := range r.invocations(t) {
		if prev, ok := byChannel[inv.Event.Channel.ID]; ok && prev != inv.Community.ID {
			t.Fatalf("channel %s in two communities", inv.Event.Channel.ID)
		}
		byChannel[inv.Event.Channel.ID] = inv.Community.ID
	}
	if len(byChannel) != 3 || byChannel["ch0"] == byChannel["ch1"] {
		t.Fatalf("communities by channel = %v", byChannel)
	}
}

// BenchmarkRoute measures the router's decision for one event, caches warm:
// plain chat and an unknown command must cost next to nothing (no I/O); a
// known command costs its KV round trips.
func BenchmarkRoute(b *testing.B) {
	r := newRig(b)
	rt, err := router.New(r.config(r.env.Conn))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = rt.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	for !rt.Ready() {
		time.Sleep(5 * time.Millisecond)
	}
	// Without the chat trigger, plain chat needs no community at all.
	if _, err := r.store.UpsertManifest(ctx, schemas.Manifest{Name: "rep", Version: "2.0.0", DefaultEnabled: true}, true); err != nil {
		b.Fatal(err)
	}
	notify(b, r.env.Conn.NC, schemas.ControlRegistry)
	for _, bc := range []struct{ name, text string }{
		{"plain chat", "that was a great play"},
		{"unknown command", "!nosuch thing"},
		{"known command", "!ping"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// Spread over channels and users as real chat is, so windows
			// stay the size the default limits allow.
			now := time.Now().UTC()
			event := func(i int) *schemas.Event {
				user := fmt.Sprintf("u%d", i%1000)
				return &schemas.Event{Version: 1, ID: schemas.NewEventID(), Platform: "console", Kind: schemas.KindChat,
					Channel: schemas.Channel{ID: fmt.Sprintf("bench%d", i%50)}, User: schemas.User{ID: user, Login: user},
					Text: bc.text, OccurredAt: now, ReceivedAt: now}
			}
			for i := range 50 { // warm the community caches
				if _, _, err := rt.Route(ctx, event(i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, _, err := rt.Route(ctx, event(i)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func TestAliasesExpandInTheRouter(t *testing.T) {
	r := newRig(t)
	r.start(t, nil)
	r.send(t, chat{channel: "al", user: "alice", text: "!ping"})
	r.settle(t)
	community := r.commands(t)[0].Community.ID
	for name, target := range map[string]string{
		"greet": "ping {1|nobody} from {user}",
		"cnt":   "ping run {count}",
		"boss":  "modonly {args}",
		"hop1":  "hop2 {args}",
		"hop2":  "ping hopped {args}",
		"loopa": "loopb",
		"loopb": "loopa",
		"far":   "#weather {1|berlin}",
	} {
		if err := r.store.AddAlias(ctx, r.store.Pool(), store.Alias{CommunityID: community, Name: name, Target: target, CreatedBy: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	notify(t, r.env.Conn.NC, schemas.ControlCommunity(community))
	last := func() schemas.Invocation {
		invs := r.commands(t)
		return invs[len(invs)-1]
	}
	count := func() int { return len(r.commands(t)) }

	r.send(t, chat{channel: "al", user: "alice", text: "!greet bob"})
	r.settle(t)
	if inv := last(); inv.Command != "ping" || inv.Invoked != "greet" || inv.ArgText != "bob from alice" {
		t.Fatalf("greet → %+v", inv)
	}
	r.send(t, chat{channel: "al", user: "alice", text: "!greet"})
	r.settle(t)
	if inv := last(); inv.ArgText != "nobody from alice" {
		t.Fatalf("default not used: %q", inv.ArgText)
	}
	// The target's permission applies: a member may not reach modonly.
	before := count()
	r.send(t, chat{channel: "al", user: "alice", text: "!boss"})
	r.settle(t)
	if count() != before {
		t.Fatal("an alias let a member run a moderator command")
	}
	r.send(t, chat{channel: "al", user: "mod", roles: []schemas.Role{schemas.RoleModerator}, text: "!boss now"})
	r.settle(t)
	if inv := last(); inv.Command != "modonly" || inv.ArgText != "now" {
		t.Fatalf("boss → %+v", inv)
	}
	// Aliases of aliases, within the depth limit; a loop goes nowhere.
	r.send(t, chat{channel: "al", user: "alice", text: "!hop1 x"})
	r.settle(t)
	if inv := last(); inv.Command != "ping" || inv.ArgText != "hopped x" || inv.Invoked != "hop1" {
		t.Fatalf("hop1 → %+v", inv)
	}
	before = count()
	r.send(t, chat{channel: "al", user: "alice", text: "!loopa"})
	r.settle(t)
	if count() != before {
		t.Fatal("a looping alias was routed")
	}
	// An alias may reach an external module's command.
	r.send(t, chat{channel: "al", user: "alice", text: "!far"})
	r.settle(t)
	if inv := last(); inv.Module != "weather" || inv.ArgText != "berlin" {
		t.Fatalf("far → %+v", inv)
	}
	// {count} counts runs, once per invocation id.
	var evs []*schemas.Event
	for range 3 {
		evs = append(evs, r.send(t, chat{channel: "al", user: "alice", text: "!cnt"}))
		r.settle(t)
	}
	if inv := last(); inv.ArgText != "run 3" {
		t.Fatalf("third cnt → %q", inv.ArgText)
	}
	r.publishEvent(t, evs[1], evs[1].ID+"-again") // a redelivery of the second run
	r.settle(t)
	if inv := last(); inv.ArgText != "run 3" {
		t.Fatalf("a redelivery counted again: %q", inv.ArgText)
	}
	var runs int64
	_ = r.store.Pool().QueryRow(ctx, `SELECT runs FROM aliases WHERE community_id = $1 AND name = 'cnt'`, community).Scan(&runs)
	if runs != 3 {
		t.Fatalf("cnt ran %d times by the count, want 3", runs)
	}
}

func TestLabelsReachInvocations(t *testing.T) {
	r := newRig(t)
	r.start(t, nil)
	r.send(t, chat{channel: "lb", user: "alice", text: "!ping"})
	r.settle(t)
	community := r.commands(t)[0].Community.ID
	if err := r.store.InTx(ctx, func(tx pgx.Tx) error {
		if err := r.store.AddLabel(ctx, tx, community, "console", "Alice", "memories", "test", 5); err != nil {
			return err
		}
		return r.store.AddLabel(ctx, tx, community, "console", "alice", "event-autoapprove", "test", 5)
	}); err != nil {
		t.Fatal(err)
	}
	notify(t, r.env.Conn.NC, schemas.ControlCommunity(community))
	r.send(t, chat{channel: "lb", user: "alice", text: "!ping"})
	r.send(t, chat{channel: "lb", user: "bob", text: "!ping"})
	r.settle(t)
	invs := r.commands(t)
	got := map[string]string{}
	for _, inv := range invs[1:] {
		got[inv.Event.User.ID] = strings.Join(inv.Labels, ",")
	}
	if got["alice"] != "event-autoapprove,memories" || got["bob"] != "" {
		t.Fatalf("labels = %v", got)
	}
}
