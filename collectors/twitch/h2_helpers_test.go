package twitch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
)

// h2Tokens hands out tokens the fake issued; Refresh issues a new one.
type h2Tokens struct {
	srv *twitchtest.Server

	mu        sync.Mutex
	access    map[string]string // user id → access token
	scopes    map[string][]string
	app       string
	appIssued int
	// refuseApp, when set, is called with every new app token (to have
	// the fake refuse it).
	refuseApp func(access string)
	refreshes map[string]int
}

func newH2Tokens(srv *twitchtest.Server) *h2Tokens {
	return &h2Tokens{srv: srv, access: map[string]string{}, scopes: map[string][]string{},
		app: srv.IssueToken("", time.Hour).Access, refreshes: map[string]int{}}
}

// connect gives userID a token with scopes.
func (tk *h2Tokens) connect(userID string, scopes ...string) string {
	tok := tk.srv.IssueToken(userID, time.Hour, scopes...)
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tk.access[userID], tk.scopes[userID] = tok.Access, scopes
	return tok.Access
}

func (tk *h2Tokens) UserToken(_ context.Context, userID string) (string, error) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tok, ok := tk.access[userID]
	if !ok {
		return "", twitch.ErrNotConnected
	}
	return tok, nil
}

func (tk *h2Tokens) Refresh(_ context.Context, userID, refused string) (string, error) {
	tk.mu.Lock()
	scopes, ok := tk.scopes[userID]
	if current := tk.access[userID]; ok && refused != "" && current != refused {
		tk.mu.Unlock()
		return current, nil
	}
	tk.refreshes[userID]++
	tk.mu.Unlock()
	if !ok {
		return "", twitch.ErrNotConnected
	}
	return tk.connect(userID, scopes...), nil
}

// AppToken hands out the app token, getting a new one from the fake after
// the last was refused.
func (tk *h2Tokens) AppToken(context.Context) (string, error) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if tk.app == "" {
		tk.app = tk.srv.IssueToken("", time.Hour).Access
		tk.appIssued++
		if tk.refuseApp != nil {
			tk.refuseApp(tk.app)
		}
	}
	return tk.app, nil
}

func (tk *h2Tokens) AppTokenRefused(token string) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if tk.app == token {
		tk.app = ""
	}
}

// appTokens counts the app tokens handed out after the first.
func (tk *h2Tokens) appTokens() int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.appIssued
}

func (tk *h2Tokens) refreshCount(userID string) int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.refreshes[userID]
}

// h2Accounts is a fixed list of accounts.
type h2Accounts struct {
	mu       sync.Mutex
	accounts map[string]twitch.Account
	fail     error
}

func (a *h2Accounts) put(acc twitch.Account) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.accounts == nil {
		a.accounts = map[string]twitch.Account{}
	}
	acc.Status = twitch.StatusConnected
	a.accounts[acc.UserID] = acc
}

func (a *h2Accounts) Connected(_ context.Context, kind string) ([]twitch.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return nil, a.fail
	}
	var out []twitch.Account
	for _, acc := range a.accounts {
		if acc.Kind == kind && acc.Status == twitch.StatusConnected {
			out = append(out, acc)
		}
	}
	return out, nil
}

func (a *h2Accounts) Account(_ context.Context, userID string) (twitch.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return twitch.Account{}, a.fail
	}
	acc, ok := a.accounts[userID]
	if !ok {
		return twitch.Account{}, twitch.ErrNotConnected
	}
	return acc, nil
}

// Fixture ids.
const (
	h2Broadcaster = "1001"
	h2Bot         = "2002"
	h2Friend      = "3003"
	h2Chatter     = "4004"
)

var (
	h2BotScopes = []string{"user:read:chat", "user:write:chat", "user:bot", "user:manage:whispers",
		"moderator:manage:shoutouts", "moderator:manage:banned_users", "moderator:manage:chat_messages"}
	h2BroadcasterScopes = []string{"channel:bot", "moderator:manage:shoutouts",
		"moderator:manage:banned_users", "moderator:manage:chat_messages"}
)

// h2Env is a fake Twitch with a broadcaster, a bot, a friend channel and a
// chatter, all connected.
type h2Env struct {
	srv      *twitchtest.Server
	helix    *twitch.Helix
	tokens   *h2Tokens
	accounts *h2Accounts
	logs     *syncBuffer
	platform *twitch.Platform
}

func newH2Env(t *testing.T) *h2Env {
	t.Helper()
	srv := twitchtest.New(t)
	srv.AddUser(twitchtest.User{ID: h2Broadcaster, Login: "streamer", DisplayName: "Streamer",
		Category: "Science & Technology", Title: "Building a bot"})
	srv.AddUser(twitchtest.User{ID: h2Bot, Login: "waddlebot", DisplayName: "WaddleBot"})
	srv.AddUser(twitchtest.User{ID: h2Friend, Login: "friend", DisplayName: "Friend", Category: "Art", Title: "Painting"})
	srv.AddUser(twitchtest.User{ID: h2Chatter, Login: "chatter"})
	h, err := twitch.NewHelix(srv.ClientID, srv.ClientSecret, "", srv.Endpoints(), srv.HTTP.Client())
	if err != nil {
		t.Fatal(err)
	}
	tokens := newH2Tokens(srv)
	tokens.connect(h2Bot, h2BotScopes...)
	tokens.connect(h2Broadcaster, h2BroadcasterScopes...)
	accounts := &h2Accounts{}
	accounts.put(twitch.Account{UserID: h2Bot, Login: "waddlebot", Kind: twitch.KindBot})
	accounts.put(twitch.Account{UserID: h2Broadcaster, Login: "streamer", Kind: twitch.KindBroadcaster})
	logs := &syncBuffer{}
	p, err := twitch.NewPlatform(twitch.SenderConfig{Helix: h, Tokens: tokens, Accounts: accounts,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return &h2Env{srv: srv, helix: h, tokens: tokens, accounts: accounts, logs: logs, platform: p}
}

// setBotModerator makes the bot a moderator of the broadcaster (or not),
// both on the fake and in the stored account.
func (e *h2Env) setBotModerator(mod bool) {
	e.srv.SetModerator(h2Broadcaster, h2Bot, mod)
	e.accounts.put(twitch.Account{UserID: h2Broadcaster, Login: "streamer", Kind: twitch.KindBroadcaster, BotIsModerator: mod})
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sendOutcome names how the consume loop would treat a Send error (its
// error types are unexported, so this reads them by name) and the delay it
// carries.
func sendOutcome(err error) (string, time.Duration) {
	if err == nil {
		return "ack", 0
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch fmt.Sprintf("%T", e) {
		case "*consume.deferError":
			return "defer", time.Duration(reflect.ValueOf(e).Elem().FieldByName("delay").Int())
		case "*consume.permanentError":
			return "permanent", 0
		case "*consume.retryAfterError":
			return "retry_after", time.Duration(reflect.ValueOf(e).Elem().FieldByName("delay").Int())
		}
	}
	return "failure", 0
}
