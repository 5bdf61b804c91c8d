package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/core"
	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/console"
	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// waitLong bounds every wait for something that should happen. A 2-core
// machine under the race detector, with a leader election in the middle,
// is slow; passing runs stay far below it.
const waitLong = 90 * time.Second

// ackWait is short so that what a killed replica held comes back soon;
// handlers here take milliseconds, and a redelivery of a message still in
// work is harmless by design (same ids, dropped by the duplicate window).
const ackWait = 3 * time.Second

var backoff = []time.Duration{50 * time.Millisecond}

func testLogger() *slog.Logger {
	if os.Getenv("WADDLEBOT_TEST_LOG") == "" {
		return logging.Discard()
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// part is one running replica on its own connection.
type part struct {
	name   string
	conn   *natsx.Conn
	cancel context.CancelFunc
	done   chan struct{}
	killed atomic.Bool
}

// kill ends a replica as a crash would: its connection drops at once, with
// whatever it held unacknowledged, and its context ends.
func (p *part) kill(t testing.TB) {
	t.Helper()
	p.killed.Store(true)
	p.conn.NC.Close()
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(waitLong):
		t.Fatalf("%s did not end within %s of being killed", p.name, waitLong)
	}
}

// harness is one test's pipeline on a cluster.
type harness struct {
	t       *testing.T
	cluster *natstest.Cluster
	dbURL   string
	// st is what the parts use: the database directly, or through a proxy.
	st     *store.Store
	client *natsx.Conn
	cfg    config.Config
	log    *slog.Logger

	mu      sync.Mutex
	parts   []*part
	modules []actions.Module
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	c := natstest.StartCluster(t, 3, nil)
	h := &harness{t: t, cluster: c, dbURL: storetest.URL(t), cfg: config.Defaults(), log: testLogger()}
	h.client = c.Connect(t, "cluster test client")
	return h
}

func openStore(t testing.TB, dsn string, log *slog.Logger) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	st, err := store.Open(ctx, store.Config{URL: dsn, MaxConns: 8, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// run starts a replica and waits until it is ready. A replica that stops
// on its own before the test ends fails the test; a killed one may not.
func (h *harness) run(name string, conn *natsx.Conn, run func(context.Context) error, ready func() bool) *part {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &part{name: name, conn: conn, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		if err := run(ctx); err != nil && ctx.Err() == nil && !p.killed.Load() {
			h.t.Errorf("%s stopped: %v", name, err)
		}
	}()
	h.t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(waitLong):
			h.t.Errorf("%s did not stop within %s", name, waitLong)
		}
	})
	natstest.Eventually(h.t, waitLong, name+" to be ready", ready)
	h.mu.Lock()
	h.parts = append(h.parts, p)
	h.mu.Unlock()
	return p
}

