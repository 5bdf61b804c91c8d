// Package router consumes every event, resolves its community, parses
// commands, applies the catalogue, permissions, cooldowns, rate limits and
// trigger throttles, and publishes one invocation per module route.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/consume"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/metrics"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Store is what the router reads from PostgreSQL (*store.Store does it).
type Store interface {
	ResolveChannel(ctx context.Context, ch store.Channel) (schemas.Community, error)
	Catalogue(ctx context.Context) ([]store.CatalogueEntry, error)
	CommunityModules(ctx context.Context, communityID string) (map[string]store.ModuleChoice, error)
	CommandOverrides(ctx context.Context, communityID string) (map[string]store.CommandOverride, error)
	Ping(ctx context.Context) error
}

// Config configures a router replica.
type Config struct {
	Conn  *natsx.Conn
	Store Store

	Concurrency int
	MaxFailures int
	AckWait     time.Duration
	Backoff     []time.Duration

	UserRateLimit      int
	UserRateWindow     time.Duration
	ChannelRateLimit   int
	ChannelRateWindow  time.Duration
	InvocationDeadline time.Duration
	CacheTTL           time.Duration

	Logger *slog.Logger
}

// Router is one router replica. Replicas share the durable consumer.
type Router struct {
	cfg       Config
	log       *slog.Logger
	cache     *cache
	cooldowns *coord.Cooldowns
	windows   *coord.Windows
	loop      atomic.Pointer[consume.Loop]
	now       func() time.Time
}

// New checks the configuration.
func New(cfg Config) (*Router, error) {
	if cfg.Conn == nil || cfg.Store == nil {
		return nil, errors.New("router: a NATS connection and a store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.InvocationDeadline <= 0 {
		cfg.InvocationDeadline = 30 * time.Second
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = time.Minute
	}
	if cfg.UserRateWindow <= 0 {
		cfg.UserRateWindow = time.Minute
	}
	if cfg.ChannelRateWindow <= 0 {
		cfg.ChannelRateWindow = time.Minute
	}
	return &Router{cfg: cfg, log: cfg.Logger.With(logging.KeyPart, "router"),
		cache: newCache(cfg.Store, cfg.CacheTTL), now: time.Now}, nil
}

// Run consumes WB_EVENTS until ctx ends, then drains.
func (r *Router) Run(ctx context.Context) error {
	js := r.cfg.Conn.JS
	if err := streams.Verify(ctx, js); err != nil {
		return err
	}
	cooldowns, err := js.KeyValue(ctx, streams.BucketCooldowns)
	if err != nil {
		return fmt.Errorf("router: unable to open cooldowns: %w", err)
	}
	windows, err := js.KeyValue(ctx, streams.BucketWindows)
	if err != nil {
		return fmt.Errorf("router: unable to open rate windows: %w", err)
	}
	failures, err := js.KeyValue(ctx, streams.BucketFailures)
	if err != nil {
		return fmt.Errorf("router: unable to open failure counts: %w", err)
	}
	r.cooldowns = coord.NewCooldowns(cooldowns)
	r.windows = coord.NewWindows(windows)

	sub, err := r.cfg.Conn.NC.Subscribe(schemas.ControlAll, func(m *nats.Msg) { r.cache.invalidate(m.Subject) })
	if err != nil {
		return fmt.Errorf("router: unable to listen for control notices: %w", err)
	}
	defer sub.Unsubscribe()

	cons, err := streams.EnsureConsumer(ctx, js, schemas.StreamEvents, streams.RouterConsumer(r.cfg.AckWait))
	if err != nil {
		return err
	}
	loop := consume.New(js, cons, failures, r.handle, consume.Config{
		Stream: schemas.StreamEvents, Consumer: streams.ConsumerRouter,
		Concurrency: r.cfg.Concurrency, MaxFailures: r.cfg.MaxFailures, Backoff: r.cfg.Backoff,
		Probe: r.cfg.Store.Ping, Logger: r.log,
	})
	r.loop.Store(loop)
	r.log.Info("router: consuming", logging.KeyStream, schemas.StreamEvents)
	return loop.Run(ctx)
}

// Ready reports whether the router consumes and is not paused.
func (r *Router) Ready() bool {
	l := r.loop.Load()
	return l != nil && !l.Paused()
}

// handle routes one event.
func (r *Router) handle(ctx context.Context, msg jetstream.Msg) error {
	if meta, err := msg.Metadata(); err == nil && meta.NumDelivered == 1 {
		// Counted from the subject, so undecodable events count too.
		if a, err := schemas.ParseEventSubject(msg.Subject()); err == nil {
			metrics.EventsIn.WithLabelValues(a.Platform, string(a.Kind)).Inc()
		}
	}
	var ev schemas.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		return consume.Permanent(fmt.Errorf("router: undecodable event: %w", err))
	}
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("router: %w", err)
	}
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = r.now()
	}
	invs, outcome, err := r.Route(ctx, &ev)
	if err != nil {
		if store.IsUnavailable(err) {
			return consume.Unavailable(err)
		}
		// Route's other errors come from KV (cooldowns, windows): a NATS that
		// does not answer defers the event instead of failing it.
		return consume.DeferNATS(err)
	}
	if len(invs) > 0 {
		if err := r.publish(ctx, invs); err != nil {
			return consume.DeferNATS(err)
		}
		metrics.Since("route", ev.ReceivedAt)
	}
	metrics.EventsRouted.WithLabelValues(outcome).Inc()
	return nil
}

