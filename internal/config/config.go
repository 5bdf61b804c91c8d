// Package config is WaddleBot's one typed table of settings: each setting has
// a name, a default, a validation and a secret flag, and is read from the
// environment (WADDLEBOT_<NAME>, or WADDLEBOT_<NAME>_FILE for secrets) and
// overridden by a command-line flag (--<name>).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment variable WaddleBot reads.
const EnvPrefix = "WADDLEBOT_"

// DefaultNATSURL is where client commands look last for a NATS server.
const DefaultNATSURL = "nats://127.0.0.1:4222"

// DefaultDatabaseURL is the local PostgreSQL server of a development machine.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/waddlebot?sslmode=disable"

// NATSURLFile is the file, under the data directory, where `waddlebot dev`
// writes the URL of its embedded NATS server.
const NATSURLFile = "nats.url"

// Config holds every setting, typed. Commands read the fields they need.
type Config struct {
	// Connections.
	NATSURL         string
	NATSCreds       string
	DatabaseURL     string
	DatabaseReadURL string
	CreateDatabase  bool
	DataDir         string
	HTTPAddr        string
	// Pprof serves /debug/pprof/ on the HTTP server.
	Pprof     bool
	SecretKey string
	// SecretKeyPrevious still decrypts secrets during a key rotation.
	SecretKeyPrevious string

	// Logging.
	LogLevel  string
	LogFormat string

	// Streams.
	StreamReplicas     int
	StreamStorage      string
	EventsMaxAge       time.Duration
	EventsMaxBytes     int64
	EventsDuplicates   time.Duration
	CommandsMaxAge     time.Duration
	RepliesMaxAge      time.Duration
	ResultsMaxAge      time.Duration
	MessageDuplicates  time.Duration
	OverlayMaxAge      time.Duration
	OverlayPerSubject  int64
	OverlayDuplicates  time.Duration
	DLQMaxAge          time.Duration
	FailuresTTL        time.Duration
	WindowsTTL         time.Duration
	HeartbeatTTL       time.Duration
	LeaseTTL           time.Duration
	AIMemoryTTL        time.Duration
	CooldownMarkerTTL  time.Duration
	ConsumerAckWait    time.Duration
	MaxHandlerFailures int

	// Router.
	RouterConcurrency  int
	UserRateLimit      int
	UserRateWindow     time.Duration
	ChannelRateLimit   int
	ChannelRateWindow  time.Duration
	InvocationDeadline time.Duration
	CacheTTL           time.Duration
	AliasDepth         int

	// Actions.
	ActionConcurrency int
	HandlerTimeout    time.Duration
	OutboxSweep       time.Duration

	// Collectors.
	SenderConcurrency int
	SendWindow        time.Duration
	ConsoleSendBudget int
	ConsoleEnabled    bool
	PublicURL         string
	AdminToken        string

	// Twitch.
	TwitchClientID      string
	TwitchClientSecret  string
	TwitchAPIURL        string
	TwitchAuthURL       string
	TwitchEventSubURL   string
	TwitchTransport     string
	TwitchWebhookSecret string
	TwitchSendBudget    int
	TwitchModSendBudget int
	TwitchConduitShards int

	// Discord.
	DiscordBotToken     string
	DiscordAppID        string
	DiscordClientSecret string
	DiscordAPIURL       string
	DiscordGatewayURL   string
	DiscordShards       int

	// Slack.
	SlackAppToken      string
	SlackBotToken      string
	SlackClientID      string
	SlackClientSecret  string
	SlackSigningSecret string
	SlackAPIURL        string
	SlackAuthorizeURL  string
	SlackTransport     string
	SlackSendBudget    int

	// Portal.
	SuperAdmins             string
	PortalSessionIdle       time.Duration
	PortalSessionMax        time.Duration
	PortalSlackAuthorizeURL string
	NATSAuthDir             string

	// AI module defaults (a community's settings override them).
	AIProvider             string
	AIHost                 string
	AIPort                 int
	AITLS                  bool
	AICAFile               string
	AIVerify               bool
	AIModel                string
	AITemperature          string
	AIMaxTokens            int
	AIKeepAlive            time.Duration
	AITimeout              time.Duration
	AIBaseURL              string
	AIAPIKey               string
	AIBearerToken          string
	AIPreferredModelHeader string
	AISystemPrompt         string
	AIPrefix               string
	AIBotName              string
	AIMaxConcurrent        int
	AICustomEndpoints      bool

	// Song requests (the music module and the portal's Spotify connection).
	YouTubeAPIKey       string
	YouTubeAPIURL       string
	SpotifyClientID     string
	SpotifyClientSecret string
	SpotifyAPIURL       string
	SpotifyAccountsURL  string
}

// Kind of value a setting holds.
type kind int

const (
	kindString kind = iota
	kindInt
	kindInt64
	kindBool
	kindDuration
)

// Group names which commands show a setting.
type Group string

