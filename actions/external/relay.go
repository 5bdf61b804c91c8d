// Package external runs the relay: the part that serves external modules.
// For a NATS module it consumes the module's invocations from WB_COMMANDS
// (a durable consumer named after the module, as a built-in worker's), hands
// each over core NATS on wb.ext.<module>.invoke, and waits for the module's
// result on wb.result.<module> (WB_RESULTS), which it checks against the
// invocation before turning it into replies for that invocation's own
// target. For a webhook module it POSTs the invocation, signed, and the
// response is the result. Retries, back-off and dead letters are the consume
// loop's, exactly as for built-in modules.
package external

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/consume"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsauth"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Config runs the relay.
type Config struct {
	Conn  *natsx.Conn
	Store *store.Store
	// ResultTimeout is how long one attempt waits for a NATS module's
	// result; a miss is a failure, retried with back-off and in the end
	// dead-lettered. Default 30s.
	ResultTimeout time.Duration
	// WebhookTimeout bounds one webhook call. Default 10s.
	WebhookTimeout time.Duration
	MaxFailures    int             // default 5
	Backoff        []time.Duration // the consume loops' retry delays
	AckWait        time.Duration   // default 30s; in-progress acks cover longer waits
	Concurrency    int             // per module; default 16
	// Refresh is how often the list of external modules is read again
	// (a wb.control.registry notice makes it happen at once). Default 30s.
	Refresh time.Duration
	// HeartbeatEvery is how often the heartbeat of each served module is
	// written; it must stay well inside the heartbeat bucket's TTL. Default
	// 10s.
	HeartbeatEvery time.Duration
	// InstanceID names this relay replica in its heartbeats; default
	// relay-<host>-<pid>-<random>.
	InstanceID string
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Relay serves every registered external module.
type Relay struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	waiters map[string]chan struct{} // invocation id → closed when answered
	running map[string]*moduleLoop

	refused  atomic.Int64
	relayed  atomic.Int64
	loopsRun sync.WaitGroup
	results  atomic.Pointer[consume.Loop]
}

// pendingRetention is how long answered and expired invocations are kept:
// past WB_COMMANDS' MaxAge nothing can redeliver them.
const pendingRetention = 25 * time.Hour

// Ready reports whether the relay consumes results and is not paused.
func (r *Relay) Ready() bool {
	l := r.results.Load()
	return l != nil && !l.Paused()
}

type moduleLoop struct {
	kind   string
	url    string
	health *moduleHealth
	cancel context.CancelFunc
	done   chan struct{}
	loop   atomic.Pointer[consume.Loop]
}

