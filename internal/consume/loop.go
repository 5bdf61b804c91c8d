// Package consume is the one consume loop that the router, the module workers
// and the collector senders share: it pulls from a durable consumer as much as
// it has free capacity for, runs a handler per message, sends in-progress
// acks for long handlers, acks after success, retries failures with back-off,
// pauses while a dependency is down, counts handler failures across replicas,
// dead-letters, and drains on shutdown.
package consume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/metrics"
	"github.com/waddlebot/waddlebot/schemas"
)

// Handler works on one message. See Defer, Permanent, Unavailable and
// RetryAfter for what its error means; it must not ack the message itself.
type Handler func(ctx context.Context, msg jetstream.Msg) error

// Config tunes a loop.
type Config struct {
	// Stream and Consumer name the durable consumer (logs, metrics, dead letters).
	Stream   string
	Consumer string
	// Concurrency is how many messages are worked on at once; pulls ask for
	// no more than the free part of it.
	Concurrency int
	// MaxFailures is how many handler failures dead-letter a message.
	MaxFailures int
	// Backoff is the delay before retry n (1-based; the last repeats).
	Backoff []time.Duration
	// Probe, when set, tells whether a paused dependency is back.
	Probe func(ctx context.Context) error
	// ProbeEvery is the first wait between probes (it doubles up to 5 s).
	ProbeEvery time.Duration
	// FetchWait bounds one pull request.
	FetchWait time.Duration
	// DrainTimeout bounds how long Run waits for running handlers on shutdown.
	DrainTimeout time.Duration
	// OrderKey, when set, makes messages with the same key run one at a
	// time in the order they were fetched (senders key by channel, so the
	// parts of a long reply arrive in order).
	OrderKey func(jetstream.Msg) string
	Logger   *slog.Logger
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 5
	}
	if len(c.Backoff) == 0 {
		c.Backoff = []time.Duration{250 * time.Millisecond, time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second}
	}
	if c.ProbeEvery <= 0 {
		c.ProbeEvery = 100 * time.Millisecond
	}
	if c.FetchWait <= 0 {
		c.FetchWait = 5 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Loop runs a handler over a durable consumer.
type Loop struct {
	cfg      Config
	js       jetstream.JetStream
	cons     jetstream.Consumer
	failures jetstream.KeyValue
	handler  Handler
	log      *slog.Logger
	ackWait  time.Duration

	slots       chan struct{} // a token per free slot
	outstanding atomic.Int32  // open pull requests
	pullDone    chan struct{} // a pull finished: slot accounting changed

	pauseMu sync.Mutex
	paused  chan struct{} // non-nil while paused; closed on resume

	order *orderer
}

// New prepares a loop. failures is the shared bucket of handler-failure
// counts (streams.BucketFailures), so that a count survives a message moving
// to another replica.
func New(js jetstream.JetStream, cons jetstream.Consumer, failures jetstream.KeyValue, h Handler, cfg Config) *Loop {
	cfg.defaults()
	l := &Loop{cfg: cfg, js: js, cons: cons, failures: failures, handler: h,
		log:   cfg.Logger.With(logging.KeyStream, cfg.Stream, logging.KeyConsumer, cfg.Consumer),
		slots: make(chan struct{}, cfg.Concurrency), pullDone: make(chan struct{}, 1)}
	for range cfg.Concurrency {
		l.slots <- struct{}{}
	}
	l.ackWait = 30 * time.Second
	if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 {
		l.ackWait = info.Config.AckWait
	}
	if cfg.OrderKey != nil {
		l.order = &orderer{queues: map[string][]func(){}}
	}
	return l
}

// Paused reports whether the loop is waiting for a dependency.
func (l *Loop) Paused() bool {
	l.pauseMu.Lock()
	defer l.pauseMu.Unlock()
	return l.paused != nil
}

// Run pulls and handles messages until ctx ends, then stops pulling, puts
// back what it fetched but had not started, and waits (up to DrainTimeout)
// for running handlers to settle their messages.
func (l *Loop) Run(ctx context.Context) error {
	stopWatch := metrics.WatchConsumer(l.cfg.Stream, l.cfg.Consumer, func(ctx context.Context) (uint64, int, error) {
		info, err := l.cons.Info(ctx)
		if err != nil {
			return 0, 0, err
		}
		return info.NumPending, info.NumAckPending, nil
	})
	defer stopWatch()

	// Handlers outlive ctx so they can finish and ack during the drain.
	handlerCtx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()

	var running sync.WaitGroup
	minBatch := max(1, min(l.cfg.Concurrency, 100)/4)
	maxOutstanding := 8
	if l.order != nil {
		// Two open pulls may hand over messages in either order; one pull at
		// a time keeps the fetch order the stream order.
		maxOutstanding = 1
	}

	for ctx.Err() == nil {
		if err := l.waitResume(ctx); err != nil {
			break
		}
		n, err := l.acquire(ctx, minBatch, maxOutstanding)
		if err != nil {
			break
		}
		l.outstanding.Add(1)
		running.Add(1)
		go func() {
			defer running.Done()
			l.pull(ctx, handlerCtx, n, &running)
		}()
	}

	done := make(chan struct{})
	go func() { running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(l.cfg.DrainTimeout):
		l.log.Warn("consume: drain timed out; cancelling running handlers", logging.KeyDuration, l.cfg.DrainTimeout)
		cancelHandlers()
		<-done
	}
	return nil
}

// acquire takes at least one free slot, and more when a pull is already open
// (it will take new messages meanwhile, so waiting briefly costs no latency
// and gives larger pulls).
func (l *Loop) acquire(ctx context.Context, minBatch, maxOutstanding int) (int, error) {
	for l.outstanding.Load() >= int32(maxOutstanding) {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-l.pullDone:
		case <-time.After(50 * time.Millisecond):
		}
	}
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-l.slots:
	}
	n := 1 + l.takeFree()
	if n < minBatch && l.outstanding.Load() > 0 {
		linger := time.NewTimer(2 * time.Millisecond)
		defer linger.Stop()
	gather:
		for n < minBatch {
			select {
			case <-ctx.Done():
				l.release(n)
				return 0, ctx.Err()
			case <-l.slots:
				n++
				n += l.takeFree()
			case <-linger.C:
				break gather
			}
		}
	}
	return n, nil
}

