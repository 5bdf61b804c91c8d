package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

const waitLong = 20 * time.Second

// running is a worker started by a test.
type running struct {
	*Worker
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // what Run returned
}

// stop ends the worker and returns what Run returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(waitLong):
		t.Fatal("worker did not stop")
		return nil
	}
}

func testConfig(m Module, conn *natsx.Conn, st *store.Store) Config {
	return Config{
		Module:         m,
		Conn:           conn,
		Store:          st,
		Concurrency:    8,
		MaxFailures:    3,
		Backoff:        []time.Duration{10 * time.Millisecond},
		HeartbeatEvery: time.Second,
		// Far off unless a test wants it, so replays in tests come from redelivery.
		OutboxSweep: time.Hour,
		Logger:      logging.Discard(),
	}
}

func newWorker(t *testing.T, cfg Config) *Worker {
	t.Helper()
	w, err := NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func start(t *testing.T, w *Worker) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Worker: w, cancel: cancel, done: make(chan struct{})}
	go func() { r.err = w.Run(ctx); close(r.done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(waitLong):
			t.Error("worker did not stop")
		}
	})
	actionstest.Eventually(t, waitLong, "the worker to be ready", w.Ready)
	return r
}

func manifest(name string, writes bool, commands ...string) schemas.Manifest {
	m := schemas.Manifest{Name: name, Version: "1.0.0", DefaultEnabled: true, Writes: writes}
	for _, c := range commands {
		m.Commands = append(m.Commands, schemas.CommandSpec{Name: c, Permission: schemas.PermissionEveryone})
	}
	return m
}

func reply(text string) *schemas.Result {
	return &schemas.Result{Replies: []schemas.ReplyText{{Text: text}}}
}

// counterModule writes a row per run into test_counter and answers with the
// number of rows: a second run of one invocation would show as "count 2".
func counterModule(t *testing.T, st *store.Store, name string, runs *atomic.Int32) Module {
	t.Helper()
	if _, err := st.Pool().Exec(context.Background(),
		`CREATE TABLE IF NOT EXISTS test_counter (invocation_id uuid NOT NULL, at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	return Module{Manifest: manifest(name, true, "count"), Handle: func(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
		runs.Add(1)
		if _, err := tx.Exec(ctx, `INSERT INTO test_counter (invocation_id) VALUES ($1)`, inv.ID); err != nil {
			return nil, err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM test_counter`).Scan(&n); err != nil {
			return nil, err
		}
		return reply(fmt.Sprintf("count %d", n)), nil
	}}
}

