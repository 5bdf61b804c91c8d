package twitch_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
)

var (
	tokPenguin = twitchtest.User{ID: "1001", Login: "penguin", DisplayName: "Penguin"}
	tokPuffin  = twitchtest.User{ID: "1002", Login: "puffin", DisplayName: "Puffin"}
	tokBot     = twitchtest.User{ID: "2001", Login: "waddlebot", DisplayName: "WaddleBot"}
)

func TestUserTokenRefreshesNearExpiry(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		ttl         time.Duration
		wantRefresh bool
	}{
		{name: "fresh token used as is", ttl: time.Hour, wantRefresh: false},
		{name: "six minutes left used as is", ttl: 6 * time.Minute, wantRefresh: false},
		{name: "four minutes left refreshed", ttl: 4 * time.Minute, wantRefresh: true},
		{name: "expired refreshed", ttl: -time.Minute, wantRefresh: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newConnectEnv(t, false)
			old := e.connect(t, tokPenguin, twitch.KindBroadcaster, tt.ttl, "user:read:chat")
			got, err := e.tokens.UserToken(ctx, tokPenguin.ID)
			if err != nil {
				t.Fatal(err)
			}
			if refreshed := got != old.Access; refreshed != tt.wantRefresh {
				t.Fatalf("refreshed = %v, want %v", refreshed, tt.wantRefresh)
			}
			if calls := e.fake.TokenCalls("refresh_token"); calls != map[bool]int{true: 1, false: 0}[tt.wantRefresh] {
				t.Fatalf("refresh calls = %d", calls)
			}
			// The token handed out works at Twitch, and a second call reuses it.
			again, err := e.tokens.UserToken(ctx, tokPenguin.ID)
			if err != nil || again != got {
				t.Fatalf("second UserToken = %q, %v; want %q", again, err, got)
			}
			if !hasLiveToken(e.fake, tokPenguin.ID, got) {
				t.Fatalf("token %q is not live at the fake", got)
			}
		})
	}
}

func hasLiveToken(fake *twitchtest.Server, userID, access string) bool {
	for _, tok := range fake.TokensOf(userID) {
		if tok.Access == access && time.Now().Before(tok.ExpiresAt) {
			return true
		}
	}
	return false
}

func TestRefreshAfterExpire(t *testing.T) {
	ctx := context.Background()
	e := newConnectEnv(t, false)
	old := e.connect(t, tokPenguin, twitch.KindBroadcaster, 4*time.Hour, "user:read:chat")
	e.fake.Expire(old.Access)
	// The stored expiry still looks fine, so UserToken hands out the old one;
	// the caller gets 401 and asks for a refresh.
	if got, _ := e.tokens.UserToken(ctx, tokPenguin.ID); got != old.Access {
		t.Fatalf("UserToken = %q, want the stored %q", got, old.Access)
	}
	got, err := e.tokens.Refresh(ctx, tokPenguin.ID, old.Access)
	if err != nil {
		t.Fatal(err)
	}
	if got == old.Access || !hasLiveToken(e.fake, tokPenguin.ID, got) {
		t.Fatalf("Refresh = %q, want a new live token", got)
	}
	if after, _ := e.tokens.UserToken(ctx, tokPenguin.ID); after != got {
		t.Fatalf("UserToken after refresh = %q, want %q", after, got)
	}
	if a := e.account(t, tokPenguin.ID); a.Status != twitch.StatusConnected {
		t.Fatalf("status = %s", a.Status)
	}
}