func (l *Loop) takeFree() int {
	n := 0
	for {
		select {
		case <-l.slots:
			n++
		default:
			return n
		}
	}
}

func (l *Loop) release(n int) {
	for range n {
		l.slots <- struct{}{}
	}
}

// pull opens one pull request for n messages (n slots are held) and hands
// each message to a handler as it arrives.
func (l *Loop) pull(ctx, handlerCtx context.Context, n int, running *sync.WaitGroup) {
	defer func() {
		l.outstanding.Add(-1)
		select {
		case l.pullDone <- struct{}{}:
		default:
		}
	}()
	fctx, cancel := context.WithTimeout(ctx, l.cfg.FetchWait)
	defer cancel()
	batch, err := l.cons.Fetch(n, jetstream.FetchContext(fctx))
	if err != nil {
		l.release(n)
		if ctx.Err() == nil {
			l.log.Warn("consume: unable to pull", logging.Err(err))
			sleep(ctx, 500*time.Millisecond)
		}
		return
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		if ctx.Err() != nil {
			// Shutting down: let another replica have it now, not after AckWait.
			_ = msg.Nak()
			l.release(1)
			continue
		}
		running.Add(1)
		work := func() {
			defer running.Done()
			defer l.release(1)
			l.handle(handlerCtx, msg)
		}
		if l.order != nil {
			l.order.run(l.cfg.OrderKey(msg), work)
		} else {
			go work()
		}
	}
	l.release(n - got)
	if err := batch.Error(); err != nil && ctx.Err() == nil &&
		!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
		l.log.Warn("consume: pull ended with an error", logging.Err(err))
		sleep(ctx, 500*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// handle runs the handler with in-progress acks and settles the message.
func (l *Loop) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		l.log.Error("consume: message without metadata", logging.Err(err))
		_ = msg.Term()
		return
	}
	if l.Paused() {
		// Fetched before the pause began: put it back untouched.
		metrics.Deferred.WithLabelValues(l.cfg.Stream, l.cfg.Consumer, "paused").Inc()
		l.nak(msg, time.Second)
		return
	}
	stop := l.keepAlive(msg)
	herr := l.safeHandle(ctx, msg)
	stop()
	l.settle(ctx, msg, meta, herr)
}

