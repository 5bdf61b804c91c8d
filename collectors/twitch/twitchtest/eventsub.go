package twitchtest

import "net/http"

// eventsubState is the EventSub WebSocket part of the fake (owned by eventsub.go).
type eventsubState struct{}

func (s *Server) routeEventSub(mux *http.ServeMux) {}

func (s *Server) closeEventSub() {}

// revokedLocked is called with s.mu held when a user's grant is revoked:
// their subscriptions are revoked (a revocation message on their socket).
func (s *Server) revokedLocked(userID string) {}

// sessionExists reports whether a WebSocket session id is live (stub until
// the EventSub part lands).
func (s *Server) sessionExists(id string) bool { return false }

// sessionSubscribed tells the WebSocket part that Helix created a
// subscription on a session (stub until the EventSub part lands).
func (s *Server) sessionSubscribed(sessionID string, sub map[string]any) {}
