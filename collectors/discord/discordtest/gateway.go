package discordtest

import "net/http"

// gatewayState is the gateway part of the fake (owned by gateway.go).
type gatewayState struct{}

func (s *Server) routeGateway(mux *http.ServeMux) {}

func (s *Server) closeGateway() {}