func (l *Loop) safeHandle(ctx context.Context, msg jetstream.Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("consume: handler panicked: %v", r)
		}
	}()
	return l.handler(ctx, msg)
}

// keepAlive sends in-progress acks while a handler runs past a third of
// AckWait, so a slow handler is never redelivered and run twice. Fast
// handlers cost one timer and no goroutine.
func (l *Loop) keepAlive(msg jetstream.Msg) (stop func()) {
	every := l.ackWait / 3
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err := msg.InProgress(); err != nil {
			l.log.Debug("consume: in-progress ack failed", logging.Err(err))
		}
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}

func (l *Loop) settle(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, herr error) {
	seq := meta.Sequence.Stream
	outcome, delay := classify(herr)
	switch outcome {
	case outcomeAck:
		if err := msg.Ack(); err != nil {
			l.log.Warn("consume: ack failed; the message will come again", logging.KeySeq, seq, logging.Err(err))
		}
	case outcomeDefer:
		metrics.Deferred.WithLabelValues(l.cfg.Stream, l.cfg.Consumer, "defer").Inc()
		l.nak(msg, delay)
	case outcomeUnavailable:
		metrics.Deferred.WithLabelValues(l.cfg.Stream, l.cfg.Consumer, "unavailable").Inc()
		l.log.Warn("consume: dependency unavailable; pausing", logging.KeySeq, seq, logging.Err(herr))
		l.nak(msg, time.Second)
		l.pause(ctx)
	case outcomeDeadLetter:
		l.deadLetter(ctx, msg, meta, herr.Error(), 0)
	case outcomeFailure:
		metrics.HandlerFailures.WithLabelValues(l.cfg.Stream, l.cfg.Consumer).Inc()
		n, err := l.countFailure(ctx, seq)
		if err != nil {
			// Without a count we cannot tell how often it failed: retry later.
			l.log.Warn("consume: unable to count a failure", logging.KeySeq, seq, logging.Err(err))
			l.nak(msg, l.backoff(1))
			return
		}
		if n >= l.cfg.MaxFailures {
			l.deadLetter(ctx, msg, meta, fmt.Sprintf("failed %d times; last: %v", n, herr), n)
			return
		}
		if delay <= 0 {
			delay = l.backoff(n)
		}
		l.log.Warn("consume: handler failed; will retry", logging.KeySeq, seq, "failures", n,
			"retry_in", delay, logging.Err(herr))
		l.nak(msg, delay)
	}
}

func (l *Loop) nak(msg jetstream.Msg, delay time.Duration) {
	if err := msg.NakWithDelay(delay); err != nil {
		l.log.Debug("consume: nak failed; AckWait will redeliver", logging.Err(err))
	}
}

func (l *Loop) backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > len(l.cfg.Backoff) {
		n = len(l.cfg.Backoff)
	}
	return l.cfg.Backoff[n-1]
}

func (l *Loop) failureKey(seq uint64) string {
	return schemas.EncodeToken(l.cfg.Stream) + "." + schemas.EncodeToken(l.cfg.Consumer) + "." + strconv.FormatUint(seq, 10)
}

// countFailure adds one to the message's failure count, shared by replicas.
func (l *Loop) countFailure(ctx context.Context, seq uint64) (int, error) {
	key := l.failureKey(seq)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for attempt := 0; attempt < 5; attempt++ {
		entry, err := l.failures.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err := l.failures.Create(ctx, key, []byte("1")); err == nil {
				return 1, nil
			} else if !errors.Is(err, jetstream.ErrKeyExists) {
				return 0, err
			}
		case err != nil:
			return 0, err
		default:
			n, _ := strconv.Atoi(string(entry.Value()))
			n++
			if _, err := l.failures.Update(ctx, key, []byte(strconv.Itoa(n)), entry.Revision()); err == nil {
				return n, nil
			}
		}
	}
	return 0, errors.New("consume: failure count kept changing under us")
}

