// Package actions is the module worker runtime: it serves one module's
// invocations from WB_COMMANDS and publishes their results exactly once in effect.
package actions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/consume"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/metrics"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Handler handles one invocation. tx is the transaction of the outbox
// (non-nil only when Manifest.Writes); all the module's writes go through tx
// so they commit together with the result. A reply to a user's mistake (a bad
// argument) is a result, not an error: an error is a failure, retried and in
// the end dead-lettered, and one wrapping schemas.ErrInvalid is dead-lettered
// at once.
type Handler func(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error)

// Module is a built-in module: what it tells the catalogue, and its handler.
type Module struct {
	Manifest schemas.Manifest
	Handle   Handler
	// Fire, when set, runs the module's scheduled jobs as they come due
	// (see Schedule); the worker then runs a scheduler beside its consumer.
	Fire FireHandler
	// Housekeep, when set, runs hourly beside the outbox pruning (modules
	// with writes only): to prune the module's own old rows.
	Housekeep func(ctx context.Context) error
}

// Config runs one module's worker.
type Config struct {
	Module Module
	Conn   *natsx.Conn
	// Store is required: the manifest goes into its catalogue, and the
	// outbox lives there when Manifest.Writes.
	Store          *store.Store
	Concurrency    int           // invocations worked on at once; default 64
	MaxFailures    int           // handler failures that dead-letter an invocation; default 5
	AckWait        time.Duration // the consumer's AckWait; default 30s
	HandlerTimeout time.Duration // default 2m
	// OutboxSweep is how often committed but unsent results are republished;
	// default 5s.
	OutboxSweep time.Duration
	// HeartbeatEvery must stay well inside the heartbeat bucket's TTL (30s by
	// default); default 10s.
	HeartbeatEvery time.Duration
	// InstanceID names this replica in its heartbeat; default
	// hostname-pid-random.
	InstanceID string
	// Retention is how long a sent result is kept to answer redeliveries;
	// it must outlive WB_COMMANDS' MaxAge. Default 25h.
	Retention time.Duration
	// Backoff, when set, replaces the consume loop's retry delays.
	Backoff []time.Duration
	// Clock tells the scheduler the time; tests pass a fake one.
	Clock clock.Clock
	// SchedulePoll is the longest the scheduler sleeps between looks at
	// the jobs table (jobs another replica adds are seen within it); default 1s.
	SchedulePoll time.Duration
	// LateAfter marks a firing late when it comes this long after its due
	// time (the workers were down); default 1m.
	LateAfter time.Duration
	// JobAttempts is how many failed firings give a job up; default 5.
	JobAttempts int
	Logger      *slog.Logger
}

