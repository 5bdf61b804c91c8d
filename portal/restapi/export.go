package restapi

import (
	"errors"
	"net/http"

	"github.com/waddlebot/waddlebot/internal/store"
)

// Other endpoints on the shared server that take the portal's API keys
// (the OpenAI-compatible /v1) admit and audit their requests here, so a
// key is checked, rate limited and recorded the same way everywhere; only
// the error body differs.

// Caller is one request being admitted.
type Caller struct{ c *call }

// Key is the caller's key (zero until authenticated).
func (c *Caller) Key() store.APIKey { return c.c.key }

// User is the key's owner (zero until authenticated).
func (c *Caller) User() store.PortalUser { return c.c.user }

// Refusal is why a request was turned away.
type Refusal struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is in seconds, for 429.
	RetryAfter int
	// Err is an unexpected failure (Status 503), for the caller's log.
	Err error
}

// Admit authenticates the key of r's Authorization header, applies the
// per-key rate limit, records the key's use and checks scope: the steps
// every /api/v1 route takes. The Caller is returned even with a refusal,
// for Finish.
func (s *Server) Admit(w http.ResponseWriter, r *http.Request, scope string) (*Caller, *Refusal) {
	c := &call{s: s, w: w, r: r}
	err := s.authenticate(c)
	if err == nil {
		err = s.limit(c)
	}
	if err == nil {
		s.touch(c)
		if !c.key.Has(scope) {
			err = fail(http.StatusForbidden, "insufficient_scope", "This key lacks the "+scope+" scope.", nil)
		}
	}
	if err == nil {
		return &Caller{c: c}, nil
	}
	var ae *apiError
	if !errors.As(err, &ae) {
		return &Caller{c: c}, &Refusal{Status: http.StatusServiceUnavailable, Code: "unavailable",
			Message: "Something went wrong; please try again in a minute.", Err: err}
	}
	rf := &Refusal{Status: ae.Status, Code: ae.Code, Message: ae.Message}
	if ra, ok := ae.Details["retry_after_seconds"].(int); ok {
		rf.RetryAfter = ra
	}
	return &Caller{c: c}, rf
}

// Finish audits the request as /api/v1 does: every change and refusal,
// refusals of a flooding key once per window.
func (s *Server) Finish(c *Caller, status int) {
	s.auditUse(c.c, status)
}
