// Package bench drives chat events through the real pipeline (collector
// publish → router → module → reply) and, in the same run, through a raw
// JetStream chain of the same hops, storage and message sizes, and reports
// throughput and end-to-end latency for both.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/core"
	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/console"
	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/daemon"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Config is one benchmark run.
type Config struct {
	// NATSURL, when set, runs against that server; otherwise an embedded
	// server with file storage in a temporary directory.
	NATSURL string
	// DatabaseURL is the server to make a throw-away bench database on.
	DatabaseURL string
	Channels    int
	Users       int
	// CommandShare is the share of events that are commands (the rest is
	// plain chat).
	CommandShare float64
	// SteadyRate and SteadyFor: the latency phase, at a fixed event rate.
	SteadyRate int
	SteadyFor  time.Duration
	// MaxEvents: the throughput phase publishes this many events at once.
	MaxEvents int
	// SkipRaw skips the raw chain.
	SkipRaw bool
	// Progress receives a progress line now and then (nil: none).
	Progress io.Writer
	Logger   *slog.Logger
}

// Defaults is the documented default mix.
func Defaults() Config {
	return Config{Channels: 100, Users: 1000, CommandShare: 0.1, SteadyRate: 1000, SteadyFor: 20 * time.Second,
		MaxEvents: 100_000}
}

// Phase is what one phase measured.
type Phase struct {
	Name      string
	Events    int
	Commands  int
	Replies   int
	Elapsed   time.Duration
	EventsPS  float64
	CommandPS float64
	P50       time.Duration
	P95       time.Duration
	P99       time.Duration
	Max       time.Duration
}

// Report is a whole run.
type Report struct {
	Config        Config
	Storage       string
	Steady        Phase
	Max           Phase
	RawSteady     Phase
	RawMax        Phase
	ThroughputPct float64 // pipeline max / raw max
	EventBytes    int
	InvBytes      int
}

// Run runs both phases on the pipeline, then on the raw chain.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	rep := &Report{Config: cfg}
	env, err := startNATS(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer env.close()
	rep.Storage = env.storage

	st, dropDB, err := benchDatabase(ctx, cfg.DatabaseURL, cfg.Logger)
	if err != nil {
		return nil, err
	}
	defer dropDB()
	defer st.Close()

	if err := streams.Apply(ctx, env.conn.JS, env.streams); err != nil {
		return nil, err
	}
	stop, err := startPipeline(ctx, env, st, cfg.Logger)
	if err != nil {
		return nil, err
	}
	load := newLoad(cfg)
	rep.EventBytes, rep.InvBytes = load.sizes()

	pipe := &target{name: "pipeline", js: env.conn.JS, nc: env.conn.NC, eventSubject: eventSubject,
		replyFilter: schemas.SubjectReplies + ".>", ackDone: consumerDone(env.conn.JS, schemas.StreamEvents, streams.ConsumerRouter)}
	// Warm up: one command in every channel creates its provisional
	// community and fills the router's caches, as in a deployment that has
	// run for a while; a channel's first command ever costs PostgreSQL
	// writes that are not what the steady phase measures.
	load.warming.Store(true)
	_, err = runPhase(ctx, pipe, load, "warm-up", cfg.Channels, 0, 0, cfg.Progress)
	load.warming.Store(false)
	if err != nil {
		stop()
		return nil, err
	}
	if rep.Steady, err = runPhase(ctx, pipe, load, "pipeline steady", 0, cfg.SteadyRate, cfg.SteadyFor, cfg.Progress); err != nil {
		stop()
		return nil, err
	}
	if rep.Max, err = runPhase(ctx, pipe, load, "pipeline max", cfg.MaxEvents, 0, 0, cfg.Progress); err != nil {
		stop()
		return nil, err
	}
	stop()

	if !cfg.SkipRaw {
		raw, stopRaw, err := startRawChain(ctx, env, load)
		if err != nil {
			return nil, err
		}
		if rep.RawSteady, err = runPhase(ctx, raw, load, "raw steady", 0, cfg.SteadyRate, cfg.SteadyFor, cfg.Progress); err != nil {
			stopRaw()
			return nil, err
		}
		if rep.RawMax, err = runPhase(ctx, raw, load, "raw max", cfg.MaxEvents, 0, 0, cfg.Progress); err != nil {
			stopRaw()
			return nil, err
		}
		stopRaw()
		if rep.RawMax.EventsPS > 0 {
			rep.ThroughputPct = 100 * rep.Max.EventsPS / rep.RawMax.EventsPS
		}
	}
	return rep, nil
}

