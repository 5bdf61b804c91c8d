package twitchtest

import "net/http"

// helixState is the Helix part of the fake (owned by helix.go).
type helixState struct{}

func (s *Server) routeHelix(mux *http.ServeMux) {}