func countRows(t *testing.T, st *store.Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNewWorkerChecksItsConfiguration(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	handler := func(context.Context, *schemas.Invocation, pgx.Tx) (*schemas.Result, error) { return nil, nil }
	good := Module{Manifest: manifest("echo", false, "echo"), Handle: handler}
	external := good
	external.Manifest.External = true
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"invalid manifest", func(c *Config) { c.Module.Manifest.Name = "Echo!" }, "module name"},
		{"external module", func(c *Config) { c.Module = external }, "external"},
		{"no handler", func(c *Config) { c.Module.Handle = nil }, "no handler"},
		{"no NATS", func(c *Config) { c.Conn = nil }, "NATS"},
		{"no store", func(c *Config) { c.Store = nil }, "store"},
		{"negative concurrency", func(c *Config) { c.Concurrency = -1 }, "negative"},
		{"negative duration", func(c *Config) { c.HandlerTimeout = -time.Second }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(good, env.Conn, st)
			tt.change(&cfg)
			if _, err := NewWorker(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one about %q", err, tt.want)
			}
		})
	}
	w, err := NewWorker(Config{Module: good, Conn: env.Conn, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	c := w.cfg
	if c.Concurrency != 64 || c.MaxFailures != 5 || c.AckWait != 30*time.Second || c.HandlerTimeout != 2*time.Minute ||
		c.OutboxSweep != 5*time.Second || c.HeartbeatEvery != 10*time.Second || c.InstanceID == "" || c.Logger == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
}

// TestCommittedResultIsRepublishedAfterRedelivery is the outbox's reason to
// be: a worker dies after its writes and result committed but before it
// published or acked. The invocation comes again to another worker, which
// must publish the stored result rather than run the handler a second time.
func TestCommittedResultIsRepublishedAfterRedelivery(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	var runs atomic.Int32
	module := counterModule(t, st, "counter", &runs)

	firstConn := env.Connect(t)
	first := newWorker(t, func() Config {
		c := testConfig(module, firstConn, st)
		c.AckWait = 2 * time.Second
		return c
	}())
	committed := make(chan string, 1)
	first.afterCommit = func(inv *schemas.Invocation) {
		// Die the hard way: the connection goes, so nothing is published,
		// acked or nak'ed; the test then stops what is left of the worker.
		firstConn.NC.Close()
		committed <- inv.ID
	}
	firstRun := start(t, first)

	inv := actionstest.Invocation("counter", "count")
	actionstest.Publish(t, env.Conn.JS, inv)
	select {
	case id := <-committed:
		if id != inv.ID {
			t.Fatalf("committed %s, want %s", id, inv.ID)
		}
	case <-time.After(waitLong):
		t.Fatal("the first worker never committed")
	}
	if err := firstRun.stop(t); err != nil {
		t.Fatalf("first worker: %v", err)
	}
	if got := actionstest.RepliesTo(t, env.Conn.JS, inv.ID); len(got) != 0 {
		t.Fatalf("the first worker published %d replies before dying; the test needs it to die first", len(got))
	}
	if n := countRows(t, st, `SELECT count(*) FROM processed_invocations WHERE invocation_id = $1 AND sent_at IS NULL`, inv.ID); n != 1 {
		t.Fatalf("%d unsent outbox rows after the crash, want 1", n)
	}

	secondConn := env.Connect(t)
	second := newWorker(t, func() Config {
		c := testConfig(module, secondConn, st)
		c.AckWait = 2 * time.Second
		return c
	}())
	start(t, second)
	actionstest.Eventually(t, waitLong, "the redelivered invocation's reply", func() bool {
		return len(actionstest.RepliesTo(t, env.Conn.JS, inv.ID)) > 0
	})
	actionstest.Eventually(t, waitLong, "the invocation to be acked", func() bool {
		return actionstest.Settled(t, env.Conn.JS, schemas.StreamCommands, "counter")
	})

	if n := countRows(t, st, `SELECT count(*) FROM test_counter`); n != 1 {
		t.Errorf("test_counter has %d rows, want 1: the handler's writes ran twice", n)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the handler ran %d times, want 1", n)
	}
	replies := actionstest.RepliesTo(t, env.Conn.JS, inv.ID)
	if len(replies) != 1 {
		t.Fatalf("%d replies, want 1", len(replies))
	}
	if r := replies[0]; r.Text != "count 1" || r.ID != schemas.ReplyID(inv.ID, 1) {
		t.Errorf("reply %q with id %s, want \"count 1\" with id %s", r.Text, r.ID, schemas.ReplyID(inv.ID, 1))
	}
	if n := countRows(t, st, `SELECT count(*) FROM processed_invocations WHERE invocation_id = $1 AND sent_at IS NOT NULL`, inv.ID); n != 1 {
		t.Errorf("the outbox row is not marked sent")
	}
	if dls := actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands); len(dls) != 0 {
		t.Errorf("dead letters: %+v", dls)
	}
}

func TestRedeliveredWritesInvocationRepublishesUnderTheSameIDs(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	var runs atomic.Int32
	start(t, newWorker(t, testConfig(counterModule(t, st, "counter", &runs), env.Conn, st)))

	inv := actionstest.Invocation("counter", "count")
	actionstest.Publish(t, env.Conn.JS, inv)
	actionstest.Eventually(t, waitLong, "the first reply", func() bool { return len(actionstest.RepliesTo(t, env.Conn.JS, inv.ID)) == 1 })
	// The router's retry after the duplicate window, or a replay: same invocation, new message.
	actionstest.PublishAs(t, env.Conn.JS, inv, inv.ID+":again")
	actionstest.Eventually(t, waitLong, "both invocations acked", func() bool {
		return actionstest.Settled(t, env.Conn.JS, schemas.StreamCommands, "counter")
	})
	if n := runs.Load(); n != 1 {
		t.Errorf("the handler ran %d times, want 1", n)
	}
	if got := actionstest.RepliesTo(t, env.Conn.JS, inv.ID); len(got) != 1 || got[0].Text != "count 1" {
		t.Errorf("replies %+v, want one \"count 1\"", got)
	}
}

