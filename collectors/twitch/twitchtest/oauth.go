package twitchtest

import "net/http"

// oauthState is the id.twitch.tv part of the fake (owned by oauth.go).
type oauthState struct{}

func (s *Server) routeOAuth(mux *http.ServeMux) {}
