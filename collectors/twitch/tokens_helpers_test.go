package twitch_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

// connectEnv is the accounts, tokens and OAuth parts against the fake
// Twitch, a throw-away database and (optionally) NATS.
type connectEnv struct {
	fake     *twitchtest.Server
	st       *store.Store
	accounts *twitch.Store
	helix    *twitch.Helix
	tokens   *twitch.TokenSource
	web      *httptest.Server // our routes, where the browser comes back
	conn     *natsx.Conn
	clock    *testClock
	notices  *nats.Subscription
}

type testClock struct {
	mu sync.Mutex
	at time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = c.at.Add(d)
}

// newConnectEnv builds the parts; withNATS also listens on ControlSubject.
func newConnectEnv(t *testing.T, withNATS bool) *connectEnv {
	t.Helper()
	e := &connectEnv{fake: twitchtest.New(t), st: storetest.New(t), clock: &testClock{at: time.Now()}}
	if withNATS {
		e.conn = natstest.Start(t, nil).Conn
		sub, err := e.conn.NC.SubscribeSync(twitch.ControlSubject)
		if err != nil {
			t.Fatal(err)
		}
		e.notices = sub
	}
	mux := http.NewServeMux()
	e.web = httptest.NewServer(mux)
	t.Cleanup(e.web.Close)
	h, err := twitch.NewHelix(e.fake.ClientID, e.fake.ClientSecret, e.web.URL+"/connect/twitch/callback", e.fake.Endpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.helix = h
	e.accounts = twitch.NewStore(e.st)
	e.tokens = e.newTokenSource(t)
	oauth, err := twitch.NewOAuth(twitch.OAuthConfig{Helix: h, Store: e.accounts, Tokens: e.tokens, PublicURL: e.web.URL,
		Operator: twitch.OperatorCheck("operator-token", true),
		AuthURL:  e.fake.Endpoints().Auth, Conn: e.conn, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	oauth.Mount(mux)
	return e
}

// newTokenSource makes another token source on the same store: another
// replica.
func (e *connectEnv) newTokenSource(t *testing.T) *twitch.TokenSource {
	t.Helper()
	ts, err := twitch.NewTokenSource(twitch.TokenSourceConfig{Helix: e.helix, Store: e.accounts, Conn: e.conn,
		Logger: logging.Discard(), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// connect registers a user at the fake and saves them as connected with a
// token valid for ttl, as a finished OAuth flow would.
func (e *connectEnv) connect(t *testing.T, u twitchtest.User, kind string, ttl time.Duration, scopes ...string) twitchtest.Token {
	t.Helper()
	e.fake.AddUser(u)
	tok := e.fake.IssueToken(u.ID, ttl, scopes...)
	err := e.accounts.Save(context.Background(), twitch.Account{UserID: u.ID, Login: u.Login, DisplayName: u.DisplayName, Kind: kind, Scopes: scopes},
		twitch.OAuthToken{Access: tok.Access, Refresh: tok.Refresh, Scopes: scopes, ExpiresAt: tok.ExpiresAt})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// nextNotice waits for a ControlSubject notice.
func (e *connectEnv) nextNotice(t *testing.T) twitch.AccountChange {
	t.Helper()
	msg, err := e.notices.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no account change announced: %v", err)
	}
	var change twitch.AccountChange
	if err := json.Unmarshal(msg.Data, &change); err != nil {
		t.Fatal(err)
	}
	return change
}

// account reads an account, failing the test when it is missing.
func (e *connectEnv) account(t *testing.T, userID string) twitch.Account {
	t.Helper()
	a, err := e.accounts.Account(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// browser follows redirects like a browser and records where it went.
type browser struct {
	client  *http.Client
	visited []string
}

// newBrowser keeps cookies, as the connect link ties its state to the
// browser with one.
func newBrowser() *browser {
	b := &browser{}
	jar, err := cookiejar.New(nil)
	if err != nil {
		panic(err)
	}
	b.client = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		b.visited = append(b.visited, req.URL.String())
		return nil
	}}
	return b
}
