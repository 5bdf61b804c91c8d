package twitch_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
	"github.com/waddlebot/waddlebot/internal/consume"
)

// fakeTokens hands out tokens the fake issued; Refresh issues a new one.
type fakeTokens struct {
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

func newFakeTokens(srv *twitchtest.Server) *fakeTokens {
	return &fakeTokens{srv: srv, access: map[string]string{}, scopes: map[string][]string{},
		app: srv.IssueToken("", time.Hour).Access, refreshes: map[string]int{}}
}

// connect gives userID a token with scopes.
func (tk *fakeTokens) connect(userID string, scopes ...string) string {
	tok := tk.srv.IssueToken(userID, time.Hour, scopes...)
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tk.access[userID], tk.scopes[userID] = tok.Access, scopes
	return tok.Access
}

func (tk *fakeTokens) UserToken(_ context.Context, userID string) (string, error) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tok, ok := tk.access[userID]
	if !ok {
		return "", twitch.ErrNotConnected
	}
	return tok, nil
}

func (tk *fakeTokens) Refresh(_ context.Context, userID, refused string) (string, error) {
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
func (tk *fakeTokens) AppToken(context.Context) (string, error) {
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

func (tk *fakeTokens) AppTokenRefused(token string) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if tk.app == token {
		tk.app = ""
	}
}

// appTokens counts the app tokens handed out after the first.
func (tk *fakeTokens) appTokens() int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.appIssued
}

func (tk *fakeTokens) refreshCount(userID string) int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.refreshes[userID]
}

// fakeAccounts is a fixed list of accounts.
type fakeAccounts struct {
	mu       sync.Mutex
	accounts map[string]twitch.Account
	fail     error
}

func (a *fakeAccounts) put(acc twitch.Account) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.accounts == nil {
		a.accounts = map[string]twitch.Account{}
	}
	acc.Status = twitch.StatusConnected
	a.accounts[acc.UserID] = acc
}

func (a *fakeAccounts) Connected(_ context.Context, kind string) ([]twitch.Account, error) {
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

func (a *fakeAccounts) Account(_ context.Context, userID string) (twitch.Account, error) {
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
	fixBroadcaster = "1001"
	fixBot         = "2002"
	fixFriend      = "3003"
	fixChatter     = "4004"
)

var (
	fixBotScopes = []string{"user:read:chat", "user:write:chat", "user:bot", "user:manage:whispers",
		"moderator:manage:shoutouts", "moderator:manage:banned_users", "moderator:manage:chat_messages"}
	fixBroadcasterScopes = []string{"channel:bot", "moderator:manage:shoutouts",
		"moderator:manage:banned_users", "moderator:manage:chat_messages"}
)

// senderEnv is a fake Twitch with a broadcaster, a bot, a friend channel and a
// chatter, all connected.
type senderEnv struct {
	srv      *twitchtest.Server
	helix    *twitch.Helix
	tokens   *fakeTokens
	accounts *fakeAccounts
	logs     *syncBuffer
	platform *twitch.Platform
}

func newSenderEnv(t *testing.T) *senderEnv {
	t.Helper()
	srv := twitchtest.New(t)
	srv.AddUser(twitchtest.User{ID: fixBroadcaster, Login: "streamer", DisplayName: "Streamer",
		Category: "Science & Technology", Title: "Building a bot"})
	srv.AddUser(twitchtest.User{ID: fixBot, Login: "waddlebot", DisplayName: "WaddleBot"})
	srv.AddUser(twitchtest.User{ID: fixFriend, Login: "friend", DisplayName: "Friend", Category: "Art", Title: "Painting"})
	srv.AddUser(twitchtest.User{ID: fixChatter, Login: "chatter"})
	h, err := twitch.NewHelix(srv.ClientID, srv.ClientSecret, "", srv.Endpoints(), srv.HTTP.Client())
	if err != nil {
		t.Fatal(err)
	}
	tokens := newFakeTokens(srv)
	tokens.connect(fixBot, fixBotScopes...)
	tokens.connect(fixBroadcaster, fixBroadcasterScopes...)
	accounts := &fakeAccounts{}
	accounts.put(twitch.Account{UserID: fixBot, Login: "waddlebot", Kind: twitch.KindBot})
	accounts.put(twitch.Account{UserID: fixBroadcaster, Login: "streamer", Kind: twitch.KindBroadcaster})
	logs := &syncBuffer{}
	p, err := twitch.NewPlatform(twitch.SenderConfig{Helix: h, Tokens: tokens, Accounts: accounts,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return &senderEnv{srv: srv, helix: h, tokens: tokens, accounts: accounts, logs: logs, platform: p}
}

// setBotModerator makes the bot a moderator of the broadcaster (or not),
// both on the fake and in the stored account.
func (e *senderEnv) setBotModerator(mod bool) {
	e.srv.SetModerator(fixBroadcaster, fixBot, mod)
	e.accounts.put(twitch.Account{UserID: fixBroadcaster, Login: "streamer", Kind: twitch.KindBroadcaster, BotIsModerator: mod})
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

// sendOutcome names how the consume loop treats a Send error.
func sendOutcome(err error) (string, time.Duration) { return consume.Outcome(err) }
