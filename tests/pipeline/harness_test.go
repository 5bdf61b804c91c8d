package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/actions/core"
	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/console"
	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/dlq"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

const (
	// waitLong bounds every wait for something that should happen; passing
	// runs never come near it.
	waitLong = 20 * time.Second
	// maxFailures is the handler-failure limit of every part.
	maxFailures = 3
)

// backoff is every part's retry delay: short, so a failure that is wrongly
// counted reaches the dead-letter stream within a few tens of milliseconds.
var backoff = []time.Duration{20 * time.Millisecond}

// testLogger discards, unless WADDLEBOT_TEST_LOG is set: then the parts log
// to stderr at debug level.
func testLogger() *slog.Logger {
	if os.Getenv("WADDLEBOT_TEST_LOG") == "" {
		return logging.Discard()
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// part is one running part (router, worker, sender) on its own connection.
type part struct {
	name   string
	conn   *natsx.Conn
	ready  func() bool
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// stop ends the part, waits for it to drain and returns what Run returned.
func (p *part) stop(t testing.TB) error {
	t.Helper()
	p.cancel()
	select {
	case <-p.done:
		return p.err
	case <-time.After(waitLong):
		t.Fatalf("%s did not stop within %s", p.name, waitLong)
		return nil
	}
}

// harness is one test's pipeline: its own NATS server and database.
type harness struct {
	t   *testing.T
	env *natstest.Env
	// dbURL is the test database; db connects to it directly, for the
	// test's own queries. st is the store the parts use: db, unless a test
	// puts something between the parts and PostgreSQL.
	dbURL string
	db    *store.Store
	st    *store.Store
	// client is the test's own connection, as `waddlebot say` or the nats
	// CLI would have one.
	client *natsx.Conn
	cfg    config.Config
	log    *slog.Logger

	// tuneWorker, when set before a worker starts, adjusts its configuration.
	tuneWorker func(*actions.Config)

	console *console.Console
	router  *router.Router
	sender  *collectors.Sender
	parts   map[string]*part // by part name: "router", "console-sender", module name
	workers map[string]*actions.Worker
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	env := natstest.Start(t, nil)
	dbURL := storetest.URL(t)
	log := testLogger()
	db := openStore(t, dbURL, log)
	h := &harness{t: t, env: env, dbURL: dbURL, db: db, st: db, cfg: config.Defaults(), log: log,
		parts: map[string]*part{}, workers: map[string]*actions.Worker{}}
	h.client = h.connect("client")
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

// connect opens a NATS connection of its own for one part, as a separate
// process would have, closed when the test ends.
func (h *harness) connect(name string) *natsx.Conn {
	h.t.Helper()
	conn, err := natsx.Connect(context.Background(), natsx.ConnectOptions{URL: h.env.Server.URL(),
		Name: "pipeline test " + name, Logger: h.log})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { conn.NC.Close() })
	return conn
}

// run starts a part and waits until it is ready; it stops when the test ends.
func (h *harness) run(name string, conn *natsx.Conn, run func(context.Context) error, ready func() bool) *part {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &part{name: name, conn: conn, ready: ready, cancel: cancel, done: make(chan struct{})}
	go func() { p.err = run(ctx); close(p.done) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(waitLong):
			h.t.Errorf("%s did not stop within %s", name, waitLong)
		}
	})
	deadline := time.Now().Add(waitLong)
	for !ready() {
		select {
		case <-p.done:
			h.t.Fatalf("%s stopped before it was ready: %v", name, p.err)
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s did not become ready within %s", name, waitLong)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.parts[name] = p
	return p
}

// startWorker runs a module's worker on a connection of its own. A worker
// started for a module that had one replaces it in h.workers (the old one
// keeps running until stopped).
func (h *harness) startWorker(m actions.Module) *part {
	h.t.Helper()
	name := m.Manifest.Name
	conn := h.connect(name)
	cfg := actions.Config{
		Module: m, Conn: conn, Store: h.st,
		Concurrency: 16, MaxFailures: maxFailures, AckWait: h.cfg.ConsumerAckWait,
		HandlerTimeout: h.cfg.HandlerTimeout, OutboxSweep: h.cfg.OutboxSweep,
		HeartbeatEvery: time.Second, Backoff: backoff, Logger: h.log,
	}
	if h.tuneWorker != nil {
		h.tuneWorker(&cfg)
	}
	w, err := actions.NewWorker(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.workers[name] = w
	return h.run(name, conn, w.Run, w.Ready)
}

// startRouter runs the router with the default limits and windows.
func (h *harness) startRouter() *part {
	h.t.Helper()
	conn := h.connect("router")
	r, err := router.New(router.Config{
		Conn: conn, Store: h.st,
		Concurrency: 32, MaxFailures: maxFailures, AckWait: h.cfg.ConsumerAckWait, Backoff: backoff,
		UserRateLimit: h.cfg.UserRateLimit, UserRateWindow: h.cfg.UserRateWindow,
		ChannelRateLimit: h.cfg.ChannelRateLimit, ChannelRateWindow: h.cfg.ChannelRateWindow,
		InvocationDeadline: h.cfg.InvocationDeadline, CacheTTL: h.cfg.CacheTTL,
		Logger: h.log,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.router = r
	return h.run("router", conn, r.Run, r.Ready)
}

// startConsole runs the console platform and its sender, as addConsole in
// cmd/waddlebot does.
func (h *harness) startConsole() *part {
	h.t.Helper()
	conn := h.connect("console")
	h.console = console.New(console.Config{Publisher: collectors.NewPublisher(conn.JS, h.log), Conn: conn, Logger: h.log})
	s, err := collectors.NewSender(collectors.SenderConfig{
		Platform: h.console, Conn: conn, Budget: h.cfg.ConsoleSendBudget, Window: h.cfg.SendWindow,
		Concurrency: 16, MaxFailures: maxFailures, AckWait: h.cfg.ConsumerAckWait, Backoff: backoff,
		Logger: h.log,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.sender = s
	return h.run(streams.SenderConsumer(schemas.PlatformConsole), conn, s.Run, s.Ready)
}

// startAll runs the whole pipeline: the workers first (core and the given
// modules, so their manifests are in the catalogue before the router reads
// it), then the router, then the console sender.
func (h *harness) startAll(modules ...actions.Module) {
	h.t.Helper()
	h.startWorker(core.New(core.Config{Catalogue: h.st, Version: "pipeline-test"}))
	for _, m := range modules {
		h.startWorker(m)
	}
	h.startRouter()
	h.startConsole()
}

// ---- talking to the pipeline ----

func bg() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), waitLong)
}

// say types text into the console as user on channel and waits for the
// replies, as `waddlebot say` does.
func (h *harness) say(channel, user, text string) (*schemas.Event, []schemas.Reply) {
	h.t.Helper()
	ctx, cancel := bg()
	defer cancel()
	ev, replies, err := console.SayAndWait(ctx, h.client, console.Message{Channel: channel, User: user, Text: text},
		console.SayOptions{Wait: 10 * time.Second, Quiet: 150 * time.Millisecond})
	if err != nil {
		h.t.Fatalf("say %q on %s as %s: %v", text, channel, user, err)
	}
	return ev, replies
}

// post types text into the console without waiting for a reply.
func (h *harness) post(channel, user, text string) *schemas.Event {
	h.t.Helper()
	ctx, cancel := bg()
	defer cancel()
	ev, _, err := console.SayAndWait(ctx, h.client, console.Message{Channel: channel, User: user, Text: text},
		console.SayOptions{NoWait: true})
	if err != nil {
		h.t.Fatalf("post %q on %s as %s: %v", text, channel, user, err)
	}
	return ev
}

// expectPong says !ping and checks the one reply: "pong", with the id the
// contract gives it.
func (h *harness) expectPong(channel, user string) *schemas.Event {
	h.t.Helper()
	ev, replies := h.say(channel, user, "!ping")
	if len(replies) != 1 {
		h.t.Fatalf("!ping from %s on %s: %d replies, want 1: %+v", user, channel, len(replies), replies)
	}
	if r := replies[0]; r.Text != "pong" || r.ID != pingReplyID(ev.ID) {
		h.t.Fatalf("!ping from %s on %s: reply %q with id %s, want \"pong\" with id %s", user, channel, r.Text, r.ID, pingReplyID(ev.ID))
	}
	return ev
}

// commandReplyID is the id of the first reply to a command event.
func commandReplyID(eventID, module, command string) string {
	return schemas.ReplyID(schemas.InvocationID(eventID, module, schemas.RouteCommand+command), 1)
}

func pingReplyID(eventID string) string { return commandReplyID(eventID, core.Name, "ping") }

// chatEvent is a console chat message as the console collector makes it.
func chatEvent(t testing.TB, channel, user, text string) *schemas.Event {
	t.Helper()
	ev, err := console.NewEvent(console.Message{Channel: channel, User: user, Text: text}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// publish puts raw bytes on a subject, with a Nats-Msg-Id when msgID is set.
func (h *harness) publish(subject string, body []byte, msgID string) *jetstream.PubAck {
	h.t.Helper()
	ctx, cancel := bg()
	defer cancel()
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := h.client.JS.Publish(ctx, subject, body, opts...)
	if err != nil {
		h.t.Fatalf("publish to %s: %v", subject, err)
	}
	return ack
}

// publishEvent publishes an event to its subject under msgID.
func (h *harness) publishEvent(ev *schemas.Event, msgID string) *jetstream.PubAck {
	h.t.Helper()
	return h.publish(ev.Subject(), mustJSON(h.t, ev), msgID)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ---- reading what the pipeline did ----

// replies returns the replies in WB_REPLIES with id.
func (h *harness) replies(id string) []actionstest.Reply {
	h.t.Helper()
	var out []actionstest.Reply
	for _, r := range actionstest.Replies(h.t, h.client.JS) {
		if r.ID == id {
			out = append(out, r)
		}
	}
	return out
}

// repliesToEvent returns the replies in WB_REPLIES to one event.
func (h *harness) repliesToEvent(eventID string) []actionstest.Reply {
	h.t.Helper()
	var out []actionstest.Reply
	for _, r := range actionstest.Replies(h.t, h.client.JS) {
		if r.EventID == eventID {
			out = append(out, r)
		}
	}
	return out
}

// deadLetters lists the dead letters of one stream ("" for all) the way
// `waddlebot dlq list` does.
func (h *harness) deadLetters(stream string) []dlq.Entry {
	h.t.Helper()
	ctx, cancel := bg()
	defer cancel()
	entries, err := dlq.List(ctx, h.client.JS, stream, 0)
	if err != nil {
		h.t.Fatalf("dlq list: %v", err)
	}
	return entries
}

// waitDeadLetters waits until stream has at least n dead letters.
func (h *harness) waitDeadLetters(stream string, n int) []dlq.Entry {
	h.t.Helper()
	var entries []dlq.Entry
	eventually(h.t, fmt.Sprintf("%d dead letters from %s", n, stream), func() bool {
		entries = h.deadLetters(stream)
		return len(entries) >= n
	})
	return entries
}

// replay replays a dead letter the way `waddlebot dlq replay` does.
func (h *harness) replay(seq uint64, remove bool) string {
	h.t.Helper()
	ctx, cancel := bg()
	defer cancel()
	id, err := dlq.Replay(ctx, h.client.JS, seq, remove)
	if err != nil {
		h.t.Fatalf("dlq replay %d: %v", seq, err)
	}
	return id
}

// messages returns the messages of a stream on subjects matching filter.
func (h *harness) messages(stream, filter string) []*jetstream.RawStreamMsg {
	h.t.Helper()
	return actionstest.Messages(h.t, h.client.JS, stream, filter)
}

// consumerInfo reads a durable consumer's state.
func (h *harness) consumerInfo(stream, durable string) *jetstream.ConsumerInfo {
	h.t.Helper()
	ctx, cancel := bg()
	defer cancel()
	c, err := h.client.JS.Consumer(ctx, stream, durable)
	if err != nil {
		h.t.Fatalf("consumer %s on %s: %v", durable, stream, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		h.t.Fatalf("consumer %s on %s: %v", durable, stream, err)
	}
	return info
}

// settle waits until every part has finished everything published so far.
// It checks the consumers in pipeline order in one pass: each part acks a
// message only after publishing what it causes, so when the router is
// settled every invocation is in WB_COMMANDS, and so on down the line.
func (h *harness) settle() {
	h.t.Helper()
	eventually(h.t, "the pipeline to settle", func() bool {
		if h.router != nil && !actionstest.Settled(h.t, h.client.JS, schemas.StreamEvents, streams.ConsumerRouter) {
			return false
		}
		for name := range h.workers {
			if !actionstest.Settled(h.t, h.client.JS, schemas.StreamCommands, name) {
				return false
			}
		}
		return h.sender == nil ||
			actionstest.Settled(h.t, h.client.JS, schemas.StreamReplies, streams.SenderConsumer(schemas.PlatformConsole))
	})
}

// count runs a count query on the test database.
func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	ctx, cancel := bg()
	defer cancel()
	var n int
	if err := h.db.Pool().QueryRow(ctx, query, args...).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// exec runs a statement on the test database.
func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	ctx, cancel := bg()
	defer cancel()
	if _, err := h.db.Pool().Exec(ctx, sql, args...); err != nil {
		h.t.Fatalf("%s: %v", sql, err)
	}
}

// eventually polls cond until it holds, failing the test after waitLong.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	natstest.Eventually(t, waitLong, what, cond)
}

// ---- what the console sender delivered ----

// deliveries records what the console sender delivered to one channel: what
// a user watching the dev chat page would have seen.
type deliveries struct {
	mu   sync.Mutex
	byID map[string]int
	all  []schemas.Reply
}

// watchConsole starts recording the replies the console sender delivers to
// channel.
func (h *harness) watchConsole(channel string) *deliveries {
	h.t.Helper()
	ch, cancel := h.console.Subscribe(channel)
	d := &deliveries{byID: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := range ch {
			d.mu.Lock()
			d.byID[r.ID]++
			d.all = append(d.all, r)
			d.mu.Unlock()
		}
	}()
	h.t.Cleanup(func() { cancel(); <-done })
	return d
}

// count is how many times the reply with id was delivered.
func (d *deliveries) count(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.byID[id]
}

// text is the text of the delivered reply with id.
func (d *deliveries) text(id string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.all {
		if r.ID == id {
			return r.Text
		}
	}
	return ""
}

// ---- a module with an effect ----

// effectModule is a test module with writes: each run inserts a row into
// <name>_effects in the outbox transaction and answers "<word> N", N being
// the rows the table holds with this run's. While broken is set, it inserts
// its row and then fails, so the row must roll back.
type effectModule struct {
	name, word string
	calls      atomic.Int32
	broken     atomic.Bool
	// onCall, when set before the worker starts, runs at the start of every
	// call with the call's number (from 1).
	onCall func(n int32, inv *schemas.Invocation)
}

func newEffectModule(h *harness, name, word string) *effectModule {
	h.t.Helper()
	h.exec(fmt.Sprintf(`CREATE TABLE %s_effects (invocation_id uuid NOT NULL, at timestamptz NOT NULL DEFAULT now())`, name))
	return &effectModule{name: name, word: word}
}

func (e *effectModule) module() actions.Module {
	return actions.Module{
		Manifest: schemas.Manifest{Name: e.name, Version: "1.0.0", Description: "pipeline test module with writes",
			DefaultEnabled: true, Writes: true,
			Commands: []schemas.CommandSpec{{Name: e.name, Usage: e.name, Permission: schemas.PermissionEveryone}}},
		Handle: e.handle,
	}
}

func (e *effectModule) handle(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
	n := e.calls.Add(1)
	if e.onCall != nil {
		e.onCall(n, inv)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s_effects (invocation_id) VALUES ($1)`, e.name), inv.ID); err != nil {
		return nil, err
	}
	if e.broken.Load() {
		return nil, fmt.Errorf("%s: its backend is broken (call %d)", e.name, n)
	}
	var rows int
	if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s_effects`, e.name)).Scan(&rows); err != nil {
		return nil, err
	}
	return &schemas.Result{Replies: []schemas.ReplyText{{Text: fmt.Sprintf("%s %d", e.word, rows)}}}, nil
}

// rows counts the effect rows of one invocation ("" for all).
func (e *effectModule) rows(h *harness, invocationID string) int {
	h.t.Helper()
	if invocationID == "" {
		return h.count(fmt.Sprintf(`SELECT count(*) FROM %s_effects`, e.name))
	}
	return h.count(fmt.Sprintf(`SELECT count(*) FROM %s_effects WHERE invocation_id = $1`, e.name), invocationID)
}

// ---- a PostgreSQL that can go away ----

// ---- small checks ----

func headerID(h map[string][]string) string {
	if ids := h[jetstream.MsgIDHeader]; len(ids) > 0 {
		return ids[0]
	}
	return ""
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// describe shows dead letters readably in failure messages.
func describe(entries ...dlq.Entry) string {
	if len(entries) == 0 {
		return "none"
	}
	var b strings.Builder
	for _, e := range entries {
		d := e.Letter
		fmt.Fprintf(&b, "\n\t#%d from %s/%s seq %d (%s, id %q): failures %d, reason %q, body %.160q",
			e.Seq, d.Stream, d.Consumer, d.Sequence, d.Subject, headerID(d.Headers), d.Failures, d.Reason, d.Body)
	}
	return b.String()
}