func TestRevokedGrantDisconnects(t *testing.T) {
	ctx := context.Background()
	e := newConnectEnv(t, true)
	e.connect(t, tokPenguin, twitch.KindBroadcaster, 4*time.Hour, "user:read:chat")
	e.fake.Revoke(tokPenguin.ID)

	_, err := e.tokens.Refresh(ctx, tokPenguin.ID, "")
	if !errors.Is(err, twitch.ErrNotConnected) {
		t.Fatalf("Refresh error = %v, want ErrNotConnected", err)
	}
	a := e.account(t, tokPenguin.ID)
	if a.Status != twitch.StatusDisconnected || !strings.Contains(a.Error, "Invalid refresh token") {
		t.Fatalf("account = %+v, want disconnected with Twitch's reason", a)
	}
	if change := e.nextNotice(t); change != (twitch.AccountChange{UserID: tokPenguin.ID, Kind: twitch.KindBroadcaster, Status: twitch.StatusDisconnected}) {
		t.Fatalf("notice = %+v", change)
	}
	if _, err := e.st.Secret(ctx, "twitch", "token."+tokPenguin.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token secret after disconnect: %v, want deleted", err)
	}
	// No more calls to Twitch for a disconnected account.
	calls := e.fake.TokenCalls("refresh_token")
	if _, err := e.tokens.UserToken(ctx, tokPenguin.ID); !errors.Is(err, twitch.ErrNotConnected) {
		t.Fatalf("UserToken error = %v, want ErrNotConnected", err)
	}
	if _, err := e.tokens.Refresh(ctx, tokPenguin.ID, ""); !errors.Is(err, twitch.ErrNotConnected) {
		t.Fatalf("Refresh error = %v, want ErrNotConnected", err)
	}
	if e.fake.TokenCalls("refresh_token") != calls {
		t.Fatal("a disconnected account's token was refreshed")
	}
	if connected, _ := e.accounts.Connected(ctx, ""); len(connected) != 0 {
		t.Fatalf("connected = %+v", connected)
	}
}

func TestUnknownUserNotConnected(t *testing.T) {
	e := newConnectEnv(t, false)
	_, err := e.tokens.UserToken(context.Background(), "404")
	if !errors.Is(err, twitch.ErrNotConnected) {
		t.Fatalf("UserToken error = %v, want ErrNotConnected", err)
	}
}

// Two replicas (and several goroutines in each) needing the same user's
// token at once make one refresh at Twitch; the rest use its result. Were
// they not serialized, the second refresh would spend a refresh token
// already spent and disconnect the account.
func TestConcurrentRefreshesOneCall(t *testing.T) {
	ctx := context.Background()
	e := newConnectEnv(t, false)
	old := e.connect(t, tokPenguin, twitch.KindBroadcaster, time.Minute, "user:read:chat")
	replicas := []*twitch.TokenSource{e.tokens, e.newTokenSource(t)}

	const perReplica = 4
	results := make([]string, 2*perReplica)
	errs := make([]error, 2*perReplica)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i], errs[i] = replicas[i%2].UserToken(ctx, tokPenguin.ID) })
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if results[i] == old.Access || results[i] != results[0] {
			t.Fatalf("caller %d got %q, caller 0 %q, old %q", i, results[i], results[0], old.Access)
		}
	}
	if calls := e.fake.TokenCalls("refresh_token"); calls != 1 {
		t.Fatalf("refresh calls = %d, want 1", calls)
	}
}

func TestAppTokenCached(t *testing.T) {
	ctx := context.Background()
	e := newConnectEnv(t, false)
	first, err := e.tokens.AppToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.tokens.AppToken(ctx)
	if err != nil || second != first {
		t.Fatalf("second AppToken = %q, %v; want the cached %q", second, err, first)
	}
	if calls := e.fake.TokenCalls("client_credentials"); calls != 1 {
		t.Fatalf("client_credentials calls = %d, want 1", calls)
	}
	// Four minutes before it expires it is replaced.
	e.clock.Advance(twitchtest.AppTokenTTL - 4*time.Minute)
	third, err := e.tokens.AppToken(ctx)
	if err != nil || third == first {
		t.Fatalf("AppToken near expiry = %q, %v; want a new one", third, err)
	}
	if calls := e.fake.TokenCalls("client_credentials"); calls != 2 {
		t.Fatalf("client_credentials calls = %d, want 2", calls)
	}
}

