// Package streams defines WaddleBot's JetStream streams, durable consumers and
// KV buckets as data, applies them idempotently (`waddlebot streams apply`,
// `waddlebot dev`) and verifies them, unchanged, when any other part starts.
package streams

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/schemas"
)

// KV bucket names.
const (
	BucketCooldowns  = "wb_cooldowns"  // per-key TTL: cooldowns and trigger throttles
	BucketWindows    = "wb_windows"    // sliding-window logs: rate limits and send budgets
	BucketLeases     = "wb_leases"     // connection leases of collectors
	BucketHeartbeats = "wb_heartbeats" // module heartbeats
	BucketFailures   = "wb_failures"   // handler-failure counts per message
	BucketAIMemory   = "wb_ai_memory"  // per-channel AI conversation memory
	// BucketInteractions holds what a collector needs to answer a slash
	// command later (a Discord interaction token, a Slack response URL),
	// keyed "<platform>.<event id token>", for as long as the platform
	// accepts follow-ups (Discord: 15 minutes).
	BucketInteractions = "wb_interactions"
)

// InteractionsTTL is how long a slash command can be answered.
const InteractionsTTL = 15 * time.Minute

// MaxMessageBytes is the largest message any stream takes.
const MaxMessageBytes = 1 << 20

// Config is what operators may change about the streams: sizes, ages,
// windows and replicas. Names and subjects are fixed by the contract.
type Config struct {
	Replicas          int
	Storage           jetstream.StorageType
	EventsMaxAge      time.Duration
	EventsMaxBytes    int64
	EventsDuplicates  time.Duration
	CommandsMaxAge    time.Duration
	RepliesMaxAge     time.Duration
	ResultsMaxAge     time.Duration
	MessageDuplicates time.Duration
	OverlayMaxAge     time.Duration
	OverlayPerSubject int64
	OverlayDuplicates time.Duration
	DLQMaxAge         time.Duration
	FailuresTTL       time.Duration
	WindowsTTL        time.Duration
	HeartbeatTTL      time.Duration
	LeaseTTL          time.Duration
	AIMemoryTTL       time.Duration
	CooldownMarkerTTL time.Duration
}

// FromSettings takes the stream settings out of the configuration table.
func FromSettings(c config.Config) Config {
	storage := jetstream.FileStorage
	if c.StreamStorage == "memory" {
		storage = jetstream.MemoryStorage
	}
	return Config{
		Replicas: c.StreamReplicas, Storage: storage,
		EventsMaxAge: c.EventsMaxAge, EventsMaxBytes: c.EventsMaxBytes, EventsDuplicates: c.EventsDuplicates,
		CommandsMaxAge: c.CommandsMaxAge, RepliesMaxAge: c.RepliesMaxAge, ResultsMaxAge: c.ResultsMaxAge,
		MessageDuplicates: c.MessageDuplicates,
		OverlayMaxAge:     c.OverlayMaxAge, OverlayPerSubject: c.OverlayPerSubject, OverlayDuplicates: c.OverlayDuplicates,
		DLQMaxAge: c.DLQMaxAge, FailuresTTL: c.FailuresTTL, WindowsTTL: c.WindowsTTL,
		HeartbeatTTL: c.HeartbeatTTL, LeaseTTL: c.LeaseTTL, AIMemoryTTL: c.AIMemoryTTL,
		CooldownMarkerTTL: c.CooldownMarkerTTL,
	}
}

// Default is the configuration with every default setting.
func Default() Config { return FromSettings(config.Defaults()) }

// window keeps a duplicate window inside MaxAge, which JetStream requires.
func window(dup, maxAge time.Duration) time.Duration {
	if maxAge > 0 && dup > maxAge {
		return maxAge
	}
	return dup
}

// Streams is the six streams of the contract. Every stream uses limits
// retention, so observers can read without disturbing owned consumers.
func (c Config) Streams() []jetstream.StreamConfig {
	base := func(name, desc string, subjects []string, maxAge, dup time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name: name, Description: desc, Subjects: subjects,
			Retention: jetstream.LimitsPolicy, Storage: c.Storage, Replicas: c.Replicas,
			MaxAge: maxAge, Duplicates: window(dup, maxAge), Discard: jetstream.DiscardOld,
			MaxMsgSize: MaxMessageBytes,
		}
	}
	events := base(schemas.StreamEvents, "Normalized platform events from collectors",
		[]string{schemas.SubjectEvents + ".>"}, c.EventsMaxAge, c.EventsDuplicates)
	events.MaxBytes = c.EventsMaxBytes
	overlay := base(schemas.StreamOverlay, "Items for browser sources",
		[]string{schemas.SubjectOverlay + ".>"}, c.OverlayMaxAge, c.OverlayDuplicates)
	overlay.MaxMsgsPerSubject = c.OverlayPerSubject
	return []jetstream.StreamConfig{
		events,
		base(schemas.StreamCommands, "Invocations for modules",
			[]string{schemas.SubjectCommands + ".>"}, c.CommandsMaxAge, c.MessageDuplicates),
		base(schemas.StreamReplies, "Replies and platform actions for collectors to send",
			[]string{schemas.SubjectReplies + ".>"}, c.RepliesMaxAge, c.MessageDuplicates),
		base(schemas.StreamResults, "Results of external modules, checked by the relay",
			[]string{schemas.SubjectResults + ".>"}, c.ResultsMaxAge, c.MessageDuplicates),
		overlay,
		base(schemas.StreamDLQ, "Dead letters of every stream",
			[]string{schemas.SubjectDLQ + ".>"}, c.DLQMaxAge, c.MessageDuplicates),
	}
}

