// Package spotify is the song-request player for Spotify: requests are
// searched (/v1/search?type=track) and added to the streamer's own queue
// (/v1/me/player/queue), and now-playing is read from the streamer's
// player. Access tokens come from the portal's OAuth connection
// (authorization code with PKCE), are kept encrypted (store.PutSecret), and
// are refreshed before they expire and whenever Spotify answers 401.
package spotify

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/waddlebot/waddlebot/actions/music"
	"github.com/waddlebot/waddlebot/internal/store"
)

// Defaults of the two roots.
const (
	DefaultAPIURL      = "https://api.spotify.com"
	DefaultAccountsURL = "https://accounts.spotify.com"
)

// Scopes the connection asks for: reading and driving the player.
const Scopes = "user-read-playback-state user-modify-playback-state user-read-currently-playing"

// refreshAhead is how long before expiry a token is refreshed, so a call
// never starts with a token about to lapse.
const refreshAhead = time.Minute

// Token is a community's Spotify connection.
type Token struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	Expiry       time.Time `json:"expiry"`
	Scope        string    `json:"scope,omitempty"`
}

// Tokens keeps each community's token.
type Tokens interface {
	Load(ctx context.Context, communityID string) (Token, error) // music.ErrNotConnected when none
	Save(ctx context.Context, communityID string, t Token) error
}

// SecretName is the token's name in the secrets table; its owner is
// "community:<id>".
const SecretName = "spotify"

// StoreTokens keeps tokens encrypted in the secrets table.
type StoreTokens struct{ Store *store.Store }

// Owner is the secrets owner of a community's token.
func Owner(communityID string) string { return "community:" + communityID }

// Load reads a community's token.
func (s StoreTokens) Load(ctx context.Context, communityID string) (Token, error) {
	b, err := s.Store.Secret(ctx, Owner(communityID), SecretName)
	if errors.Is(err, store.ErrNotFound) {
		return Token{}, music.ErrNotConnected
	}
	if err != nil {
		return Token{}, fmt.Errorf("spotify: unable to read the token: %w", err)
	}
	var t Token
	if err := json.Unmarshal(b, &t); err != nil {
		return Token{}, fmt.Errorf("spotify: unable to decode the token: %w", err)
	}
	return t, nil
}

// Save stores a community's token.
func (s StoreTokens) Save(ctx context.Context, communityID string, t Token) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("spotify: unable to encode the token: %w", err)
	}
	return s.Store.PutSecret(ctx, nil, Owner(communityID), SecretName, b)
}

// Client talks to Spotify for every community.
type Client struct {
	APIURL       string // DefaultAPIURL when empty
	AccountsURL  string // DefaultAccountsURL when empty
	ClientID     string
	ClientSecret string
	Tokens       Tokens
	HTTP         *http.Client // a 10-second client when nil
	Now          func() time.Time

	// mu serialises refreshes per process, so two calls that both see an
	// expired token do not both spend the refresh token.
	mu sync.Mutex
}

var _ music.Player = (*Client)(nil)

// Name is the provider's name.
func (c *Client) Name() string { return music.Spotify }

func (c *Client) api() string {
	if c.APIURL == "" {
		return DefaultAPIURL
	}
	return strings.TrimRight(c.APIURL, "/")
}

func (c *Client) accounts() string {
	if c.AccountsURL == "" {
		return DefaultAccountsURL
	}
	return strings.TrimRight(c.AccountsURL, "/")
}

func (c *Client) client() *http.Client {
	if c.HTTP == nil {
		return &http.Client{Timeout: 10 * time.Second}
	}
	return c.HTTP
}

func (c *Client) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// Configured reports whether the server has a Spotify app.
func (c *Client) Configured() bool { return c != nil && c.ClientID != "" }

// NewPKCE makes a verifier and its S256 challenge.
func NewPKCE() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// AuthURL is where the streamer grants access.
func (c *Client) AuthURL(state, challenge, redirectURI string) string {
	q := url.Values{"client_id": {c.ClientID}, "response_type": {"code"}, "redirect_uri": {redirectURI},
		"scope": {Scopes}, "state": {state}, "code_challenge_method": {"S256"}, "code_challenge": {challenge}}
	return c.accounts() + "/authorize?" + q.Encode()
}

