// Package twitch is WaddleBot's Twitch collector: EventSub in (WebSocket,
// webhook or conduit), Helix out (chat messages, shoutouts, lookups), and
// the OAuth flow that connects a broadcaster's channel and the bot account.
package twitch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// Refresh replaces refused, a token Twitch answered 401 to, and returns
	// the new one. When the stored token is no longer refused (another
	// replica refreshed it meanwhile) that one is returned without asking
	// Twitch; an empty refused forces a refresh. A grant that cannot be
	// refreshed marks the account disconnected and returns ErrNotConnected.
	Refresh(ctx context.Context, userID, refused string) (string, error)
	// AppToken returns an app access token (client credentials), for
	// webhooks, conduits and lookups.
	AppToken(ctx context.Context) (string, error)
	// AppTokenRefused forgets an app token Twitch answered 401 to, so the
	// next AppToken gets a new one.
	AppTokenRefused(token string)
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

// defaultHTTPTimeout bounds a Helix or OAuth request when the caller gave no
// client: the token refresh holds a database transaction and an advisory
// lock while it waits for Twitch.
const defaultHTTPTimeout = 15 * time.Second

// NewHelix prepares clients for the given endpoints. base is the HTTP client
// to use (nil: one with a 15 s timeout); requests to Twitch's fixed auth
// host are sent to endpoints.Auth instead, since helix hard-codes that host.
func NewHelix(clientID, clientSecret, redirectURI string, endpoints Endpoints, base *http.Client) (*Helix, error) {
	if base == nil {
		base = &http.Client{Timeout: defaultHTTPTimeout}
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

// helixResult is one Helix response.
type helixResult struct {
	status int
	header http.Header
	body   []byte
}

// helixError is Twitch's error body.
type helixError struct {
	Error   string `json:"error"`
	Status  int    `json:"status"`
	Message string `json:"message"`
}

// ok reports a 2xx answer.
func (r *helixResult) ok() bool { return r.status >= 200 && r.status < 300 }

// message is Twitch's error message, or the status text when the body has
// none.
func (r *helixResult) message() string {
	var e helixError
	if err := json.Unmarshal(r.body, &e); err == nil {
		if e.Message != "" {
			return e.Message
		}
	} else if text := strings.TrimSpace(string(r.body)); text != "" && len(text) <= 200 {
		// Not Twitch's JSON (a proxy's page, say): its text says more than
		// the status alone.
		return text
	}
	return http.StatusText(r.status)
}

// helixBodyLimit bounds a Helix answer we read; a full page of
// subscriptions is well under it.
const helixBodyLimit = 16 << 20

// call sends one Helix request with a user or app token and reads the
// answer whatever its status. It is used instead of helix's client where
// that falls short: its Send Chat Message response drops drop_reason, its
// errors hide the rate-limit headers, v2.34.0 has no conduit calls, decodes
// no conduit_id in listings, refuses method "conduit" and sends every
// condition field, empty or not.
func (h *Helix) call(ctx context.Context, method, path string, query url.Values, body any, token string) (*helixResult, error) {
	u := h.apiURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("twitch: unable to encode %s %s: %w", method, path, err)
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, reader)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Client-Id", h.clientID)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, helixBodyLimit))
	if err != nil {
		return nil, fmt.Errorf("twitch: unable to read the answer to %s %s: %w", method, path, err)
	}
	return &helixResult{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// callHelix is h.call as a function, for the WebSocket sessions.
func callHelix(ctx context.Context, h *Helix, method, path string, query url.Values, body any, token string) (*helixResult, error) {
	return h.call(ctx, method, path, query, body, token)
}

// withAppToken runs call with the app token; when Twitch refuses that token
// (401) it is dropped and call runs once more with a new one, since nothing
// else would replace it before the hourly validation.
func withAppToken(ctx context.Context, tokens Tokens, call func(token string) (*helixResult, error)) (*helixResult, error) {
	for attempt := 0; ; attempt++ {
		token, err := tokens.AppToken(ctx)
		if err != nil {
			return nil, fmt.Errorf("twitch: unable to get an app token: %w", err)
		}
		res, err := call(token)
		if err != nil || res.status != http.StatusUnauthorized || attempt > 0 {
			return res, err
		}
		tokens.AppTokenRefused(token)
	}
}

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