// natsEnv is the server and connection the run uses.
type natsEnv struct {
	url     string
	conn    *natsx.Conn
	streams streams.Config
	storage string
	close   func()
}

func startNATS(ctx context.Context, cfg Config) (*natsEnv, error) {
	sc := streams.Default()
	sc.EventsMaxBytes = 4 << 30
	if cfg.NATSURL != "" {
		conn, err := natsx.Connect(ctx, natsx.ConnectOptions{URL: cfg.NATSURL, Name: "waddlebot bench", Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		// The bench uses the real stream and consumer names: on a server
		// that runs WaddleBot it would change the streams and consume live
		// events into its throw-away database.
		if _, err := conn.JS.Stream(ctx, schemas.StreamEvents); err == nil {
			conn.Close()
			return nil, fmt.Errorf("bench: %s already has WaddleBot's streams; run the bench against a server of its own", cfg.NATSURL)
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			conn.Close()
			return nil, fmt.Errorf("bench: unable to check %s: %w", cfg.NATSURL, err)
		}
		return &natsEnv{url: cfg.NATSURL, conn: conn, streams: sc, storage: "file, server at " + cfg.NATSURL, close: conn.Close}, nil
	}
	dir, err := os.MkdirTemp("", "waddlebot-bench-")
	if err != nil {
		return nil, err
	}
	srv, err := natsx.StartEmbedded(natsx.EmbeddedOptions{StoreDir: filepath.Join(dir, "jetstream"), Port: -1})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A socket connection, as separate processes would use, not in-process.
	conn, err := natsx.Connect(ctx, natsx.ConnectOptions{URL: srv.URL(), Name: "waddlebot bench", Logger: cfg.Logger})
	if err != nil {
		srv.Shutdown()
		os.RemoveAll(dir)
		return nil, err
	}
	return &natsEnv{url: srv.URL(), conn: conn, streams: sc, storage: "file, embedded server",
		close: func() { conn.Close(); srv.Shutdown(); os.RemoveAll(dir) }}, nil
}

// benchDatabase makes a fresh database for the run and drops it afterwards.
func benchDatabase(ctx context.Context, serverURL string, log *slog.Logger) (*store.Store, func(), error) {
	name := fmt.Sprintf("waddlebot_bench_%d", time.Now().UnixNano())
	cfg, err := pgx.ParseConfig(serverURL)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: database URL: %w", err)
	}
	dsn := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
	if cfg.Password != "" {
		dsn = fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Password, cfg.Host, cfg.Port, name)
	}
	st, err := store.Open(ctx, store.Config{URL: dsn, CreateDatabase: true, Logger: log, MaxConns: 32})
	if err != nil {
		return nil, nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, nil, err
	}
	drop := func() {
		admin, err := pgx.Connect(context.Background(), serverURL)
		if err != nil {
			return
		}
		defer admin.Close(context.Background())
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return st, drop, nil
}

// startPipeline runs the router, the core module and the console sender in
// this process, wired as `waddlebot dev` wires them, each on a connection
// of its own as separate processes would have.
func startPipeline(ctx context.Context, env *natsEnv, st *store.Store, log *slog.Logger) (func(), error) {
	var conns []*natsx.Conn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	connect := func(name string) (*natsx.Conn, error) {
		c, err := natsx.Connect(ctx, natsx.ConnectOptions{URL: env.url, Name: "bench " + name, Logger: log})
		if err == nil {
			conns = append(conns, c)
		}
		return c, err
	}
	rc, err := connect("router")
	if err != nil {
		return nil, err
	}
	ac, err := connect("core")
	if err != nil {
		closeAll()
		return nil, err
	}
	sc, err := connect("sender")
	if err != nil {
		closeAll()
		return nil, err
	}
	// The production defaults, as `waddlebot dev` runs with nothing set.
	def := config.Defaults()
	d := daemon.New(log)
	r, err := router.New(router.Config{Conn: rc, Store: st,
		Concurrency: def.RouterConcurrency, MaxFailures: def.MaxHandlerFailures, AckWait: def.ConsumerAckWait,
		UserRateLimit: def.UserRateLimit, UserRateWindow: def.UserRateWindow,
		ChannelRateLimit: def.ChannelRateLimit, ChannelRateWindow: def.ChannelRateWindow,
		InvocationDeadline: def.InvocationDeadline, CacheTTL: def.CacheTTL, Logger: log})
	if err != nil {
		closeAll()
		return nil, err
	}
	d.Add(daemon.StageRouter, "router", r.Run)
	w, err := actions.NewWorker(actions.Config{Module: core.New(core.Config{Catalogue: st, Version: "bench"}),
		Conn: ac, Store: st, Concurrency: def.ActionConcurrency, MaxFailures: def.MaxHandlerFailures,
		AckWait: def.ConsumerAckWait, HandlerTimeout: def.HandlerTimeout, OutboxSweep: def.OutboxSweep, Logger: log})
	if err != nil {
		closeAll()
		return nil, err
	}
	d.Add(daemon.StageActions, "core", w.Run)
	c := console.New(console.Config{Publisher: collectors.NewPublisher(sc.JS, log), Conn: sc, Logger: log})
	s, err := collectors.NewSender(collectors.SenderConfig{Platform: c, Conn: sc,
		Budget: def.ConsoleSendBudget, Window: def.SendWindow, Concurrency: def.SenderConcurrency,
		MaxFailures: def.MaxHandlerFailures, AckWait: def.ConsumerAckWait, Logger: log})
	if err != nil {
		closeAll()
		return nil, err
	}
	d.Add(daemon.StageSenders, "console sender", s.Run)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = d.Run(rctx); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for !(r.Ready() && w.Ready() && s.Ready()) {
		if time.Now().After(deadline) {
			cancel()
			<-done
			closeAll()
			return nil, errors.New("bench: the pipeline did not become ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return func() { cancel(); <-done; closeAll() }, nil
}

func eventSubject(ev *schemas.Event) string { return ev.Subject() }

// load makes the event mix.
type load struct {
	cfg Config
	rng *rand.Rand
	mu  sync.Mutex
	// warming makes next() send one command to each channel in turn.
	warming atomic.Bool
	warmed  int
}

func newLoad(cfg Config) *load { return &load{cfg: cfg, rng: rand.New(rand.NewPCG(7, 11))} }

func (l *load) next() (*schemas.Event, bool) {
	l.mu.Lock()
	ch := l.rng.IntN(l.cfg.Channels)
	user := l.rng.IntN(l.cfg.Users)
	isCmd := l.rng.Float64() < l.cfg.CommandShare
	if l.warming.Load() {
		ch, isCmd = l.warmed%l.cfg.Channels, true
		l.warmed++
	}
	l.mu.Unlock()
	text := "that was a great play, well done everyone"
	if isCmd {
		text = "!ping"
	}
	now := time.Now().UTC()
	login := fmt.Sprintf("user%d", user)
	return &schemas.Event{Version: schemas.Version, ID: schemas.NewEventID(), Platform: schemas.PlatformConsole,
		Kind: schemas.KindChat, Channel: schemas.Channel{ID: fmt.Sprintf("bench%d", ch), Name: fmt.Sprintf("bench%d", ch)},
		User: schemas.User{ID: login, Login: login, DisplayName: login, Roles: []schemas.Role{schemas.RoleMember}},
		Text: text, OccurredAt: now, ReceivedAt: now}, isCmd
}

func (l *load) sizes() (int, int) {
	ev, _ := l.next()
	eb, _ := json.Marshal(ev)
	inv := schemas.Invocation{Version: 1, ID: schemas.NewEventID(), Event: *ev, Module: "core", Route: "cmd:ping",
		Command: "ping", Community: schemas.Community{ID: schemas.NewEventID(), Prefix: "!", TimeZone: "UTC", Locale: "en"},
		Deadline: time.Now()}
	ib, _ := json.Marshal(inv)
	return len(eb), len(ib)
}

// target is a chain to drive: where events go, where replies appear, and
// how to tell that every event was consumed.
type target struct {
	name         string
	js           jetstream.JetStream
	nc           *nats.Conn
	eventSubject func(*schemas.Event) string
	replyFilter  string
	ackDone      func(ctx context.Context) (bool, error)
	// rawHeaders marks commands in headers, so raw hops need not decode.
	rawHeaders bool
}

func consumerDone(js jetstream.JetStream, stream, durable string) func(ctx context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) { return streams.CaughtUp(ctx, js, stream, durable) }
}

// runPhase publishes either count events as fast as the server takes them
// (rate 0) or rate events/s for dur, waits until every event was consumed
// and every command answered, and measures.
func runPhase(ctx context.Context, t *target, l *load, name string, count, rate int, dur time.Duration, progress io.Writer) (Phase, error) {
	var (
		mu       sync.Mutex
		sentAt   = map[string]time.Time{}
		lat      []time.Duration
		commands atomic.Int64
		replies  atomic.Int64
		events   atomic.Int64
	)
	sub, err := t.nc.Subscribe(t.replyFilter, func(m *nats.Msg) {
		var r struct {
			EventID string `json:"event_id"`
			Part    int    `json:"part"`
		}
		if json.Unmarshal(m.Data, &r) != nil || r.Part > 1 {
			return
		}
		now := time.Now()
		mu.Lock()
		if at, ok := sentAt[r.EventID]; ok {
			lat = append(lat, now.Sub(at))
			delete(sentAt, r.EventID)
			replies.Add(1)
		}
		mu.Unlock()
	})
	if err != nil {
		return Phase{}, err
	}
	defer sub.Unsubscribe()
	if err := t.nc.Flush(); err != nil {
		return Phase{}, err
	}

	publish := func(ev *schemas.Event, isCmd bool) (jetstream.PubAckFuture, error) {
		body, err := json.Marshal(ev)
		if err != nil {
			return nil, err
		}
		if isCmd {
			mu.Lock()
			sentAt[ev.ID] = time.Now()
			mu.Unlock()
			commands.Add(1)
		}
		events.Add(1)
		h := nats.Header{jetstream.MsgIDHeader: []string{ev.ID}}
		if t.rawHeaders {
			h.Set(hdrEvent, ev.ID)
			if isCmd {
				h.Set(hdrCommand, "1")
			}
		}
		return t.js.PublishMsgAsync(&nats.Msg{Subject: t.eventSubject(ev), Data: body, Header: h})
	}

	start := time.Now()
	stopProgress := startProgress(progress, name, start, &events, &commands, &replies)
	defer stopProgress()
	if rate > 0 {
		// Paced: publish in 1 ms slots so the rate is smooth, not bursts.
		total := int(float64(rate) * dur.Seconds())
		slot := time.Millisecond
		perSlot := float64(rate) / 1000
		credit := 0.0
		next := time.Now()
		for sent := 0; sent < total; {
			credit += perSlot
			for credit >= 1 && sent < total {
				ev, isCmd := l.next()
				if _, err := publish(ev, isCmd); err != nil {
					return Phase{}, err
				}
				credit--
				sent++
			}
			next = next.Add(slot)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			if ctx.Err() != nil {
				return Phase{}, ctx.Err()
			}
		}
	} else {
		for i := 0; i < count; i++ {
			ev, isCmd := l.next()
			if _, err := publish(ev, isCmd); err != nil {
				return Phase{}, err
			}
			if ctx.Err() != nil {
				return Phase{}, ctx.Err()
			}
		}
	}
	select {
	case <-t.js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		return Phase{}, errors.New("bench: publishes not acknowledged in 60s")
	}
	// Wait until every event was consumed and every command answered.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		done, err := t.ackDone(ctx)
		if err != nil {
			return Phase{}, err
		}
		if done && replies.Load() >= commands.Load() {
			break
		}
		if time.Now().After(deadline) {
			return Phase{}, fmt.Errorf("bench: %s: %d of %d commands answered after 5 minutes", name, replies.Load(), commands.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	stopProgress()

	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	p := Phase{Name: name, Events: int(events.Load()), Commands: int(commands.Load()), Replies: int(replies.Load()),
		Elapsed: elapsed, EventsPS: float64(events.Load()) / elapsed.Seconds(), CommandPS: float64(commands.Load()) / elapsed.Seconds()}
	if len(lat) > 0 {
		p.P50, p.P95, p.P99, p.Max = pct(lat, 50), pct(lat, 95), pct(lat, 99), lat[len(lat)-1]
	}
	return p, nil
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func startProgress(w io.Writer, name string, start time.Time, events, commands, replies *atomic.Int64) func() {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var once sync.Once
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(w, "\r%-16s %5.0fs  events %8d  commands %7d  replies %7d   ", name,
					time.Since(start).Seconds(), events.Load(), commands.Load(), replies.Load())
			}
		}
	}()
	return func() {
		once.Do(func() {
			close(done)
			fmt.Fprintf(w, "\r%-16s done in %.1fs: events %d, commands %d, replies %d%20s\n", name,
				time.Since(start).Seconds(), events.Load(), commands.Load(), replies.Load(), "")
		})
	}
}
