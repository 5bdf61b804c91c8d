// Package restapi is WaddleBot's REST API under /api/v1: the portal's
// abilities as JSON, for scripts and dashboards, authenticated with API
// keys ("Authorization: Bearer wbk_…") that carry scopes and belong to one
// community or, for a super-admin, to the whole site. One route table
// drives both the server and its OpenAPI document.
package restapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Base is where the API lives.
const Base = "/api/v1"

// Defaults of the per-key rate limit.
const (
	DefaultRateLimit  = 120
	DefaultRateWindow = time.Minute
)

// touchEvery is how often a key's last-used time is written: often enough
// to tell a live key from a forgotten one, rarely enough not to write a row
// per request.
const touchEvery = time.Minute

// maxRemembered bounds the throttles' memory; forgetting only means one
// more write.
const maxRemembered = 10000

// maxBody bounds a request body; the largest legitimate one is a module's
// settings.
const maxBody = 1 << 20

// Config configures the API.
type Config struct {
	Store *store.Store
	// Conn announces changes on wb.control.community.<id> and holds the
	// rate windows in JetStream KV, shared by every replica; nil announces
	// nothing and counts in memory.
	Conn       *natsx.Conn
	RateLimit  int           // requests per key per RateWindow; default DefaultRateLimit
	RateWindow time.Duration // default DefaultRateWindow
	Clock      clock.Clock
	Logger     *slog.Logger
	// PublicURL prefixes the browser-source URLs a rotation returns.
	PublicURL string
	// NATSAuthDir holds the keys of `waddlebot nats-config`; "" refuses
	// minting external modules' credentials.
	NATSAuthDir string
	// DevWebhooks lets webhook modules use plain http to localhost, as
	// `waddlebot dev` does.
	DevWebhooks bool
}

// Server serves the API.
type Server struct {
	cfg     Config
	st      *store.Store
	routes  []route
	mux     *http.ServeMux
	limiter limiter
	log     *slog.Logger

	mu       sync.Mutex
	touched  map[string]time.Time // key id → last last-used write
	refusals map[string]time.Time // key id → last audited 429

	openAPIOnce sync.Once
	openAPIDoc  []byte
	openAPIErr  error
}

// New builds the API; ctx bounds opening the rate-limit bucket.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("restapi: needs a Store")
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.RateWindow <= 0 {
		cfg.RateWindow = DefaultRateWindow
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, st: cfg.Store, log: cfg.Logger.With(logging.KeyPart, "restapi"),
		touched: map[string]time.Time{}, refusals: map[string]time.Time{}}
	if cfg.Conn != nil {
		kv, err := cfg.Conn.JS.KeyValue(ctx, streams.BucketWindows)
		if err != nil {
			return nil, fmt.Errorf("restapi: unable to open the rate windows: %w", err)
		}
		s.limiter = kvLimiter{w: coord.NewWindows(kv).WithClock(cfg.Clock.Now)}
	} else {
		s.limiter = &memLimiter{now: cfg.Clock.Now, hits: map[string][]time.Time{}}
	}
	s.routes = append(s.table(), s.moreRoutes()...)
	s.mux = http.NewServeMux()
	for _, rt := range s.routes {
		s.mux.HandleFunc(rt.Method+" "+Base+rt.Path, s.serve(rt))
	}
	s.mux.HandleFunc("GET "+Base+"/openapi.json", s.openAPIHandler)
	s.mux.HandleFunc(Base+"/", s.notFound)
	return s, nil
}

// ServeHTTP serves every API route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// route is one endpoint: the server and the OpenAPI document read it.
type route struct {
	Method, Path string
	Summary      string
	Scope        string // the scope a key needs
	// Role is the least role the key's owner must still hold in the
	// community of the path; "" when the path names none.
	Role string
	Body any  // the request body's shape, nil for none
	Out  any  // the response body's shape
	List bool // paginated with limit and cursor
	h    func(c *call) (int, any, error)
}

// call is one authenticated request.
type call struct {
	s         *Server
	w         http.ResponseWriter
	r         *http.Request
	key       store.APIKey
	user      store.PortalUser
	community schemas.Community // when the path names one
	role      string            // the owner's role in it; "" for a super-admin outside it
}

func (c *call) ctx() context.Context { return c.r.Context() }

func (c *call) actor() string { return "apikey:" + c.key.ID }

// from is the audit detail of where a change came from.
func (c *call) from() map[string]any {
	return map[string]any{"ip": remoteIP(c.r), "api_key": c.key.ID, "user_id": c.user.ID, "name": c.user.DisplayName}
}

func (c *call) atLeast(role string) bool {
	return c.user.SuperAdmin || store.RoleRank(c.role) >= store.RoleRank(role)
}

