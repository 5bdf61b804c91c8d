// Package discordtest is a local fake of Discord for tests: the REST API
// (with its rate-limit headers) and the gateway, speaking the wire formats
// of Discord's documentation, with hooks to make them misbehave.
package discordtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Server is the fake. Its parts live in rest.go (the REST API, OAuth2) and
// gateway.go (the gateway WebSocket).
type Server struct {
	t    testing.TB
	HTTP *httptest.Server
	// BotToken is the token the fake accepts ("Bot <token>"); AppID the
	// application (and the bot user's) id.
	BotToken, AppID, ClientSecret string

	mu sync.Mutex

	restState
	gatewayState
}

// New starts a fake on a random local port, closed when t ends.
func New(t testing.TB) *Server {
	s := &Server{t: t, BotToken: "fake-bot-token", AppID: "100000000000000001", ClientSecret: "fake-client-secret"}
	mux := http.NewServeMux()
	s.routeREST(mux)
	s.routeGateway(mux)
	s.HTTP = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// Close stops the fake.
func (s *Server) Close() {
	s.closeGateway()
	s.HTTP.CloseClientConnections()
	s.HTTP.Close()
}

// APIURL is the REST base (like https://discord.com/api/v9).
func (s *Server) APIURL() string { return s.HTTP.URL + "/api/v9" }

// GatewayURL is the gateway WebSocket URL GET /gateway/bot hands out.
func (s *Server) GatewayURL() string {
	return "ws" + strings.TrimPrefix(s.HTTP.URL, "http") + "/gateway"
}

// WriteJSON writes v with a status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes Discord's error body: {"code","message"}.
func WriteError(w http.ResponseWriter, status, code int, message string) {
	WriteJSON(w, status, map[string]any{"code": code, "message": message})
}
