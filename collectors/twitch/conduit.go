package twitch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
)

// Lease keys of the conduit transport.
const (
	conduitSetupKey         = "twitch.conduit.setup"         // creating the conduit, once
	conduitSubscriptionsKey = "twitch.conduit.subscriptions" // the replica reconciling
	conduitShardKeyPrefix   = "twitch.conduit.shard."        // + shard index
	maxConduitShards        = 20000                          // Twitch's limit per conduit
)

// ConduitConfig configures the conduit transport.
type ConduitConfig struct {
	Endpoints Endpoints
	Helix     *Helix
	Tokens    Tokens
	// Subscriber keeps the conduit's subscriptions matching the connected
	// broadcasters; nil leaves them to someone else.
	Subscriber *AppSubscriber
	Intake     *Intake
	Leases     *coord.Leases
	// Shards is the conduit's shard count: WebSockets held across the
	// replicas, one lease each.
	Shards int
	Dialer *websocket.Dialer // nil: websocket.DefaultDialer
	Logger *slog.Logger
	// Conn carries ControlSubject notices, which reconcile at once; nil:
	// every reconcileEvery only.
	Conn *natsx.Conn
}

// Conduit runs EventSub through a conduit: the subscriptions are the app's
// (app token, made by the Subscriber), and the shards are WebSocket
// sessions that the replicas share out by lease.
type Conduit struct {
	cfg    ConduitConfig
	url    string
	dialer *websocket.Dialer
	log    *slog.Logger

	mu sync.Mutex
	id string
}

// NewConduit checks cfg.
func NewConduit(cfg ConduitConfig) (*Conduit, error) {
	if cfg.Helix == nil || cfg.Tokens == nil || cfg.Intake == nil || cfg.Leases == nil {
		return nil, errors.New("twitch: the conduit needs Helix, Tokens, Intake and Leases")
	}
	if cfg.Shards < 1 || cfg.Shards > maxConduitShards {
		return nil, fmt.Errorf("twitch: %d conduit shards is outside 1 to %d", cfg.Shards, maxConduitShards)
	}
	ws := cfg.Endpoints.EventSub
	if ws == "" {
		ws = DefaultEventSubURL
	}
	if u, err := url.Parse(ws); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return nil, fmt.Errorf("twitch: EventSub URL %q is not a ws:// or wss:// URL", ws)
	}
	dialer := cfg.Dialer
	if dialer == nil {
		dialer = websocket.DefaultDialer
	}
	log := cfg.Logger
	if log == nil {
		log = logging.Discard()
	}
	return &Conduit{cfg: cfg, url: ws, dialer: dialer,
		log: log.With(logging.KeyPlatform, "twitch")}, nil
}

// conduitInfo is a conduit as Helix reports it.
type conduitInfo struct {
	ID         string `json:"id"`
	ShardCount int    `json:"shard_count"`
}

// ID returns the conduit's id: the app's existing conduit (its shard count
// set to Shards) or a new one. One replica at a time sets it up (lease), so
// two starting together do not make two conduits.
func (c *Conduit) ID(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != "" {
		return c.id, nil
	}
	lease, err := c.cfg.Leases.Acquire(ctx, conduitSetupKey)
	if err != nil {
		return "", fmt.Errorf("twitch: unable to take the conduit setup lease: %w", err)
	}
	defer lease.Release()
	var list struct {
		Data []conduitInfo `json:"data"`
	}
	if err := c.call(ctx, http.MethodGet, "/eventsub/conduits", nil, &list); err != nil {
		return "", fmt.Errorf("twitch: unable to list conduits: %w", err)
	}
	var got struct {
		Data []conduitInfo `json:"data"`
	}
	switch {
	case len(list.Data) == 0:
		if err := c.call(ctx, http.MethodPost, "/eventsub/conduits", map[string]any{"shard_count": c.cfg.Shards}, &got); err != nil {
			return "", fmt.Errorf("twitch: unable to create a conduit: %w", err)
		}
		c.log.Info("twitch: conduit created", "shards", c.cfg.Shards)
	case list.Data[0].ShardCount != c.cfg.Shards:
		if len(list.Data) > 1 {
			c.log.Warn("twitch: the app has several conduits; using the first", logging.KeyID, list.Data[0].ID)
		}
		body := map[string]any{"id": list.Data[0].ID, "shard_count": c.cfg.Shards}
		if err := c.call(ctx, http.MethodPatch, "/eventsub/conduits", body, &got); err != nil {
			return "", fmt.Errorf("twitch: unable to set the shard count of conduit %s: %w", list.Data[0].ID, err)
		}
		c.log.Info("twitch: conduit shard count changed", logging.KeyID, list.Data[0].ID,
			"from", list.Data[0].ShardCount, "to", c.cfg.Shards)
	default:
		got.Data = list.Data[:1]
	}
	if len(got.Data) == 0 || got.Data[0].ID == "" {
		return "", errors.New("twitch: Helix returned no conduit")
	}
	c.id = got.Data[0].ID
	return c.id, nil
}

