package discordtest

import "net/http"

// restState is the REST part of the fake (owned by rest.go).
type restState struct{}

func (s *Server) routeREST(mux *http.ServeMux) {}