func (h *harness) startWorker(m actions.Module) *part {
	h.t.Helper()
	conn := h.cluster.Connect(h.t, "worker "+m.Manifest.Name)
	w, err := actions.NewWorker(actions.Config{
		Module: m, Conn: conn, Store: h.st, Concurrency: 16, MaxFailures: 3, AckWait: ackWait,
		HandlerTimeout: 30 * time.Second, OutboxSweep: time.Second, HeartbeatEvery: time.Second,
		Backoff: backoff, Logger: h.log,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return h.run("worker "+m.Manifest.Name, conn, w.Run, w.Ready)
}

func (h *harness) startRouter() (*part, *router.Router) {
	h.t.Helper()
	conn := h.cluster.Connect(h.t, "router")
	r, err := router.New(router.Config{
		Conn: conn, Store: h.st, Concurrency: 32, MaxFailures: 3, AckWait: ackWait, Backoff: backoff,
		// Far above the load, so nothing here is refused by a limit.
		UserRateLimit: 1000, UserRateWindow: time.Minute, ChannelRateLimit: 10000, ChannelRateWindow: time.Minute,
		InvocationDeadline: 5 * time.Minute, CacheTTL: time.Minute, AliasDepth: h.cfg.AliasDepth,
		Logger: h.log,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return h.run("router", conn, r.Run, r.Ready), r
}

func (h *harness) startConsole() *part {
	h.t.Helper()
	conn := h.cluster.Connect(h.t, "console")
	c := console.New(console.Config{Publisher: collectors.NewPublisher(conn.JS, h.log), Conn: conn, Logger: h.log})
	s, err := collectors.NewSender(collectors.SenderConfig{
		Platform: c, Conn: conn, Budget: 0, Concurrency: 16, MaxFailures: 3, AckWait: ackWait,
		Backoff: backoff, Logger: h.log,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return h.run("console sender", conn, s.Run, s.Ready)
}

// startAll runs core (and modules) first, so their manifests are in the
// catalogue before the router reads it, then the router and the sender.
func (h *harness) startAll(modules ...actions.Module) {
	h.t.Helper()
	if h.st == nil {
		h.st = openStore(h.t, h.dbURL, h.log)
	}
	h.modules = append([]actions.Module{core.New(core.Config{Catalogue: h.st, Version: "cluster-test"})}, modules...)
	for _, m := range h.modules {
		h.startWorker(m)
	}
	h.startRouter()
	h.startConsole()
}

// post publishes one console command as the console collector does,
// retrying through elections with the same event id: the duplicate window
// drops a copy whose first publish did land.
func (h *harness) post(channel, user, text string) *schemas.Event {
	h.t.Helper()
	ev, err := console.NewEvent(console.Message{Channel: channel, User: user, Text: text}, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	pub := collectors.NewPublisher(h.client.JS, h.log)
	deadline := time.Now().Add(waitLong)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := pub.Publish(ctx, ev)
		cancel()
		if err == nil {
			return ev
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("publishing %q on %s as %s: %v", text, channel, user, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// load is a burst of !ping commands from many users on many channels.
type load struct {
	events []*schemas.Event
}

// postPings posts n pings, each from its own user on one of channels
// channels, calling mid (if set) after the first half.
func (h *harness) postPings(prefix string, n, channels int, mid func()) *load {
	h.t.Helper()
	l := &load{}
	for i := range n {
		if i == n/2 && mid != nil {
			mid()
		}
		l.events = append(l.events, h.post(fmt.Sprintf("%s-ch%d", prefix, i%channels), fmt.Sprintf("%s-u%d", prefix, i), "!ping"))
	}
	return l
}

// replyCounts counts the replies in WB_REPLIES by event id and by reply id.
func (h *harness) replyCounts() (byEvent, byID map[string]int) {
	h.t.Helper()
	byEvent, byID = map[string]int{}, map[string]int{}
	for _, r := range natstest.Decode[schemas.Reply](h.t, h.client.JS, schemas.StreamReplies, "") {
		byEvent[r.EventID]++
		byID[r.ID]++
	}
	return byEvent, byID
}

// checkExactlyOnce waits until every event of l has a reply, lets the
// pipeline settle, and then checks that each got exactly one, "pong", with
// the contract's id; that nothing was dead-lettered; and that every
// committed result was marked sent.
func (h *harness) checkExactlyOnce(l *load) {
	h.t.Helper()
	start := time.Now()
	natstest.Eventually(h.t, waitLong, "a reply to every event", func() bool {
		// A dead letter means an event will never be answered: say why now
		// rather than time out.
		if dls := natstest.Decode[schemas.DeadLetter](h.t, h.client.JS, schemas.StreamDLQ, ""); len(dls) != 0 {
			h.t.Fatalf("%d dead letters, the first: %s on %s: %s", len(dls), dls[0].Stream, dls[0].Subject, dls[0].Reason)
		}
		byEvent, _ := h.replyCounts()
		for _, ev := range l.events {
			if byEvent[ev.ID] == 0 {
				return false
			}
		}
		return true
	})
	h.settle()
	h.t.Logf("all %d answered %s after the last was posted", len(l.events), time.Since(start).Round(time.Millisecond))
	byEvent, byID := h.replyCounts()
	answered := 0
	for _, ev := range l.events {
		n := byEvent[ev.ID]
		want := schemas.ReplyID(schemas.InvocationID(ev.ID, core.Name, schemas.RouteCommand+"ping"), 1)
		switch {
		case n == 1 && byID[want] == 1:
			answered++
		case n == 0:
			h.t.Errorf("event %s (%s on %s) was lost: no reply", ev.ID, ev.User.Login, ev.Channel.ID)
		default:
			h.t.Errorf("event %s (%s on %s): %d replies (%d with id %s), want exactly one", ev.ID, ev.User.Login, ev.Channel.ID, n, byID[want], want)
		}
	}
	for id, n := range byID {
		if n != 1 {
			h.t.Errorf("reply %s is in WB_REPLIES %d times", id, n)
		}
	}
	if dls := natstest.Decode[schemas.DeadLetter](h.t, h.client.JS, schemas.StreamDLQ, ""); len(dls) != 0 {
		h.t.Errorf("%d dead letters, the first: %s on %s: %s", len(dls), dls[0].Stream, dls[0].Subject, dls[0].Reason)
	}
	h.t.Logf("%d of %d events answered exactly once", answered, len(l.events))
}

// settle waits until the router, every module and the console sender have
// acknowledged everything in their streams.
func (h *harness) settle() {
	h.t.Helper()
	type c struct{ stream, durable string }
	consumers := []c{{schemas.StreamEvents, streams.ConsumerRouter},
		{schemas.StreamReplies, streams.SenderConsumer(schemas.PlatformConsole)}}
	for _, m := range h.modules {
		consumers = append(consumers, c{schemas.StreamCommands, m.Manifest.Name})
	}
	natstest.Eventually(h.t, waitLong, "the pipeline to settle", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, c := range consumers {
			if ok, err := streams.CaughtUp(ctx, h.client.JS, c.stream, c.durable); err != nil || !ok {
				return false
			}
		}
		return true
	})
}

// count runs a count query on the database directly.
func (h *harness) count(db *store.Store, query string, args ...any) int {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	var n int
	if err := db.Pool().QueryRow(ctx, query, args...).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// ---- a module with writes ----

// tallyModule inserts a row per invocation in the outbox transaction, so a
// run twice would show as two rows.
func tallyModule() actions.Module {
	return actions.Module{
		Manifest: schemas.Manifest{Name: "tally", Version: "1.0.0", Description: "cluster test module with writes",
			DefaultEnabled: true, Writes: true,
			Commands: []schemas.CommandSpec{{Name: "tally", Usage: "tally", Permission: schemas.PermissionEveryone}}},
		Handle: func(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
			if _, err := tx.Exec(ctx, `INSERT INTO tally_effects (invocation_id) VALUES ($1)`, inv.ID); err != nil {
				return nil, fmt.Errorf("tally: unable to record: %w", err)
			}
			return &schemas.Result{Replies: []schemas.ReplyText{{Text: "tallied"}}}, nil
		},
	}
}

// ---- a PostgreSQL that can go away ----
