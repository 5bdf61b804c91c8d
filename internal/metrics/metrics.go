// Package metrics holds the Prometheus metrics every part exports on
// /metrics: events in, invocations out, replies sent, rate limiting, dead
// letters, per-stage latency and consumer backlogs.
package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry is the process's registry; parts in one process (dev) share it.
var Registry = prometheus.NewRegistry()

var latencyBuckets = []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

var (
	// EventsIn counts events the router took in, by platform and kind,
	// whoever published them (a collector, `waddlebot say`, outside code).
	EventsIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_events_in_total", Help: "Events the router took in from WB_EVENTS (valid or not; redeliveries excluded).",
	}, []string{"platform", "kind"})
	// EventsPublished counts events this process's collectors stored in WB_EVENTS.
	EventsPublished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_events_published_total", Help: "Events collectors in this process stored in WB_EVENTS (duplicates excluded).",
	}, []string{"platform", "kind"})
	// EventsRouted counts events the router finished, by outcome.
	EventsRouted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_events_routed_total", Help: "Events the router finished, by outcome (invoked, ignored, denied, limited, cooling).",
	}, []string{"outcome"})
	// InvocationsOut counts invocations the router published, by module.
	InvocationsOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_invocations_out_total", Help: "Invocations published by the router.",
	}, []string{"module"})
	// InvocationsHandled counts invocations modules finished, by outcome.
	InvocationsHandled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_invocations_handled_total", Help: "Invocations finished by modules (ok, replayed, failed).",
	}, []string{"module", "outcome"})
	// RepliesPublished counts reply messages modules published.
	RepliesPublished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_replies_published_total", Help: "Reply parts published to WB_REPLIES.",
	}, []string{"platform"})
	// RepliesSent counts replies senders delivered to a platform.
	RepliesSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_replies_sent_total", Help: "Replies delivered to platforms.",
	}, []string{"platform"})
	// RateLimited counts commands or sends held back, by what held them.
	RateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_rate_limited_total", Help: "Commands or sends held back (user_rate, channel_rate, cooldown_user, cooldown_global, throttle, send_budget).",
	}, []string{"limit"})
	// DeadLettered counts messages sent to WB_DLQ, by stream.
	DeadLettered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_dead_lettered_total", Help: "Messages dead-lettered.",
	}, []string{"stream", "consumer"})
	// HandlerFailures counts failed handler runs (not deferrals).
	HandlerFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_handler_failures_total", Help: "Handler runs that failed and will be retried or dead-lettered.",
	}, []string{"stream", "consumer"})
	// Deferred counts messages put back without a failure (budget waits, paused dependencies).
	Deferred = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_deferred_total", Help: "Messages put back for later without counting a failure.",
	}, []string{"stream", "consumer", "why"})
	// Paused is 1 while a consumer waits for a dependency to come back.
	Paused = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "waddlebot_consumer_paused", Help: "1 while a consumer is paused for an unavailable dependency.",
	}, []string{"stream", "consumer"})
	// PossibleDuplicateSends counts sends that may have reached the platform
	// twice (accepted, then the ack was lost).
	PossibleDuplicateSends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_possible_duplicate_sends_total", Help: "Redelivered replies whose first send may already have reached the platform.",
	}, []string{"platform"})
	// PlatformDropped counts messages a platform accepted but did not
	// deliver (Twitch's is_sent false), by the platform's reason code.
	PlatformDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_platform_dropped_total", Help: "Replies the platform took but did not deliver (Twitch is_sent false), by reason.",
	}, []string{"platform", "reason"})
	// EventsSkipped counts platform messages a collector did not publish on
	// purpose: the bot's own, a duplicate delivery, a type it does not map.
	EventsSkipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_events_skipped_total", Help: "Platform messages not published: own_message, duplicate, unmapped, malformed, invalid.",
	}, []string{"platform", "reason"})
	// Connections is the number of platform connections (EventSub sockets,
	// gateway shards) this replica holds.
	Connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "waddlebot_platform_connections", Help: "Platform connections (EventSub WebSockets, shards) held by this replica.",
	}, []string{"platform"})
	// Reconnects counts platform connections re-established, by reason
	// (keepalive, reconnect_message, close_<code>, error).
	Reconnects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_platform_reconnects_total", Help: "Platform connections re-established, by reason.",
	}, []string{"platform", "reason"})
	// TokenRefreshes counts OAuth token refreshes by outcome (ok, revoked, error).
	TokenRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waddlebot_token_refreshes_total", Help: "OAuth token refreshes, by outcome (ok, revoked, error).",
	}, []string{"platform", "outcome"})
	// StageLatency measures each stage: route, handle, send, end_to_end.
	StageLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "waddlebot_stage_latency_seconds", Help: "Latency per stage: route (event received to invocations published), handle (invocation fetched to result published), route_to_reply (event received to reply published), send (reply created to platform accepted).",
		Buckets: latencyBuckets,
	}, []string{"stage"})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		EventsIn, EventsPublished, EventsRouted, InvocationsOut, InvocationsHandled, RepliesPublished, RepliesSent,
		RateLimited, DeadLettered, HandlerFailures, Deferred, Paused, PossibleDuplicateSends,
		PlatformDropped, EventsSkipped, Connections, Reconnects, TokenRefreshes,
		StageLatency, pending,
	)
	// Series that exist from the start read as 0 rather than missing.
	for _, p := range []string{"twitch", "discord", "slack", "console"} {
		for _, k := range []string{"chat", "command"} {
			EventsIn.WithLabelValues(p, k)
		}
		RepliesSent.WithLabelValues(p)
	}
}

// Since observes the time since start in a stage.
func Since(stage string, start time.Time) {
	if start.IsZero() {
		return
	}
	StageLatency.WithLabelValues(stage).Observe(time.Since(start).Seconds())
}

// Handler serves /metrics.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry})
}

// PendingFunc reports a consumer's backlog: messages not yet delivered and
// messages delivered but not acknowledged.
type PendingFunc func(ctx context.Context) (pending uint64, ackPending int, err error)

type pendingCollector struct {
	mu    sync.Mutex
	funcs map[[2]string]PendingFunc
	desc  *prometheus.Desc
	ack   *prometheus.Desc
}

var pending = &pendingCollector{
	funcs: map[[2]string]PendingFunc{},
	desc:  prometheus.NewDesc("waddlebot_consumer_pending", "Messages waiting for a consumer.", []string{"stream", "consumer"}, nil),
	ack:   prometheus.NewDesc("waddlebot_consumer_ack_pending", "Messages delivered to a consumer and not yet acknowledged.", []string{"stream", "consumer"}, nil),
}

// WatchConsumer adds a consumer's backlog to /metrics until the returned
// function is called.
func WatchConsumer(stream, consumer string, f PendingFunc) (stop func()) {
	key := [2]string{stream, consumer}
	pending.mu.Lock()
	pending.funcs[key] = f
	pending.mu.Unlock()
	return func() {
		pending.mu.Lock()
		delete(pending.funcs, key)
		pending.mu.Unlock()
	}
}

func (p *pendingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.desc
	ch <- p.ack
}

func (p *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	funcs := make(map[[2]string]PendingFunc, len(p.funcs))
	for k, f := range p.funcs {
		funcs[k] = f
	}
	p.mu.Unlock()
	for k, f := range funcs {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, ack, err := f(ctx)
		cancel()
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, float64(n), k[0], k[1])
		ch <- prometheus.MustNewConstMetric(p.ack, prometheus.GaugeValue, float64(ack), k[0], k[1])
	}
}
