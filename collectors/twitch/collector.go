package twitch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nicklaw5/helix/v2"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Transports: how EventSub reaches the collector.
const (
	TransportWebSocket = "websocket" // one socket per connected channel
	TransportWebhook   = "webhook"   // Twitch posts to <PublicURL>/webhooks/twitch
	TransportConduit   = "conduit"   // one conduit, its shards spread over replicas
)

// Config configures a Collector: one replica of the Twitch collector.
type Config struct {
	ClientID, ClientSecret string
	Endpoints              Endpoints
	// PublicURL is how browsers and Twitch reach this deployment's HTTP
	// server (OAuth redirects, webhooks).
	PublicURL     string
	Transport     string
	WebhookSecret string
	ConduitShards int
	// KeepaliveSeconds asks EventSub for this keepalive window (0: Twitch's
	// default of 10 s).
	KeepaliveSeconds int

	// Send budgets per channel per SendWindow: ModeratorBudget where the
	// bot is a moderator, Budget elsewhere.
	Budget, ModeratorBudget int
	SendWindow              time.Duration
	SenderConcurrency       int
	MaxFailures             int
	AckWait                 time.Duration
	Backoff                 []time.Duration // tests

	// ValidateEvery is how often every grant is validated (Twitch asks for
	// hourly).
	ValidateEvery time.Duration
	// Operator opens the operator pages (see OAuthConfig.Operator).
	Operator func(r *http.Request) bool

	Conn  *natsx.Conn
	Store *store.Store
	// Holder names this replica in connection leases.
	Holder string
	// HTTPClient and Dialer reach Twitch (nil: defaults).
	HTTPClient *http.Client
	Dialer     *websocket.Dialer
	Logger     *slog.Logger
}

// Collector is one Twitch collector replica: EventSub intake in the
// configured transport, the reply sender, lookups on wb.api.twitch.*, the
// connect routes and the hourly token validation.
type Collector struct {
	cfg      Config
	log      *slog.Logger
	helix    *Helix
	accounts *Store
	tokens   *TokenSource
	intake   *Intake
	oauth    *OAuth
	webhook  http.Handler
	sender   *collectors.Sender
	platform *Platform
}