// deadLetter publishes the message to wb.dlq.<stream> and then terminates
// it. If the dead-letter stream cannot take it, the message goes back.
func (l *Loop) deadLetter(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, reason string, failures int) {
	dl := schemas.DeadLetter{
		Version: schemas.Version, Stream: l.cfg.Stream, Consumer: l.cfg.Consumer,
		Subject: msg.Subject(), Sequence: meta.Sequence.Stream, Headers: msg.Headers(),
		Body: msg.Data(), Reason: reason, Failures: failures, FailedAt: time.Now().UTC(),
	}
	body, err := json.Marshal(&dl)
	if err != nil {
		l.log.Error("consume: unable to encode a dead letter", logging.Err(err))
		l.nak(msg, time.Second)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := l.js.Publish(pctx, schemas.DLQSubject(l.cfg.Stream), body, jetstream.WithMsgID(dl.MsgID())); err != nil {
		l.log.Error("consume: unable to dead-letter; will retry", logging.KeySeq, dl.Sequence, logging.Err(err))
		l.nak(msg, time.Second)
		return
	}
	metrics.DeadLettered.WithLabelValues(l.cfg.Stream, l.cfg.Consumer).Inc()
	l.log.Warn("consume: dead-lettered", logging.KeySubject, dl.Subject, logging.KeySeq, dl.Sequence,
		logging.KeyReason, reason)
	if err := msg.TermWithReason(truncate(reason, 200)); err != nil {
		l.log.Warn("consume: unable to terminate a dead-lettered message", logging.Err(err))
	}
	if failures > 0 {
		_ = l.failures.Delete(pctx, l.failureKey(dl.Sequence))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// pause stops pulling until the probe succeeds (without a probe, for one
// ProbeEvery), so the consumer does not cycle messages through a dependency
// that is down.
func (l *Loop) pause(ctx context.Context) {
	l.pauseMu.Lock()
	if l.paused != nil {
		l.pauseMu.Unlock()
		return
	}
	resumed := make(chan struct{})
	l.paused = resumed
	l.pauseMu.Unlock()
	metrics.Paused.WithLabelValues(l.cfg.Stream, l.cfg.Consumer).Set(1)

	go func() {
		wait := l.cfg.ProbeEvery
		start := time.Now()
		for {
			sleep(ctx, wait)
			if l.cfg.Probe == nil || ctx.Err() != nil {
				// No probe, or the loop is gone: stop waiting.
				break
			}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := l.cfg.Probe(pctx)
			cancel()
			if err == nil {
				break
			}
			wait = min(wait*2, 5*time.Second)
		}
		l.log.Info("consume: dependency back; resuming", "paused_for", time.Since(start).Round(time.Millisecond))
		metrics.Paused.WithLabelValues(l.cfg.Stream, l.cfg.Consumer).Set(0)
		l.pauseMu.Lock()
		l.paused = nil
		l.pauseMu.Unlock()
		close(resumed)
	}()
}

func (l *Loop) waitResume(ctx context.Context) error {
	l.pauseMu.Lock()
	ch := l.paused
	l.pauseMu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-ch:
		return nil
	}
}

// orderer runs work one at a time per key, in submission order.
type orderer struct {
	mu     sync.Mutex
	queues map[string][]func()
}

func (o *orderer) run(key string, work func()) {
	o.mu.Lock()
	q, busy := o.queues[key]
	o.queues[key] = append(q, work)
	o.mu.Unlock()
	if busy {
		return
	}
	go func() {
		for {
			o.mu.Lock()
			q := o.queues[key]
			if len(q) == 0 {
				delete(o.queues, key)
				o.mu.Unlock()
				return
			}
			next := q[0]
			o.queues[key] = q[1:]
			o.mu.Unlock()
			next()
		}
	}()
}
