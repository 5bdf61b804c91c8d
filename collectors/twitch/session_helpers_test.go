package twitch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// wsLeaseTTL is short so a lease moves between holders within a test.
const wsLeaseTTL = 1500 * time.Millisecond

// wsAccounts is an in-memory Accounts.
type wsAccounts struct {
	mu       sync.Mutex
	accounts map[string]twitch.Account
}

func (a *wsAccounts) set(acc twitch.Account) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.accounts == nil {
		a.accounts = map[string]twitch.Account{}
	}
	a.accounts[acc.UserID] = acc
}

func (a *wsAccounts) setStatus(id, status string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acc := a.accounts[id]
	acc.Status = status
	a.accounts[id] = acc
}

func (a *wsAccounts) Connected(_ context.Context, kind string) ([]twitch.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []twitch.Account
	for _, acc := range a.accounts {
		if acc.Kind == kind && acc.Status == twitch.StatusConnected {
			out = append(out, acc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out, nil
}

func (a *wsAccounts) Account(_ context.Context, id string) (twitch.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acc, ok := a.accounts[id]
	if !ok {
		return acc, twitch.ErrNotConnected
	}
	return acc, nil
}

// wsTokens hands out tokens the fake issues; a user whose grant the fake
// revoked gets ErrNotConnected and is marked disconnected, as the real
// TokenSource does.
type wsTokens struct {
	fake      *twitchtest.Server
	accounts  *wsAccounts
	mu        sync.Mutex
	user      map[string]string
	app       string
	refreshes atomic.Int32
}

func (tk *wsTokens) UserToken(_ context.Context, id string) (string, error) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if tok, ok := tk.user[id]; ok {
		return tok, nil
	}
	tok := tk.fake.IssueToken(id, time.Hour, "user:read:chat", "moderator:read:followers").Access
	tk.user[id] = tok
	return tok, nil
}

func (tk *wsTokens) Refresh(_ context.Context, id, _ string) (string, error) {
	tk.refreshes.Add(1)
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if _, ok := tk.user[id]; ok && len(tk.fake.TokensOf(id)) == 0 {
		// The fake withdrew the grant: nothing to refresh with.
		delete(tk.user, id)
		tk.accounts.setStatus(id, twitch.StatusDisconnected)
		return "", twitch.ErrNotConnected
	}
	tok := tk.fake.IssueToken(id, time.Hour, "user:read:chat").Access
	tk.user[id] = tok
	return tok, nil
}

func (tk *wsTokens) AppToken(context.Context) (string, error) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if tk.app == "" {
		tk.app = tk.fake.IssueToken("", time.Hour).Access
	}
	return tk.app, nil
}

func (tk *wsTokens) AppTokenRefused(token string) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if tk.app == token {
		tk.app = ""
	}
}

// countingPublisher counts the events the Intake published, by event id:
// JetStream drops a second publish of an id (Nats-Msg-Id) on its own, so
// only this count shows whether the collector let a duplicate through.
type countingPublisher struct {
	next  twitch.Publisher
	mu    sync.Mutex
	count map[string]int
}

func (p *countingPublisher) Publish(ctx context.Context, ev *schemas.Event) error {
	if err := p.next.Publish(ctx, ev); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count[ev.ID]++
	return nil
}

// logRecorder keeps the records logged at error level.
type logRecorder struct {
	mu     sync.Mutex
	errors []slog.Record
}

func (l *logRecorder) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelError
}
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errors = append(l.errors, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// errorsWith counts the error records with attribute key = value.
func (l *logRecorder) errorsWith(key, value string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.errors {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key && a.Value.String() == value {
				n++
			}
			return true
		})
	}
	return n
}

// wsEnv is the fake Twitch, NATS with the streams, and the parts the
// sessions need.
type wsEnv struct {
	fake      *twitchtest.Server
	nats      *natstest.Env
	accounts  *wsAccounts
	tokens    *wsTokens
	helix     *twitch.Helix
	intake    *twitch.Intake
	published *countingPublisher
	logs      *logRecorder // what the sessions logged at error level
}