// apiError is an answer with the API's error body.
type apiError struct {
	Status  int
	Code    string
	Message string
	Details map[string]any
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func fail(status int, code, msg string, details map[string]any) *apiError {
	return &apiError{Status: status, Code: code, Message: msg, Details: details}
}

type errorBody struct {
	Error errorInfo `json:"error"`
}

type errorInfo struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v == nil || status == http.StatusNoContent {
		return
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, errorBody{Error: errorInfo{Code: e.Code, Message: e.Message, Details: e.Details}})
}

// notFound answers paths no route has, and 405 for a path another method
// has.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, rt := range s.routes {
		if matchPath(Base+rt.Path, r.URL.Path) {
			allow = append(allow, rt.Method)
		}
	}
	if r.URL.Path == Base+"/openapi.json" {
		allow = append(allow, http.MethodGet)
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, fail(http.StatusMethodNotAllowed, "method_not_allowed",
			r.Method+" is not allowed here; use "+strings.Join(allow, " or ")+".", map[string]any{"allow": allow}))
		return
	}
	writeError(w, fail(http.StatusNotFound, "not_found", "There is no such endpoint; see "+Base+"/openapi.json.", nil))
}

// matchPath matches a path against a pattern whose {x} segments match any
// one segment.
func matchPath(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if strings.HasPrefix(ps[i], "{") {
			if xs[i] == "" {
				return false
			}
			continue
		}
		if ps[i] != xs[i] {
			return false
		}
	}
	return true
}

// serve authenticates, limits and authorizes a request, runs the route and
// audits what the brief of an API asks: every change and every refusal.
func (s *Server) serve(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := &call{s: s, w: w, r: r}
		status, body, err := s.run(c, rt)
		var ae *apiError
		if err != nil && !errors.As(err, &ae) {
			if errors.Is(err, store.ErrNotFound) {
				ae = fail(http.StatusNotFound, "not_found", "Not found.", nil)
			} else {
				s.log.Error("restapi: request failed", "method", r.Method, "path", r.URL.Path, logging.Err(err))
				ae = fail(http.StatusServiceUnavailable, "unavailable", "Something went wrong; please try again in a minute.", nil)
			}
		}
		if ae != nil {
			status = ae.Status
			if status == http.StatusTooManyRequests {
				if ra, ok := ae.Details["retry_after_seconds"]; ok {
					w.Header().Set("Retry-After", fmt.Sprint(ra))
				}
			}
			writeError(w, ae)
		} else {
			writeJSON(w, status, body)
		}
		s.auditUse(c, status)
	}
}

func (s *Server) run(c *call, rt route) (int, any, error) {
	if err := s.authenticate(c); err != nil {
		return 0, nil, err
	}
	if err := s.limit(c); err != nil {
		return 0, nil, err
	}
	s.touch(c)
	if !c.key.Has(rt.Scope) {
		return 0, nil, fail(http.StatusForbidden, "insufficient_scope", "This key lacks the "+rt.Scope+" scope.",
			map[string]any{"needed": rt.Scope, "scopes": c.key.Scopes})
	}
	if c.key.CommunityID == "" && !c.user.SuperAdmin {
		return 0, nil, fail(http.StatusForbidden, "forbidden", "A site-wide key works only while its owner is a super-admin.", nil)
	}
	if id := c.r.PathValue("id"); strings.Contains(rt.Path, "{id}") {
		if err := s.loadCommunity(c, id, rt.Role); err != nil {
			return 0, nil, err
		}
	}
	return rt.h(c)
}

// authenticate finds the key of the Authorization header and its owner.
func (s *Server) authenticate(c *call) error {
	h := c.r.Header.Get("Authorization")
	if h == "" {
		return fail(http.StatusUnauthorized, "unauthenticated", "Send an API key: Authorization: Bearer wbk_…", nil)
	}
	scheme, secret, _ := strings.Cut(h, " ")
	secret = strings.TrimSpace(secret)
	if !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(secret, store.APIKeyPrefix) || len(secret) > 200 {
		return fail(http.StatusUnauthorized, "unauthenticated", "The Authorization header must be Bearer wbk_…", nil)
	}
	k, err := s.st.APIKeyBySecret(c.ctx(), secret)
	if errors.Is(err, store.ErrNotFound) {
		return fail(http.StatusUnauthorized, "invalid_key", "This API key is unknown.", nil)
	}
	if err != nil {
		return err
	}
	c.key = k
	now := s.cfg.Clock.Now()
	if k.RevokedAt != nil {
		return fail(http.StatusUnauthorized, "invalid_key", "This API key was revoked.", nil)
	}
	if !k.Live(now) {
		return fail(http.StatusUnauthorized, "invalid_key", "This API key expired.", nil)
	}
	u, err := s.st.PortalUser(c.ctx(), k.UserID)
	if err != nil {
		return err
	}
	if u.Disabled {
		return fail(http.StatusUnauthorized, "invalid_key", "The owner of this API key is disabled.", nil)
	}
	c.user = u
	return nil
}