// Run holds every shard it can get a lease for, and reconciles the
// subscriptions when it holds that lease, until ctx ends.
func (c *Conduit) Run(ctx context.Context) error {
	var id string
	wait := backoffFirst
	for {
		var err error
		if id, err = c.ID(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("twitch: conduit not ready; retrying", logging.Err(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, backoffMost)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, c.cfg.Shards+1)
	for shard := range c.cfg.Shards {
		go func() {
			errs <- collectors.HoldLease(ctx, c.cfg.Leases, conduitShardKeyPrefix+strconv.Itoa(shard),
				func(ctx context.Context) error { return c.serveShard(ctx, id, shard) })
		}()
	}
	go func() { errs <- c.reconcile(ctx) }()
	var first error
	for range c.cfg.Shards + 1 {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// reconcile keeps the subscriptions matching, on one replica at a time.
func (c *Conduit) reconcile(ctx context.Context) error {
	if c.cfg.Subscriber == nil {
		return nil
	}
	return reconcileLoop(ctx, c.cfg.Conn, c.cfg.Leases, conduitSubscriptionsKey, c.cfg.Subscriber, c.log)
}

// serveShard keeps a WebSocket session assigned to one shard while its
// lease is held.
func (c *Conduit) serveShard(ctx context.Context, conduitID string, shard int) error {
	log := c.log.With("shard", shard)
	d := newDeliverer(c.cfg.Intake, log)
	defer d.stop()
	dial := func(ctx context.Context, rawURL string) (*socket, error) { return dialWelcome(ctx, c.dialer, rawURL) }
	wait := backoffFirst
	for {
		began := time.Now()
		err := func() error {
			first, err := dial(ctx, c.url)
			if err != nil {
				return err
			}
			// Within the keepalive window, or Twitch closes it unused.
			actx, cancel := context.WithTimeout(ctx, first.keepalive)
			err = c.assign(actx, conduitID, shard, first.sessionID)
			cancel()
			if err != nil {
				first.close()
				return err
			}
			log.Info("twitch: conduit shard connected", logging.KeyID, first.sessionID)
			loop := &socketLoop{dial: dial, deliver: d, log: log,
				// The subscriptions are the app's: the reconciler makes
				// revoked ones again once the grant is back.
				revoked: func(context.Context, *eventsub.Subscription) error { return nil },
				moved: func(ctx context.Context, from, to *socket) error {
					if from.sessionID == to.sessionID {
						return nil
					}
					return c.assign(ctx, conduitID, shard, to.sessionID)
				}}
			return loop.run(ctx, first)
		}()
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(began) > stableAfter {
			wait = backoffFirst
		}
		log.Warn("twitch: conduit shard session ended; reconnecting", "code", closeCode(err), logging.Err(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, backoffMost)
	}
}

// assign points a shard at a WebSocket session (Update Conduit Shards).
func (c *Conduit) assign(ctx context.Context, conduitID string, shard int, sessionID string) error {
	body := map[string]any{"conduit_id": conduitID, "shards": []map[string]any{{
		"id":        strconv.Itoa(shard),
		"transport": map[string]any{"method": eventsub.MethodWebSocket, "session_id": sessionID},
	}}}
	var out struct {
		Errors []struct {
			ID      string `json:"id"`
			Message string `json:"message"`
			Code    string `json:"code"`
		} `json:"errors"`
	}
	if err := c.call(ctx, http.MethodPatch, "/eventsub/conduits/shards", body, &out); err != nil {
		return fmt.Errorf("twitch: unable to assign conduit shard %d: %w", shard, err)
	}
	if len(out.Errors) > 0 {
		e := out.Errors[0]
		return fmt.Errorf("twitch: unable to assign conduit shard %s: %s (%s)", e.ID, e.Message, e.Code)
	}
	return nil
}

// call sends a Helix request with the app token and decodes a 2xx answer
// into out; helix v2.34.0 has no conduit calls.
func (c *Conduit) call(ctx context.Context, method, path string, body, out any) error {
	res, err := withAppToken(ctx, c.cfg.Tokens, func(token string) (*helixResult, error) {
		return c.cfg.Helix.call(ctx, method, path, nil, body, token)
	})
	if err != nil {
		return err
	}
	if !res.ok() {
		return fmt.Errorf("%s %s: %d %s", method, path, res.status, res.message())
	}
	if out != nil && len(res.body) > 0 {
		if err := json.Unmarshal(res.body, out); err != nil {
			return fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
		}
	}
	return nil
}