func newWSEnv(t *testing.T) *wsEnv {
	t.Helper()
	fake := twitchtest.New(t)
	env := natstest.Start(t, func(c *streams.Config) { c.LeaseTTL = wsLeaseTTL })
	accounts := &wsAccounts{}
	h, err := twitch.NewHelix(fake.ClientID, fake.ClientSecret, "", fake.Endpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	published := &countingPublisher{next: collectors.NewPublisher(env.Conn.JS, nil), count: map[string]int{}}
	return &wsEnv{fake: fake, nats: env, accounts: accounts,
		tokens: &wsTokens{fake: fake, accounts: accounts, user: map[string]string{}}, helix: h,
		intake: twitch.NewIntake(twitch.IntakeConfig{Publisher: published, Accounts: accounts}), published: published,
		logs: &logRecorder{}}
}

// publishes counts how often the Intake published the event with platform
// id id.
func (e *wsEnv) publishes(id string) int {
	e.published.mu.Lock()
	defer e.published.mu.Unlock()
	return e.published.count[schemas.EventID("twitch", id)]
}

// waitPublished waits until the event with platform id id was published.
func (e *wsEnv) waitPublished(t *testing.T, id string) {
	t.Helper()
	natstest.Eventually(t, 10*time.Second, "event "+id+" published", func() bool { return e.publishes(id) > 0 })
}

// broadcaster registers and connects a broadcaster.
func (e *wsEnv) broadcaster(id, login string) {
	e.fake.AddUser(twitchtest.User{ID: id, Login: login})
	e.accounts.set(twitch.Account{UserID: id, Login: login, Kind: twitch.KindBroadcaster, Status: twitch.StatusConnected})
}

func (e *wsEnv) leases(t *testing.T, holder string) *coord.Leases {
	t.Helper()
	kv, err := e.nats.Conn.JS.KeyValue(context.Background(), streams.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	l, err := coord.NewLeases(context.Background(), kv, holder, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runSessions starts Sessions for a holder; the returned func stops it and
// waits for Run to return.
func (e *wsEnv) runSessions(t *testing.T, holder string) (stop func()) {
	t.Helper()
	s, err := twitch.NewSessions(twitch.SessionsConfig{Endpoints: e.fake.Endpoints(), Helix: e.helix, Tokens: e.tokens,
		Accounts: e.accounts, Intake: e.intake, Leases: e.leases(t, holder), Conn: e.nats.Conn,
		KeepaliveSeconds: 10, Logger: slog.New(e.logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// subscribedSession waits for a connected session holding every
// subscription other than those in not, and returns its id.
func (e *wsEnv) subscribedSession(t *testing.T, not ...string) string {
	t.Helper()
	var id string
	natstest.Eventually(t, 20*time.Second, "a subscribed EventSub session", func() bool {
	next:
		for _, s := range e.fake.Sessions() {
			for _, n := range not {
				if s.ID == n {
					continue next
				}
			}
			if s.Connected && s.Subscriptions == 10 {
				id = s.ID
				return true
			}
		}
		return false
	})
	return id
}

// events returns the events on WB_EVENTS.
func (e *wsEnv) events(t *testing.T) []schemas.Event {
	t.Helper()
	return natstest.Decode[schemas.Event](t, e.nats.Conn.JS, schemas.StreamEvents, "")
}

// countEvents counts events whose platform event id is id.
func (e *wsEnv) countEvents(t *testing.T, id string) int {
	t.Helper()
	n := 0
	for _, ev := range e.events(t) {
		if ev.ID == schemas.EventID("twitch", id) {
			n++
		}
	}
	return n
}

// waitEvent waits until the event with platform id id was published.
func (e *wsEnv) waitEvent(t *testing.T, id string) {
	t.Helper()
	natstest.Eventually(t, 10*time.Second, "event "+id+" on WB_EVENTS", func() bool { return e.countEvents(t, id) > 0 })
}

// notice announces an account change on ControlSubject.
func (e *wsEnv) notice(t *testing.T, id, status string) {
	t.Helper()
	b, _ := json.Marshal(twitch.AccountChange{UserID: id, Kind: twitch.KindBroadcaster, Status: status})
	if err := e.nats.Conn.NC.Publish(twitch.ControlSubject, b); err != nil {
		t.Fatal(err)
	}
}

var chatSeq atomic.Int64

// wsChatEvent is a channel.chat.message event in the broadcaster's channel;
// it returns the chat message id too.
func wsChatEvent(broadcasterID, login, text string) (map[string]any, string) {
	id := fmt.Sprintf("chat-%d-%d", time.Now().UnixNano(), chatSeq.Add(1))
	return map[string]any{
		"broadcaster_user_id": broadcasterID, "broadcaster_user_login": login, "broadcaster_user_name": login,
		"chatter_user_id": "4145994", "chatter_user_login": "viewer32", "chatter_user_name": "viewer32",
		"message_id": id, "message_type": "text", "color": "#00FF7F", "badges": []any{},
		"message": map[string]any{"text": text, "fragments": []any{map[string]any{"type": "text", "text": text}}},
	}, id
}

// wsOnlineEvent is a stream.online event; its event id is the metadata
// message id.
func wsOnlineEvent(broadcasterID, login string) map[string]any {
	return map[string]any{"id": "9001", "broadcaster_user_id": broadcasterID, "broadcaster_user_login": login,
		"broadcaster_user_name": login, "type": "live", "started_at": time.Now().UTC().Format(time.RFC3339Nano)}
}

// wsBot is the bot account (chat is read as the bot through a conduit).
var wsBot = twitchtest.User{ID: "2914196", Login: "waddlebot"}