// loadCommunity checks the path's community is the key's and the owner
// still holds need in it: a key never outlives its owner's role.
func (s *Server) loadCommunity(c *call, id, need string) error {
	if _, err := uuid.Parse(id); err != nil {
		return fail(http.StatusNotFound, "not_found", "There is no community with that id.", nil)
	}
	if c.key.CommunityID != "" && c.key.CommunityID != id {
		return fail(http.StatusForbidden, "wrong_community", "This key belongs to another community.", nil)
	}
	com, err := s.st.Community(c.ctx(), id)
	if errors.Is(err, store.ErrNotFound) {
		return fail(http.StatusNotFound, "not_found", "There is no community with that id.", nil)
	}
	if err != nil {
		return err
	}
	c.community = com
	if c.role, err = s.st.MemberRole(c.ctx(), id, c.user.ID); err != nil {
		return err
	}
	if need != "" && !c.atLeast(need) {
		return fail(http.StatusForbidden, "forbidden", "The key's owner needs the "+need+" role in this community.",
			map[string]any{"role": c.role, "needed": need})
	}
	return nil
}

// touch records the key's use, at most once a minute per replica (and the
// store checks again, for the other replicas).
func (s *Server) touch(c *call) {
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	if len(s.touched) > maxRemembered {
		s.touched = map[string]time.Time{}
	}
	last, ok := s.touched[c.key.ID]
	fresh := ok && now.Sub(last) < touchEvery
	if !fresh {
		s.touched[c.key.ID] = now
	}
	s.mu.Unlock()
	if fresh {
		return
	}
	if err := s.st.TouchAPIKey(c.ctx(), c.key.ID, now, touchEvery); err != nil {
		s.log.Warn("restapi: unable to record key use", logging.KeyID, c.key.ID, logging.Err(err))
	}
}

// auditUse records a state-changing request or a refusal; reads that
// succeed are only counted in last-used, or the log would drown. A key
// hammering past its limit is recorded once per window, not per request.
func (s *Server) auditUse(c *call, status int) {
	if status < 400 && (c.r.Method == http.MethodGet || c.r.Method == http.MethodHead) {
		return
	}
	action := "api.request"
	if status >= 400 {
		action = "api.refused"
	}
	// A key past its limit, or a bad or dead key knocking again and
	// again (never rate limited: it is nobody's), is recorded once per window: a flood must not become a flood
	// of audit rows.
	if status == http.StatusTooManyRequests || status == http.StatusUnauthorized {
		who := c.key.ID
		if who == "" {
			who = "ip:" + remoteIP(c.r)
		}
		now := s.cfg.Clock.Now()
		s.mu.Lock()
		if len(s.refusals) > maxRemembered {
			s.refusals = map[string]time.Time{}
		}
		last, ok := s.refusals[who]
		quiet := ok && now.Sub(last) < s.cfg.RateWindow
		if !quiet {
			s.refusals[who] = now
		}
		s.mu.Unlock()
		if quiet {
			return
		}
	}
	actor := "anonymous"
	if c.key.ID != "" {
		actor = c.actor()
	}
	community := c.community.ID
	if community == "" {
		community = c.key.CommunityID
	}
	d := map[string]any{"key_id": c.key.ID, "method": c.r.Method, "path": c.r.URL.Path, "status": status, "ip": remoteIP(c.r)}
	// The audit's context outlives a client that hung up mid-request.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), 5*time.Second)
	defer cancel()
	if err := s.st.Audit(ctx, nil, store.AuditEntry{CommunityID: community, Actor: actor, Action: action,
		Target: c.r.Method + " " + c.r.URL.Path, Details: d}); err != nil {
		s.log.Error("restapi: unable to write audit entry", logging.Err(err))
	}
}

// announce tells routers and collectors that a community changed.
func (s *Server) announce(communityID string) {
	if s.cfg.Conn == nil {
		return
	}
	if err := s.cfg.Conn.NC.Publish(schemas.ControlCommunity(communityID), nil); err != nil {
		s.log.Warn("restapi: unable to announce a change", logging.KeyCommunity, communityID, logging.Err(err))
		return
	}
	if err := s.cfg.Conn.NC.Flush(); err != nil {
		s.log.Warn("restapi: unable to flush a change notice", logging.KeyCommunity, communityID, logging.Err(err))
	}
}

