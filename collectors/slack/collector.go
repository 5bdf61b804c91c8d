package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Transports: how events reach the collector.
const (
	TransportSocket = "socket" // Socket Mode, with the app-level token
	TransportEvents = "events" // the Events API, posted to <PublicURL>/webhooks/slack/events
)

// Config configures a Collector: one replica of the Slack collector.
type Config struct {
	AppToken      string // xapp-…, Socket Mode
	BotToken      string // xoxb-… of a workspace installed by hand
	ClientID      string
	ClientSecret  string
	SigningSecret string
	APIURL        string
	AuthorizeURL  string
	// ResponseURLHost is the only host slash-command answers are posted
	// to (default hooks.slack.com; tests point it at a local server).
	ResponseURLHost string
	Transport       string
	PublicURL       string

	// Budget messages per channel per Window (Slack: about 1 per second).
	Budget            int
	Window            time.Duration
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

// Collector is one Slack collector replica.
type Collector struct {
	cfg        Config
	log        *slog.Logger
	workspaces *WorkspaceStore
	intake     *Intake
	events     *Events
	install    *Install
	sender     *collectors.Sender
	members    *MemberDirectory
}

// New checks cfg and builds the parts; nothing connects until RunIntake.
func New(ctx context.Context, cfg Config) (*Collector, error) {
	if cfg.Conn == nil || cfg.Store == nil {
		return nil, errors.New("slack: the collector needs NATS and PostgreSQL")
	}
	switch cfg.Transport {
	case "", TransportSocket:
		cfg.Transport = TransportSocket
		if !strings.HasPrefix(cfg.AppToken, "xapp-") {
			return nil, errors.New("slack: Socket Mode needs SLACK_APP_TOKEN (an app-level token, xapp-…, with connections:write)")
		}
	case TransportEvents:
		if cfg.SigningSecret == "" {
			return nil, errors.New("slack: the Events API needs SLACK_SIGNING_SECRET")
		}
	default:
		return nil, fmt.Errorf("slack: transport %q is not socket or events", cfg.Transport)
	}
	if cfg.BotToken == "" && (cfg.ClientID == "" || cfg.ClientSecret == "") {
		return nil, errors.New("slack: set SLACK_BOT_TOKEN (one workspace installed by hand) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (install links)")
	}
	if cfg.Budget <= 0 {
		cfg.Budget = 1
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Second
	}
	if cfg.AuthorizeURL == "" {
		cfg.AuthorizeURL = DefaultAuthorizeURL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	log := cfg.Logger.With(logging.KeyPlatform, schemas.PlatformSlack)

	interactions, err := collectors.OpenInteractions(ctx, cfg.Conn.JS)
	if err != nil {
		return nil, err
	}
	workspaces := NewWorkspaceStore(cfg.Store, cfg.APIURL, cfg.BotToken, cfg.HTTPClient)
	users, err := NewUserDirectory(UserDirectoryConfig{APIURL: cfg.APIURL, Workspaces: workspaces, HTTPClient: cfg.HTTPClient, Logger: log})
	if err != nil {
		return nil, err
	}
	intake := NewIntake(IntakeConfig{Publisher: collectors.NewPublisher(cfg.Conn.JS, log), Workspaces: workspaces,
		Interactions: interactions, Catalogue: cfg.Store.Manifests, Users: users, Logger: log})
	platform, err := NewPlatform(PlatformConfig{APIURL: cfg.APIURL, ResponseURLHost: cfg.ResponseURLHost, Workspaces: workspaces, Interactions: interactions,
		HTTPClient: cfg.HTTPClient, Logger: log})
	if err != nil {
		return nil, err
	}
	sender, err := collectors.NewSender(collectors.SenderConfig{
		Platform: platform, Conn: cfg.Conn, Budget: cfg.Budget, Window: cfg.Window,
		Concurrency: cfg.SenderConcurrency, MaxFailures: cfg.MaxFailures, AckWait: cfg.AckWait,
		// The sender names its platform in its own log lines.
		Backoff: cfg.Backoff, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	members, err := NewMemberDirectory(MemberDirectoryConfig{APIURL: cfg.APIURL, Workspaces: workspaces, HTTPClient: cfg.HTTPClient})
	if err != nil {
		return nil, err
	}
	c := &Collector{cfg: cfg, log: log, workspaces: workspaces, intake: intake, sender: sender, members: members}
	if cfg.SigningSecret != "" {
		// Slash commands and the Events API may reach us over HTTP even in
		// Socket Mode (a slash command configured with a request URL).
		c.events, err = NewEvents(EventsConfig{SigningSecret: cfg.SigningSecret, Intake: intake, Logger: log})
		if err != nil {
			return nil, err
		}
	}
	if cfg.ClientID != "" && cfg.ClientSecret != "" && cfg.PublicURL != "" {
		c.install, err = NewInstall(InstallConfig{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
			PublicURL: cfg.PublicURL, APIURL: cfg.APIURL, AuthorizeURL: cfg.AuthorizeURL, Workspaces: workspaces, Logger: log})
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Mount adds the Events API, slash command and install routes that are
// configured.
func (c *Collector) Mount(mux interface{ Handle(string, http.Handler) }) {
	if c.events != nil {
		c.events.Mount(mux)
	}
	if c.install != nil {
		c.install.Mount(mux)
	}
}

// Sender is the reply sender; run it in the senders stage.
func (c *Collector) Sender() *collectors.Sender { return c.sender }

// RunIntake serves member lookups (wb.api.slack.*) and holds the Socket
// Mode connection (in socket mode) until ctx ends; with the Events API the
// HTTP routes are the intake.
func (c *Collector) RunIntake(ctx context.Context) error {
	return collectors.RunTogether(ctx, "slack",
		collectors.Task{Name: "intake", Run: c.runSocket},
		collectors.Task{Name: "lookups", Run: func(ctx context.Context) error {
			return ServeAPI(ctx, APIConfig{Conn: c.cfg.Conn, Members: c.members, Logger: c.log})
		}})
}

// runSocket holds the Socket Mode connection (in socket mode) until ctx
// ends.
func (c *Collector) runSocket(ctx context.Context) error {
	if c.cfg.Transport != TransportSocket {
		<-ctx.Done()
		return nil
	}
	kv, err := c.cfg.Conn.JS.KeyValue(ctx, streams.BucketLeases)
	if err != nil {
		return fmt.Errorf("slack: unable to open bucket %s: %w", streams.BucketLeases, err)
	}
	leases, err := coord.NewLeases(ctx, kv, c.cfg.Holder, c.log)
	if err != nil {
		return err
	}
	socket, err := NewSocket(SocketConfig{AppToken: c.cfg.AppToken, APIURL: c.cfg.APIURL, Intake: c.intake,
		Leases: leases, Logger: c.log})
	if err != nil {
		return err
	}
	return socket.Run(ctx)
}
