package twitch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nicklaw5/helix/v2"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/internal/logging"
)

// subscriptionsFake serves Helix's /eventsub/subscriptions (Get, Create,
// Delete) the way Twitch documents them: app token required, data arrays,
// a pagination cursor, 202 on create, 409 on a duplicate, 204 on delete.
type subscriptionsFake struct {
	mu       sync.Mutex
	subs     []eventsub.Subscription
	nextID   int
	creates  int
	deletes  []string
	pageSize int
	failType string // creating this type fails with 500
}

const fakeAppToken = "app-token-1"

func (f *subscriptionsFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/helix/eventsub/subscriptions" {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+fakeAppToken || r.Header.Get("Client-Id") != "cid" {
		writeHelixError(w, http.StatusUnauthorized, "Invalid OAuth token")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		start := 0
		if after := r.URL.Query().Get("after"); after != "" {
			start, _ = strconv.Atoi(after)
		}
		end := min(start+f.pageSize, len(f.subs))
		page := map[string]any{"data": f.subs[start:end], "total": len(f.subs), "total_cost": 0, "max_total_cost": 10000,
			"pagination": map[string]any{}}
		if end < len(f.subs) {
			page["pagination"] = map[string]any{"cursor": strconv.Itoa(end)}
		}
		_ = json.NewEncoder(w).Encode(page)
	case http.MethodPost:
		var req eventsub.Subscription
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Type == "" || req.Transport.Method == "" {
			writeHelixError(w, http.StatusBadRequest, "bad request")
			return
		}
		if req.Type == f.failType {
			writeHelixError(w, http.StatusInternalServerError, "oops")
			return
		}
		for _, s := range f.subs {
			if s.Type == req.Type && fmt.Sprint(s.Condition) == fmt.Sprint(req.Condition) && s.Transport == req.Transport && s.Status == "enabled" {
				writeHelixError(w, http.StatusConflict, "subscription already exists")
				return
			}
		}
		f.nextID++
		f.creates++
		req.ID = fmt.Sprintf("sub-%d", f.nextID)
		req.Status = "enabled"
		req.Transport.Secret = "" // never listed
		f.subs = append(f.subs, req)
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{req}, "total": len(f.subs)})
	case http.MethodDelete:
		id := r.URL.Query().Get("id")
		i := slices.IndexFunc(f.subs, func(s eventsub.Subscription) bool { return s.ID == id })
		if i < 0 {
			writeHelixError(w, http.StatusNotFound, "not found")
			return
		}
		f.subs = slices.Delete(f.subs, i, i+1)
		f.deletes = append(f.deletes, id)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func writeHelixError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": http.StatusText(status), "status": status, "message": msg})
}

func (f *subscriptionsFake) snapshot() []eventsub.Subscription {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.subs)
}

type appSubsEnv struct {
	fake     *subscriptionsFake
	accounts *intakeAccounts
	sub      *twitch.AppSubscriber
}