func TestInvalidInvocationsAreDeadLetteredAtOnce(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	var runs atomic.Int32
	echo := Module{Manifest: manifest("echo", false, "echo"), Handle: func(ctx context.Context, inv *schemas.Invocation, _ pgx.Tx) (*schemas.Result, error) {
		runs.Add(1)
		return reply("echo " + strings.Join(inv.Args, " ")), nil
	}}
	start(t, newWorker(t, testConfig(echo, env.Conn, st)))

	ctx := context.Background()
	if _, err := env.Conn.JS.Publish(ctx, "wb.cmd.echo", []byte("this is not JSON")); err != nil {
		t.Fatal(err)
	}
	invalid := actionstest.Invocation("echo", "echo", "x")
	invalid.Deadline = time.Time{}
	actionstest.Publish(t, env.Conn.JS, invalid)
	misrouted := actionstest.Invocation("other", "echo", "x")
	if _, err := env.Conn.JS.Publish(ctx, "wb.cmd.echo", mustJSON(t, misrouted)); err != nil {
		t.Fatal(err)
	}
	good := actionstest.Invocation("echo", "echo", "hello")
	actionstest.Publish(t, env.Conn.JS, good)

	actionstest.Eventually(t, waitLong, "three dead letters", func() bool {
		return len(actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands)) == 3
	})
	// Handlers run side by side, so dead letters come in any order: match
	// each to its message by body.
	reasons := map[string]string{}
	for _, dl := range actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands) {
		if dl.Subject != "wb.cmd.echo" || dl.Consumer != "echo" || dl.Failures != 0 {
			t.Errorf("dead letter: subject %s consumer %s failures %d; want wb.cmd.echo, echo, 0 (at once)", dl.Subject, dl.Consumer, dl.Failures)
		}
		reasons[string(dl.Body)] = dl.Reason
	}
	for body, want := range map[string]string{
		"this is not JSON":             "undecodable",
		string(mustJSON(t, invalid)):   "no deadline",
		string(mustJSON(t, misrouted)): `for module "other" reached module "echo"`,
	} {
		reason, ok := reasons[body]
		if !ok {
			t.Errorf("no dead letter holds %.60s…", body)
			continue
		}
		if !strings.Contains(reason, want) {
			t.Errorf("dead letter reason %q, want one with %q", reason, want)
		}
	}
	actionstest.Eventually(t, waitLong, "the good invocation's reply", func() bool {
		return len(actionstest.RepliesTo(t, env.Conn.JS, good.ID)) == 1
	})
	actionstest.Eventually(t, waitLong, "everything settled", func() bool {
		return actionstest.Settled(t, env.Conn.JS, schemas.StreamCommands, "echo")
	})
	if n := runs.Load(); n != 1 {
		t.Errorf("the handler ran %d times; invalid invocations must never reach it", n)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestFailingHandlerIsDeadLetteredWhileOthersAreServed(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	var failures atomic.Int32
	flaky := Module{Manifest: manifest("flaky", false, "ok", "fail"), Handle: func(ctx context.Context, inv *schemas.Invocation, _ pgx.Tx) (*schemas.Result, error) {
		if inv.Command == "fail" {
			failures.Add(1)
			return nil, errors.New("boom: the module broke")
		}
		return reply("fine"), nil
	}}
	cfg := testConfig(flaky, env.Conn, st)
	cfg.MaxFailures = 3
	// Long enough that the good invocations finish while the bad one waits.
	cfg.Backoff = []time.Duration{750 * time.Millisecond}
	start(t, newWorker(t, cfg))

	bad := actionstest.Invocation("flaky", "fail")
	actionstest.Publish(t, env.Conn.JS, bad)
	var good []*schemas.Invocation
	for range 5 {
		inv := actionstest.Invocation("flaky", "ok")
		good = append(good, inv)
		actionstest.Publish(t, env.Conn.JS, inv)
	}
	actionstest.Eventually(t, waitLong, "the good invocations' replies", func() bool {
		for _, inv := range good {
			if len(actionstest.RepliesTo(t, env.Conn.JS, inv.ID)) != 1 {
				return false
			}
		}
		return true
	})
	if dls := actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands); len(dls) != 0 {
		t.Fatalf("dead-lettered before the good invocations were served: %+v", dls)
	}
	actionstest.Eventually(t, waitLong, "the failing invocation's dead letter", func() bool {
		return len(actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands)) == 1
	})
	dl := actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands)[0]
	if dl.Failures != 3 || !strings.Contains(dl.Reason, "boom: the module broke") || dl.Subject != "wb.cmd.flaky" {
		t.Errorf("dead letter: failures %d reason %q subject %s", dl.Failures, dl.Reason, dl.Subject)
	}
	if n := failures.Load(); n != 3 {
		t.Errorf("the failing handler ran %d times, want 3", n)
	}
	if got := actionstest.RepliesTo(t, env.Conn.JS, bad.ID); len(got) != 0 {
		t.Errorf("the failed invocation has replies: %+v", got)
	}
}