// New checks the configuration.
func New(cfg Config) (*Relay, error) {
	if cfg.Conn == nil || cfg.Conn.NC == nil || cfg.Conn.JS == nil {
		return nil, errors.New("external: the relay needs a NATS connection")
	}
	if cfg.Store == nil {
		return nil, errors.New("external: the relay needs a store")
	}
	if cfg.ResultTimeout <= 0 {
		cfg.ResultTimeout = 30 * time.Second
	}
	if cfg.WebhookTimeout <= 0 {
		cfg.WebhookTimeout = 10 * time.Second
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 30 * time.Second
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = 10 * time.Second
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = defaultInstanceID()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Relay{cfg: cfg, log: cfg.Logger.With(logging.KeyPart, "relay"),
		waiters: map[string]chan struct{}{}, running: map[string]*moduleLoop{}}, nil
}

// Refused counts results the relay would not forward; Relayed those it did.
func (r *Relay) Refused() int64 { return r.refused.Load() }

// Relayed counts results forwarded as replies.
func (r *Relay) Relayed() int64 { return r.relayed.Load() }

// Serving reports whether the relay consumes a module's invocations.
func (r *Relay) Serving(module string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.running[module]
	return ok && m.loop.Load() != nil
}

// Run serves results and every external module's invocations until ctx
// ends, then drains them all.
func (r *Relay) Run(ctx context.Context) error {
	js := r.cfg.Conn.JS
	failures, err := js.KeyValue(ctx, streams.BucketFailures)
	if err != nil {
		return fmt.Errorf("external: unable to open bucket %s: %w", streams.BucketFailures, err)
	}
	beats, err := js.KeyValue(ctx, streams.BucketHeartbeats)
	if err != nil {
		return fmt.Errorf("external: unable to open bucket %s: %w", streams.BucketHeartbeats, err)
	}
	cons, err := streams.EnsureConsumer(ctx, js, schemas.StreamResults, streams.RelayConsumer(r.cfg.AckWait))
	if err != nil {
		return fmt.Errorf("external: %w", err)
	}
	results := consume.New(js, cons, failures, r.handleResult, consume.Config{
		Stream: schemas.StreamResults, Consumer: streams.ConsumerRelay, Concurrency: 64,
		MaxFailures: r.cfg.MaxFailures, Backoff: r.cfg.Backoff, Probe: r.cfg.Store.Ping, Logger: r.log,
	})

	refresh := make(chan struct{}, 1)
	sub, err := r.cfg.Conn.NC.Subscribe(schemas.ControlRegistry, func(*nats.Msg) {
		select {
		case refresh <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("external: unable to subscribe to %s: %w", schemas.ControlRegistry, err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	var wg sync.WaitGroup
	r.results.Store(results)
	wg.Go(func() { _ = results.Run(ctx); r.results.Store(nil) })
	wg.Go(func() { r.prune(ctx) })
	r.sync(ctx, js, failures, beats)
	tick := time.NewTicker(r.cfg.Refresh)
	defer tick.Stop()
	r.log.Info("external: relay serving")
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			r.sync(ctx, js, failures, beats)
		case <-refresh:
			r.sync(ctx, js, failures, beats)
		}
	}
	r.mu.Lock()
	for name, m := range r.running {
		m.cancel()
		delete(r.running, name)
	}
	r.mu.Unlock()
	r.loopsRun.Wait()
	wg.Wait()
	r.log.Info("external: relay stopped")
	return nil
}

func (r *Relay) prune(ctx context.Context) {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n, err := r.cfg.Store.PrunePending(ctx, time.Now().Add(-pendingRetention)); err != nil {
				r.log.Warn("external: unable to prune pending invocations", logging.Err(err))
			} else if n > 0 {
				r.log.Info("external: pruned pending invocations", "rows", n)
			}
		}
	}
}

// sync starts a loop for each newly registered module and stops the loops
// of removed (or changed) ones.
func (r *Relay) sync(ctx context.Context, js jetstream.JetStream, failures, beats jetstream.KeyValue) {
	mods, err := r.cfg.Store.ExternalModules(ctx)
	if err != nil {
		r.log.Warn("external: unable to list external modules", logging.Err(err))
		return
	}
	want := map[string]store.ExternalModule{}
	for _, m := range mods {
		want[m.Manifest.Name] = m
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, m := range r.running {
		if w, ok := want[name]; !ok || w.Kind != m.kind || w.URL != m.url {
			m.cancel()
			delete(r.running, name)
		}
	}
	for name, m := range want {
		if _, ok := r.running[name]; ok {
			continue
		}
		cons, err := streams.EnsureConsumer(ctx, js, schemas.StreamCommands, streams.ModuleConsumer(name, r.cfg.AckWait))
		if err != nil {
			r.log.Warn("external: unable to serve module", logging.KeyModule, name, logging.Err(err))
			continue
		}
		mctx, cancel := context.WithCancel(ctx)
		ml := &moduleLoop{kind: m.Kind, url: m.URL, health: newHealth(), cancel: cancel, done: make(chan struct{})}
		h := r.natsHandler(name, ml.health)
		if m.Kind == store.ExternalWebhook {
			h = r.webhookHandler(name, m.URL, ml.health)
		}
		log := r.log.With(logging.KeyModule, name)
		loop := consume.New(js, cons, failures, h, consume.Config{
			Stream: schemas.StreamCommands, Consumer: name, Concurrency: r.cfg.Concurrency,
			MaxFailures: r.cfg.MaxFailures, Backoff: r.cfg.Backoff, Probe: r.cfg.Store.Ping, Logger: log,
		})
		ml.loop.Store(loop)
		r.running[name] = ml
		r.loopsRun.Go(func() {
			defer close(ml.done)
			_ = loop.Run(mctx)
			ml.loop.Store(nil)
		})
		r.loopsRun.Go(func() { r.heartbeat(mctx, beats, name, m.Manifest.Version, ml.health, ml.done) })
		log.Info("external: serving module", "kind", m.Kind)
	}
}

func decodeInvocation(data []byte, module string) (*schemas.Invocation, error) {
	var inv schemas.Invocation
	if err := json.Unmarshal(data, &inv); err != nil {
		return nil, consume.Permanent(fmt.Errorf("external: undecodable invocation: %w", err))
	}
	if err := inv.Validate(); err != nil {
		return nil, consume.Permanent(fmt.Errorf("external: %w", err))
	}
	if inv.Module != module {
		return nil, consume.Permanent(fmt.Errorf("%w: invocation for module %q reached module %q", schemas.ErrInvalid, inv.Module, module))
	}
	return &inv, nil
}

// natsHandler hands one invocation to a NATS module and waits for its
// result to be relayed (by this replica or another).
func (r *Relay) natsHandler(module string, health *moduleHealth) consume.Handler {
	subject := natsauth.ExternalInvokeSubject(module)
	return func(ctx context.Context, msg jetstream.Msg) error {
		inv, err := decodeInvocation(msg.Data(), module)
		if err != nil {
			return err
		}
		answered, err := r.cfg.Store.PendingAnswered(ctx, inv.ID)
		if err != nil {
			return consume.Unavailable(err)
		}
		if answered {
			return nil
		}
		ch := r.wait(inv.ID)
		defer r.unwait(inv.ID)
		// The window is this attempt's; a redelivery opens a new one.
		if err := r.cfg.Store.PutPending(ctx, inv, time.Now().Add(r.cfg.ResultTimeout)); err != nil {
			return consume.Unavailable(err)
		}
		nc := r.cfg.Conn.NC
		if err := nc.Publish(subject, msg.Data()); err != nil {
			return consume.DeferNATS(fmt.Errorf("external: unable to hand invocation %s to %s: %w", inv.ID, subject, err))
		}
		timeout := time.NewTimer(r.cfg.ResultTimeout)
		defer timeout.Stop()
		// Another replica may take the result: look in PostgreSQL now and then.
		poll := time.NewTicker(250 * time.Millisecond)
		defer poll.Stop()
		for {
			select {
			case <-ch:
				health.answered()
				return nil
			case <-poll.C:
				if ok, err := r.cfg.Store.PendingAnswered(ctx, inv.ID); err == nil && ok {
					health.answered()
					return nil
				}
			case <-timeout.C:
				// Closed before the failure is counted, so nothing answers an
				// invocation that was retried or dead-lettered meanwhile.
				if err := r.cfg.Store.ExpirePending(context.WithoutCancel(ctx), inv.ID, time.Now()); err != nil {
					r.log.Warn("external: unable to close an invocation's window", logging.KeyID, inv.ID, logging.Err(err))
				}
				if ok, err := r.cfg.Store.PendingAnswered(ctx, inv.ID); err == nil && ok {
					health.answered()
					return nil
				}
				health.missed()
				return fmt.Errorf("external: module %s sent no result for invocation %s within %s", module, inv.ID, r.cfg.ResultTimeout)
			case <-ctx.Done():
				return consume.Defer(0, "relay shutting down")
			}
		}
	}
}

func (r *Relay) wait(id string) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch, ok := r.waiters[id]
	if !ok {
		ch = make(chan struct{})
		r.waiters[id] = ch
	}
	return ch
}

func (r *Relay) unwait(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.waiters, id)
}