// Buckets is every KV bucket.
func (c Config) Buckets() []jetstream.KeyValueConfig {
	kv := func(name, desc string, ttl time.Duration) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: name, Description: desc, TTL: ttl, History: 1,
			Storage: c.Storage, Replicas: c.Replicas}
	}
	cooldowns := kv(BucketCooldowns, "Cooldowns and trigger throttles (per-key TTL)", 0)
	cooldowns.LimitMarkerTTL = c.CooldownMarkerTTL
	return []jetstream.KeyValueConfig{
		cooldowns,
		kv(BucketWindows, "Sliding-window logs of rate limits and send budgets", c.WindowsTTL),
		kv(BucketLeases, "Connection leases of collectors", c.LeaseTTL),
		kv(BucketHeartbeats, "Module heartbeats", c.HeartbeatTTL),
		kv(BucketFailures, "Handler-failure counts per message", c.FailuresTTL),
		kv(BucketAIMemory, "Per-channel AI conversation memory", c.AIMemoryTTL),
		kv(BucketInteractions, "Slash-command follow-up handles (Discord interaction tokens, Slack response URLs)", InteractionsTTL),
	}
}

// Apply creates every stream and bucket, or updates it to this
// configuration. Running it twice changes nothing.
func Apply(ctx context.Context, js jetstream.JetStream, c Config) error {
	for _, sc := range c.Streams() {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("streams: unable to apply stream %s: %w", sc.Name, err)
		}
	}
	for _, kc := range c.Buckets() {
		if _, err := js.CreateOrUpdateKeyValue(ctx, kc); err != nil {
			return fmt.Errorf("streams: unable to apply bucket %s: %w", kc.Bucket, err)
		}
	}
	return nil
}

// ErrNotApplied means a stream or bucket a part needs is missing or has the
// wrong subjects: run `waddlebot streams apply`.
var ErrNotApplied = errors.New("streams: not applied (run `waddlebot streams apply`)")

// Verify checks, without changing anything, that every stream exists with the
// contract's subjects and every bucket exists.
func Verify(ctx context.Context, js jetstream.JetStream) error {
	var errs []error
	for _, want := range Default().Streams() {
		s, err := js.Stream(ctx, want.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: stream %s: %v", ErrNotApplied, want.Name, err))
			continue
		}
		got := s.CachedInfo().Config
		if !slices.Equal(got.Subjects, want.Subjects) {
			errs = append(errs, fmt.Errorf("%w: stream %s has subjects %v, want %v", ErrNotApplied, want.Name, got.Subjects, want.Subjects))
		}
		if got.Retention != jetstream.LimitsPolicy {
			errs = append(errs, fmt.Errorf("%w: stream %s has %s retention, want limits", ErrNotApplied, want.Name, got.Retention))
		}
	}
	for _, want := range Default().Buckets() {
		if _, err := js.KeyValue(ctx, want.Bucket); err != nil {
			errs = append(errs, fmt.Errorf("%w: bucket %s: %v", ErrNotApplied, want.Bucket, err))
		}
	}
	return errors.Join(errs...)
}

// Consumer names.
const (
	ConsumerRouter = "router"
	ConsumerRelay  = "relay"
)

// SenderConsumer is the durable name of a platform's reply sender.
func SenderConsumer(platform string) string { return platform + "-sender" }

// ConsumerConfig describes a durable pull consumer shared by a part's
// replicas. MaxDeliver is unlimited: the consume loop counts handler failures
// itself and dead-letters, so JetStream never strands a message.
func ConsumerConfig(durable, description, filter string, ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   description,
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 20000,
		MaxWaiting:    512,
	}
}

// RouterConsumer is the router's durable consumer on WB_EVENTS.
func RouterConsumer(ackWait time.Duration) jetstream.ConsumerConfig {
	return ConsumerConfig(ConsumerRouter, "Router: every event", schemas.SubjectEvents+".>", ackWait)
}

// ModuleConsumer is a module's durable consumer on WB_COMMANDS.
func ModuleConsumer(module string, ackWait time.Duration) jetstream.ConsumerConfig {
	return ConsumerConfig(module, "Module "+module, schemas.CommandSubject(module), ackWait)
}

// SenderConsumerConfig is a platform sender's durable consumer on WB_REPLIES.
func SenderConsumerConfig(platform string, ackWait time.Duration) jetstream.ConsumerConfig {
	return ConsumerConfig(SenderConsumer(platform), "Sender for "+platform, schemas.ReplyFilter(platform), ackWait)
}

// RelayConsumer is the relay's durable consumer on WB_RESULTS.
func RelayConsumer(ackWait time.Duration) jetstream.ConsumerConfig {
	return ConsumerConfig(ConsumerRelay, "Relay: external modules' results", schemas.SubjectResults+".>", ackWait)
}

// EnsureConsumer creates a part's durable consumer or updates it to cfg.
// Parts own their consumers; only streams are reserved to `streams apply`.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("streams: unable to ensure consumer %s on %s: %w", cfg.Durable, stream, err)
	}
	return c, nil
}

// CaughtUp reports whether a durable consumer has acknowledged every message
// stored so far under its filter. NumPending alone can lag a publish that was
// just stored, so this compares the ack floor with the stream's last matching
// sequence too. For benchmarks and tests that wait for a part to finish.
func CaughtUp(ctx context.Context, js jetstream.JetStream, stream, durable string) (bool, error) {
	c, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		return false, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return false, err
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		return false, nil
	}
	filter := info.Config.FilterSubject
	if filter == "" {
		filter = ">"
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return false, err
	}
	last, err := s.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return info.AckFloor.Stream >= last.Sequence, nil
}
