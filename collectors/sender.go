package collectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/consume"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/metrics"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Platform is a collector's sending side.
type Platform interface {
	// Name is the platform as subjects spell it: "console", "twitch", ...
	Name() string
	// Send delivers one reply. Its text is already split to the platform's
	// limit by the runtime: senders never split. Return nil when the
	// platform accepted it; consume.Defer(d, why) for a 429 / Retry-After
	// (not a failure); consume.RetryAfter(err, d) or a plain error for a
	// transient 5xx or network error (counted, retried with back-off);
	// consume.Permanent(err) for a refusal that will never succeed.
	//
	// An error means the platform did not take the message; a platform that
	// cannot tell (a timeout after the request went out) should still return
	// the error: the retry may then repeat the message, which is the lesser
	// harm than losing it.
	Send(ctx context.Context, r *schemas.Reply) error
}

// SenderConfig configures a Sender.
type SenderConfig struct {
	Platform Platform
	Conn     *natsx.Conn
	// Budget is how many messages one channel may receive per Window,
	// shared by every replica of the sender; 0 means no budget (console).
	Budget int
	// BudgetFor, when set, gives a channel's budget per reply instead of
	// Budget (Twitch allows a channel 100 where the bot is a moderator, 20
	// elsewhere). Zero means no budget for that channel.
	BudgetFor func(ctx context.Context, r *schemas.Reply) int
	Window    time.Duration
	// Concurrency bounds messages in flight across channels (default 64);
	// one channel's messages are always sent one at a time, in order.
	Concurrency int
	// MaxFailures dead-letters a reply after this many failed sends (default 5).
	MaxFailures int
	// AckWait is the sender consumer's AckWait (default 30 s); it also
	// bounds one Platform.Send.
	AckWait time.Duration
	// Backoff overrides the consume loop's retry delays (tests).
	Backoff []time.Duration
	Logger  *slog.Logger
}

// Sender drains a platform's replies from WB_REPLIES through its durable
// consumer "<platform>-sender", shared by every replica.
type Sender struct {
	cfg      SenderConfig
	platform string
	log      *slog.Logger
	loop     atomic.Pointer[consume.Loop]
	budget   *coord.Windows
	// refused remembers replies whose last send here came back with an
	// error, so their retry is not mistaken for a possible duplicate.
	refused refusedSet
}

// NewSender checks cfg and fills its defaults.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if cfg.Platform == nil {
		return nil, errors.New("collectors: sender needs a platform")
	}
	platform := cfg.Platform.Name()
	if !schemas.ValidPlatform(platform) {
		return nil, fmt.Errorf("collectors: sender platform %q is not one of %v", platform, schemas.Platforms)
	}
	if cfg.Conn == nil || cfg.Conn.JS == nil {
		return nil, fmt.Errorf("collectors: %s sender needs a NATS connection", platform)
	}
	if cfg.Budget < 0 {
		return nil, fmt.Errorf("collectors: %s sender budget %d is negative", platform, cfg.Budget)
	}
	if (cfg.Budget > 0 || cfg.BudgetFor != nil) && cfg.Window <= 0 {
		return nil, fmt.Errorf("collectors: %s sender has a budget of %d but no window", platform, cfg.Budget)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sender{
		cfg:      cfg,
		platform: platform,
		log:      cfg.Logger.With(logging.KeyPart, "sender", logging.KeyPlatform, platform),
		refused:  refusedSet{ids: map[string]time.Time{}},
	}, nil
}

// Run ensures the durable consumer and sends replies until ctx ends; then it
// stops pulling and waits for the sends in flight to be acknowledged. Call
// it once.
func (s *Sender) Run(ctx context.Context) error {
	js := s.cfg.Conn.JS
	durable := streams.SenderConsumer(s.platform)
	cons, err := streams.EnsureConsumer(ctx, js, schemas.StreamReplies, streams.SenderConsumerConfig(s.platform, s.cfg.AckWait))
	if err != nil {
		return fmt.Errorf("collectors: unable to start the %s sender: %w", s.platform, err)
	}
	failures, err := js.KeyValue(ctx, streams.BucketFailures)
	if err != nil {
		return fmt.Errorf("collectors: unable to open bucket %s: %w", streams.BucketFailures, err)
	}
	windows, err := js.KeyValue(ctx, streams.BucketWindows)
	if err != nil {
		return fmt.Errorf("collectors: unable to open bucket %s: %w", streams.BucketWindows, err)
	}
	s.budget = coord.NewWindows(windows)
	loop := consume.New(js, cons, failures, s.handle, consume.Config{
		Stream:      schemas.StreamReplies,
		Consumer:    durable,
		Concurrency: s.cfg.Concurrency,
		MaxFailures: s.cfg.MaxFailures,
		Backoff:     s.cfg.Backoff,
		// The subject is wb.reply.<platform>.<channel>: one channel's parts
		// go out one at a time, in stream order.
		OrderKey: func(msg jetstream.Msg) string { return msg.Subject() },
		Probe: func(ctx context.Context) error {
			_, err := windows.Status(ctx)
			return err
		},
		Logger: s.log,
	})
	s.loop.Store(loop)
	defer s.loop.Store(nil)
	s.log.Info("collectors: sender running", logging.KeyConsumer, durable, "budget", s.cfg.Budget, "window", s.cfg.Window)
	err = loop.Run(ctx)
	s.log.Info("collectors: sender stopped", logging.KeyConsumer, durable)
	return err
}