func (r *Relay) answered(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.waiters[id]; ok {
		close(ch)
		delete(r.waiters, id)
	}
}

// DecodeResult parses and validates a result an external module sent. It
// is the relay's one parser of outside input (fuzzed).
func DecodeResult(data []byte) (*schemas.Result, error) {
	if len(data) > MaxBody {
		return nil, fmt.Errorf("%w: result over %d bytes", schemas.ErrInvalid, MaxBody)
	}
	var res schemas.Result
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("%w: undecodable result: %v", schemas.ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the result", schemas.ErrInvalid)
	}
	if err := res.Validate(); err != nil {
		return nil, err
	}
	return &res, nil
}

// check makes sure a result may answer inv and turns it into messages.
func check(module string, inv *schemas.Invocation, res *schemas.Result, now time.Time) ([]store.OutMessage, error) {
	if res.Module != "" && res.Module != module {
		return nil, fmt.Errorf("%w: result names module %s, sent to %s", store.ErrRefused, res.Module, module)
	}
	if inv.Module != module {
		return nil, fmt.Errorf("%w: invocation %s is for module %s, not %s", store.ErrRefused, inv.ID, inv.Module, module)
	}
	for i, o := range res.Overlays {
		if o.CommunityID != "" && o.CommunityID != inv.Community.ID {
			return nil, fmt.Errorf("%w: overlay %d is for community %s, the invocation's is %s", store.ErrRefused, i, o.CommunityID, inv.Community.ID)
		}
	}
	msgs, err := actions.Outbound(inv, res, now)
	if err != nil {
		return nil, err
	}
	return msgs, nil
}