// Groups of settings.
const (
	GroupNATS      Group = "nats"
	GroupDatabase  Group = "database"
	GroupHTTP      Group = "http"
	GroupLog       Group = "log"
	GroupStreams   Group = "streams"
	GroupRouter    Group = "router"
	GroupAction    Group = "action"
	GroupCollector Group = "collector"
	GroupSecrets   Group = "secrets"
	GroupData      Group = "data"
	GroupTwitch    Group = "twitch"
	GroupDiscord   Group = "discord"
	GroupSlack     Group = "slack"
	GroupPortal    Group = "portal"
	// GroupAI: the AI module's defaults (dev and action workers).
	GroupAI Group = "ai"
)

// Setting is one row of the table.
type Setting struct {
	// Name is upper snake case: NATS_URL → WADDLEBOT_NATS_URL, --nats-url.
	Name     string
	Group    Group
	Default  string
	Usage    string
	Secret   bool
	kind     kind
	validate func(string) error
	field    func(*Config) any
}

// Env is the environment variable of the setting.
func (s Setting) Env() string { return EnvPrefix + s.Name }

// Flag is the command-line flag of the setting.
func (s Setting) Flag() string { return strings.ReplaceAll(strings.ToLower(s.Name), "_", "-") }

func str(name string, g Group, def, usage string, field func(*Config) *string, validate ...func(string) error) Setting {
	return Setting{Name: name, Group: g, Default: def, Usage: usage, kind: kindString,
		validate: firstOrNil(validate), field: func(c *Config) any { return field(c) }}
}

func secret(name string, g Group, def, usage string, field func(*Config) *string, validate ...func(string) error) Setting {
	s := str(name, g, def, usage, field, validate...)
	s.Secret = true
	return s
}

func integer(name string, g Group, def int, usage string, field func(*Config) *int, min int) Setting {
	return Setting{Name: name, Group: g, Default: strconv.Itoa(def), Usage: usage, kind: kindInt,
		validate: minInt(min), field: func(c *Config) any { return field(c) }}
}

func integer64(name string, g Group, def int64, usage string, field func(*Config) *int64, min int64) Setting {
	return Setting{Name: name, Group: g, Default: strconv.FormatInt(def, 10), Usage: usage, kind: kindInt64,
		validate: func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < min {
				return fmt.Errorf("want a whole number of at least %d", min)
			}
			return nil
		}, field: func(c *Config) any { return field(c) }}
}

func boolean(name string, g Group, def bool, usage string, field func(*Config) *bool) Setting {
	return Setting{Name: name, Group: g, Default: strconv.FormatBool(def), Usage: usage, kind: kindBool,
		validate: func(v string) error {
			if _, err := strconv.ParseBool(v); err != nil {
				return errors.New("want true or false")
			}
			return nil
		}, field: func(c *Config) any { return field(c) }}
}

func duration(name string, g Group, def time.Duration, usage string, field func(*Config) *time.Duration, min time.Duration) Setting {
	return Setting{Name: name, Group: g, Default: def.String(), Usage: usage, kind: kindDuration,
		validate: func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < min {
				return fmt.Errorf("want a duration (like 30s, 5m, 72h) of at least %s", min)
			}
			return nil
		}, field: func(c *Config) any { return field(c) }}
}

func firstOrNil(fs []func(string) error) func(string) error {
	if len(fs) == 0 {
		return nil
	}
	return fs[0]
}

func minInt(min int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < min {
			return fmt.Errorf("want a whole number of at least %d", min)
		}
		return nil
	}
}

func oneOf(values ...string) func(string) error {
	return func(v string) error {
		for _, w := range values {
			if v == w {
				return nil
			}
		}
		return fmt.Errorf("want one of %s", strings.Join(values, ", "))
	}
}

func urlWithScheme(schemes ...string) func(string) error {
	return func(v string) error {
		if v == "" {
			return nil
		}
		for _, part := range strings.Split(v, ",") {
			u, err := url.Parse(strings.TrimSpace(part))
			if err != nil {
				return fmt.Errorf("not a URL: %v", err)
			}
			if err := oneOf(schemes...)(u.Scheme); err != nil {
				return fmt.Errorf("scheme %q: %v", u.Scheme, err)
			}
		}
		return nil
	}
}

