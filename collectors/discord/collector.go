package discord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// InstallPermissions are the permissions the install link asks for: view
// channels, send messages (and in threads), embed links, read message
// history, moderate members (timeouts), ban members.
const InstallPermissions = discordgo.PermissionViewChannel | discordgo.PermissionSendMessages |
	discordgo.PermissionSendMessagesInThreads | discordgo.PermissionEmbedLinks |
	discordgo.PermissionReadMessageHistory | discordgo.PermissionModerateMembers | discordgo.PermissionBanMembers

// Config configures a Collector: one replica of the Discord collector.
type Config struct {
	BotToken     string
	AppID        string
	ClientSecret string
	Endpoints    Endpoints
	Shards       int
	PublicURL    string

	SenderConcurrency int
	MaxFailures       int
	AckWait           time.Duration
	Backoff           []time.Duration // tests

	Conn       *natsx.Conn
	Store      *store.Store
	Holder     string
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Collector is one Discord collector replica: gateway shards it holds,
// the install link, and the reply sender.
type Collector struct {
	cfg      Config
	log      *slog.Logger
	session  *discordgo.Session
	install  *Install
	sender   *collectors.Sender
	platform *Platform
}

// New checks cfg and builds the parts; nothing connects until RunIntake.
func New(ctx context.Context, cfg Config) (*Collector, error) {
	if cfg.BotToken == "" || cfg.AppID == "" {
		return nil, errors.New("discord: the collector needs DISCORD_BOT_TOKEN and DISCORD_APPLICATION_ID (discord.com/developers/applications)")
	}
	if cfg.Conn == nil || cfg.Store == nil {
		return nil, errors.New("discord: the collector needs NATS and PostgreSQL")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	log := cfg.Logger.With(logging.KeyPlatform, schemas.PlatformDiscord)
	session, err := NewSession(cfg.BotToken, cfg.Endpoints, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	interactions, err := collectors.OpenInteractions(ctx, cfg.Conn.JS)
	if err != nil {
		return nil, err
	}
	platform, err := NewPlatform(PlatformConfig{Session: session, AppID: cfg.AppID, Interactions: interactions, Logger: log})
	if err != nil {
		return nil, err
	}
	// Discord's limits come from its X-RateLimit headers per route, which
	// the platform answers with deferrals: no budget of our own.
	sender, err := collectors.NewSender(collectors.SenderConfig{
		Platform: platform, Conn: cfg.Conn,
		Concurrency: cfg.SenderConcurrency, MaxFailures: cfg.MaxFailures, AckWait: cfg.AckWait,
		// The sender names its platform in its own log lines.
		Backoff: cfg.Backoff, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	c := &Collector{cfg: cfg, log: log, session: session, sender: sender, platform: platform}
	if cfg.ClientSecret != "" && cfg.PublicURL != "" {
		c.install, err = NewInstall(InstallConfig{AppID: cfg.AppID, ClientSecret: cfg.ClientSecret, PublicURL: cfg.PublicURL,
			Endpoints: cfg.Endpoints, Permissions: InstallPermissions, Store: cfg.Store, HTTPClient: cfg.HTTPClient, Logger: log})
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Mount adds the install link's routes (when a client secret is set).
func (c *Collector) Mount(mux interface{ Handle(string, http.Handler) }) {
	if c.install != nil {
		c.install.Mount(mux)
	}
}

// Sender is the reply sender; run it in the senders stage.
func (c *Collector) Sender() *collectors.Sender { return c.sender }

// RunIntake registers the /waddlebot command, runs the gateway shards
// this replica can hold and serves member lookups (wb.api.discord.*) until
// ctx ends.
func (c *Collector) RunIntake(ctx context.Context) error {
	// A failed registration must not keep chat commands from working: it
	// is retried by the next start and logged loudly.
	if err := RegisterCommands(ctx, c.session, c.cfg.AppID); err != nil {
		c.log.Error("discord: unable to register the /waddlebot command; chat commands still work", logging.Err(err))
	}
	kv, err := c.cfg.Conn.JS.KeyValue(ctx, streams.BucketLeases)
	if err != nil {
		return fmt.Errorf("discord: unable to open bucket %s: %w", streams.BucketLeases, err)
	}
	leases, err := coord.NewLeases(ctx, kv, c.cfg.Holder, c.log)
	if err != nil {
		return err
	}
	interactions, err := collectors.OpenInteractions(ctx, c.cfg.Conn.JS)
	if err != nil {
		return err
	}
	gw, err := NewGateway(GatewayConfig{Token: c.cfg.BotToken, Endpoints: c.cfg.Endpoints, Shards: c.cfg.Shards,
		Intents: gatewayIntents, Publisher: collectors.NewPublisher(c.cfg.Conn.JS, c.log), Interactions: interactions,
		Catalogue: c.cfg.Store.Manifests, Leases: leases, HTTPClient: c.cfg.HTTPClient, Logger: c.log})
	if err != nil {
		return err
	}
	return collectors.RunTogether(ctx, "discord",
		collectors.Task{Name: "gateway", Run: gw.Run},
		collectors.Task{Name: "lookups", Run: func(ctx context.Context) error {
			return ServeAPI(ctx, APIConfig{Conn: c.cfg.Conn, Platform: c.platform, Logger: c.log})
		}})
}