func newAppSubsEnv(t *testing.T, transport helix.EventSubTransport) *appSubsEnv {
	t.Helper()
	fake := &subscriptionsFake{pageSize: 7}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	h, err := twitch.NewHelix("cid", "csecret", "", twitch.Endpoints{API: srv.URL + "/helix"}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	accounts := &intakeAccounts{}
	sub, err := twitch.NewAppSubscriber(twitch.AppSubscriberConfig{Helix: h, Tokens: &appTokens{tokens: []string{fakeAppToken}}, Accounts: accounts,
		Transport: func(context.Context) (helix.EventSubTransport, error) { return transport, nil }, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	return &appSubsEnv{fake: fake, accounts: accounts, sub: sub}
}

var webhookTransport = helix.EventSubTransport{Method: "webhook", Callback: "https://bot.example.com/webhooks/twitch", Secret: webhookSecret}

// byBroadcaster counts subscriptions per channel and checks each one's
// condition against AppCondition.
func checkSubscriptions(t *testing.T, subs []eventsub.Subscription, botID string, want map[string]int) {
	t.Helper()
	got := map[string]int{}
	for _, s := range subs {
		b := s.Condition["broadcaster_user_id"]
		if s.Type == eventsub.Raid {
			b = s.Condition["to_broadcaster_user_id"]
		}
		got[b]++
		for _, spec := range eventsub.Specs() {
			if spec.Type == s.Type {
				if wantCond := eventsub.AppCondition(spec, b, botID); fmt.Sprint(wantCond) != fmt.Sprint(s.Condition) {
					t.Errorf("%s condition %v, want %v", s.Type, s.Condition, wantCond)
				}
				if spec.Version != s.Version {
					t.Errorf("%s version %s, want %s", s.Type, s.Version, spec.Version)
				}
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("subscriptions per broadcaster %v, want %v", got, want)
	}
}

func TestReconcileCreatesThenKeeps(t *testing.T) {
	e := newAppSubsEnv(t, webhookTransport)
	e.accounts.set(nil, bot("900"), broadcasterAccount("100"), broadcasterAccount("200"))
	ctx := context.Background()
	if err := e.sub.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	subs := e.fake.snapshot()
	checkSubscriptions(t, subs, "900", map[string]int{"100": 10, "200": 10})
	for _, s := range subs {
		if s.Transport.Method != "webhook" || s.Transport.Callback != webhookTransport.Callback {
			t.Fatalf("transport %+v", s.Transport)
		}
	}
	// A second pass (over three pages) changes nothing.
	if err := e.sub.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if e.fake.creates != 20 || len(e.fake.deletes) != 0 {
		t.Errorf("second pass: %d creates, %d deletes; want 20, 0", e.fake.creates, len(e.fake.deletes))
	}
}

func TestReconcileRepairs(t *testing.T) {
	e := newAppSubsEnv(t, webhookTransport)
	e.accounts.set(nil, bot("900"), broadcasterAccount("100"), broadcasterAccount("200"))
	ctx := context.Background()
	if err := e.sub.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	// 200 disconnects; one of 100's subscriptions got revoked; another app
	// deployment (other callback) has one of its own; Twitch lists a raid
	// condition with its empty from_broadcaster_user_id.
	e.accounts.set(nil, bot("900"), broadcasterAccount("100"))
	e.fake.mu.Lock()
	var revokedID string
	for i := range e.fake.subs {
		s := &e.fake.subs[i]
		if s.Condition["broadcaster_user_id"] == "100" && s.Type == eventsub.Cheer {
			s.Status = "authorization_revoked"
			revokedID = s.ID
		}
		if s.Type == eventsub.Raid {
			s.Condition["from_broadcaster_user_id"] = ""
		}
	}
	e.fake.subs = append(e.fake.subs, eventsub.Subscription{ID: "foreign", Status: "enabled", Type: eventsub.Cheer, Version: "1",
		Condition: map[string]string{"broadcaster_user_id": "300"},
		Transport: eventsub.Transport{Method: "webhook", Callback: "https://staging.example.com/webhooks/twitch"}})
	e.fake.mu.Unlock()

	if err := e.sub.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	var ours []eventsub.Subscription
	foreign := false
	for _, s := range e.fake.snapshot() {
		if s.ID == "foreign" {
			foreign = true
			continue
		}
		if s.ID == revokedID {
			t.Error("the revoked subscription is still there")
		}
		if s.Type == eventsub.Raid {
			delete(s.Condition, "from_broadcaster_user_id")
		}
		ours = append(ours, s)
	}
	if !foreign {
		t.Error("another deployment's subscription was deleted")
	}
	checkSubscriptions(t, ours, "900", map[string]int{"100": 10})
	if e.fake.creates != 21 {
		t.Errorf("%d creates, want 21 (the revoked one made again)", e.fake.creates)
	}
}

func TestReconcileConduitWithoutBot(t *testing.T) {
	e := newAppSubsEnv(t, helix.EventSubTransport{Method: "conduit", SessionID: "conduit-1"})
	e.accounts.set(nil, broadcasterAccount("100"))
	if err := e.sub.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	subs := e.fake.snapshot()
	// No bot: chat cannot be read with the app token; the rest is there.
	checkSubscriptions(t, subs, "", map[string]int{"100": 9})
	for _, s := range subs {
		if s.Type == eventsub.ChatMessage {
			t.Error("chat subscribed without a bot")
		}
		if s.Transport != (eventsub.Transport{Method: "conduit", ConduitID: "conduit-1"}) {
			t.Errorf("transport %+v, want the conduit", s.Transport)
		}
	}
}

func TestReconcileReportsFailuresAndGoesOn(t *testing.T) {
	e := newAppSubsEnv(t, webhookTransport)
	e.fake.failType = eventsub.Cheer
	e.accounts.set(nil, bot("900"), broadcasterAccount("100"))
	err := e.sub.Reconcile(context.Background())
	if err == nil || !strings.Contains(err.Error(), eventsub.Cheer) {
		t.Fatalf("Reconcile: %v, want the cheer failure", err)
	}
	if n := len(e.fake.snapshot()); n != 9 {
		t.Errorf("%d subscriptions, want the 9 others", n)
	}
}

// A refused app token is dropped and the next one tried, once.
func TestReconcileRefusedToken(t *testing.T) {
	tests := []struct {
		name       string
		tokens     []string
		wantErr    bool
		wantIssued int
	}{
		{name: "stale token replaced", tokens: []string{"stale", fakeAppToken}, wantIssued: 2},
		{name: "every token refused", tokens: []string{"wrong", "wrong again", fakeAppToken}, wantErr: true, wantIssued: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAppSubsEnv(t, webhookTransport)
			tokens := &appTokens{tokens: tt.tokens}
			sub, err := twitch.NewAppSubscriber(twitch.AppSubscriberConfig{Helix: mustHelixFor(t, e), Tokens: tokens,
				Accounts: e.accounts, Transport: func(context.Context) (helix.EventSubTransport, error) { return webhookTransport, nil }})
			if err != nil {
				t.Fatal(err)
			}
			e.accounts.set(nil, broadcasterAccount("100"))
			err = sub.Reconcile(context.Background())
			if tt.wantErr != (err != nil) || err != nil && !strings.Contains(err.Error(), "401") {
				t.Fatalf("Reconcile: %v, want a 401 error: %v", err, tt.wantErr)
			}
			if tokens.issued != tt.wantIssued {
				t.Fatalf("%d app tokens used, want %d", tokens.issued, tt.wantIssued)
			}
		})
	}
}

// appTokens hands out app tokens in turn, moving to the next when one is
// refused (the last one stays).
type appTokens struct {
	mu     sync.Mutex
	tokens []string
	issued int // tokens handed out so far
}

func (*appTokens) UserToken(context.Context, string) (string, error) {
	return "", twitch.ErrNotConnected
}
func (*appTokens) Refresh(context.Context, string, string) (string, error) {
	return "", twitch.ErrNotConnected
}

func (a *appTokens) AppToken(context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.issued = max(a.issued, 1)
	return a.tokens[a.issued-1], nil
}

func (a *appTokens) AppTokenRefused(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.issued > 0 && a.tokens[a.issued-1] == token && a.issued < len(a.tokens) {
		a.issued++
	}
}

func mustHelixFor(t *testing.T, e *appSubsEnv) *twitch.Helix {
	t.Helper()
	srv := httptest.NewServer(e.fake)
	t.Cleanup(srv.Close)
	h, err := twitch.NewHelix("cid", "csecret", "", twitch.Endpoints{API: srv.URL + "/helix"}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return h
}