// Exchange trades an authorization code for a token.
func (c *Client) Exchange(ctx context.Context, code, verifier, redirectURI string) (Token, error) {
	return c.tokenRequest(ctx, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier}, "client_id": {c.ClientID}}, "")
}

func (c *Client) tokenRequest(ctx context.Context, form url.Values, oldRefresh string) (Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.accounts()+"/api/token", strings.NewReader(form.Encode()))
	if err != nil {
		return Token{}, fmt.Errorf("spotify: unable to build the token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.ClientSecret != "" {
		req.SetBasicAuth(c.ClientID, c.ClientSecret)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return Token{}, fmt.Errorf("%w: spotify token: %v", music.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized {
		// invalid_grant: the streamer revoked access, or the code is spent.
		return Token{}, fmt.Errorf("%w: spotify token: HTTP %d %s", music.ErrUnauthorized, resp.StatusCode, clip(string(body)))
	}
	if resp.StatusCode != http.StatusOK {
		return Token{}, fmt.Errorf("%w: spotify token: HTTP %d", music.ErrUnavailable, resp.StatusCode)
	}
	var out struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int    `json:"expires_in"`
		Scope        string `json:"scope"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.AccessToken == "" {
		return Token{}, fmt.Errorf("%w: spotify token: an answer without a token", music.ErrUnavailable)
	}
	t := Token{AccessToken: out.AccessToken, RefreshToken: out.RefreshToken, Scope: out.Scope,
		Expiry: c.now().Add(time.Duration(out.ExpiresIn) * time.Second)}
	if t.RefreshToken == "" {
		// A refresh may not send a new refresh token: the old one stays good.
		t.RefreshToken = oldRefresh
	}
	return t, nil
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}

// token is a community's usable access token, refreshed first when it is
// near expiry or force is set (after a 401).
func (c *Client) token(ctx context.Context, cid string, force bool, stale string) (string, error) {
	if c.Tokens == nil || c.ClientID == "" {
		return "", music.ErrNotConfigured
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.Tokens.Load(ctx, cid)
	if err != nil {
		return "", err
	}
	// Another call may have refreshed while this one waited for the lock.
	if force && t.AccessToken != stale {
		force = false
	}
	if !force && c.now().Add(refreshAhead).Before(t.Expiry) {
		return t.AccessToken, nil
	}
	if t.RefreshToken == "" {
		return "", music.ErrUnauthorized
	}
	nt, err := c.tokenRequest(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t.RefreshToken},
		"client_id": {c.ClientID}}, t.RefreshToken)
	if err != nil {
		return "", err
	}
	if err := c.Tokens.Save(ctx, cid, nt); err != nil {
		return "", err
	}
	return nt.AccessToken, nil
}

// call makes one API call, refreshing the token and trying once more on 401.
func (c *Client) call(ctx context.Context, cid, method, path string, q url.Values, into any) error {
	tok, err := c.token(ctx, cid, false, "")
	if err != nil {
		return err
	}
	status, body, err := c.do(ctx, tok, method, path, q)
	if err != nil {
		return err
	}
	if status == http.StatusUnauthorized {
		if tok, err = c.token(ctx, cid, true, tok); err != nil {
			return err
		}
		if status, body, err = c.do(ctx, tok, method, path, q); err != nil {
			return err
		}
	}
	if err := classify(status, body); err != nil {
		return err
	}
	if into != nil && status == http.StatusOK && len(body) > 0 {
		if err := json.Unmarshal(body, into); err != nil {
			return fmt.Errorf("%w: spotify: unable to decode the answer: %v", music.ErrUnavailable, err)
		}
	}
	return nil
}

func (c *Client) do(ctx context.Context, tok, method, path string, q url.Values) (int, []byte, error) {
	u := c.api() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("spotify: unable to build a request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.client().Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: spotify: %v", music.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: spotify: unable to read the answer: %v", music.ErrUnavailable, err)
	}
	return resp.StatusCode, body, nil
}

// classify turns Spotify's documented errors into music's.
func classify(status int, body []byte) error {
	if status >= 200 && status < 300 {
		return nil
	}
	var e struct {
		Error struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
			Reason  string `json:"reason"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	switch {
	case e.Error.Reason == "NO_ACTIVE_DEVICE", status == http.StatusNotFound && strings.Contains(strings.ToLower(e.Error.Message), "device"):
		return fmt.Errorf("%w: spotify: %s", music.ErrNoDevice, e.Error.Message)
	case e.Error.Reason == "PREMIUM_REQUIRED":
		return fmt.Errorf("%w: spotify: %s", music.ErrPremium, e.Error.Message)
	case status == http.StatusUnauthorized:
		return fmt.Errorf("%w: spotify: %s", music.ErrUnauthorized, e.Error.Message)
	case status == http.StatusForbidden:
		return fmt.Errorf("%w: spotify: HTTP 403 %s", music.ErrUnauthorized, e.Error.Message)
	case status == http.StatusTooManyRequests:
		return fmt.Errorf("%w: spotify: rate limited", music.ErrQuota)
	case status == http.StatusNotFound:
		return fmt.Errorf("%w: spotify: %s", music.ErrNotFound, e.Error.Message)
	case status >= 500:
		return fmt.Errorf("%w: spotify: HTTP %d", music.ErrUnavailable, status)
	}
	return fmt.Errorf("spotify: HTTP %d %s %s", status, e.Error.Reason, e.Error.Message)
}

type apiTrack struct {
	ID         string `json:"id"`
	URI        string `json:"uri"`
	Name       string `json:"name"`
	DurationMS int64  `json:"duration_ms"`
	Artists    []struct {
		Name string `json:"name"`
	} `json:"artists"`
}

func (t apiTrack) track() music.Track {
	names := make([]string, 0, len(t.Artists))
	for _, a := range t.Artists {
		names = append(names, a.Name)
	}
	return music.Track{Provider: music.Spotify, ID: t.ID, URI: t.URI, Title: t.Name, Artist: strings.Join(names, ", "),
		Duration: time.Duration(t.DurationMS) * time.Millisecond}
}

// Search finds the best track for query.
func (c *Client) Search(ctx context.Context, cid, query string) (music.Track, error) {
	var out struct {
		Tracks struct {
			Items []apiTrack `json:"items"`
		} `json:"tracks"`
	}
	if err := c.call(ctx, cid, http.MethodGet, "/v1/search", url.Values{"q": {query}, "type": {"track"}, "limit": {"1"}}, &out); err != nil {
		return music.Track{}, err
	}
	if len(out.Tracks.Items) == 0 {
		return music.Track{}, music.ErrNotFound
	}
	return out.Tracks.Items[0].track(), nil
}

// Lookup describes one track.
func (c *Client) Lookup(ctx context.Context, cid, id string) (music.Track, error) {
	var out apiTrack
	if err := c.call(ctx, cid, http.MethodGet, "/v1/tracks/"+url.PathEscape(id), nil, &out); err != nil {
		return music.Track{}, err
	}
	if out.ID == "" {
		return music.Track{}, music.ErrNotFound
	}
	return out.track(), nil
}

// Enqueue adds the track to the streamer's Spotify queue.
func (c *Client) Enqueue(ctx context.Context, cid string, t music.Track) error {
	uri := t.URI
	if uri == "" {
		uri = "spotify:track:" + t.ID
	}
	return c.call(ctx, cid, http.MethodPost, "/v1/me/player/queue", url.Values{"uri": {uri}}, nil)
}

// NowPlaying reads the streamer's player: nil when nothing plays (204) or
// what plays is not a track (an episode, an ad).
func (c *Client) NowPlaying(ctx context.Context, cid string) (*music.Track, error) {
	var out struct {
		IsPlaying bool      `json:"is_playing"`
		Item      *apiTrack `json:"item"`
		Type      string    `json:"currently_playing_type"`
	}
	if err := c.call(ctx, cid, http.MethodGet, "/v1/me/player/currently-playing", nil, &out); err != nil {
		return nil, err
	}
	if out.Item == nil || out.Item.ID == "" {
		return nil, nil
	}
	t := out.Item.track()
	return &t, nil
}

// Skip moves the streamer's player to the next track.
func (c *Client) Skip(ctx context.Context, cid string) error {
	return c.call(ctx, cid, http.MethodPost, "/v1/me/player/next", nil, nil)
}

// Pause pauses or resumes the streamer's player.
func (c *Client) Pause(ctx context.Context, cid string, paused bool) error {
	if paused {
		return c.call(ctx, cid, http.MethodPut, "/v1/me/player/pause", nil, nil)
	}
	return c.call(ctx, cid, http.MethodPut, "/v1/me/player/play", nil, nil)
}