// New checks cfg and builds the parts; nothing connects until Run.
func New(cfg Config) (*Collector, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("twitch: the collector needs TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET (register an application at dev.twitch.tv/console)")
	}
	if cfg.Conn == nil || cfg.Store == nil {
		return nil, errors.New("twitch: the collector needs NATS and PostgreSQL")
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("twitch: the collector needs PUBLIC_URL (where Twitch redirects after a connect)")
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	switch cfg.Transport {
	case "", TransportWebSocket:
		cfg.Transport = TransportWebSocket
	case TransportWebhook:
		if n := len(cfg.WebhookSecret); n < 10 || n > 100 {
			return nil, fmt.Errorf("twitch: webhook transport needs TWITCH_WEBHOOK_SECRET of 10 to 100 characters (got %d)", n)
		}
		if !strings.HasPrefix(cfg.PublicURL, "https://") {
			slog.Warn("twitch: Twitch only delivers webhooks to an https PUBLIC_URL on port 443", "public_url", cfg.PublicURL)
		}
	case TransportConduit:
		if cfg.ConduitShards < 1 {
			cfg.ConduitShards = 1
		}
	default:
		return nil, fmt.Errorf("twitch: transport %q is not websocket, webhook or conduit", cfg.Transport)
	}
	if cfg.Budget <= 0 {
		cfg.Budget = 20
	}
	if cfg.ModeratorBudget <= 0 {
		cfg.ModeratorBudget = 100
	}
	if cfg.SendWindow <= 0 {
		cfg.SendWindow = 30 * time.Second
	}
	if cfg.ValidateEvery <= 0 {
		cfg.ValidateEvery = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With(logging.KeyPlatform, schemas.PlatformTwitch)

	h, err := NewHelix(cfg.ClientID, cfg.ClientSecret, cfg.PublicURL+"/connect/twitch/callback", cfg.Endpoints, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	accounts := NewStore(cfg.Store)
	tokens, err := NewTokenSource(TokenSourceConfig{Helix: h, Store: accounts, Conn: cfg.Conn, Logger: log})
	if err != nil {
		return nil, err
	}
	intake := NewIntake(IntakeConfig{Publisher: collectors.NewPublisher(cfg.Conn.JS, log), Accounts: accounts, Logger: log})
	authURL := cfg.Endpoints.Auth
	if authURL == "" {
		authURL = DefaultAuthURL
	}
	oauth, err := NewOAuth(OAuthConfig{Helix: h, Store: accounts, Tokens: tokens, PublicURL: cfg.PublicURL,
		AuthURL: authURL, Operator: cfg.Operator, Conn: cfg.Conn, Logger: log})
	if err != nil {
		return nil, err
	}
	platform, err := NewPlatform(SenderConfig{Helix: h, Tokens: tokens, Accounts: accounts, Logger: log})
	if err != nil {
		return nil, err
	}
	sender, err := collectors.NewSender(collectors.SenderConfig{
		Platform: platform, Conn: cfg.Conn,
		// Twitch counts messages when they arrive; request latency varies,
		// so the window is padded by 5 % lest budget+1 land inside one.
		BudgetFor: platform.BudgetFor(cfg.Budget, cfg.ModeratorBudget), Window: cfg.SendWindow + cfg.SendWindow/20,
		Concurrency: cfg.SenderConcurrency, MaxFailures: cfg.MaxFailures, AckWait: cfg.AckWait,
		// The sender names its platform in its own log lines.
		Backoff: cfg.Backoff, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	c := &Collector{cfg: cfg, log: log, helix: h, accounts: accounts, tokens: tokens, intake: intake,
		oauth: oauth, sender: sender, platform: platform}
	if cfg.Transport == TransportWebhook {
		c.webhook, err = NewWebhook(WebhookConfig{Secret: cfg.WebhookSecret, Intake: intake,
			OnRevocation: c.revoked, Logger: log})
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Mount adds the connect routes (and the webhook route in webhook mode).
func (c *Collector) Mount(mux interface{ Handle(string, http.Handler) }) {
	c.oauth.Mount(mux)
	if c.webhook != nil {
		mux.Handle("POST /webhooks/twitch", c.webhook)
	}
}

// Sender is the reply sender; run it in the senders stage so it drains
// after the intake stopped.
func (c *Collector) Sender() *collectors.Sender { return c.sender }

// RunIntake runs EventSub in the configured transport, the lookups and the
// token validation until ctx ends.
func (c *Collector) RunIntake(ctx context.Context) error {
	kv, err := c.cfg.Conn.JS.KeyValue(ctx, streams.BucketLeases)
	if err != nil {
		return fmt.Errorf("twitch: unable to open bucket %s: %w", streams.BucketLeases, err)
	}
	leases, err := coord.NewLeases(ctx, kv, c.cfg.Holder, c.log)
	if err != nil {
		return err
	}
	var transport func(ctx context.Context) error
	switch c.cfg.Transport {
	case TransportWebSocket:
		sessions, err := NewSessions(SessionsConfig{Endpoints: c.cfg.Endpoints, Helix: c.helix, Tokens: c.tokens,
			Accounts: c.accounts, Intake: c.intake, Leases: leases, Conn: c.cfg.Conn,
			KeepaliveSeconds: c.cfg.KeepaliveSeconds, Dialer: c.cfg.Dialer, Logger: c.log})
		if err != nil {
			return err
		}
		transport = sessions.Run
	case TransportWebhook:
		callback := c.cfg.PublicURL + "/webhooks/twitch"
		subscriber, err := NewAppSubscriber(AppSubscriberConfig{Helix: c.helix, Tokens: c.tokens, Accounts: c.accounts,
			Transport: func(context.Context) (helix.EventSubTransport, error) {
				return helix.EventSubTransport{Method: "webhook", Callback: callback, Secret: c.cfg.WebhookSecret}, nil
			}, Logger: c.log})
		if err != nil {
			return err
		}
		transport = func(ctx context.Context) error {
			return reconcileLoop(ctx, c.cfg.Conn, leases, "twitch.webhook.subscriptions", subscriber, c.log)
		}
	case TransportConduit:
		conduit := &conduitRef{}
		subscriber, err := NewAppSubscriber(AppSubscriberConfig{Helix: c.helix, Tokens: c.tokens, Accounts: c.accounts,
			Transport: conduit.transport, Logger: c.log})
		if err != nil {
			return err
		}
		cd, err := NewConduit(ConduitConfig{Endpoints: c.cfg.Endpoints, Helix: c.helix, Tokens: c.tokens,
			Subscriber: subscriber, Intake: c.intake, Leases: leases, Shards: c.cfg.ConduitShards, Conn: c.cfg.Conn,
			Dialer: c.cfg.Dialer, Logger: c.log})
		if err != nil {
			return err
		}
		conduit.c = cd
		transport = cd.Run
	}

	// A bot account that connects or goes changes whose messages are the
	// bot's own: forget the cached id at once, not after its minute.
	botChanges, err := c.cfg.Conn.NC.Subscribe(ControlSubject, func(m *nats.Msg) {
		var change AccountChange
		if json.Unmarshal(m.Data, &change) == nil && change.Kind == KindBot {
			c.intake.Forget()
			c.platform.Forget()
		}
	})
	if err != nil {
		return fmt.Errorf("twitch: unable to listen on %s: %w", ControlSubject, err)
	}
	defer func() { _ = botChanges.Unsubscribe() }()

	return collectors.RunTogether(ctx, "twitch",
		collectors.Task{Name: "eventsub", Run: transport},
		collectors.Task{Name: "lookups", Run: func(ctx context.Context) error {
			return ServeAPI(ctx, APIConfig{Conn: c.cfg.Conn, Helix: c.helix, Tokens: c.tokens, Logger: c.log})
		}},
		collectors.Task{Name: "token validation", Run: func(ctx context.Context) error { return c.tokens.RunValidator(ctx, c.cfg.ValidateEvery) }})
}

// revoked handles a webhook revocation: the grant is gone, so the account
// is refreshed (which marks it disconnected when that fails too).
func (c *Collector) revoked(ctx context.Context, sub eventsub.Subscription) {
	id := sub.Condition["broadcaster_user_id"]
	if id == "" {
		id = sub.Condition["to_broadcaster_user_id"]
	}
	c.log.Warn("twitch: subscription revoked", "type", sub.Type, "status", sub.Status, logging.KeyChannel, id)
	if id == "" || sub.Status != "authorization_revoked" && sub.Status != "user_removed" {
		return
	}
	if _, err := c.tokens.Refresh(ctx, id, ""); err != nil && !errors.Is(err, ErrNotConnected) {
		c.log.Warn("twitch: unable to check a revoked grant", logging.KeyChannel, id, logging.Err(err))
	}
}

// conduitRef lets the subscriber ask for the conduit's id, which exists
// only once the conduit has started.
type conduitRef struct{ c *Conduit }

func (r *conduitRef) transport(ctx context.Context) (helix.EventSubTransport, error) {
	id, err := r.c.ID(ctx)
	if err != nil {
		return helix.EventSubTransport{}, err
	}
	// helix v2.34.0 has no conduit_id field: AppSubscriber sends SessionID
	// as conduit_id for the conduit method.
	return helix.EventSubTransport{Method: "conduit", SessionID: id}, nil
}

// reconcileEvery is how often the subscription list is checked against
// the connected accounts when no notice arrived.
const reconcileEvery = time.Minute

// reconcileLoop keeps the app-token subscriptions (webhook or conduit)
// matching the connected accounts. One replica does it at a time (lease
// key), at once when an account changes (notices on conn; nil: none) and
// every reconcileEvery anyway.
func reconcileLoop(ctx context.Context, conn *natsx.Conn, leases *coord.Leases, key string,
	subscriber interface{ Reconcile(context.Context) error }, log *slog.Logger) error {
	changed := make(chan struct{}, 1)
	if conn != nil {
		sub, err := conn.NC.Subscribe(ControlSubject, func(*nats.Msg) {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
		if err != nil {
			return fmt.Errorf("twitch: unable to listen on %s: %w", ControlSubject, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	return collectors.HoldLease(ctx, leases, key, func(ctx context.Context) error {
		tick := time.NewTicker(reconcileEvery)
		defer tick.Stop()
		for {
			if err := subscriber.Reconcile(ctx); err != nil && ctx.Err() == nil {
				log.Warn("twitch: unable to reconcile EventSub subscriptions; will retry", logging.Err(err))
			}
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			case <-changed:
			}
		}
	})
}