func TestJunkResultIsDeadLetteredAndRolledBack(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	var runs atomic.Int32
	counter := counterModule(t, st, "junk", &runs)
	writeThenJunk := counter.Handle
	counter.Handle = func(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
		if _, err := writeThenJunk(ctx, inv, tx); err != nil {
			return nil, err
		}
		return reply("   "), nil
	}
	start(t, newWorker(t, testConfig(counter, env.Conn, st)))

	inv := actionstest.Invocation("junk", "count")
	actionstest.Publish(t, env.Conn.JS, inv)
	actionstest.Eventually(t, waitLong, "the dead letter", func() bool {
		return len(actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands)) == 1
	})
	dl := actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands)[0]
	if dl.Failures != 0 || !strings.Contains(dl.Reason, "reply text is empty") {
		t.Errorf("dead letter: failures %d reason %q; want it at once, saying why", dl.Failures, dl.Reason)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the handler ran %d times, want 1", n)
	}
	if n := countRows(t, st, `SELECT count(*) FROM test_counter`); n != 0 {
		t.Errorf("the handler's write survived a refused result")
	}
	if n := countRows(t, st, `SELECT count(*) FROM processed_invocations`); n != 0 {
		t.Errorf("an outbox row was committed for a refused result")
	}
}

func TestSweeperPublishesCommittedButUnsentResults(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	var runs atomic.Int32
	module := counterModule(t, st, "swept", &runs)

	// A worker committed this and died before publishing; the invocation
	// itself will never come again.
	inv := actionstest.Invocation("swept", "count")
	msgs, err := Outbound(inv, reply("from the outbox"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.RunOnce(context.Background(), inv.ID, "swept", inv.Community.ID,
		func(context.Context, pgx.Tx) ([]store.OutMessage, error) { return msgs, nil }); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(module, env.Conn, st)
	cfg.OutboxSweep = 100 * time.Millisecond
	start(t, newWorker(t, cfg))
	actionstest.Eventually(t, waitLong, "the swept reply", func() bool {
		return len(actionstest.RepliesTo(t, env.Conn.JS, inv.ID)) == 1
	})
	r := actionstest.RepliesTo(t, env.Conn.JS, inv.ID)[0]
	if r.Text != "from the outbox" || r.ID != schemas.ReplyID(inv.ID, 1) {
		t.Errorf("swept reply %q id %s", r.Text, r.ID)
	}
	actionstest.Eventually(t, waitLong, "the row marked sent", func() bool {
		return countRows(t, st, `SELECT count(*) FROM processed_invocations WHERE sent_at IS NOT NULL`) == 1
	})
	if n := runs.Load(); n != 0 {
		t.Errorf("the handler ran %d times; the sweeper must only publish", n)
	}
}

func TestPostgresOutagePausesWithoutDeadLetters(t *testing.T) {
	env := natstest.Start(t, nil)
	proxy, viaProxy := storetest.StartProxy(t, storetest.URL(t))
	st, err := store.Open(context.Background(), store.Config{URL: viaProxy, MaxConns: 8, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	var runs atomic.Int32
	cfg := testConfig(counterModule(t, st, "counter", &runs), env.Conn, st)
	w := start(t, newWorker(t, cfg))

	first := actionstest.Invocation("counter", "count")
	actionstest.Publish(t, env.Conn.JS, first)
	actionstest.Eventually(t, waitLong, "a reply while PostgreSQL is up", func() bool {
		return len(actionstest.RepliesTo(t, env.Conn.JS, first.ID)) == 1
	})

	proxy.Down()
	var during []*schemas.Invocation
	for range 5 {
		inv := actionstest.Invocation("counter", "count")
		during = append(during, inv)
		actionstest.Publish(t, env.Conn.JS, inv)
	}
	actionstest.Eventually(t, waitLong, "the worker to pause", func() bool { return !w.Ready() })
	time.Sleep(time.Second) // a while down, probing
	if dls := actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands); len(dls) != 0 {
		t.Fatalf("dead-lettered during the outage: %+v", dls)
	}
	proxy.Up(t)

	actionstest.Eventually(t, waitLong, "replies after PostgreSQL came back", func() bool {
		for _, inv := range during {
			if len(actionstest.RepliesTo(t, env.Conn.JS, inv.ID)) != 1 {
				return false
			}
		}
		return true
	})
	actionstest.Eventually(t, waitLong, "the worker ready again", w.Ready)
	actionstest.Eventually(t, waitLong, "everything acked", func() bool {
		return actionstest.Settled(t, env.Conn.JS, schemas.StreamCommands, "counter")
	})
	if dls := actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands); len(dls) != 0 {
		t.Errorf("dead letters: %+v", dls)
	}
	if n := countRows(t, st, `SELECT count(*) FROM test_counter`); n != 6 {
		t.Errorf("test_counter has %d rows, want 6", n)
	}
	// Handlers run side by side, so two may read the same count: what
	// matters is one write and one reply per invocation.
	if n := countRows(t, st, `SELECT count(*) FROM (SELECT invocation_id FROM test_counter GROUP BY invocation_id HAVING count(*) > 1) twice`); n != 0 {
		t.Errorf("%d invocations wrote twice", n)
	}
	for _, inv := range append(during, first) {
		if got := actionstest.RepliesTo(t, env.Conn.JS, inv.ID); len(got) != 1 {
			t.Errorf("invocation %s has %d replies, want 1", inv.ID, len(got))
		}
	}
}

// A network error from something other than PostgreSQL (a module's HTTP
// API) must count as a failure: pausing for it would retry the invocation
// forever while PostgreSQL answers every probe.
func TestForeignNetworkErrorsCountAsFailures(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()
	var calls atomic.Int32
	caller := Module{Manifest: manifest("caller", false, "call"), Handle: func(ctx context.Context, inv *schemas.Invocation, _ pgx.Tx) (*schemas.Result, error) {
		calls.Add(1)
		conn, err := net.Dial("tcp", closedAddr)
		if err != nil {
			return nil, fmt.Errorf("caller: unable to reach the API: %w", err)
		}
		conn.Close()
		return reply("reached"), nil
	}}
	w := start(t, newWorker(t, testConfig(caller, env.Conn, st)))
	inv := actionstest.Invocation("caller", "call")
	actionstest.Publish(t, env.Conn.JS, inv)
	actionstest.Eventually(t, waitLong, "the dead letter", func() bool {
		return len(actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands)) == 1
	})
	if dl := actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands)[0]; dl.Failures != 3 || !strings.Contains(dl.Reason, "unable to reach the API") {
		t.Errorf("dead letter: failures %d reason %q", dl.Failures, dl.Reason)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("handler ran %d times, want 3", n)
	}
	if !w.Ready() {
		t.Errorf("the worker paused for an error that was not PostgreSQL's")
	}
}