// Outcomes of routing one event, for metrics and tests.
const (
	OutcomeInvoked  = "invoked"
	OutcomeIgnored  = "ignored"
	OutcomeDenied   = "denied"
	OutcomeLimited  = "limited"
	OutcomeCooling  = "cooling"
	OutcomeDisabled = "disabled"
)

// Route decides which invocations an event causes. It has side effects in
// KV (cooldowns and windows are taken), so a redelivered event takes the
// same decisions: the keys remember this event's id.
func (r *Router) Route(ctx context.Context, ev *schemas.Event) ([]*schemas.Invocation, string, error) {
	reg, err := r.cache.registry(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("router: unable to load registry: %w", err)
	}
	cmd, isCommand := r.parse(ev, reg)
	triggers := reg.triggers[ev.Kind]
	if !isCommand && len(triggers) == 0 {
		// Plain chat nobody listens to: no PostgreSQL, no KV.
		return nil, OutcomeIgnored, nil
	}
	view, err := r.cache.view(ctx, ev)
	if err != nil {
		return nil, "", fmt.Errorf("router: unable to resolve community: %w", err)
	}
	var out []*schemas.Invocation
	outcome := OutcomeIgnored
	if isCommand && !ev.User.Bot {
		inv, why, err := r.routeCommand(ctx, ev, view, reg, cmd)
		if err != nil {
			return nil, "", err
		}
		outcome = why
		if inv != nil {
			out = append(out, inv)
		}
	}
	for _, t := range triggers {
		if ev.User.Bot || !view.enabled(t.module) {
			continue
		}
		ok, err := r.throttle(ctx, ev, view, t)
		if err != nil {
			return nil, "", err
		}
		if !ok {
			metrics.RateLimited.WithLabelValues("throttle").Inc()
			continue
		}
		out = append(out, r.invocation(ev, view, t.module.Name, schemas.RouteTrigger+string(ev.Kind), Command{}, ""))
		outcome = OutcomeInvoked
	}
	return out, outcome, nil
}

// parse finds a command in the event's text, if it has one: with the
// community prefix (known only after resolving the community, so first with
// every prefix the registry could answer to), '#', or bare for slash commands.
func (r *Router) parse(ev *schemas.Event, reg *registry) (Command, bool) {
	if !ev.Kind.HasText() || ev.Text == "" {
		return Command{}, false
	}
	if ev.Kind == schemas.KindCommand {
		c, ok := ParseBare(ev.Text)
		if !ok {
			return Command{}, false
		}
		// A slash command may still name an external module as "#name".
		if _, known := reg.builtin[c.Name]; !known {
			if _, ext := reg.external[c.Name]; ext {
				c.Prefix = ExternalPrefix
			}
		}
		return c, true
	}
	// Any leading punctuation may be a community's prefix; the community's
	// real prefix is checked in routeCommand. This keeps plain chat free.
	first := ev.Text
	for len(first) > 0 && (first[0] == ' ' || first[0] == '\t') {
		first = first[1:]
	}
	if first == "" {
		return Command{}, false
	}
	// Prefixes are symbols (the database refuses letters and digits), so
	// chat that starts with a word is never a command.
	if r, _ := utf8.DecodeRuneInString(first); unicode.IsLetter(r) || unicode.IsDigit(r) {
		return Command{}, false
	}
	// A prefix is one to three characters, not bytes ("€€" is two).
	end := 0
	for runes := 0; runes < 3; runes++ {
		_, size := utf8.DecodeRuneInString(first[end:])
		end += size
		if end >= len(first) {
			break
		}
		if c, ok := Parse(first, first[:end]); ok {
			if _, known := reg.lookup(c); known {
				return c, true
			}
		}
	}
	return Command{}, false
}