// Table is every setting WaddleBot has, in the order `waddlebot config` prints.
func Table() []Setting {
	return []Setting{
		str("NATS_URL", GroupNATS, "", "NATS server URL(s), comma-separated; empty: <data-dir>/nats.url written by waddlebot dev, else "+DefaultNATSURL,
			func(c *Config) *string { return &c.NATSURL }, urlWithScheme("nats", "tls", "ws", "wss")),
		str("NATS_CREDS", GroupNATS, "", "NATS user credentials file (decentralized JWT auth)",
			func(c *Config) *string { return &c.NATSCreds }),
		secret("DATABASE_URL", GroupDatabase, DefaultDatabaseURL, "PostgreSQL URL",
			func(c *Config) *string { return &c.DatabaseURL }, urlWithScheme("postgres", "postgresql")),
		secret("DATABASE_READ_URL", GroupDatabase, "", "optional read-replica PostgreSQL URL for read-only queries",
			func(c *Config) *string { return &c.DatabaseReadURL }, urlWithScheme("postgres", "postgresql")),
		boolean("CREATE_DATABASE", GroupDatabase, false, "create the database named in the URL when it is missing",
			func(c *Config) *bool { return &c.CreateDatabase }),
		str("DATA_DIR", GroupData, ".waddlebot", "directory for dev's NATS store, its NATS URL file and its generated secret key",
			func(c *Config) *string { return &c.DataDir }),
		boolean("PPROF", GroupHTTP, false, "serve Go's profiles at /debug/pprof/ on the HTTP server (heap and CPU profiles of a running part; keep the server private)",
			func(c *Config) *bool { return &c.Pprof }),
		str("HTTP_ADDR", GroupHTTP, "127.0.0.1:8080", "address of the HTTP server (/healthz, /readyz, /metrics; pages in dev); port 0 picks a free one",
			func(c *Config) *string { return &c.HTTPAddr }),
		secret("SECRET_KEY", GroupSecrets, "", "base64 of 32 random bytes: the AES-256-GCM key for secrets at rest (dev generates one into its data dir)",
			func(c *Config) *string { return &c.SecretKey }),
		secret("SECRET_KEY_PREVIOUS", GroupSecrets, "", "during a key rotation, the old SECRET_KEY: secrets it wrote stay readable until `waddlebot secrets rotate` re-encrypts them",
			func(c *Config) *string { return &c.SecretKeyPrevious }),
		str("LOG_LEVEL", GroupLog, "info", "debug, info, warn or error",
			func(c *Config) *string { return &c.LogLevel }, oneOf("debug", "info", "warn", "error")),
		str("LOG_FORMAT", GroupLog, "auto", "auto (text on a terminal, JSON otherwise), text or json",
			func(c *Config) *string { return &c.LogFormat }, oneOf("auto", "text", "json")),

		integer("STREAM_REPLICAS", GroupStreams, 1, "replicas of every stream and bucket (3 on a cluster)",
			func(c *Config) *int { return &c.StreamReplicas }, 1),
		str("STREAM_STORAGE", GroupStreams, "file", "file or memory",
			func(c *Config) *string { return &c.StreamStorage }, oneOf("file", "memory")),
		duration("EVENTS_MAX_AGE", GroupStreams, 72*time.Hour, "how long WB_EVENTS keeps events",
			func(c *Config) *time.Duration { return &c.EventsMaxAge }, time.Minute),
		integer64("EVENTS_MAX_BYTES", GroupStreams, 8<<30, "size cap of WB_EVENTS in bytes",
			func(c *Config) *int64 { return &c.EventsMaxBytes }, 1<<20),
		duration("EVENTS_DUPLICATES", GroupStreams, 15*time.Minute, "duplicate window of WB_EVENTS (Slack retries for 5 minutes)",
			func(c *Config) *time.Duration { return &c.EventsDuplicates }, time.Second),
		duration("COMMANDS_MAX_AGE", GroupStreams, 24*time.Hour, "how long WB_COMMANDS keeps invocations",
			func(c *Config) *time.Duration { return &c.CommandsMaxAge }, time.Minute),
		duration("REPLIES_MAX_AGE", GroupStreams, 24*time.Hour, "how long WB_REPLIES keeps replies",
			func(c *Config) *time.Duration { return &c.RepliesMaxAge }, time.Minute),
		duration("RESULTS_MAX_AGE", GroupStreams, 24*time.Hour, "how long WB_RESULTS keeps external results",
			func(c *Config) *time.Duration { return &c.ResultsMaxAge }, time.Minute),
		duration("MESSAGE_DUPLICATES", GroupStreams, 30*time.Minute, "duplicate window of WB_COMMANDS, WB_REPLIES, WB_RESULTS and WB_DLQ",
			func(c *Config) *time.Duration { return &c.MessageDuplicates }, time.Second),
		duration("OVERLAY_MAX_AGE", GroupStreams, time.Hour, "how long WB_OVERLAY keeps items",
			func(c *Config) *time.Duration { return &c.OverlayMaxAge }, time.Minute),
		integer64("OVERLAY_PER_SUBJECT", GroupStreams, 20, "items WB_OVERLAY keeps per community and source",
			func(c *Config) *int64 { return &c.OverlayPerSubject }, 1),
		duration("OVERLAY_DUPLICATES", GroupStreams, 2*time.Minute, "duplicate window of WB_OVERLAY",
			func(c *Config) *time.Duration { return &c.OverlayDuplicates }, time.Second),
		duration("DLQ_MAX_AGE", GroupStreams, 30*24*time.Hour, "how long WB_DLQ keeps dead letters",
			func(c *Config) *time.Duration { return &c.DLQMaxAge }, time.Hour),
		duration("FAILURES_TTL", GroupStreams, 24*time.Hour, "how long a message's handler-failure count is remembered",
			func(c *Config) *time.Duration { return &c.FailuresTTL }, time.Minute),
		duration("WINDOWS_TTL", GroupStreams, 10*time.Minute, "how long an idle rate window or send budget is kept; must be longer than every window",
			func(c *Config) *time.Duration { return &c.WindowsTTL }, time.Second),
		duration("HEARTBEAT_TTL", GroupStreams, 30*time.Second, "a module counts as alive this long after its last heartbeat",
			func(c *Config) *time.Duration { return &c.HeartbeatTTL }, time.Second),
		duration("LEASE_TTL", GroupStreams, 15*time.Second, "connection lease lifetime; holders renew at a third and drop the connection before it ends",
			func(c *Config) *time.Duration { return &c.LeaseTTL }, time.Second),
		duration("AI_MEMORY_TTL", GroupStreams, 24*time.Hour, "how long per-channel AI memory is kept",
			func(c *Config) *time.Duration { return &c.AIMemoryTTL }, time.Minute),
		duration("COOLDOWN_MARKER_TTL", GroupStreams, time.Minute, "how long the cooldown bucket keeps markers of expired keys",
			func(c *Config) *time.Duration { return &c.CooldownMarkerTTL }, time.Second),
		duration("ACK_WAIT", GroupStreams, 30*time.Second, "consumer AckWait; long handlers send in-progress acks before it",
			func(c *Config) *time.Duration { return &c.ConsumerAckWait }, time.Second),
		integer("MAX_HANDLER_FAILURES", GroupStreams, 5, "handler failures after which a message is dead-lettered",
			func(c *Config) *int { return &c.MaxHandlerFailures }, 1),

		integer("ROUTER_CONCURRENCY", GroupRouter, 256, "events one router replica works on at once",
			func(c *Config) *int { return &c.RouterConcurrency }, 1),
		integer("USER_RATE_LIMIT", GroupRouter, 60, "commands one user may run per window in one community",
			func(c *Config) *int { return &c.UserRateLimit }, 1),
		duration("USER_RATE_WINDOW", GroupRouter, time.Minute, "window of the per-user rate limit",
			func(c *Config) *time.Duration { return &c.UserRateWindow }, time.Millisecond),
		integer("CHANNEL_RATE_LIMIT", GroupRouter, 300, "commands one channel may run per window",
			func(c *Config) *int { return &c.ChannelRateLimit }, 1),
		duration("CHANNEL_RATE_WINDOW", GroupRouter, time.Minute, "window of the per-channel rate limit",
			func(c *Config) *time.Duration { return &c.ChannelRateWindow }, time.Millisecond),
		duration("INVOCATION_DEADLINE", GroupRouter, 30*time.Second, "how long after an event its reply is still useful",
			func(c *Config) *time.Duration { return &c.InvocationDeadline }, time.Second),
		duration("CACHE_TTL", GroupRouter, time.Minute, "how long cached communities and the catalogue live without a control notice",
			func(c *Config) *time.Duration { return &c.CacheTTL }, time.Millisecond),
		integer("ALIAS_DEPTH", GroupRouter, 3, "how many aliases may expand into each other before the router gives up",
			func(c *Config) *int { return &c.AliasDepth }, 1),

		integer("ACTION_CONCURRENCY", GroupAction, 64, "invocations one module replica works on at once",
			func(c *Config) *int { return &c.ActionConcurrency }, 1),
		duration("HANDLER_TIMEOUT", GroupAction, 2*time.Minute, "longest a module handler may run",
			func(c *Config) *time.Duration { return &c.HandlerTimeout }, time.Millisecond),
		duration("OUTBOX_SWEEP", GroupAction, 5*time.Second, "how often committed but unsent results are republished",
			func(c *Config) *time.Duration { return &c.OutboxSweep }, 10*time.Millisecond),

		integer("SENDER_CONCURRENCY", GroupCollector, 64, "replies one sender replica works on at once",
			func(c *Config) *int { return &c.SenderConcurrency }, 1),
		duration("SEND_WINDOW", GroupCollector, 30*time.Second, "window of the per-channel send budgets (each platform's collector sets its budget per window)",
			func(c *Config) *time.Duration { return &c.SendWindow }, time.Millisecond),
		integer("CONSOLE_SEND_BUDGET", GroupCollector, 10000, "console messages per channel per send window",
			func(c *Config) *int { return &c.ConsoleSendBudget }, 1),
		str("PUBLIC_URL", GroupHTTP, "", "the URL users and platforms reach the HTTP server at (OAuth redirects, webhooks); empty: http://<HTTP_ADDR>",
			func(c *Config) *string { return &c.PublicURL }, urlWithScheme("http", "https")),
		secret("ADMIN_TOKEN", GroupHTTP, "", "opens the operator pages (/connect/twitch/bot, /connect/twitch/status) as ?token=<it> or Authorization: Bearer <it>; without it they answer only in dev, to loopback visitors",
			func(c *Config) *string { return &c.AdminToken }),

		str("TWITCH_CLIENT_ID", GroupTwitch, "", "Twitch application client id (dev.twitch.tv/console); the Twitch collector runs when it and the secret are set",
			func(c *Config) *string { return &c.TwitchClientID }),
		secret("TWITCH_CLIENT_SECRET", GroupTwitch, "", "Twitch application client secret",
			func(c *Config) *string { return &c.TwitchClientSecret }),
		str("TWITCH_API_URL", GroupTwitch, "https://api.twitch.tv/helix", "Helix API base URL",
			func(c *Config) *string { return &c.TwitchAPIURL }, urlWithScheme("http", "https")),
		str("TWITCH_AUTH_URL", GroupTwitch, "https://id.twitch.tv/oauth2", "Twitch OAuth base URL",
			func(c *Config) *string { return &c.TwitchAuthURL }, urlWithScheme("http", "https")),
		str("TWITCH_EVENTSUB_URL", GroupTwitch, "wss://eventsub.wss.twitch.tv/ws", "EventSub WebSocket URL",
			func(c *Config) *string { return &c.TwitchEventSubURL }, urlWithScheme("ws", "wss")),
		str("TWITCH_TRANSPORT", GroupTwitch, "websocket", "how EventSub reaches the bot: websocket (one socket per channel), webhook (needs PUBLIC_URL reachable by Twitch) or conduit (app token, shards over replicas)",
			func(c *Config) *string { return &c.TwitchTransport }, oneOf("websocket", "webhook", "conduit")),
		secret("TWITCH_WEBHOOK_SECRET", GroupTwitch, "", "secret (10–100 characters) Twitch signs webhook notifications with",
			func(c *Config) *string { return &c.TwitchWebhookSecret }),
		integer("TWITCH_SEND_BUDGET", GroupTwitch, 20, "Twitch messages per channel per send window when the bot is not a moderator (Twitch allows 20 per 30 s)",
			func(c *Config) *int { return &c.TwitchSendBudget }, 1),
		integer("TWITCH_MODERATOR_SEND_BUDGET", GroupTwitch, 100, "Twitch messages per channel per send window where the bot is a moderator (Twitch allows 100 per 30 s)",
			func(c *Config) *int { return &c.TwitchModSendBudget }, 1),
		integer("TWITCH_CONDUIT_SHARDS", GroupTwitch, 1, "shards of the conduit in conduit mode (spread over collector replicas)",
			func(c *Config) *int { return &c.TwitchConduitShards }, 1),

		secret("DISCORD_BOT_TOKEN", GroupDiscord, "", "Discord bot token (discord.com/developers → your application → Bot); the Discord collector runs when it is set",
			func(c *Config) *string { return &c.DiscordBotToken }),
		str("DISCORD_APPLICATION_ID", GroupDiscord, "", "Discord application id (also the OAuth2 client id of the install link)",
			func(c *Config) *string { return &c.DiscordAppID }),
		secret("DISCORD_CLIENT_SECRET", GroupDiscord, "", "Discord OAuth2 client secret (the install link's callback exchanges its code with it)",
			func(c *Config) *string { return &c.DiscordClientSecret }),
		str("DISCORD_API_URL", GroupDiscord, "https://discord.com/api/v9", "Discord REST base URL (OAuth2 lives under it too)",
			func(c *Config) *string { return &c.DiscordAPIURL }, urlWithScheme("http", "https")),
		str("DISCORD_GATEWAY_URL", GroupDiscord, "", "Discord gateway WebSocket URL; empty: the one GET /gateway/bot returns",
			func(c *Config) *string { return &c.DiscordGatewayURL }, urlWithScheme("ws", "wss")),
		integer("DISCORD_SHARDS", GroupDiscord, 0, "gateway shards; 0: as many as GET /gateway/bot recommends",
			func(c *Config) *int { return &c.DiscordShards }, 0),

		secret("SLACK_APP_TOKEN", GroupSlack, "", "Slack app-level token (xapp-…, connections:write) for Socket Mode",
			func(c *Config) *string { return &c.SlackAppToken }),
		secret("SLACK_BOT_TOKEN", GroupSlack, "", "Slack bot token (xoxb-…) of a workspace the app is installed in by hand; more workspaces install through /connect/slack",
			func(c *Config) *string { return &c.SlackBotToken }),
		str("SLACK_CLIENT_ID", GroupSlack, "", "Slack app client id (OAuth v2 install link)",
			func(c *Config) *string { return &c.SlackClientID }),
		secret("SLACK_CLIENT_SECRET", GroupSlack, "", "Slack app client secret",
			func(c *Config) *string { return &c.SlackClientSecret }),
		secret("SLACK_SIGNING_SECRET", GroupSlack, "", "Slack signing secret (Events API and slash commands over HTTP)",
			func(c *Config) *string { return &c.SlackSigningSecret }),
		str("SLACK_API_URL", GroupSlack, "https://slack.com/api/", "Slack Web API base URL (OAuth and Socket Mode's apps.connections.open live under it)",
			func(c *Config) *string { return &c.SlackAPIURL }, urlWithScheme("http", "https")),
		str("SLACK_AUTHORIZE_URL", GroupSlack, "https://slack.com/oauth/v2/authorize", "Slack's OAuth v2 consent page (the install link sends browsers there)",
			func(c *Config) *string { return &c.SlackAuthorizeURL }, urlWithScheme("http", "https")),
		str("SLACK_TRANSPORT", GroupSlack, "socket", "how events reach the bot: socket (Socket Mode, app-level token) or events (Events API over HTTP at PUBLIC_URL/webhooks/slack)",
			func(c *Config) *string { return &c.SlackTransport }, oneOf("socket", "events")),
		integer("SLACK_SEND_BUDGET", GroupSlack, 1, "Slack messages per channel per second (bursts beyond wait their turn)",
			func(c *Config) *int { return &c.SlackSendBudget }, 1),

		str("SUPER_ADMINS", GroupPortal, "", "platform accounts made portal super-admins when they sign in, comma-separated: twitch:<user id>, discord:<user id> or slack:<user id> (the bootstrap of a fresh deployment; there is no default password)",
			func(c *Config) *string { return &c.SuperAdmins }, superAdmins),
		duration("PORTAL_SESSION_IDLE", GroupPortal, 7*24*time.Hour, "a portal session unused this long signs out",
			func(c *Config) *time.Duration { return &c.PortalSessionIdle }, time.Minute),
		duration("PORTAL_SESSION_MAX", GroupPortal, 30*24*time.Hour, "a portal session signs out this long after sign-in, however active",
			func(c *Config) *time.Duration { return &c.PortalSessionMax }, time.Minute),
		str("PORTAL_SLACK_AUTHORIZE_URL", GroupPortal, "https://slack.com/openid/connect/authorize", "Slack's Sign in with Slack (OpenID Connect) consent page",
			func(c *Config) *string { return &c.PortalSlackAuthorizeURL }, urlWithScheme("http", "https")),
		str("NATS_AUTH_DIR", GroupPortal, "", "the `waddlebot nats-config` directory whose keys the portal mints external NATS modules' credentials with (default <data-dir>/nats-auth; without its keys minting is refused)",
			func(c *Config) *string { return &c.NATSAuthDir }),

		boolean("CONSOLE_ENABLED", GroupCollector, false, "serve the console platform and the dev chat page outside waddlebot dev (they trust the role a sender claims)",
			func(c *Config) *bool { return &c.ConsoleEnabled }),

		str("AI_PROVIDER", GroupAI, "ollama", "AI module's default provider: ollama or openai (any OpenAI-compatible endpoint)",
			func(c *Config) *string { return &c.AIProvider }, oneOf("ollama", "openai")),
		str("AI_HOST", GroupAI, "localhost", "AI module: default Ollama host",
			func(c *Config) *string { return &c.AIHost }),
		integer("AI_PORT", GroupAI, 11434, "AI module: default Ollama port",
			func(c *Config) *int { return &c.AIPort }, 1),
		boolean("AI_TLS", GroupAI, false, "AI module: reach Ollama over HTTPS",
			func(c *Config) *bool { return &c.AITLS }),
		str("AI_CA_FILE", GroupAI, "", "AI module: PEM file of an extra CA trusted for the model endpoint",
			func(c *Config) *string { return &c.AICAFile }),
		boolean("AI_VERIFY", GroupAI, true, "AI module: verify the model endpoint's certificate",
			func(c *Config) *bool { return &c.AIVerify }),
		str("AI_MODEL", GroupAI, "llama3.2", "AI module: default model (auto lets a routing proxy choose)",
			func(c *Config) *string { return &c.AIModel }),
		str("AI_TEMPERATURE", GroupAI, "0.7", "AI module: default sampling temperature, 0 to 2",
			func(c *Config) *string { return &c.AITemperature }, floatRange(0, 2)),
		integer("AI_MAX_TOKENS", GroupAI, 500, "AI module: default most tokens per answer",
			func(c *Config) *int { return &c.AIMaxTokens }, 1),
		duration("AI_KEEP_ALIVE", GroupAI, 5*time.Minute, "AI module: how long Ollama keeps the model loaded after a call",
			func(c *Config) *time.Duration { return &c.AIKeepAlive }, 0),
		duration("AI_TIMEOUT", GroupAI, 45*time.Second, "AI module: longest one model call may take (one retry on a transient error; keep two calls inside HANDLER_TIMEOUT)",
			func(c *Config) *time.Duration { return &c.AITimeout }, time.Second),
		str("AI_BASE_URL", GroupAI, "", "AI module: default OpenAI-compatible API root, e.g. https://api.openai.com/v1",
			func(c *Config) *string { return &c.AIBaseURL }, urlWithScheme("http", "https")),
		secret("AI_API_KEY", GroupAI, "", "AI module: API key for the default OpenAI-compatible endpoint (never sent to a community's own endpoint)",
			func(c *Config) *string { return &c.AIAPIKey }),
		secret("AI_BEARER_TOKEN", GroupAI, "", "AI module: bearer token for the default Ollama behind a proxy (never sent to a community's own endpoint)",
			func(c *Config) *string { return &c.AIBearerToken }),
		str("AI_PREFERRED_MODEL_HEADER", GroupAI, "", "AI module: header a routing proxy reads for a community's preferred model",
			func(c *Config) *string { return &c.AIPreferredModelHeader }),
		str("AI_SYSTEM_PROMPT", GroupAI, "", "AI module: default persona; {platform} and {channel} are filled in",
			func(c *Config) *string { return &c.AISystemPrompt }),
		str("AI_PREFIX", GroupAI, "", "AI module: default text put before every answer",
			func(c *Config) *string { return &c.AIPrefix }),
		str("AI_BOT_NAME", GroupAI, "waddlebot", "AI module: the name whose mention asks the bot",
			func(c *Config) *string { return &c.AIBotName }),
		integer("AI_MAX_CONCURRENT", GroupAI, 10, "AI module: model calls in flight per replica",
			func(c *Config) *int { return &c.AIMaxConcurrent }, 1),
		boolean("AI_CUSTOM_ENDPOINTS", GroupAI, true, "AI module: let communities point the bot at their own model endpoint (host, base URL, CA file); off: the operator's only",
			func(c *Config) *bool { return &c.AICustomEndpoints }),

		secret("YOUTUBE_API_KEY", GroupAction, "", "music module: YouTube Data API v3 key for song requests (without it YouTube requests are refused)",
			func(c *Config) *string { return &c.YouTubeAPIKey }),
		str("YOUTUBE_API_URL", GroupAction, "https://www.googleapis.com/youtube/v3", "music module: YouTube Data API root",
			func(c *Config) *string { return &c.YouTubeAPIURL }, urlWithScheme("http", "https")),
		str("SPOTIFY_CLIENT_ID", GroupAction, "", "music module and portal: Spotify app client id (without it Spotify cannot be connected)",
			func(c *Config) *string { return &c.SpotifyClientID }),
		secret("SPOTIFY_CLIENT_SECRET", GroupAction, "", "music module and portal: Spotify app client secret",
			func(c *Config) *string { return &c.SpotifyClientSecret }),
		str("SPOTIFY_API_URL", GroupAction, "https://api.spotify.com", "music module: Spotify Web API root",
			func(c *Config) *string { return &c.SpotifyAPIURL }, urlWithScheme("http", "https")),
		str("SPOTIFY_ACCOUNTS_URL", GroupAction, "https://accounts.spotify.com", "music module and portal: Spotify accounts service root (authorize and token)",
			func(c *Config) *string { return &c.SpotifyAccountsURL }, urlWithScheme("http", "https")),
	}
}