func TestHandlerTimeoutIsAFailure(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	slow := Module{Manifest: manifest("slow", true, "sleep"), Handle: func(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
		if _, err := tx.Exec(ctx, `SELECT pg_sleep(5)`); err != nil {
			return nil, err
		}
		return reply("rested"), nil
	}}
	cfg := testConfig(slow, env.Conn, st)
	cfg.HandlerTimeout = 200 * time.Millisecond
	cfg.MaxFailures = 2
	start(t, newWorker(t, cfg))
	inv := actionstest.Invocation("slow", "sleep")
	actionstest.Publish(t, env.Conn.JS, inv)
	actionstest.Eventually(t, waitLong, "the dead letter", func() bool {
		return len(actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands)) == 1
	})
	if dl := actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands)[0]; dl.Failures != 2 || !strings.Contains(dl.Reason, "ran past 200ms") {
		t.Errorf("dead letter: failures %d reason %q", dl.Failures, dl.Reason)
	}
	if n := countRows(t, st, `SELECT count(*) FROM processed_invocations`); n != 0 {
		t.Errorf("a timed-out invocation left an outbox row")
	}
}

func TestSilentResultCompletesTheInvocation(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	var runs atomic.Int32
	quiet := Module{Manifest: manifest("quiet", true, "hush"), Handle: func(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
		runs.Add(1)
		return nil, nil
	}}
	start(t, newWorker(t, testConfig(quiet, env.Conn, st)))
	inv := actionstest.Invocation("quiet", "hush")
	actionstest.Publish(t, env.Conn.JS, inv)
	actionstest.Eventually(t, waitLong, "the invocation acked", func() bool {
		return actionstest.Settled(t, env.Conn.JS, schemas.StreamCommands, "quiet") &&
			countRows(t, st, `SELECT count(*) FROM processed_invocations WHERE invocation_id = $1 AND sent_at IS NOT NULL`, inv.ID) == 1
	})
	if n := runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	if got := actionstest.Replies(t, env.Conn.JS); len(got) != 0 {
		t.Errorf("replies %+v, want none", got)
	}
	if dls := actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands); len(dls) != 0 {
		t.Errorf("dead letters %+v", dls)
	}
}

