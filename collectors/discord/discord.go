// Package discord is WaddleBot's Discord collector: the gateway in (messages,
// members, bans, timeouts, slash commands), REST out (channel messages,
// DMs, interaction follow-ups), and the OAuth2 flow that installs the bot in
// a guild.
package discord

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
	"golang.org/x/time/rate"

	"github.com/waddlebot/waddlebot/schemas"
)

// DefaultAPIURL is Discord's REST base, the one discordgo's endpoint
// variables are built on.
const DefaultAPIURL = "https://discord.com/api/v9"

// Endpoints are Discord's base URLs, configurable so tests run against fakes.
type Endpoints struct {
	// API is the REST base, default https://discord.com/api/v9.
	API string
	// Gateway is the gateway WebSocket URL; "" means the one GET
	// /gateway/bot hands out.
	Gateway string
}

// Publisher publishes normalized events (collectors.Publisher).
type Publisher interface {
	Publish(ctx context.Context, ev *schemas.Event) error
}

// defaultHTTPTimeout bounds one REST request when the caller gave no client
// (discordgo's own default).
const defaultHTTPTimeout = 20 * time.Second

// NewSession makes a discordgo session for a bot token (with or without its
// "Bot " prefix) that talks to ep. discordgo computes its REST endpoints at
// init from package variables, so instead of changing those (which would
// affect every session in the process) requests for DefaultAPIURL are
// rewritten to ep.API by the session's HTTP transport. httpClient may be nil.
func NewSession(token string, ep Endpoints, httpClient *http.Client) (*discordgo.Session, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, errors.New("discord: a bot token is required")
	}
	if !strings.HasPrefix(token, "Bot ") {
		token = "Bot " + token
	}
	s, err := discordgo.New(token)
	if err != nil {
		return nil, fmt.Errorf("discord: unable to make a session: %w", err)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: defaultHTTPTimeout}
	}
	client := *httpClient
	next := client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	client.Transport = &limited{limiter: globalLimiter, next: next}
	api := strings.TrimRight(ep.API, "/")
	if api != "" && api != DefaultAPIURL {
		to, err := url.Parse(api)
		if err != nil || to.Scheme == "" || to.Host == "" {
			return nil, fmt.Errorf("discord: the API URL %q is not a URL", ep.API)
		}
		from, _ := url.Parse(DefaultAPIURL)
		client.Transport = &rewrite{from: from, to: to, next: client.Transport}
	}
	s.Client = &client
	return s, nil
}

// rewrite sends requests for one scheme://host/path prefix to another.
type rewrite struct {
	from, to *url.URL
	next     http.RoundTripper
}

func (r *rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != r.from.Host || !strings.HasPrefix(req.URL.Path, r.from.Path) {
		return r.next.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	u := *req.URL
	u.Scheme, u.Host = r.to.Scheme, r.to.Host
	u.Path = r.to.Path + strings.TrimPrefix(req.URL.Path, r.from.Path)
	u.RawPath = ""
	out.URL = &u
	out.Host = r.to.Host
	return r.next.RoundTrip(out)
}

// globalRequestsPerSecond is Discord's global limit on a bot's requests.
const globalRequestsPerSecond = 50

// globalLimiter spaces every REST request of the process (all sessions
// share the bot's global limit): discordgo only learns of the global limit
// from a 429, and Discord bans IPs that keep hitting limits.
var globalLimiter = rate.NewLimiter(globalRequestsPerSecond, globalRequestsPerSecond)

// limited waits for the global limiter before each request. Interaction
// callbacks and webhooks (follow-ups) are not counted by Discord against
// the global limit, and the 3 s deadline of a deferral must not wait
// behind messages.
type limited struct {
	limiter *rate.Limiter
	next    http.RoundTripper
}

func (l *limited) RoundTrip(req *http.Request) (*http.Response, error) {
	if !exemptFromGlobalLimit(req.URL.Path) {
		if err := l.limiter.Wait(req.Context()); err != nil {
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return nil, fmt.Errorf("discord: waiting for the global rate limit: %w", err)
		}
	}
	return l.next.RoundTrip(req)
}

func exemptFromGlobalLimit(path string) bool {
	return strings.Contains(path, "/interactions/") || strings.Contains(path, "/webhooks/")
}
