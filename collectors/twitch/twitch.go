// Package twitch is WaddleBot's Twitch collector: EventSub in (WebSocket,
// webhook or conduit), Helix out (chat messages, shoutouts, lookups), and
// the OAuth flow that connects a broadcaster's channel and the bot account.
package twitch

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nicklaw5/helix/v2"

	"github.com/waddlebot/waddlebot/schemas"
)

// Account kinds.
const (
	KindBroadcaster = "broadcaster" // a channel that connected
	KindBot         = "bot"         // the account the bot chats as
)

// Account statuses.
const (
	StatusConnected    = "connected"
	StatusDisconnected = "disconnected" // the grant was revoked or refresh failed
)

// Account is a Twitch user who connected through OAuth: a broadcaster (a
// channel the bot serves) or the bot's own account.
type Account struct {
	UserID      string
	Login       string
	DisplayName string
	Kind        string
	Scopes      []string
	Status      string
	// BotIsModerator: the bot is a moderator in this broadcaster's channel,
	// so its send budget is the larger one.
	BotIsModerator bool
	ConnectedAt    time.Time
	Error          string
}

// ErrNotConnected means there is no usable grant for a user (never
// connected, revoked, or the refresh failed).
var ErrNotConnected = errors.New("twitch: account not connected")

// Tokens hands out access tokens that work now.
type Tokens interface {
	// UserToken returns a user access token for a connected account,
	// refreshing it first when it is about to expire.
	UserToken(ctx context.Context, userID string) (string, error)
	// Refresh replaces a token Twitch refused (401) and returns the new one;
	// a grant that cannot be refreshed marks the account disconnected and
	// returns ErrNotConnected.
	Refresh(ctx context.Context, userID string) (string, error)
	// AppToken returns an app access token (client credentials), for
	// webhooks and conduits.
	AppToken(ctx context.Context) (string, error)
}

// Accounts lists who connected.
type Accounts interface {
	// Connected lists the accounts of a kind that are connected.
	Connected(ctx context.Context, kind string) ([]Account, error)
	// Account reads one account.
	Account(ctx context.Context, userID string) (Account, error)
}

// Endpoints are Twitch's base URLs, configurable so tests run against fakes.
type Endpoints struct {
	API      string // Helix, default https://api.twitch.tv/helix
	Auth     string // OAuth, default https://id.twitch.tv/oauth2
	EventSub string // EventSub WebSocket, default wss://eventsub.wss.twitch.tv/ws
}

// Default endpoints.
const (
	DefaultAPIURL      = "https://api.twitch.tv/helix"
	DefaultAuthURL     = "https://id.twitch.tv/oauth2"
	DefaultEventSubURL = "wss://eventsub.wss.twitch.tv/ws"
)

// Helix makes Helix clients for one token at a time: a helix.Client holds a
// single token (and ValidateToken swaps it), so sharing one between the
// bot's and the broadcasters' tokens would mix them up.
type Helix struct {
	clientID     string
	clientSecret string
	redirectURI  string
	apiURL       string
	http         *http.Client
}

// NewHelix prepares clients for the given endpoints. base is the HTTP client
// to use (nil: http.DefaultClient); requests to Twitch's fixed auth host are
// sent to endpoints.Auth instead, since helix hard-codes that host.
func NewHelix(clientID, clientSecret, redirectURI string, endpoints Endpoints, base *http.Client) (*Helix, error) {
	if base == nil {
		base = http.DefaultClient
	}
	transport := base.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	client := *base
	if endpoints.Auth != "" && strings.TrimRight(endpoints.Auth, "/") != DefaultAuthURL {
		to, err := url.Parse(strings.TrimRight(endpoints.Auth, "/"))
		if err != nil {
			return nil, errors.New("twitch: the auth URL is not a URL")
		}
		from, _ := url.Parse(DefaultAuthURL)
		client.Transport = &rewrite{from: from, to: to, next: transport}
	}
	api := endpoints.API
	if api == "" {
		api = DefaultAPIURL
	}
	return &Helix{clientID: clientID, clientSecret: clientSecret, redirectURI: redirectURI,
		apiURL: strings.TrimRight(api, "/"), http: &client}, nil
}

// Client returns a client that sends token (a user or app access token;
// empty for the OAuth token calls), bound to ctx.
func (h *Helix) Client(ctx context.Context, token string) *helix.Client {
	c, _ := helix.NewClientWithContext(ctx, &helix.Options{
		ClientID: h.clientID, ClientSecret: h.clientSecret, RedirectURI: h.redirectURI,
		UserAccessToken: token, HTTPClient: h.http, APIBaseURL: h.apiURL,
	})
	return c
}

// AppClient returns a client that sends an app access token.
func (h *Helix) AppClient(ctx context.Context, token string) *helix.Client {
	c, _ := helix.NewClientWithContext(ctx, &helix.Options{
		ClientID: h.clientID, ClientSecret: h.clientSecret, RedirectURI: h.redirectURI,
		AppAccessToken: token, HTTPClient: h.http, APIBaseURL: h.apiURL,
	})
	return c
}

// HTTP is the HTTP client Helix clients use (with the auth-host rewrite).
func (h *Helix) HTTP() *http.Client { return h.http }

// ClientID is the application's client id.
func (h *Helix) ClientID() string { return h.clientID }

// rewrite sends requests for one scheme://host/path prefix to another.
type rewrite struct {
	from, to *url.URL
	next     http.RoundTripper
}

func (r *rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == r.from.Host && strings.HasPrefix(req.URL.Path, r.from.Path) {
		out := req.Clone(req.Context())
		u := *req.URL
		u.Scheme, u.Host = r.to.Scheme, r.to.Host
		u.Path = r.to.Path + strings.TrimPrefix(req.URL.Path, r.from.Path)
		u.RawPath = ""
		out.URL = &u
		out.Host = r.to.Host
		return r.next.RoundTrip(out)
	}
	return r.next.RoundTrip(req)
}

// Publisher publishes normalized events (collectors.Publisher).
type Publisher interface {
	Publish(ctx context.Context, ev *schemas.Event) error
}

// ControlSubject (core NATS) announces that a Twitch account connected,
// disconnected or changed, so every collector replica picks it up without a
// restart. The body is an AccountChange.
const ControlSubject = "wb.control.twitch.accounts"

// AccountChange is the body of a ControlSubject notice.
type AccountChange struct {
	UserID string `json:"user_id"`
	Kind   string `json:"kind"`
	Status string `json:"status"`
}