func TestCommandVisibilityIsTheDefault(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	m := manifest("secretive", false, "whisper", "shout")
	m.Commands[0].Visibility = schemas.VisibilityPrivate
	mod := Module{Manifest: m, Handle: func(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
		res := &schemas.Result{Version: schemas.Version, InvocationID: inv.ID,
			Replies: []schemas.ReplyText{{Text: "just for you"}}}
		if inv.Command == "shout" {
			res.Replies = append(res.Replies, schemas.ReplyText{Text: "everyone!", Visibility: schemas.VisibilityPublic})
		}
		return res, nil
	}}
	start(t, newWorker(t, testConfig(mod, env.Conn, st)))
	actionstest.Publish(t, env.Conn.JS, actionstest.Invocation("secretive", "whisper"))
	actionstest.Publish(t, env.Conn.JS, actionstest.Invocation("secretive", "shout"))
	var got []actionstest.Reply
	actionstest.Eventually(t, waitLong, "three replies", func() bool {
		got = actionstest.Replies(t, env.Conn.JS)
		return len(got) == 3
	})
	vis := map[string]schemas.Visibility{}
	for _, r := range got {
		vis[r.InvocationID+"/"+r.Text] = r.Visibility
	}
	count := map[schemas.Visibility]int{}
	for _, v := range vis {
		count[v]++
	}
	// whisper's reply takes the command's private default; shout's unmarked
	// reply is public (no default), its marked one stays public.
	if count[schemas.VisibilityPrivate] != 1 || count[schemas.VisibilityPublic] != 2 {
		t.Fatalf("visibilities = %v", vis)
	}
}

