// Package twitchtest is a local fake of Twitch for tests: Helix, the OAuth
// endpoints and the EventSub WebSocket, speaking the wire formats of Twitch's
// documentation, with hooks to make it misbehave the ways Twitch does.
package twitchtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch"
)

// User is a Twitch user the fake knows.
type User struct {
	ID, Login, DisplayName string
	// Category and Title are the channel information Get Channel
	// Information returns.
	Category, Title string
}

// Token is an access token the fake issued.
type Token struct {
	Access, Refresh string
	UserID          string // empty for an app token
	Scopes          []string
	ExpiresAt       time.Time
}

// Server is the fake. Its parts live in helix.go (Helix endpoints),
// oauth.go (id.twitch.tv) and eventsub.go (the EventSub WebSocket).
type Server struct {
	t            testing.TB
	HTTP         *httptest.Server
	ClientID     string
	ClientSecret string

	mu      sync.Mutex
	users   map[string]User   // by id
	tokens  map[string]*Token // by access token
	refresh map[string]*Token // by refresh token

	helixState
	oauthState
	eventsubState
}

// New starts a fake on a random local port, closed when t ends.
func New(t testing.TB) *Server {
	s := &Server{
		t:            t,
		ClientID:     "fakeclientid",
		ClientSecret: "fakeclientsecret",
		users:        map[string]User{},
		tokens:       map[string]*Token{},
		refresh:      map[string]*Token{},
	}
	mux := http.NewServeMux()
	s.routeHelix(mux)
	s.routeOAuth(mux)
	s.routeEventSub(mux)
	s.HTTP = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// Close stops the fake.
func (s *Server) Close() {
	s.closeEventSub()
	s.HTTP.CloseClientConnections()
	s.HTTP.Close()
}

// Endpoints are the fake's base URLs.
func (s *Server) Endpoints() twitch.Endpoints {
	return twitch.Endpoints{
		API:      s.HTTP.URL + "/helix",
		Auth:     s.HTTP.URL + "/oauth2",
		EventSub: "ws" + strings.TrimPrefix(s.HTTP.URL, "http") + "/ws",
	}
}

// AddUser registers a user.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.DisplayName == "" {
		u.DisplayName = u.Login
	}
	s.users[u.ID] = u
}

// UserByID returns a registered user.
func (s *Server) UserByID(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	return u, ok
}

// IssueToken makes a user access token (userID "" for an app token) valid
// for ttl.
func (s *Server) IssueToken(userID string, ttl time.Duration, scopes ...string) Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.issueLocked(userID, ttl, scopes)
}

func (s *Server) issueLocked(userID string, ttl time.Duration, scopes []string) *Token {
	tok := &Token{Access: randomHex(15), Refresh: randomHex(25), UserID: userID,
		Scopes: append([]string(nil), scopes...), ExpiresAt: time.Now().Add(ttl)}
	s.tokens[tok.Access] = tok
	if userID != "" {
		s.refresh[tok.Refresh] = tok
	}
	return tok
}

// Expire makes an access token fail with 401 from now on (its refresh
// token keeps working).
func (s *Server) Expire(access string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok, ok := s.tokens[access]; ok {
		tok.ExpiresAt = time.Now().Add(-time.Second)
	}
}

// Revoke withdraws every token of a user, as when they disconnect the app
// in their Twitch settings: access and refresh tokens stop working.
func (s *Server) Revoke(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, tok := range s.tokens {
		if tok.UserID == userID {
			delete(s.tokens, k)
		}
	}
	for k, tok := range s.refresh {
		if tok.UserID == userID {
			delete(s.refresh, k)
		}
	}
	s.revokedLocked(userID)
}

// authorize checks a Helix request's Client-Id and bearer token, writing
// Twitch's 401 when they are wrong.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (*Token, bool) {
	if r.Header.Get("Client-Id") != s.ClientID {
		WriteError(w, http.StatusUnauthorized, "Client ID and OAuth token do not match")
		return nil, false
	}
	access := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	tok, ok := s.tokens[access]
	var cp Token
	if ok {
		cp = *tok
	}
	s.mu.Unlock()
	if !ok || time.Now().After(cp.ExpiresAt) {
		WriteError(w, http.StatusUnauthorized, "Invalid OAuth token")
		return nil, false
	}
	return &cp, true
}

// WriteJSON writes v with a status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes Twitch's error body: {"error","status","message"}.
func WriteError(w http.ResponseWriter, status int, message string) {
	WriteJSON(w, status, map[string]any{"error": http.StatusText(status), "status": status, "message": message})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