// floatRange checks a decimal number between lo and hi.
func floatRange(lo, hi float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < lo || f > hi {
			return fmt.Errorf("must be a number from %g to %g", lo, hi)
		}
		return nil
	}
}

// Defaults returns the configuration with every default applied.
func Defaults() Config {
	var c Config
	for _, s := range Table() {
		if err := s.set(&c, s.Default); err != nil {
			panic(fmt.Sprintf("config: default of %s: %v", s.Name, err))
		}
	}
	return c
}

func (s Setting) set(c *Config, v string) error {
	if s.validate != nil {
		if err := s.validate(v); err != nil {
			return err
		}
	}
	switch p := s.field(c).(type) {
	case *string:
		*p = v
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		*p = n
	case *int64:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return err
		}
		*p = n
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return err
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		*p = d
	default:
		return fmt.Errorf("config: %s has an unsupported type", s.Name)
	}
	return nil
}

func (s Setting) get(c *Config) string {
	switch p := s.field(c).(type) {
	case *string:
		return *p
	case *int:
		return strconv.Itoa(*p)
	case *int64:
		return strconv.FormatInt(*p, 10)
	case *bool:
		return strconv.FormatBool(*p)
	case *time.Duration:
		return p.String()
	}
	return ""
}

// Source says where an effective value came from.
type Source string