// TestCommunityChangedIsAnnounced: a handler that changes what routers
// cache gets wb.control.community.<id> out after its commit, and again when
// a redelivery replays its stored result.
func TestCommunityChangedIsAnnounced(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	mod := Module{Manifest: manifest("teacher", true, "teach"), Handle: func(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
		CommunityChanged(ctx)
		return reply("taught"), nil
	}}
	inv := actionstest.Invocation("teacher", "teach")
	sub, err := env.Conn.NC.SubscribeSync(schemas.ControlCommunity(inv.Community.ID))
	if err != nil {
		t.Fatal(err)
	}
	start(t, newWorker(t, testConfig(mod, env.Connect(t), st)))
	actionstest.Publish(t, env.Conn.JS, inv)
	if _, err := sub.NextMsg(waitLong); err != nil {
		t.Fatalf("no notice after the commit: %v", err)
	}
	actionstest.PublishAs(t, env.Conn.JS, inv, inv.ID+"-again")
	if _, err := sub.NextMsg(waitLong); err != nil {
		t.Fatalf("no notice after the replay: %v", err)
	}
	// Announcing is part of finishing the invocation: it must not fail it.
	actionstest.Eventually(t, waitLong, "the invocations settled", func() bool {
		return actionstest.Settled(t, env.Conn.JS, schemas.StreamCommands, "teacher")
	})
	if n := countRows(t, st, `SELECT count(*) FROM processed_invocations WHERE invocation_id = $1 AND sent_at IS NOT NULL`, inv.ID); n != 1 {
		t.Fatal("the result was never marked sent")
	}
	if dls := actionstest.DeadLetters(t, env.Conn.JS, schemas.StreamCommands); len(dls) != 0 {
		t.Fatalf("dead letters: %+v", dls)
	}
	c, _ := env.Conn.JS.Consumer(context.Background(), schemas.StreamCommands, "teacher")
	if info, _ := c.Info(context.Background()); info.NumRedelivered != 0 {
		t.Fatalf("%d redeliveries: announcing failed the invocation", info.NumRedelivered)
	}
}

// A private message to another platform's user goes out after the commit,
// after the result's replies under ids of its own, once, and again under
// the same id when the invocation is replayed; the identity notice with it.
func TestPrivateMessagesAndIdentityNotice(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	elsewhere := schemas.Target{Platform: schemas.PlatformDiscord, ServerID: "g1", ChannelID: "c1", UserID: "u9"}
	mod := Module{Manifest: manifest("linker", true, "link"), Handle: func(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
		if err := SendPrivately(ctx, elsewhere, "your code"); err != nil {
			return nil, err
		}
		if err := SendPrivately(ctx, schemas.Target{Platform: schemas.PlatformDiscord, ChannelID: "c1"}, "nobody"); !errors.Is(err, schemas.ErrInvalid) {
			t.Errorf("a private message without a user: %v", err)
		}
		IdentityChanged(ctx)
		return reply("sent"), nil
	}}
	inv := actionstest.Invocation("linker", "link")
	sub, err := env.Conn.NC.SubscribeSync(schemas.ControlIdentity)
	if err != nil {
		t.Fatal(err)
	}
	start(t, newWorker(t, testConfig(mod, env.Connect(t), st)))
	actionstest.Publish(t, env.Conn.JS, inv)
	if _, err := sub.NextMsg(waitLong); err != nil {
		t.Fatalf("no identity notice after the commit: %v", err)
	}
	actionstest.PublishAs(t, env.Conn.JS, inv, inv.ID+"-again")
	if _, err := sub.NextMsg(waitLong); err != nil {
		t.Fatalf("no identity notice after the replay: %v", err)
	}
	actionstest.Eventually(t, waitLong, "the invocations settled", func() bool {
		return actionstest.Settled(t, env.Conn.JS, schemas.StreamCommands, "linker")
	})
	replies := natstest.Decode[schemas.Reply](t, env.Conn.JS, schemas.StreamReplies, "")
	if len(replies) != 2 {
		t.Fatalf("%d replies, want the answer and one private message: %+v", len(replies), replies)
	}
	answer, private := replies[0], replies[1]
	if answer.Text != "sent" || answer.ID != schemas.ReplyID(inv.ID, 1) || answer.Target.Platform != inv.Event.Platform {
		t.Errorf("answer %+v", answer)
	}
	if private.Text != "your code" || private.ID != schemas.ReplyID(inv.ID, 2) || private.Target != elsewhere ||
		private.Visibility != schemas.VisibilityPrivate || private.EventID != "" ||
		private.Subject() != schemas.ReplySubject(schemas.PlatformDiscord, "c1") {
		t.Errorf("private message %+v", private)
	}
}