// decode reads a JSON body into v, refusing unknown fields and trailing
// data.
func (c *call) decode(v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(c.w, c.r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			return fail(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("The body is over %d bytes.", maxBody), nil)
		}
		return fail(http.StatusBadRequest, "bad_json", "The body is not the JSON this endpoint takes: "+err.Error(), nil)
	}
	if dec.More() {
		return fail(http.StatusBadRequest, "bad_json", "The body holds more than one JSON value.", nil)
	}
	return nil
}

func invalid(msg string, fields map[string]any) *apiError {
	return fail(http.StatusUnprocessableEntity, "invalid", msg, fields)
}

// Pagination.

const (
	defaultLimit = 50
	maxLimit     = 200
	maxCursor    = 512
)

type cursor struct {
	After string `json:"a"`
}

func encodeCursor(after string) string {
	b, _ := json.Marshal(cursor{After: after})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a cursor a client sent back; "" is the first page.
func decodeCursor(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) > maxCursor {
		return "", errors.New("cursor too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", errors.New("cursor is not base64url")
	}
	var c cursor
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() || c.After == "" {
		return "", errors.New("cursor is not one this API made")
	}
	return c.After, nil
}

// pageArgs reads ?limit= and ?cursor=.
func (c *call) pageArgs() (int, string, error) {
	q := c.r.URL.Query()
	limit := defaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return 0, "", fail(http.StatusBadRequest, "bad_limit", fmt.Sprintf("limit is a whole number from 1 to %d.", maxLimit), nil)
		}
		limit = n
	}
	after, err := decodeCursor(q.Get("cursor"))
	if err != nil {
		return 0, "", fail(http.StatusBadRequest, "bad_cursor", "The cursor is not one this API gave: "+err.Error()+".", nil)
	}
	return limit, after, nil
}

// listBody is a page of a list.
type listBody[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// page cuts a list sorted by key into the page the request asks for.
func page[T any](c *call, items []T, key func(T) string) (int, any, error) {
	limit, after, err := c.pageArgs()
	if err != nil {
		return 0, nil, err
	}
	out := make([]T, 0, limit)
	next := ""
	for _, it := range items {
		if after != "" && key(it) <= after {
			continue
		}
		if len(out) == limit {
			next = encodeCursor(key(out[len(out)-1]))
			break
		}
		out = append(out, it)
	}
	return http.StatusOK, listBody[T]{Items: out, NextCursor: next}, nil
}

// Rate limits.

type limiter interface {
	allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error)
}

// kvLimiter shares the router's sliding windows, so every replica counts
// one key's requests together.
type kvLimiter struct{ w *coord.Windows }

func (l kvLimiter) allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	d, err := l.w.Allow(ctx, "api."+key, hex.EncodeToString(id), limit, window)
	if err != nil {
		return false, 0, err
	}
	return d.Allowed, d.RetryAfter, nil
}

// memLimiter is the single-replica fallback without NATS.
type memLimiter struct {
	mu   sync.Mutex
	now  func() time.Time
	hits map[string][]time.Time
}

func (l *memLimiter) allow(_ context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	hs := l.hits[key]
	i := 0
	for i < len(hs) && !hs[i].After(now.Add(-window)) {
		i++
	}
	hs = hs[i:]
	if len(hs) >= limit {
		l.hits[key] = hs
		return false, hs[0].Add(window).Sub(now), nil
	}
	l.hits[key] = append(hs, now)
	return true, 0, nil
}

func (s *Server) limit(c *call) error {
	ok, retry, err := s.limiter.allow(c.ctx(), c.key.ID, s.cfg.RateLimit, s.cfg.RateWindow)
	if err != nil {
		// A NATS outage does not take the API down with it: let it through.
		s.log.Warn("restapi: rate limit unavailable", logging.Err(err))
		return nil
	}
	if ok {
		return nil
	}
	secs := int((retry + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return fail(http.StatusTooManyRequests, "rate_limited",
		fmt.Sprintf("This key made %d requests in %s; try again in %d s.", s.cfg.RateLimit, s.cfg.RateWindow, secs),
		map[string]any{"retry_after_seconds": secs, "limit": s.cfg.RateLimit})
}

// remoteIP is the connecting address: a proxy's X-Forwarded-For could be
// forged by anyone who reaches the server directly.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Routes lists the endpoints as method, path under Base and scope (for
// tests and documentation).
func (s *Server) Routes() [][3]string {
	out := make([][3]string, 0, len(s.routes))
	for _, rt := range s.routes {
		out = append(out, [3]string{rt.Method, rt.Path, rt.Scope})
	}
	return out
}