// Sources of values.
const (
	FromDefault Source = "default"
	FromEnv     Source = "env"
	FromFile    Source = "file"
	FromFlag    Source = "flag"
)

// Loaded is a configuration with where each value came from.
type Loaded struct {
	Config
	Sources map[string]Source
}

// Loader binds the settings of some groups to a flag set, so that a command
// shows only the flags it reads.
type Loader struct {
	fs       *flag.FlagSet
	groups   map[Group]bool
	flagged  map[string]*string
	getenv   func(string) string
	readFile func(string) ([]byte, error)
}

// NewLoader registers a flag on fs for every setting in groups.
func NewLoader(fs *flag.FlagSet, groups ...Group) *Loader {
	l := &Loader{fs: fs, groups: map[Group]bool{}, flagged: map[string]*string{},
		getenv: os.Getenv, readFile: os.ReadFile}
	for _, g := range groups {
		l.groups[g] = true
	}
	for _, s := range Table() {
		if !l.groups[s.Group] {
			continue
		}
		v := new(string)
		usage := s.Usage + " (env " + s.Env()
		if s.Secret {
			usage += ", or " + s.Env() + "_FILE"
		}
		usage += ")"
		def := s.Default
		if s.Secret && def != "" {
			def = Mask(def)
		}
		fs.Func(s.Flag(), usage+defaultNote(def), func(val string) error {
			*v = val
			return nil
		})
		l.flagged[s.Name] = v
	}
	return l
}