func (c *Config) defaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.MaxFailures == 0 {
		c.MaxFailures = 5
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 2 * time.Minute
	}
	if c.OutboxSweep == 0 {
		c.OutboxSweep = 5 * time.Second
	}
	if c.HeartbeatEvery == 0 {
		c.HeartbeatEvery = 10 * time.Second
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.SchedulePoll == 0 {
		c.SchedulePoll = time.Second
	}
	if c.LateAfter == 0 {
		c.LateAfter = time.Minute
	}
	if c.JobAttempts == 0 {
		c.JobAttempts = 5
	}
	if c.Retention == 0 {
		c.Retention = defaultRetention
	}
	if c.InstanceID == "" {
		c.InstanceID = defaultInstanceID()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func defaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Worker serves one module: it registers the manifest, consumes the module's
// invocations, runs the handler, publishes the results and keeps a heartbeat.
// Replicas of a module share its durable consumer.
type Worker struct {
	cfg     Config
	name    string
	log     *slog.Logger
	started atomic.Bool
	loop    atomic.Pointer[consume.Loop]

	wake chan struct{} // the scheduler looks again when signalled

	// afterCommit, when set, runs after an invocation's writes and result
	// committed and before anything is published: tests use it to kill the
	// worker in the window the outbox exists for.
	afterCommit func(inv *schemas.Invocation)
}

// NewWorker checks the module and the configuration.
func NewWorker(cfg Config) (*Worker, error) {
	m := cfg.Module.Manifest
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("actions: %w", err)
	}
	switch {
	case m.External:
		return nil, fmt.Errorf("actions: module %s is external: it runs outside WaddleBot and publishes to %s", m.Name, schemas.ResultSubject(m.Name))
	case cfg.Module.Handle == nil:
		return nil, fmt.Errorf("actions: module %s has no handler", m.Name)
	case cfg.Conn == nil || cfg.Conn.NC == nil || cfg.Conn.JS == nil:
		return nil, fmt.Errorf("actions: module %s needs a NATS connection", m.Name)
	case cfg.Store == nil:
		return nil, fmt.Errorf("actions: module %s needs a store for the catalogue and the outbox", m.Name)
	case cfg.Concurrency < 0 || cfg.MaxFailures < 0:
		return nil, fmt.Errorf("actions: module %s: concurrency and max failures may not be negative", m.Name)
	case cfg.AckWait < 0 || cfg.HandlerTimeout < 0 || cfg.OutboxSweep < 0 || cfg.HeartbeatEvery < 0:
		return nil, fmt.Errorf("actions: module %s: durations may not be negative", m.Name)
	}
	cfg.defaults()
	if cfg.Module.Fire != nil && !m.Writes {
		return nil, fmt.Errorf("actions: module %s fires scheduled jobs, so its manifest must say it writes", m.Name)
	}
	return &Worker{
		cfg:  cfg,
		wake: make(chan struct{}, 1),
		name: m.Name,
		log:  cfg.Logger.With(logging.KeyModule, m.Name, "instance", cfg.InstanceID),
	}, nil
}

// Ready reports whether the worker is consuming: its consumer is up and not
// paused for an unavailable dependency.
func (w *Worker) Ready() bool {
	loop := w.loop.Load()
	return loop != nil && !loop.Paused()
}

// Run registers the module, then serves invocations until ctx ends; then it
// drains (running handlers finish and settle their messages), stops the
// heartbeat and the sweeper, deletes its heartbeat key and returns.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return fmt.Errorf("actions: worker for module %s already ran", w.name)
	}
	if err := w.register(ctx); err != nil {
		return err
	}
	js := w.cfg.Conn.JS
	cons, err := streams.EnsureConsumer(ctx, js, schemas.StreamCommands, streams.ModuleConsumer(w.name, w.cfg.AckWait))
	if err != nil {
		return fmt.Errorf("actions: module %s: %w", w.name, err)
	}
	failures, err := js.KeyValue(ctx, streams.BucketFailures)
	if err != nil {
		return fmt.Errorf("actions: unable to open bucket %s: %w", streams.BucketFailures, err)
	}
	beats, err := js.KeyValue(ctx, streams.BucketHeartbeats)
	if err != nil {
		return fmt.Errorf("actions: unable to open bucket %s: %w", streams.BucketHeartbeats, err)
	}

	loop := consume.New(js, cons, failures, w.handle, consume.Config{
		Stream:      schemas.StreamCommands,
		Consumer:    w.name,
		Concurrency: w.cfg.Concurrency,
		MaxFailures: w.cfg.MaxFailures,
		Backoff:     w.cfg.Backoff,
		Probe:       w.cfg.Store.Ping,
		Logger:      w.log,
	})

	// The heartbeat and the sweeper outlive ctx until the loop has drained:
	// a draining worker is still alive, and may still leave results to sweep.
	background, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	hb := &heartbeat{kv: beats, log: w.log, every: w.cfg.HeartbeatEvery, key: HeartbeatKey(w.name, w.cfg.InstanceID),
		value: Heartbeat{Module: w.name, Version: w.cfg.Module.Manifest.Version, Instance: w.cfg.InstanceID, StartedAt: time.Now().UTC()}}
	hb.beat(ctx)
	var tasks sync.WaitGroup
	tasks.Go(func() { hb.run(background) })
	if w.cfg.Module.Manifest.Writes {
		tasks.Go(func() { w.sweepOutbox(background) })
	}
	if w.cfg.Module.Fire != nil {
		// The scheduler stops with intake (ctx), not with the drain: a job
		// fired during shutdown would have nobody to finish it.
		tasks.Go(func() { w.runScheduler(ctx) })
	}

	w.log.Info("actions: module serving", "version", w.cfg.Module.Manifest.Version, "writes", w.cfg.Module.Manifest.Writes)
	w.loop.Store(loop)
	err = loop.Run(ctx)
	w.loop.Store(nil)
	stopBackground()
	tasks.Wait()
	hb.remove()
	w.log.Info("actions: module stopped")
	return err
}