// Ready reports whether Run has its consumer and is sending (not paused
// for an unreachable send budget).
func (s *Sender) Ready() bool {
	l := s.loop.Load()
	return l != nil && !l.Paused()
}

// notePossibleDuplicate counts a redelivered reply whose earlier attempt may
// have reached the platform (passedBefore) and was not seen to fail.
func (s *Sender) notePossibleDuplicate(msg jetstream.Msg, id string, passedBefore bool, log *slog.Logger) {
	meta, err := msg.Metadata()
	if err != nil || meta.NumDelivered <= 1 || !passedBefore || s.refused.has(id) {
		return
	}
	metrics.PossibleDuplicateSends.WithLabelValues(s.platform).Inc()
	log.Warn("collectors: reply redelivered after an earlier attempt may have been sent; it may appear twice",
		"deliveries", meta.NumDelivered)
}

// BudgetKey is the send-budget window of one channel of a platform in
// streams.BucketWindows.
func BudgetKey(platform, channelID string) string {
	return "send." + platform + "." + schemas.EncodeToken(channelID)
}

func (s *Sender) handle(ctx context.Context, msg jetstream.Msg) error {
	var r schemas.Reply
	if err := json.Unmarshal(msg.Data(), &r); err != nil {
		return consume.Permanent(fmt.Errorf("collectors: undecodable reply on %s: %w", msg.Subject(), err))
	}
	if err := r.Validate(); err != nil {
		return consume.Permanent(fmt.Errorf("collectors: invalid reply %q on %s: %w", r.ID, msg.Subject(), err))
	}
	platform, channel, err := schemas.ParseReplySubject(msg.Subject())
	if err != nil {
		return consume.Permanent(fmt.Errorf("collectors: reply %s: %w", r.ID, err))
	}
	if platform != s.platform || r.Target.Platform != s.platform {
		return consume.Permanent(fmt.Errorf("collectors: reply %s for %q on %s reached the %s sender",
			r.ID, r.Target.Platform, msg.Subject(), s.platform))
	}
	// Ordering and the budget are per subject; a reply whose target names
	// another channel would slip past both.
	if channel != r.Target.ChannelID {
		return consume.Permanent(fmt.Errorf("collectors: reply %s targets channel %q but was published for %q",
			r.ID, r.Target.ChannelID, channel))
	}
	log := s.log.With(logging.KeyChannel, channel, logging.KeyID, r.ID)

	budget := s.cfg.Budget
	if s.cfg.BudgetFor != nil {
		budget = s.cfg.BudgetFor(ctx, &r)
	}
	if budget > 0 {
		d, err := s.budget.Allow(ctx, BudgetKey(s.platform, channel), r.ID, budget, s.cfg.Window)
		if err != nil {
			// The budget lives in NATS: without it nothing may be sent, and
			// it is not this reply's fault.
			return consume.Unavailable(fmt.Errorf("collectors: unable to check the send budget: %w", err))
		}
		if !d.Allowed {
			metrics.RateLimited.WithLabelValues("send_budget").Inc()
			log.Debug("collectors: send budget spent; deferring", "retry_in", d.RetryAfter)
			return consume.Defer(d.RetryAfter, "send budget")
		}
		// Allowed without a new entry: an earlier delivery of this reply got
		// past the budget. Unless we saw that attempt fail, it may have
		// reached the platform and died before its ack (design §3).
		s.notePossibleDuplicate(msg, r.ID, d.Repeat, log)
	} else {
		// No budget to tell whether an earlier delivery got as far as the
		// platform: every redelivery not seen to fail may be one.
		s.notePossibleDuplicate(msg, r.ID, true, log)
	}

	sctx, cancel := context.WithTimeout(ctx, s.cfg.AckWait)
	err = s.cfg.Platform.Send(sctx, &r)
	cancel()
	if err != nil {
		s.refused.add(r.ID)
		return fmt.Errorf("collectors: %s did not take reply %s: %w", s.platform, r.ID, err)
	}
	s.refused.remove(r.ID)
	metrics.RepliesSent.WithLabelValues(s.platform).Inc()
	metrics.Since("send", r.CreatedAt)
	log.Debug("collectors: reply sent", "part", r.Part, "parts", r.Parts)
	return nil
}

// refusedSet is a bounded set of reply ids with the time they were added.
type refusedSet struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

const maxRefused = 10000

func (s *refusedSet) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) >= maxRefused {
		// Forget ids older than an hour, or all if that is not enough: a
		// forgotten id can at worst count one possible duplicate too many.
		cutoff := time.Now().Add(-time.Hour)
		for k, at := range s.ids {
			if at.Before(cutoff) {
				delete(s.ids, k)
			}
		}
		if len(s.ids) >= maxRefused {
			clear(s.ids)
		}
	}
	s.ids[id] = time.Now()
}

func (s *refusedSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.ids[id]
	return ok
}

func (s *refusedSet) remove(id string) {
	s.mu.Lock()
	delete(s.ids, id)
	s.mu.Unlock()
}