func defaultNote(def string) string {
	if def == "" {
		return ""
	}
	return " [default " + def + "]"
}

// WithEnv replaces the environment lookups, for tests.
func (l *Loader) WithEnv(getenv func(string) string, readFile func(string) ([]byte, error)) *Loader {
	l.getenv, l.readFile = getenv, readFile
	return l
}

// Load applies defaults, then the environment, then flags already parsed
// into the flag set, validating each value.
func (l *Loader) Load() (Loaded, error) {
	out := Loaded{Config: Defaults(), Sources: map[string]Source{}}
	var errs []error
	for _, s := range Table() {
		out.Sources[s.Name] = FromDefault
		if v := l.getenv(s.Env()); v != "" {
			if err := s.set(&out.Config, v); err != nil {
				errs = append(errs, fmt.Errorf("config: %s=%q: %w", s.Env(), maskIf(s, v), err))
			}
			out.Sources[s.Name] = FromEnv
		} else if path := l.getenv(s.Env() + "_FILE"); path != "" {
			b, err := l.readFile(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("config: %s_FILE: %w", s.Env(), err))
			} else if err := s.set(&out.Config, strings.TrimSpace(string(b))); err != nil {
				errs = append(errs, fmt.Errorf("config: %s_FILE %s: %w", s.Env(), path, err))
			}
			out.Sources[s.Name] = FromFile
		}
		if p, ok := l.flagged[s.Name]; ok && l.fs.Parsed() && flagSet(l.fs, s.Flag()) {
			if err := s.set(&out.Config, *p); err != nil {
				errs = append(errs, fmt.Errorf("config: --%s=%q: %w", s.Flag(), maskIf(s, *p), err))
			}
			out.Sources[s.Name] = FromFlag
		}
	}
	if len(errs) == 0 {
		errs = append(errs, out.Config.check())
	}
	return out, errors.Join(errs...)
}