func (r *Router) routeCommand(ctx context.Context, ev *schemas.Event, view *communityView, reg *registry, cmd Command) (*schemas.Invocation, string, error) {
	if ev.Kind != schemas.KindCommand && cmd.Prefix != ExternalPrefix && cmd.Prefix != view.community.Prefix {
		return nil, OutcomeIgnored, nil
	}
	rt, ok := reg.lookup(cmd)
	if !ok {
		return nil, OutcomeIgnored, nil
	}
	if !view.enabled(rt.module) {
		return nil, OutcomeDisabled, nil
	}
	spec, enabled := view.effective(rt.command)
	if !enabled {
		return nil, OutcomeDisabled, nil
	}
	if ev.User.Highest() < schemas.RoleRank(spec.Permission) {
		return nil, OutcomeDenied, nil
	}
	community := view.community.ID
	user := userKey(ev)
	// Rate limits count every attempt, so a spammer cannot hide behind a
	// cooldown; cooldowns are taken only by commands that will run. The two
	// windows are independent keys: take them side by side, one round trip.
	var userD, chanD coord.Decision
	var userErr, chanErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		userD, userErr = r.windows.Allow(ctx, "ur."+community+"."+user, ev.ID, r.cfg.UserRateLimit, r.cfg.UserRateWindow)
	})
	chanD, chanErr = r.windows.Allow(ctx, "cr."+ev.Platform+"."+schemas.EncodeToken(ev.Channel.ID), ev.ID, r.cfg.ChannelRateLimit, r.cfg.ChannelRateWindow)
	wg.Wait()
	if err := errors.Join(userErr, chanErr); err != nil {
		return nil, "", err
	}
	if !userD.Allowed {
		metrics.RateLimited.WithLabelValues("user_rate").Inc()
		return nil, OutcomeLimited, nil
	}
	if !chanD.Allowed {
		metrics.RateLimited.WithLabelValues("channel_rate").Inc()
		return nil, OutcomeLimited, nil
	}
	userCooldown := "cu." + community + "." + spec.Name + "." + user
	if ok, err := r.cooldowns.Take(ctx, userCooldown, ev.ID, ms(spec.UserCooldownMS)); err != nil {
		return nil, "", err
	} else if !ok {
		metrics.RateLimited.WithLabelValues("cooldown_user").Inc()
		return nil, OutcomeCooling, nil
	}
	if ok, err := r.cooldowns.Take(ctx, "cg."+community+"."+spec.Name, ev.ID, ms(spec.GlobalCooldownMS)); err != nil {
		return nil, "", err
	} else if !ok {
		// The command will not run: the user's own cooldown must not hold
		// them back for something they never got.
		if spec.UserCooldownMS > 0 {
			if err := r.cooldowns.Release(ctx, userCooldown, ev.ID); err != nil {
				return nil, "", err
			}
		}
		metrics.RateLimited.WithLabelValues("cooldown_global").Inc()
		return nil, OutcomeCooling, nil
	}
	return r.invocation(ev, view, rt.module.Name, schemas.RouteCommand+spec.Name, cmd, spec.Name), OutcomeInvoked, nil
}

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

func userKey(ev *schemas.Event) string {
	id := ev.User.ID
	if id == "" {
		id = ev.User.Login
	}
	return ev.Platform + "." + schemas.EncodeToken(id)
}

// throttle applies a trigger's per-scope window.
func (r *Router) throttle(ctx context.Context, ev *schemas.Event, view *communityView, t trigger) (bool, error) {
	w := t.spec.Window()
	if w <= 0 {
		return true, nil
	}
	var scope string
	switch t.spec.Per {
	case schemas.ThrottleUser:
		scope = view.community.ID + "." + userKey(ev)
	case schemas.ThrottleChannel:
		scope = ev.Platform + "." + schemas.EncodeToken(ev.Channel.ID)
	default:
		scope = view.community.ID
	}
	return r.cooldowns.Take(ctx, "t."+t.module.Name+"."+string(ev.Kind)+"."+scope, ev.ID, w)
}

func (r *Router) invocation(ev *schemas.Event, view *communityView, module, route string, cmd Command, command string) *schemas.Invocation {
	return &schemas.Invocation{
		Version:   schemas.Version,
		ID:        schemas.InvocationID(ev.ID, module, route),
		Event:     *ev,
		Community: view.community,
		Settings:  view.settings(module),
		Module:    module,
		Route:     route,
		Command:   command,
		Invoked:   cmd.Name,
		Args:      cmd.Args,
		ArgText:   cmd.ArgText,
		Deadline:  ev.ReceivedAt.Add(r.cfg.InvocationDeadline),
	}
}

// publish sends the invocations with their deterministic ids and waits for
// every acknowledgement, so the event is acked only after they are stored.
func (r *Router) publish(ctx context.Context, invs []*schemas.Invocation) error {
	js := r.cfg.Conn.JS
	futures := make([]jetstream.PubAckFuture, 0, len(invs))
	for _, inv := range invs {
		body, err := json.Marshal(inv)
		if err != nil {
			return fmt.Errorf("router: unable to encode invocation: %w", err)
		}
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: inv.Subject(), Data: body,
			Header: nats.Header{jetstream.MsgIDHeader: []string{inv.ID}}})
		if err != nil {
			return fmt.Errorf("router: unable to publish invocation: %w", err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
			metrics.InvocationsOut.WithLabelValues(invs[i].Module).Inc()
		case err := <-f.Err():
			return fmt.Errorf("router: invocation for %s not stored: %w", invs[i].Module, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
