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
	"strings"
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
	Aliases(ctx context.Context, communityID string) (map[string]store.Alias, error)
	UserLabels(ctx context.Context, communityID, platform, login string) ([]string, error)
	PersonOf(ctx context.Context, platform, userID string) (string, error)
	PersonLabels(ctx context.Context, communityID, personID string) ([]string, error)
	CountAliasRun(ctx context.Context, communityID, name, invocationID string) (int64, error)
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
	// AliasDepth is how many aliases may expand into each other.
	AliasDepth int

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
	if cfg.AliasDepth <= 0 {
		cfg.AliasDepth = 3
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

// Serves reports whether the router's registry lists every named module,
// so that a command to any of them is routed rather than ignored as
// unknown. dev waits for it before saying it is up.
func (r *Router) Serves(ctx context.Context, modules ...string) bool {
	reg, err := r.cache.registry(ctx)
	if err != nil {
		return false
	}
	for _, m := range modules {
		if reg.modules[m] == nil {
			return false
		}
	}
	return true
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
	candidate := mayBeCommand(ev)
	triggers := reg.triggers[ev.Kind]
	if !candidate && len(triggers) == 0 {
		// Plain chat nobody listens to: no PostgreSQL, no KV.
		return nil, OutcomeIgnored, nil
	}
	view, err := r.cache.view(ctx, ev)
	if err != nil {
		return nil, "", fmt.Errorf("router: unable to resolve community: %w", err)
	}
	var out []*schemas.Invocation
	outcome := OutcomeIgnored
	if candidate && !ev.User.Bot {
		if cmd, ok := parseFor(ev, view, reg); ok {
			inv, why, err := r.routeCommand(ctx, ev, view, reg, cmd)
			if err != nil {
				return nil, "", err
			}
			outcome = why
			if inv != nil {
				out = append(out, inv)
			}
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
		inv, err := r.invocation(ctx, ev, view, t.module.Name, schemas.RouteTrigger+string(ev.Kind), Command{}, "")
		if err != nil {
			return nil, "", err
		}
		out = append(out, inv)
		outcome = OutcomeInvoked
	}
	return out, outcome, nil
}

// mayBeCommand is the cheap first look: slash commands, and chat that
// starts with a symbol (prefixes are symbols; the database refuses letters,
// digits and white space in them). Chat that starts with a word never costs
// a community lookup.
func mayBeCommand(ev *schemas.Event) bool {
	if !ev.Kind.HasText() || ev.Text == "" {
		return false
	}
	if ev.Kind == schemas.KindCommand {
		return true
	}
	text := strings.TrimLeftFunc(ev.Text, unicode.IsSpace)
	if text == "" {
		return false
	}
	r, _ := utf8.DecodeRuneInString(text)
	return !unicode.IsLetter(r) && !unicode.IsDigit(r)
}

// parseFor reads the command in an event's text with the community's own
// prefix, or '#' for external modules; a slash command has no prefix.
func parseFor(ev *schemas.Event, view *communityView, reg *registry) (Command, bool) {
	if ev.Kind == schemas.KindCommand {
		c, ok := ParseBare(ev.Text)
		if !ok {
			return Command{}, false
		}
		c.Prefix = view.community.Prefix
		// A slash command may name an external module's command too.
		if _, known := reg.builtin[c.Name]; !known {
			if _, ext := reg.external[c.Name]; ext {
				c.Prefix = ExternalPrefix
			}
		}
		return c, true
	}
	if c, ok := Parse(ev.Text, view.community.Prefix); ok {
		return c, true
	}
	return Parse(ev.Text, ExternalPrefix)
}

// Outcome of an alias chain longer than AliasDepth, for metrics.
const OutcomeAliasDepth = "alias_depth"

func (r *Router) routeCommand(ctx context.Context, ev *schemas.Event, view *communityView, reg *registry, cmd Command) (*schemas.Invocation, string, error) {
	invoked := cmd.Name
	typedAlias := ""
	hasCount := false
	rt, ok := reg.lookup(cmd)
	// Not a command: perhaps one of the community's aliases, which the
	// router expands here so the target's permissions and limits apply.
	for depth := 0; !ok; depth++ {
		if cmd.Prefix == ExternalPrefix && depth == 0 {
			return nil, OutcomeIgnored, nil
		}
		a, found := view.aliases[cmd.Name]
		if !found {
			return nil, OutcomeIgnored, nil
		}
		if depth >= r.cfg.AliasDepth {
			r.log.Debug("router: alias chain too deep", logging.KeyCommand, invoked, "depth", depth)
			return nil, OutcomeAliasDepth, nil
		}
		if typedAlias == "" {
			typedAlias = a.Name
		}
		exp := Expand(a.Target, ev, cmd)
		hasCount = hasCount || exp.HasCount
		next, parsed := parseExpansion(exp.Text)
		if !parsed {
			return nil, OutcomeIgnored, nil
		}
		if next.Prefix == "" {
			next.Prefix = view.community.Prefix
		}
		cmd = next
		rt, ok = reg.lookup(cmd)
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
	inv, err := r.invocation(ctx, ev, view, rt.module.Name, schemas.RouteCommand+spec.Name, cmd, spec.Name)
	if err != nil {
		return nil, "", err
	}
	inv.Invoked = invoked
	if hasCount {
		// Counted under the invocation id: a redelivered event gets the
		// count it got the first time.
		count, err := r.cfg.Store.CountAliasRun(ctx, community, typedAlias, inv.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, "", err
		}
		filled := fillCount(cmd, count)
		inv.Args, inv.ArgText = filled.Args, filled.ArgText
	}
	return inv, OutcomeInvoked, nil
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

func (r *Router) invocation(ctx context.Context, ev *schemas.Event, view *communityView, module, route string, cmd Command, command string) (*schemas.Invocation, error) {
	person, err := r.cache.person(ctx, ev)
	if err != nil {
		return nil, fmt.Errorf("router: unable to resolve the person: %w", err)
	}
	labels, err := view.userLabels(ctx, r.cfg.Store, ev, person)
	if err != nil {
		return nil, fmt.Errorf("router: unable to read labels: %w", err)
	}
	return &schemas.Invocation{
		Version:   schemas.Version,
		ID:        schemas.InvocationID(ev.ID, module, route),
		Event:     *ev,
		Community: view.community,
		Settings:  view.settings(module),
		PersonID:  person,
		Labels:    labels,
		Module:    module,
		Route:     route,
		Command:   command,
		Invoked:   cmd.Name,
		Args:      cmd.Args,
		ArgText:   cmd.ArgText,
		Deadline:  ev.ReceivedAt.Add(r.cfg.InvocationDeadline),
	}, nil
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