// check validates settings that depend on each other.
func (c Config) check() error {
	var errs []error
	for name, w := range map[string]time.Duration{"USER_RATE_WINDOW": c.UserRateWindow,
		"CHANNEL_RATE_WINDOW": c.ChannelRateWindow, "SEND_WINDOW": c.SendWindow} {
		if w >= c.WindowsTTL {
			errs = append(errs, fmt.Errorf("config: %s%s (%s) must be shorter than %sWINDOWS_TTL (%s), or idle windows would forget entries still inside them",
				EnvPrefix, name, w, EnvPrefix, c.WindowsTTL))
		}
	}
	return errors.Join(errs...)
}

func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

func maskIf(s Setting, v string) string {
	if s.Secret {
		return Mask(v)
	}
	return v
}

// Mask hides a secret but keeps a URL's shape: the password of a URL, or all
// but a hint of anything else.
func Mask(v string) string {
	if v == "" {
		return ""
	}
	if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.Host != "" {
		if u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
		}
		return u.Redacted()
	}
	return "****"
}

// Print writes the effective settings, secrets masked, one per line.
func Print(w io.Writer, l Loaded) {
	rows := Table()
	for _, s := range rows {
		v := s.get(&l.Config)
		if s.Secret {
			v = Mask(v)
		}
		fmt.Fprintf(w, "%s%s=%s\t(%s)\n", EnvPrefix, s.Name, v, l.Sources[s.Name])
	}
}

// ResolveNATSURL decides where a command connects: the configured URL, else
// the URL `waddlebot dev` wrote under the data directory, else the default.
func ResolveNATSURL(c Config) string {
	if c.NATSURL != "" {
		return c.NATSURL
	}
	if b, err := os.ReadFile(filepath.Join(c.DataDir, NATSURLFile)); err == nil {
		if u := strings.TrimSpace(string(b)); u != "" {
			return u
		}
	}
	return DefaultNATSURL
}

// ParseInterspersed parses flags that may stand before, between or after the
// positional arguments (`waddlebot say "!ping" --channel demo`), which the
// standard flag package alone does not allow. "--" ends flag parsing.
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// fs.Parse stops at "--" (consuming it) or at the first non-flag.
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// Names lists every setting name, sorted: for docs and tests.
func Names() []string {
	var out []string
	for _, s := range Table() {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

// superAdmins checks a comma-separated list of platform:<user id>.
func superAdmins(v string) error {
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		platform, id, ok := strings.Cut(s, ":")
		if !ok || id == "" || (platform != "twitch" && platform != "discord" && platform != "slack") {
			return fmt.Errorf("%q is not twitch:<user id>, discord:<user id> or slack:<user id>", s)
		}
	}
	return nil
}
