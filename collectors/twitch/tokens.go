package twitch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nicklaw5/helix/v2"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
)

// refreshMargin: a token with less than this left is refreshed before use,
// so a request does not start with a token that dies on the way.
const refreshMargin = 5 * time.Minute

// TokenSourceConfig configures a TokenSource.
type TokenSourceConfig struct {
	Helix *Helix
	Store *Store
	// Conn announces account changes on ControlSubject; may be nil.
	Conn   *natsx.Conn
	Logger *slog.Logger
	Now    func() time.Time
}

// TokenSource hands out working tokens: user tokens from the store,
// refreshed near expiry (one replica at a time per user), and a cached app
// token.
type TokenSource struct {
	helix *Helix
	store *Store
	conn  *natsx.Conn
	log   *slog.Logger
	now   func() time.Time

	// userLocks keeps one goroutine per user of this process waiting on the
	// advisory lock, so a burst of sends does not tie up the pool.
	locksMu   sync.Mutex
	userLocks map[string]chan struct{}

	appMu      sync.Mutex
	appToken   string
	appExpires time.Time
}

var _ Tokens = (*TokenSource)(nil)

// NewTokenSource checks the configuration.
func NewTokenSource(cfg TokenSourceConfig) (*TokenSource, error) {
	if cfg.Helix == nil || cfg.Store == nil {
		return nil, errors.New("twitch: a token source needs Helix and Store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &TokenSource{helix: cfg.Helix, store: cfg.Store, conn: cfg.Conn,
		log: cfg.Logger.With(logging.KeyPlatform, "twitch"), now: cfg.Now, userLocks: map[string]chan struct{}{}}, nil
}

// UserToken returns a connected user's access token, refreshed first when
// less than five minutes are left.
func (ts *TokenSource) UserToken(ctx context.Context, userID string) (string, error) {
	tok, err := ts.connectedToken(ctx, userID)
	if err != nil {
		return "", err
	}
	if tok.ExpiresAt.Sub(ts.now()) > refreshMargin {
		return tok.Access, nil
	}
	return ts.refresh(ctx, userID, tok.Access, false)
}

// Refresh replaces refused, a user token Twitch answered 401 to, whatever
// its expiry says. When the stored token is another one by the time the
// lock is held (a replica refreshed it meanwhile), that one is returned:
// refreshing again would throw away a good token and spend the refresh
// token once more. An empty refused forces a refresh.
func (ts *TokenSource) Refresh(ctx context.Context, userID, refused string) (string, error) {
	if _, err := ts.connectedToken(ctx, userID); err != nil {
		return "", err
	}
	return ts.refresh(ctx, userID, refused, true)
}

func (ts *TokenSource) connectedToken(ctx context.Context, userID string) (OAuthToken, error) {
	acc, err := ts.store.Account(ctx, userID)
	if err != nil {
		return OAuthToken{}, err
	}
	if acc.Status != StatusConnected {
		return OAuthToken{}, fmt.Errorf("%w: %s is %s (%s)", ErrNotConnected, userID, acc.Status, acc.Error)
	}
	return ts.store.token(ctx, userID)
}

// refreshTimeout bounds a refresh once this process's turn has come: the
// wait for the other replicas' advisory lock, the call to Twitch and the
// write, all inside one transaction that must not stay open indefinitely.
const refreshTimeout = 30 * time.Second

// authCallTimeout bounds one call to Twitch's OAuth endpoints.
const authCallTimeout = 15 * time.Second

// refresh swaps the token for a new one. seen is the access token the
// caller found unusable: when another replica (or goroutine) replaced it
// while we waited for the lock, its result is used instead of refreshing
// again, since Twitch may rotate the refresh token on every use. force
// (Twitch refused seen) refreshes even a token that looks fresh; with force
// an empty seen refreshes whatever is stored.
func (ts *TokenSource) refresh(ctx context.Context, userID, seen string, force bool) (string, error) {
	unlock, err := ts.lockUser(ctx, userID)
	if err != nil {
		return "", err
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()

	tx, err := ts.store.st.Pool().Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("twitch: unable to begin token refresh of %s: %w", userID, err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, advisoryKey(userID)); err != nil {
		return "", fmt.Errorf("twitch: unable to lock token of %s: %w", userID, err)
	}
	// Re-read under the lock: the holder before us commits before releasing it.
	tok, err := ts.connectedToken(ctx, userID)
	if err != nil {
		return "", err
	}
	replaced := seen != "" && tok.Access != seen
	fresh := tok.ExpiresAt.Sub(ts.now()) > refreshMargin
	if (replaced && (force || fresh)) || (!force && fresh) {
		return tok.Access, nil
	}

	callCtx, cancelCall := context.WithTimeout(ctx, authCallTimeout)
	resp, err := ts.helix.Client(callCtx, "").RefreshUserAccessToken(tok.Refresh)
	cancelCall()
	if err != nil {
		return "", fmt.Errorf("twitch: unable to refresh token of %s: %w", userID, authCallError(err))
	}
	switch {
	case resp.StatusCode == http.StatusOK && resp.Data.AccessToken != "":
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized:
		reason := fmt.Sprintf("token refresh refused: %d %s", resp.StatusCode, resp.ErrorMessage)
		if err := ts.store.setStatus(ctx, tx, userID, StatusDisconnected, reason); err != nil {
			return "", err
		}
		if err := tx.Commit(ctx); err != nil {
			return "", fmt.Errorf("twitch: unable to commit disconnect of %s: %w", userID, err)
		}
		acc, _ := ts.store.Account(ctx, userID)
		ts.log.Warn("twitch: account disconnected", logging.KeyID, userID, logging.KeyReason, reason)
		ts.announce(AccountChange{UserID: userID, Kind: acc.Kind, Status: StatusDisconnected})
		return "", fmt.Errorf("%w: %s: %s", ErrNotConnected, userID, reason)
	default:
		return "", fmt.Errorf("twitch: unable to refresh token of %s: status %d %s", userID, resp.StatusCode, resp.ErrorMessage)
	}

	next := OAuthToken{Access: resp.Data.AccessToken, Refresh: resp.Data.RefreshToken, Scopes: resp.Data.Scopes,
		ExpiresAt: expiresAt(ts.now(), resp.Data.ExpiresIn)}
	if next.Refresh == "" {
		next.Refresh = tok.Refresh
	}
	if len(next.Scopes) == 0 {
		next.Scopes = tok.Scopes
	}
	if err := ts.store.putToken(ctx, tx, userID, next); err != nil {
		return "", err
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("twitch: unable to commit refreshed token of %s: %w", userID, err)
	}
	ts.log.Debug("twitch: token refreshed", logging.KeyID, userID)
	return next.Access, nil
}

// lockUser waits for this process's turn at a user's token.
func (ts *TokenSource) lockUser(ctx context.Context, userID string) (func(), error) {
	ts.locksMu.Lock()
	ch, ok := ts.userLocks[userID]
	if !ok {
		ch = make(chan struct{}, 1)
		ts.userLocks[userID] = ch
	}
	ts.locksMu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("twitch: waiting to refresh token of %s: %w", userID, ctx.Err())
	}
}

// queryInError finds a URL's query in an error message.
var queryInError = regexp.MustCompile(`\?[^\s"]*`)

// authCallError hides the query string of a failed OAuth call: helix sends
// the client secret, codes and tokens there, and a transport error quotes
// the URL, which would put them in the logs.
func authCallError(err error) error {
	return errors.New(queryInError.ReplaceAllString(err.Error(), "?(redacted)"))
}

// advisoryKey maps a user to a PostgreSQL advisory lock key.
func advisoryKey(userID string) int64 {
	h := fnv.New64a()
	h.Write([]byte("twitch.token." + userID))
	return int64(h.Sum64())
}

// expiresAt turns expires_in into a time. Twitch always states a lifetime;
// should one be missing, an hour makes the token be re-checked soon rather
// than trusted forever.
func expiresAt(now time.Time, expiresIn int) time.Time {
	if expiresIn <= 0 {
		return now.Add(time.Hour)
	}
	return now.Add(time.Duration(expiresIn) * time.Second)
}

// AppToken returns an app access token (client credentials), cached until
// five minutes before it expires.
func (ts *TokenSource) AppToken(ctx context.Context) (string, error) {
	ts.appMu.Lock()
	defer ts.appMu.Unlock()
	if ts.appToken != "" && ts.appExpires.Sub(ts.now()) > refreshMargin {
		return ts.appToken, nil
	}
	// The lock is held meanwhile: every app-token caller waits on this call.
	ctx, cancel := context.WithTimeout(ctx, authCallTimeout)
	defer cancel()
	resp, err := ts.helix.Client(ctx, "").RequestAppAccessToken(nil)
	if err != nil {
		return "", fmt.Errorf("twitch: unable to get an app token: %w", authCallError(err))
	}
	if resp.StatusCode != http.StatusOK || resp.Data.AccessToken == "" {
		return "", fmt.Errorf("twitch: unable to get an app token: status %d %s", resp.StatusCode, resp.ErrorMessage)
	}
	ts.appToken, ts.appExpires = resp.Data.AccessToken, expiresAt(ts.now(), resp.Data.ExpiresIn)
	return ts.appToken, nil
}

// AppTokenRefused forgets a cached app token Twitch no longer accepts; a
// token already replaced is left alone.
func (ts *TokenSource) AppTokenRefused(token string) {
	ts.appMu.Lock()
	defer ts.appMu.Unlock()
	if ts.appToken == token {
		ts.appToken = ""
	}
}

// announce tells every replica that an account changed.
func (ts *TokenSource) announce(change AccountChange) {
	announce(ts.conn, ts.log, change)
}

func announce(conn *natsx.Conn, log *slog.Logger, change AccountChange) {
	if conn == nil || conn.NC == nil {
		return
	}
	body, _ := json.Marshal(change)
	if err := conn.NC.Publish(ControlSubject, body); err != nil {
		log.Warn("twitch: unable to announce account change", logging.KeyID, change.UserID, logging.KeySubject, ControlSubject, logging.Err(err))
	}
}

// validateToken asks /oauth2/validate about a token. A fresh client per
// call, since ValidateToken swaps the client's own token while it runs.
func (ts *TokenSource) validateToken(ctx context.Context, access string) (*helix.ValidateTokenResponse, error) {
	return validateToken(ctx, ts.helix, access)
}

func validateToken(ctx context.Context, h *Helix, access string) (*helix.ValidateTokenResponse, error) {
	_, resp, err := h.Client(ctx, "").ValidateToken(access)
	if err != nil {
		return nil, fmt.Errorf("twitch: unable to validate token: %w", err)
	}
	return resp, nil
}

// Validate checks every connected account's token with Twitch, as Twitch
// asks apps to do hourly: a refused one is refreshed, and one that cannot be
// refreshed disconnects its account. It then re-reads which broadcasters'
// channels the bot moderates. It goes on past failures and returns them
// joined.
func (ts *TokenSource) Validate(ctx context.Context) error {
	accounts, err := ts.store.Connected(ctx, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, acc := range accounts {
		if err := ts.validateAccount(ctx, acc); err != nil && !errors.Is(err, ErrNotConnected) {
			errs = append(errs, err)
		}
	}
	ts.appMu.Lock()
	app := ts.appToken
	ts.appMu.Unlock()
	if app != "" {
		if resp, err := ts.validateToken(ctx, app); err != nil {
			errs = append(errs, err)
		} else if resp.StatusCode == http.StatusUnauthorized {
			ts.AppTokenRefused(app)
		}
	}
	if err := ts.refreshModerators(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (ts *TokenSource) validateAccount(ctx context.Context, acc Account) error {
	tok, err := ts.store.token(ctx, acc.UserID)
	if err != nil {
		return err
	}
	resp, err := ts.validateToken(ctx, tok.Access)
	if err != nil {
		return fmt.Errorf("twitch: unable to validate token of %s: %w", acc.UserID, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.Data.Login != "" && resp.Data.Login != acc.Login {
			return ts.store.setLogin(ctx, acc.UserID, resp.Data.Login)
		}
		return nil
	case http.StatusUnauthorized:
		_, err := ts.Refresh(ctx, acc.UserID, tok.Access)
		return err
	default:
		return fmt.Errorf("twitch: unable to validate token of %s: status %d %s", acc.UserID, resp.StatusCode, resp.ErrorMessage)
	}
}

// refreshModerators reads the channels the bot moderates (one paged Get
// Moderated Channels call, with the bot's token) and updates every
// connected broadcaster's flag, announcing the ones that changed.
func (ts *TokenSource) refreshModerators(ctx context.Context) error {
	bots, err := ts.store.Connected(ctx, KindBot)
	if err != nil || len(bots) == 0 {
		return err
	}
	bot := bots[0]
	moderated, err := ts.moderatedChannels(ctx, bot.UserID)
	if err != nil {
		return err
	}
	broadcasters, err := ts.store.Connected(ctx, KindBroadcaster)
	if err != nil {
		return err
	}
	for _, b := range broadcasters {
		mod := moderated[b.UserID]
		if mod == b.BotIsModerator {
			continue
		}
		if err := ts.store.SetBotIsModerator(ctx, b.UserID, mod); err != nil {
			return err
		}
		ts.announce(AccountChange{UserID: b.UserID, Kind: b.Kind, Status: b.Status})
	}
	return nil
}

func (ts *TokenSource) moderatedChannels(ctx context.Context, botID string) (map[string]bool, error) {
	token, err := ts.UserToken(ctx, botID)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	after := ""
	retried := false
	for {
		resp, err := ts.helix.Client(ctx, token).GetModeratedChannels(&helix.GetModeratedChannelsParams{UserID: botID, First: 100, After: after})
		if err != nil {
			return nil, fmt.Errorf("twitch: unable to list the bot's moderated channels: %w", err)
		}
		// A 401 for a missing scope is not cured by a new token.
		if resp.StatusCode == http.StatusUnauthorized && !retried && !strings.HasPrefix(resp.ErrorMessage, "Missing scope") {
			retried = true
			if token, err = ts.Refresh(ctx, botID, token); err != nil {
				return nil, err
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("twitch: unable to list the bot's moderated channels: status %d %s", resp.StatusCode, resp.ErrorMessage)
		}
		for _, ch := range resp.Data.ModeratedChannels {
			out[ch.BroadcasterID] = true
		}
		after = resp.Data.Pagination.Cursor
		if after == "" || len(resp.Data.ModeratedChannels) == 0 {
			return out, nil
		}
	}
}

// RunValidator validates now and then every period until ctx ends (hourly
// in production); failures are logged and retried on the next pass.
func (ts *TokenSource) RunValidator(ctx context.Context, every time.Duration) error {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		if err := ts.Validate(ctx); err != nil && ctx.Err() == nil {
			ts.log.Warn("twitch: token validation incomplete", logging.Err(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}