// register upserts the manifest into the catalogue and, when that changed
// it, tells the routers to refresh. PostgreSQL being down at start is waited
// out rather than fatal, so a module may start before its database.
func (w *Worker) register(ctx context.Context) error {
	m := w.cfg.Module.Manifest
	wait := 250 * time.Millisecond
	for {
		changed, err := w.cfg.Store.UpsertManifest(ctx, m, true)
		if err == nil {
			if changed {
				w.announceCatalogueChange(ctx)
			}
			return nil
		}
		if !store.IsUnavailable(err) || ctx.Err() != nil {
			return fmt.Errorf("actions: unable to register module %s: %w", w.name, err)
		}
		w.log.Warn("actions: PostgreSQL unavailable; waiting to register the module", "retry_in", wait, logging.Err(err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("actions: unable to register module %s: %w", w.name, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

func (w *Worker) announceCatalogueChange(ctx context.Context) {
	nc := w.cfg.Conn.NC
	err := nc.Publish(schemas.ControlRegistry, []byte(w.name))
	if err == nil {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = nc.FlushWithContext(fctx)
		cancel()
	}
	if err != nil {
		// Routers still refresh their catalogue on their own schedule.
		w.log.Warn("actions: unable to announce the catalogue change", logging.KeySubject, schemas.ControlRegistry, logging.Err(err))
		return
	}
	w.log.Info("actions: catalogue updated", "version", w.cfg.Module.Manifest.Version)
}

// handle works on one message of the module's consumer; its error tells the
// consume loop whether to ack, retry, pause or dead-letter.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) error {
	received := time.Now()
	inv, err := decodeInvocation(msg.Data(), w.name)
	if err != nil {
		metrics.InvocationsHandled.WithLabelValues(w.name, outcomeFailed).Inc()
		return err
	}
	var outcome string
	if w.cfg.Module.Manifest.Writes {
		outcome, err = w.runWithOutbox(ctx, inv)
	} else {
		outcome, err = w.runDirect(ctx, inv)
	}
	if outcome == outcomeOK || outcome == outcomeReplayed || outcome == outcomeFailed {
		metrics.InvocationsHandled.WithLabelValues(w.name, outcome).Inc()
	}
	if err != nil {
		return err
	}
	metrics.Since("handle", received)
	metrics.Since("route_to_reply", inv.Event.ReceivedAt)
	return nil
}

// Outcomes of one attempt at an invocation. Only the first three are
// counted: a paused dependency or a shutdown is nobody's failure.
const (
	outcomeOK          = "ok"
	outcomeReplayed    = "replayed"
	outcomeFailed      = "failed"
	outcomeUnavailable = "unavailable"
	outcomeDeferred    = "deferred"
)

func decodeInvocation(data []byte, module string) (*schemas.Invocation, error) {
	var inv schemas.Invocation
	if err := json.Unmarshal(data, &inv); err != nil {
		return nil, consume.Permanent(fmt.Errorf("actions: undecodable invocation: %w", err))
	}
	if err := inv.Validate(); err != nil {
		return nil, consume.Permanent(fmt.Errorf("actions: %w", err))
	}
	if inv.Module != module {
		return nil, consume.Permanent(fmt.Errorf("%w: invocation for module %q reached module %q", schemas.ErrInvalid, inv.Module, module))
	}
	return &inv, nil
}

// runDirect serves a module without writes: nothing to commit, so a
// redelivery runs the handler again and its result gets the same ids.
func (w *Worker) runDirect(ctx context.Context, inv *schemas.Invocation) (string, error) {
	hctx, cancel := context.WithTimeout(ctx, w.cfg.HandlerTimeout)
	defer cancel()
	// Without a store a module's effects have nowhere to wait for a commit
	// and would be repeated by a retry: they are for writing modules only.
	res, err := w.callHandler(hctx, inv, nil)
	if err != nil {
		return w.classify(ctx, hctx, err)
	}
	msgs, err := Outbound(inv, w.withDefaultVisibility(inv, res), time.Now())
	if err != nil {
		return outcomeFailed, consume.Permanent(err)
	}
	if err := w.publish(ctx, msgs); err != nil {
		return publishOutcome(err), consume.DeferNATS(err)
	}
	return outcomeOK, nil
}

// runWithOutbox commits the module's writes with its result, then publishes
// the result and marks it sent. An invocation committed before (the worker
// died before its ack, or the ack was lost) is not run again: its stored
// messages are published under their ids, and the duplicate window drops any
// that made it out the first time.
func (w *Worker) runWithOutbox(ctx context.Context, inv *schemas.Invocation) (string, error) {
	hctx, cancel := context.WithTimeout(ctx, w.cfg.HandlerTimeout)
	defer cancel()
	msgs, replayed, err := w.cfg.Store.RunOnce(hctx, inv.ID, w.name, inv.Community.ID,
		func(ctx context.Context, tx pgx.Tx) ([]store.OutMessage, error) {
			ctx, effects := withEffects(ctx)
			res, err := w.callHandler(ctx, inv, tx)
			if err != nil {
				return nil, err
			}
			now := time.Now()
			msgs, err := Outbound(inv, w.withDefaultVisibility(inv, res), now)
			if err != nil {
				return nil, err
			}
			// Stored with the result, so a replay sends them too.
			return effects.messages(inv, msgs, now)
		})
	if err != nil {
		return w.classify(ctx, hctx, err)
	}
	outcome := outcomeOK
	if replayed {
		outcome = outcomeReplayed
		w.log.Info("actions: invocation committed before; republishing its result", logging.KeyID, inv.ID, "messages", len(msgs))
	} else {
		if w.afterCommit != nil {
			w.afterCommit(inv)
		}
		// The handler may have scheduled a job due soon: look again now.
		w.wakeScheduler()
	}
	if err := w.publish(ctx, msgs); err != nil {
		return publishOutcome(err), consume.DeferNATS(err)
	}
	if err := w.cfg.Store.MarkSent(ctx, inv.ID); err != nil {
		// Published and about to be acked: the sweeper will publish it once
		// more, and the duplicate window will drop that.
		w.log.Warn("actions: unable to mark a result sent", logging.KeyID, inv.ID, logging.Err(err))
	}
	return outcome, nil
}

// withDefaultVisibility gives replies that do not choose a visibility the
// one the manifest declares for the command (a `!whoami` may answer in
// private by default).
func (w *Worker) withDefaultVisibility(inv *schemas.Invocation, res *schemas.Result) *schemas.Result {
	if res == nil || inv.Command == "" {
		return res
	}
	spec, ok := w.cfg.Module.Manifest.Command(inv.Command)
	if !ok || spec.Visibility == "" {
		return res
	}
	out := *res
	out.Replies = append([]schemas.ReplyText(nil), res.Replies...)
	for i := range out.Replies {
		if out.Replies[i].Visibility == "" {
			out.Replies[i].Visibility = spec.Visibility
		}
	}
	return &out
}

func (w *Worker) callHandler(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (res *schemas.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("actions: module %s handler panicked: %v", w.name, r)
		}
	}()
	return w.cfg.Module.Handle(ctx, inv, tx)
}

// classify turns a failed run into what the consume loop should do.
func (w *Worker) classify(ctx, hctx context.Context, err error) (string, error) {
	switch {
	case errors.Is(err, schemas.ErrInvalid):
		return outcomeFailed, consume.Permanent(err)
	case ctx.Err() != nil:
		// Shutting down past the drain timeout: not the message's fault.
		return outcomeDeferred, consume.Defer(0, "worker shutting down")
	case errors.Is(hctx.Err(), context.DeadlineExceeded):
		// A timed-out query looks like a connection problem; it is the
		// handler's failure all the same.
		return outcomeFailed, fmt.Errorf("actions: module %s handler ran past %s: %w", w.name, w.cfg.HandlerTimeout, err)
	case store.IsUnavailable(err) && w.storeDown(ctx):
		return outcomeUnavailable, consume.Unavailable(err)
	}
	return outcomeFailed, err
}

// storeDown confirms that PostgreSQL itself is unreachable. A network error
// from elsewhere (a module's HTTP API) looks just like one from PostgreSQL,
// and pausing for it would retry the message forever without counting it.
func (w *Worker) storeDown(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return w.cfg.Store.Ping(pctx) != nil
}

// publishOutcome tells NATS being away, which the consume loop retries
// without counting, from a publish that failed.
func publishOutcome(err error) string {
	if consume.NATSTrouble(err) {
		return outcomeDeferred
	}
	return outcomeFailed
}

// publish sends the messages one after another, in order: a reply's parts
// must reach the stream in sequence, and a concurrent publish retried after a
// hiccup could overtake the one before it. Every message carries its own id,
// so publishing again after a failure is harmless.
func (w *Worker) publish(ctx context.Context, msgs []store.OutMessage) error {
	for _, m := range msgs {
		if strings.HasPrefix(m.Subject, schemas.SubjectControl+".") {
			// Control notices are not stored: core NATS, flushed so routers
			// hear it before the reply does.
			nc := w.cfg.Conn.NC
			if err := nc.Publish(m.Subject, m.Data); err != nil {
				return fmt.Errorf("actions: unable to announce %s: %w", m.Subject, err)
			}
			// FlushWithContext insists on a deadline.
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := nc.FlushWithContext(fctx)
			cancel()
			if err != nil {
				return fmt.Errorf("actions: unable to announce %s: %w", m.Subject, err)
			}
			continue
		}
		ack, err := w.cfg.Conn.JS.Publish(ctx, m.Subject, m.Data, jetstream.WithMsgID(m.MsgID))
		if err != nil {
			return fmt.Errorf("actions: unable to publish %s to %s: %w", m.MsgID, m.Subject, err)
		}
		if ack.Duplicate {
			continue
		}
		if platform, _, err := schemas.ParseReplySubject(m.Subject); err == nil {
			metrics.RepliesPublished.WithLabelValues(platform).Inc()
		}
	}
	return nil
}