// handleResult checks a NATS module's result against its pending invocation
// and publishes it as replies. A refused result is logged, counted and
// acked: retrying it cannot make it acceptable.
func (r *Relay) handleResult(ctx context.Context, msg jetstream.Msg) error {
	module, ok := strings.CutPrefix(msg.Subject(), schemas.SubjectResults+".")
	if !ok || module == "" || strings.Contains(module, ".") {
		r.refuse(msg.Subject(), "", fmt.Errorf("%w: subject %s names no module", store.ErrRefused, msg.Subject()))
		return nil
	}
	res, err := DecodeResult(msg.Data())
	if err != nil {
		r.refuse(msg.Subject(), "", err)
		return nil
	}
	err = r.cfg.Store.AnswerPending(ctx, module, res.InvocationID, time.Now(), func(inv *schemas.Invocation) error {
		msgs, err := check(module, inv, res, time.Now())
		if err != nil {
			return err
		}
		return r.publish(ctx, msgs)
	})
	switch {
	case errors.Is(err, store.ErrRefused) || errors.Is(err, schemas.ErrInvalid):
		r.refuse(msg.Subject(), res.InvocationID, err)
		return nil
	case err != nil && store.IsUnavailable(err):
		return consume.Unavailable(err)
	case err != nil:
		return err
	}
	r.relayed.Add(1)
	r.answered(res.InvocationID)
	return nil
}

func (r *Relay) refuse(subject, invocationID string, err error) {
	r.refused.Add(1)
	r.log.Warn("external: result refused", logging.KeySubject, subject, logging.KeyID, invocationID, logging.Err(err))
}

// publish sends messages in order with their deterministic ids, so a retry
// is dropped by the duplicate window.
func (r *Relay) publish(ctx context.Context, msgs []store.OutMessage) error {
	for _, m := range msgs {
		if _, err := r.cfg.Conn.JS.Publish(ctx, m.Subject, m.Data, jetstream.WithMsgID(m.MsgID)); err != nil {
			return consume.DeferNATS(fmt.Errorf("external: unable to publish %s to %s: %w", m.MsgID, m.Subject, err))
		}
	}
	return nil
}

// webhookHandler POSTs one invocation to a webhook module.
func (r *Relay) webhookHandler(module, url string, health *moduleHealth) consume.Handler {
	return func(ctx context.Context, msg jetstream.Msg) error {
		inv, err := decodeInvocation(msg.Data(), module)
		if err != nil {
			return err
		}
		secret, err := r.cfg.Store.Secret(ctx, store.SecretOwnerExternal, module)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return consume.Permanent(fmt.Errorf("external: webhook module %s has no secret: %w", module, err))
			}
			return consume.Unavailable(err)
		}
		body := msg.Data()
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		hctx, cancel := context.WithTimeout(ctx, r.cfg.WebhookTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(hctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return consume.Permanent(fmt.Errorf("external: module %s: bad URL: %w", module, err))
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign(secret, ts, body))
		resp, err := r.cfg.HTTPClient.Do(req)
		if err != nil {
			// Timeouts and refused connections: the module's failure, retried.
			health.missed()
			return fmt.Errorf("external: module %s: unable to call webhook: %w", module, err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
		if err != nil {
			return fmt.Errorf("external: module %s: unable to read the webhook's answer: %w", module, err)
		}
		switch {
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout:
			health.missed()
			return fmt.Errorf("external: module %s: webhook answered %s", module, resp.Status)
		case resp.StatusCode == http.StatusTooManyRequests:
			// Busy, not down: it answered.
			health.answered()
			return fmt.Errorf("external: module %s: webhook answered %s", module, resp.Status)
		}
		// Any other answer, even a refusal, shows the module is up.
		health.answered()
		if resp.StatusCode >= 300 {
			return consume.Permanent(fmt.Errorf("external: module %s: webhook answered %s: %s", module, resp.Status, clip(data)))
		}
		var res *schemas.Result
		if resp.StatusCode == http.StatusNoContent || len(bytes.TrimSpace(data)) == 0 {
			res = &schemas.Result{Version: schemas.Version, InvocationID: inv.ID}
		} else if res, err = DecodeResult(data); err != nil {
			return consume.Permanent(fmt.Errorf("external: module %s: %w", module, err))
		}
		msgs, err := check(module, inv, res, time.Now())
		if err != nil {
			return consume.Permanent(fmt.Errorf("external: module %s: %w", module, err))
		}
		if err := r.publish(ctx, msgs); err != nil {
			return err
		}
		r.relayed.Add(1)
		return nil
	}
}

func clip(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