func TestValidate(t *testing.T) {
	ctx := context.Background()
	e := newConnectEnv(t, true)
	e.connect(t, tokPenguin, twitch.KindBroadcaster, 4*time.Hour, "user:read:chat")
	expired := e.connect(t, tokPuffin, twitch.KindBroadcaster, 4*time.Hour, "user:read:chat")
	e.connect(t, tokBot, twitch.KindBot, 4*time.Hour, "user:read:moderated_channels")
	e.fake.SetModerator(tokPenguin.ID, tokBot.ID, true)
	e.fake.Expire(expired.Access)

	if err := e.tokens.Validate(ctx); err != nil {
		t.Fatal(err)
	}
	if a := e.account(t, tokPenguin.ID); !a.BotIsModerator || a.Status != twitch.StatusConnected {
		t.Fatalf("penguin = %+v, want connected with the bot as moderator", a)
	}
	if change := e.nextNotice(t); change.UserID != tokPenguin.ID {
		t.Fatalf("notice = %+v, want tokPenguin's moderator change", change)
	}
	// The expired token was refreshed, not given up on.
	if a := e.account(t, tokPuffin.ID); a.BotIsModerator || a.Status != twitch.StatusConnected {
		t.Fatalf("puffin = %+v, want connected, bot not moderator", a)
	}
	if tok, _ := e.tokens.UserToken(ctx, tokPuffin.ID); tok == expired.Access || !hasLiveToken(e.fake, tokPuffin.ID, tok) {
		t.Fatalf("tokPuffin's token %q was not refreshed", tok)
	}

	// The bot loses its moderator role and tokPuffin revokes the app.
	e.fake.SetModerator(tokPenguin.ID, tokBot.ID, false)
	e.fake.Revoke(tokPuffin.ID)
	if err := e.tokens.Validate(ctx); err != nil {
		t.Fatal(err)
	}
	if a := e.account(t, tokPenguin.ID); a.BotIsModerator {
		t.Fatalf("penguin = %+v, want the bot no longer moderator", a)
	}
	if a := e.account(t, tokPuffin.ID); a.Status != twitch.StatusDisconnected {
		t.Fatalf("puffin = %+v, want disconnected", a)
	}
	got := map[twitch.AccountChange]bool{e.nextNotice(t): true, e.nextNotice(t): true}
	for _, want := range []twitch.AccountChange{
		{UserID: tokPuffin.ID, Kind: twitch.KindBroadcaster, Status: twitch.StatusDisconnected},
		{UserID: tokPenguin.ID, Kind: twitch.KindBroadcaster, Status: twitch.StatusConnected},
	} {
		if !got[want] {
			t.Fatalf("notices = %v, missing %+v", got, want)
		}
	}
	if refreshed := e.fake.TokenCalls("refresh_token"); refreshed != 2 {
		// tokPuffin's expired token once, tokPuffin's revoked grant once.
		t.Fatalf("refresh calls = %d, want 2", refreshed)
	}
}

// A transport error quotes the URL, and helix puts the client secret and
// the refresh token in its query: neither may reach an error (and the logs).
func TestAuthCallErrorsHideSecrets(t *testing.T) {
	ctx := context.Background()
	e := newConnectEnv(t, false)
	tok := e.connect(t, tokPenguin, twitch.KindBroadcaster, time.Minute, "user:read:chat")
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	h, err := twitch.NewHelix(e.fake.ClientID, e.fake.ClientSecret, "", twitch.Endpoints{API: dead.URL + "/helix", Auth: dead.URL + "/oauth2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := twitch.NewTokenSource(twitch.TokenSourceConfig{Helix: h, Store: e.accounts, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	_, appErr := ts.AppToken(ctx)
	_, userErr := ts.UserToken(ctx, tokPenguin.ID)
	for name, err := range map[string]error{"app token": appErr, "refresh": userErr} {
		if err == nil {
			t.Fatalf("%s: no error from a dead server", name)
		}
		for _, secret := range []string{e.fake.ClientSecret, tok.Refresh} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s error shows a secret: %v", name, err)
			}
		}
	}
	if a := e.account(t, tokPenguin.ID); a.Status != twitch.StatusConnected {
		t.Fatalf("a network failure disconnected the account: %+v", a)
	}
}

// Refresh names the token Twitch refused: a caller that comes after another
// replica already replaced it gets that replica's token, with no second
// refresh (which would spend the refresh token again). An empty refused
// token, or the one still stored, is refreshed.
func TestRefreshOnlyTheRefusedToken(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		refused     func(old, current string) string
		wantCurrent bool // the other replica's token comes back
	}{
		{name: "already replaced by another replica", refused: func(old, _ string) string { return old }, wantCurrent: true},
		{name: "the stored token refused", refused: func(_, current string) string { return current }},
		{name: "no token named: forced", refused: func(string, string) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newConnectEnv(t, false)
			old := e.connect(t, tokPenguin, twitch.KindBroadcaster, 4*time.Hour, "user:read:chat")
			e.fake.Expire(old.Access)
			current, err := e.newTokenSource(t).Refresh(ctx, tokPenguin.ID, old.Access)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.tokens.Refresh(ctx, tokPenguin.ID, tt.refused(old.Access, current))
			if err != nil {
				t.Fatal(err)
			}
			wantCalls := 2
			if tt.wantCurrent {
				wantCalls = 1
			}
			if calls := e.fake.TokenCalls("refresh_token"); calls != wantCalls {
				t.Fatalf("refresh calls = %d, want %d", calls, wantCalls)
			}
			if (got == current) != tt.wantCurrent || !hasLiveToken(e.fake, tokPenguin.ID, got) {
				t.Fatalf("Refresh = %q (other replica's %q), want a live token, the other replica's: %v", got, current, tt.wantCurrent)
			}
		})
	}
}

func TestAppTokenRefused(t *testing.T) {
	ctx := context.Background()
	e := newConnectEnv(t, false)
	first, err := e.tokens.AppToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A token already replaced is not dropped again.
	e.tokens.AppTokenRefused("some-older-token")
	if again, _ := e.tokens.AppToken(ctx); again != first {
		t.Fatalf("AppToken after another token was refused = %q, want the cached %q", again, first)
	}
	e.tokens.AppTokenRefused(first)
	second, err := e.tokens.AppToken(ctx)
	if err != nil || second == first {
		t.Fatalf("AppToken after a refusal = %q, %v; want a new one", second, err)
	}
	if calls := e.fake.TokenCalls("client_credentials"); calls != 2 {
		t.Fatalf("client_credentials calls = %d, want 2", calls)
	}
}

// deadlineTransport records whether requests carry a context deadline.
type deadlineTransport struct {
	mu           sync.Mutex
	withDeadline map[string]bool // URL path → had a deadline
}

func (d *deadlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	_, ok := req.Context().Deadline()
	d.mu.Lock()
	d.withDeadline[req.URL.Path] = ok
	d.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// The token refresh holds a transaction and an advisory lock while Twitch
// answers: that call must end even when the caller's context never does.
func TestTokenCallsHaveADeadline(t *testing.T) {
	ctx := context.Background()
	e := newConnectEnv(t, false)
	e.connect(t, tokPenguin, twitch.KindBroadcaster, time.Minute, "user:read:chat")
	record := &deadlineTransport{withDeadline: map[string]bool{}}
	h, err := twitch.NewHelix(e.fake.ClientID, e.fake.ClientSecret, "", e.fake.Endpoints(), &http.Client{Transport: record})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := twitch.NewTokenSource(twitch.TokenSourceConfig{Helix: h, Store: e.accounts, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.UserToken(ctx, tokPenguin.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.AppToken(ctx); err != nil {
		t.Fatal(err)
	}
	record.mu.Lock()
	defer record.mu.Unlock()
	if len(record.withDeadline) == 0 {
		t.Fatal("no call to Twitch recorded")
	}
	for path, ok := range record.withDeadline {
		if !ok {
			t.Errorf("%s sent without a deadline", path)
		}
	}
}

func TestNewHelixDefaultClientTimesOut(t *testing.T) {
	h, err := twitch.NewHelix("cid", "secret", "", twitch.Endpoints{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.HTTP().Timeout <= 0 {
		t.Fatal("the default HTTP client has no timeout")
	}
}
