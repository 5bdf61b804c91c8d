package discordtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Discord's documented limits the fake enforces.
const (
	// MaxContent is the longest message content, in characters.
	MaxContent = 2000
	// MaxNonce is the longest nonce, in characters.
	MaxNonce = 25
	// defaultNonceWindow is how long an enforced nonce returns the message
	// it first created ("the past few minutes" in Discord's documentation).
	defaultNonceWindow = 5 * time.Minute
	// defaultBucketLimit and defaultBucketWindow are generous on purpose:
	// the headers are what the tests look at, and a test that wants a
	// route exhausted uses RateLimitNext or SetBucketLimit.
	defaultBucketLimit  = 50
	defaultBucketWindow = time.Second
)

// Discord JSON error codes the fake answers with.
const (
	CodeUnknownChannel     = 10003
	CodeUnknownWebhook     = 10015
	CodeUnknownInteraction = 10062
	CodeMissingPermissions = 50013
	CodeInvalidFormBody    = 50035
	CodeEmptyMessage       = 50006
)

// Member is a guild member GET /guilds/{guild}/members/{user} and GET
// /guilds/{guild}/members/search answer (the user's roles, nick and
// timeout).
type Member struct {
	User                       User
	Nick                       string
	Roles                      []string
	JoinedAt                   time.Time
	CommunicationDisabledUntil time.Time
}

func (m Member) payload() map[string]any {
	roles := m.Roles
	if roles == nil {
		roles = []string{}
	}
	joined := m.JoinedAt
	if joined.IsZero() {
		joined = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	p := map[string]any{"user": m.User.payload(), "roles": roles, "joined_at": joined.Format(time.RFC3339Nano),
		"deaf": false, "mute": false, "communication_disabled_until": nil}
	if m.Nick != "" {
		p["nick"] = m.Nick
	}
	if !m.CommunicationDisabledUntil.IsZero() {
		p["communication_disabled_until"] = m.CommunicationDisabledUntil.Format(time.RFC3339Nano)
	}
	return p
}

// MessageReference makes a message a reply.
type MessageReference struct {
	MessageID       string `json:"message_id,omitempty"`
	ChannelID       string `json:"channel_id,omitempty"`
	GuildID         string `json:"guild_id,omitempty"`
	FailIfNotExists *bool  `json:"fail_if_not_exists,omitempty"`
}

// AllowedMentions says which mentions in the content may notify.
type AllowedMentions struct {
	Parse       []string `json:"parse"`
	Roles       []string `json:"roles,omitempty"`
	Users       []string `json:"users,omitempty"`
	RepliedUser bool     `json:"replied_user,omitempty"`
}

// SentMessage is a message the fake created through Create Message
// (channel or DM).
type SentMessage struct {
	ID, ChannelID, Content string
	Nonce                  string
	EnforceNonce           bool
	Reference              *MessageReference
	// AllowedMentions is nil when the request had none (Discord then
	// notifies for every mention in the content, @everyone included).
	AllowedMentions *AllowedMentions
	Flags           int
	// Body is the request body as sent.
	Body []byte
}

// Choice is an autocomplete choice.
type Choice struct {
	Name  string `json:"name"`
	Value any    `json:"value"`
}

// Callback is an interaction response (POST /interactions/{id}/{token}/callback).
type Callback struct {
	InteractionID, Token string
	// Type: 4 message, 5 deferred message, 8 autocomplete result…
	Type    int
	Flags   int
	Content string
	Choices []Choice
	Body    []byte
}

// Webhook message kinds.
const (
	WebhookEditOriginal = "edit_original" // PATCH …/messages/@original
	WebhookFollowup     = "followup"      // POST /webhooks/{app}/{token}
	// WebhookDeleteOriginal is DELETE …/messages/@original (no content).
	WebhookDeleteOriginal = "delete_original"
)

// WebhookMessage is an interaction follow-up or an edit of the original
// (deferred) response.
type WebhookMessage struct {
	Kind            string
	AppID, Token    string
	MessageID       string
	Content         string
	Flags           int
	AllowedMentions *AllowedMentions
	Body            []byte
}

// Command is an application command as registered.
type Command struct {
	ID            string          `json:"id"`
	ApplicationID string          `json:"application_id"`
	Name          string          `json:"name"`
	Description   string          `json:"description"`
	Type          int             `json:"type,omitempty"`
	Options       []CommandOption `json:"options,omitempty"`
}

// CommandOption is an application command option.
type CommandOption struct {
	Type         int    `json:"type"`
	Name         string `json:"name"`
	Description  string `json:"description"`
	Required     bool   `json:"required,omitempty"`
	Autocomplete bool   `json:"autocomplete,omitempty"`
}

// Request is one request the fake's API answered (for counting).
type Request struct {
	Method, Path string
	Status       int
}

// restState is the REST part of the fake (owned by rest.go). Guarded by
// Server.mu.
type restState struct {
	nextSnowflake int64
	shards        int
	requests      []Request

	members map[string]map[string]Member // guild → user → member

	messages    []SentMessage
	nonces      map[string]nonceEntry // nonce → message it created
	nonceWindow time.Duration
	dmChannels  map[string]string // user → DM channel id

	commands    []Command
	commandPuts int
	callbacks   []Callback
	answered    map[string]bool // interaction tokens with a response
	webhook     []WebhookMessage
	deleted     map[string]bool // interaction tokens whose original response was deleted

	buckets      map[string]*bucket
	bucketLimit  int
	bucketWindow time.Duration
	rateLimits   []rateLimit
	failures     []int

	nextAuthorize string
	codes         map[string]authCode
	// nextToken, when set, shapes the next token answer (NextTokenAnswer).
	nextToken *tokenAnswer
	// nextInstaller consents on the next authorize (NextInstaller); the
	// guild's owner when unset.
	nextInstaller *User
	userTokens    map[string]User // OAuth2 access token → the user who granted it
}

// tokenAnswer is how the next POST /oauth2/token answers differently from
// what the authorize page granted.
type tokenAnswer struct {
	withGuild bool
	scope     string
}

type nonceEntry struct {
	msg SentMessage
	at  time.Time
}

type bucket struct {
	count int
	start time.Time
}

type rateLimit struct {
	retryAfter time.Duration
	global     bool
}

type authCode struct {
	guildID, redirectURI, scope string
	user                        User // who consented
}

func (s *Server) routeREST(mux *http.ServeMux) {
	s.shards = 1
	s.nextSnowflake = 300000000000000000
	s.members = map[string]map[string]Member{}
	s.nonces = map[string]nonceEntry{}
	s.nonceWindow = defaultNonceWindow
	s.dmChannels = map[string]string{}
	s.answered = map[string]bool{}
	s.deleted = map[string]bool{}
	s.buckets = map[string]*bucket{}
	s.bucketLimit = defaultBucketLimit
	s.bucketWindow = defaultBucketWindow
	s.codes = map[string]authCode{}
	s.userTokens = map[string]User{}

	const api = "/api/v9"
	bot := func(pattern, bucketRoute string, major string, h http.HandlerFunc) {
		mux.Handle(pattern, s.api(true, bucketRoute, major, h))
	}
	open := func(pattern, bucketRoute string, major string, h http.HandlerFunc) {
		mux.Handle(pattern, s.api(false, bucketRoute, major, h))
	}
	bot("GET "+api+"/gateway", "gateway", "", s.serveGatewayURL)
	bot("GET "+api+"/gateway/bot", "gateway/bot", "", s.serveGatewayBot)
	// Get Current User answers the bot token and users' OAuth2 tokens.
	open("GET "+api+"/users/@me", "users/@me", "", s.serveMe)
	bot("POST "+api+"/users/@me/channels", "users/@me/channels", "", s.serveCreateDM)
	bot("GET "+api+"/guilds/{guild}", "guilds", "guild", s.serveGuild)
	bot("GET "+api+"/guilds/{guild}/roles", "guilds/roles", "guild", s.serveRoles)
	bot("GET "+api+"/guilds/{guild}/members/{user}", "guilds/members", "guild", s.serveMember)
	bot("GET "+api+"/guilds/{guild}/members/search", "guilds/members/search", "guild", s.serveMemberSearch)
	bot("POST "+api+"/channels/{channel}/messages", "channels/messages", "channel", s.serveCreateMessage)
	bot("PUT "+api+"/applications/{app}/commands", "applications/commands", "app", s.serveBulkCommands)
	bot("GET "+api+"/applications/{app}/commands", "applications/commands/get", "app", s.serveListCommands)
	// Interaction and webhook routes are authorized by the interaction
	// token in the path, not by the bot token.
	open("POST "+api+"/interactions/{id}/{token}/callback", "interactions/callback", "id", s.serveCallback)
	open("PATCH "+api+"/webhooks/{app}/{token}/messages/{message}", "webhooks/messages", "token", s.serveEditOriginal)
	open("DELETE "+api+"/webhooks/{app}/{token}/messages/{message}", "webhooks/messages/delete", "token", s.serveDeleteOriginal)
	open("POST "+api+"/webhooks/{app}/{token}", "webhooks", "token", s.serveFollowup)
	open("POST "+api+"/oauth2/token", "oauth2/token", "", s.serveToken)
	// The authorize page is a browser's: both the API path and the site
	// path lead to it, like Discord's.
	mux.HandleFunc("GET "+api+"/oauth2/authorize", s.serveAuthorize)
	mux.HandleFunc("GET /oauth2/authorize", s.serveAuthorize)
}

// api wraps a handler with what every API route does: the bot token
// check, the failure and rate-limit hooks, and the X-RateLimit headers of
// the route's bucket (per its major parameter).
func (s *Server) api(needBot bool, route, major string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			s.mu.Lock()
			s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Status: rec.status})
			s.mu.Unlock()
		}()
		if needBot && r.Header.Get("Authorization") != "Bot "+s.BotToken {
			WriteError(rec, http.StatusUnauthorized, 0, "401: Unauthorized")
			return
		}
		key := route
		if major != "" {
			key += ":" + r.PathValue(major)
		}
		s.mu.Lock()
		var failStatus int
		if len(s.failures) > 0 {
			failStatus, s.failures = s.failures[0], s.failures[1:]
		}
		var limited *rateLimit
		if failStatus == 0 && len(s.rateLimits) > 0 {
			rl := s.rateLimits[0]
			s.rateLimits = s.rateLimits[1:]
			limited = &rl
		}
		b := s.buckets[key]
		now := time.Now()
		if b == nil || now.Sub(b.start) >= s.bucketWindow {
			b = &bucket{start: now}
			s.buckets[key] = b
		}
		limit, window := s.bucketLimit, s.bucketWindow
		exhausted := b.count >= limit
		if limited == nil && !exhausted && failStatus == 0 {
			b.count++
		}
		remaining := max(limit-b.count, 0)
		resetAfter := window - now.Sub(b.start)
		s.mu.Unlock()

		hash := bucketHash(route)
		if limited == nil || !limited.global {
			setBucketHeaders(rec.Header(), hash, limit, remaining, now, resetAfter)
		}
		switch {
		case failStatus != 0:
			code, msg := failureBody(failStatus)
			WriteError(rec, failStatus, code, msg)
		case limited != nil:
			if !limited.global {
				setBucketHeaders(rec.Header(), hash, limit, 0, now, limited.retryAfter)
			}
			writeRateLimited(rec, limited.retryAfter, limited.global)
		case exhausted:
			writeRateLimited(rec, resetAfter, false)
		default:
			h(rec, r)
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// bucketHash stands for the opaque bucket id Discord sends.
func bucketHash(route string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(route); i++ {
		h = (h ^ uint32(route[i])) * 16777619
	}
	return fmt.Sprintf("%08x", h)
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(math.Max(d.Seconds(), 0), 'f', 3, 64)
}

func setBucketHeaders(h http.Header, hash string, limit, remaining int, now time.Time, resetAfter time.Duration) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	reset := now.Add(resetAfter)
	h.Set("X-RateLimit-Reset", strconv.FormatFloat(float64(reset.UnixMilli())/1000, 'f', 3, 64))
	h.Set("X-RateLimit-Reset-After", seconds(resetAfter))
	h.Set("X-RateLimit-Bucket", hash)
}

// writeRateLimited answers 429 as Discord documents: retry_after in
// seconds (a float) in the body, Retry-After in whole seconds, and
// X-RateLimit-Global / X-RateLimit-Scope.
func writeRateLimited(w http.ResponseWriter, retryAfter time.Duration, global bool) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	scope := "user"
	if global {
		w.Header().Set("X-RateLimit-Global", "true")
		scope = "global"
	}
	w.Header().Set("X-RateLimit-Scope", scope)
	WriteJSON(w, http.StatusTooManyRequests, map[string]any{
		"message":     "You are being rate limited.",
		"retry_after": math.Round(retryAfter.Seconds()*1000) / 1000,
		"global":      global,
	})
}

// failureBody is the JSON error Discord answers a status with.
func failureBody(status int) (int, string) {
	switch status {
	case http.StatusUnauthorized:
		return 0, "401: Unauthorized"
	case http.StatusForbidden:
		return CodeMissingPermissions, "Missing Permissions"
	case http.StatusNotFound:
		return CodeUnknownChannel, "Unknown Channel"
	case http.StatusBadRequest:
		return CodeInvalidFormBody, "Invalid Form Body"
	default:
		return 0, http.StatusText(status)
	}
}

func (s *Server) snowflakeLocked() string {
	s.nextSnowflake++
	return strconv.FormatInt(s.nextSnowflake, 10)
}

// --- hooks -----------------------------------------------------------------

// SetShards sets the shard count GET /gateway/bot recommends.
func (s *Server) SetShards(n int) {
	s.mu.Lock()
	s.shards = n
	s.mu.Unlock()
}

// AddRole adds a role to a guild added before with AddGuild.
func (s *Server) AddRole(guildID string, r Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.guilds {
		if s.guilds[i].ID == guildID {
			s.guilds[i].Roles = append(s.guilds[i].Roles, r)
			return
		}
	}
	s.t.Errorf("discordtest: AddRole for unknown guild %s", guildID)
}

// AddMember adds a member to a guild.
func (s *Server) AddMember(guildID string, m Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members[guildID] == nil {
		s.members[guildID] = map[string]Member{}
	}
	s.members[guildID][m.User.ID] = m
}

// RateLimitNext answers the next n API requests with 429: per route (the
// route's bucket headers with Remaining 0) or, with global, the bot's
// global limit (X-RateLimit-Global, no bucket headers).
func (s *Server) RateLimitNext(n int, retryAfter time.Duration, global bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.rateLimits = append(s.rateLimits, rateLimit{retryAfter: retryAfter, global: global})
	}
}

// FailNext answers the next n API requests with status and Discord's
// error body for it (403 Missing Permissions 50013, 404 Unknown Channel
// 10003, 401 Unauthorized, …). Failures come before rate limits.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, status)
	}
}

// SetBucketLimit changes every route bucket's limit and window.
func (s *Server) SetBucketLimit(limit int, window time.Duration) {
	s.mu.Lock()
	s.bucketLimit, s.bucketWindow = limit, window
	s.mu.Unlock()
}

// NextAuthorize sets the guild the next GET /oauth2/authorize installs
// into (the guild the user picks on Discord's page).
func (s *Server) NextAuthorize(guildID string) {
	s.mu.Lock()
	s.nextAuthorize = guildID
	s.mu.Unlock()
}

// NextTokenAnswer makes the next successful POST /oauth2/token answer
// carry scope as its granted scope, and a guild object only when withGuild
// (an install Discord did not confirm: the user unticked the bot, or the
// grant is not a bot install).
func (s *Server) NextTokenAnswer(withGuild bool, scope string) {
	s.mu.Lock()
	s.nextToken = &tokenAnswer{withGuild: withGuild, scope: scope}
	s.mu.Unlock()
}

// Messages are the messages created, in order (a repeated enforced nonce
// creates none).
func (s *Server) Messages() []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SentMessage(nil), s.messages...)
}

// DMChannel is the DM channel opened with a user ("" when none).
func (s *Server) DMChannel(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dmChannels[userID]
}

// Commands are the global commands registered last.
func (s *Server) Commands() []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Command(nil), s.commands...)
}

// CommandPuts counts bulk overwrites.
func (s *Server) CommandPuts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commandPuts
}

// Callbacks are the interaction responses received.
func (s *Server) Callbacks() []Callback {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Callback(nil), s.callbacks...)
}

// Followups are the edits of original responses and the follow-ups.
func (s *Server) Followups() []WebhookMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]WebhookMessage(nil), s.webhook...)
}

// Requests are the API requests answered (any status), in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// CountRequests counts the requests with a method and path.
func (s *Server) CountRequests(method, path string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// --- handlers --------------------------------------------------------------

func (s *Server) serveGatewayURL(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]any{"url": s.GatewayURL()})
}

func (s *Server) serveGatewayBot(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	shards := s.shards
	s.mu.Unlock()
	WriteJSON(w, http.StatusOK, map[string]any{
		"url":    s.GatewayURL(),
		"shards": shards,
		"session_start_limit": map[string]any{
			"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1,
		},
	})
}

func (s *Server) botUser() map[string]any {
	return User{ID: s.AppID, Username: "WaddleBot", Bot: true}.payload()
}

func (s *Server) serveMe(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	if auth == "Bot "+s.BotToken {
		WriteJSON(w, http.StatusOK, s.botUser())
		return
	}
	s.mu.Lock()
	u, ok := s.userTokens[strings.TrimPrefix(auth, "Bearer ")]
	s.mu.Unlock()
	if !ok || !strings.HasPrefix(auth, "Bearer ") {
		WriteError(w, http.StatusUnauthorized, 0, "401: Unauthorized")
		return
	}
	WriteJSON(w, http.StatusOK, u.payload())
}

// NextInstaller sets who consents on the next GET /oauth2/authorize (by
// default the owner of the guild installed into).
func (s *Server) NextInstaller(u User) {
	s.mu.Lock()
	s.nextInstaller = &u
	s.mu.Unlock()
}

// guildLocked finds a guild added with AddGuild.
func (s *Server) guildLocked(id string) (Guild, bool) {
	for _, g := range s.guilds {
		if g.ID == id {
			return g, true
		}
	}
	return Guild{}, false
}

// guildPayload is a guild object as GET /guilds/{id} and the OAuth2 token
// answer carry it: GUILD_CREATE's fields without the gateway-only ones.
func guildPayload(g Guild) map[string]any {
	p := GuildCreate(g)
	for _, k := range []string{"channels", "threads", "members", "joined_at", "member_count", "unavailable"} {
		delete(p, k)
	}
	return p
}

func (s *Server) serveGuild(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	g, ok := s.guildLocked(r.PathValue("guild"))
	s.mu.Unlock()
	if !ok {
		WriteError(w, http.StatusNotFound, 10004, "Unknown Guild")
		return
	}
	WriteJSON(w, http.StatusOK, guildPayload(g))
}

func (s *Server) serveRoles(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	g, ok := s.guildLocked(r.PathValue("guild"))
	s.mu.Unlock()
	if !ok {
		WriteError(w, http.StatusNotFound, 10004, "Unknown Guild")
		return
	}
	WriteJSON(w, http.StatusOK, guildPayload(g)["roles"])
}

func (s *Server) serveMember(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	m, ok := s.members[r.PathValue("guild")][r.PathValue("user")]
	s.mu.Unlock()
	if !ok {
		WriteError(w, http.StatusNotFound, 10007, "Unknown Member")
		return
	}
	WriteJSON(w, http.StatusOK, m.payload())
}

// Search Guild Members' bounds on limit (documented: default 1, 1–1000).
const (
	defaultSearchLimit = 1
	maxSearchLimit     = 1000
)

// serveMemberSearch is Search Guild Members: the members of a guild whose
// username or nickname starts with query (case-insensitively, as
// Discord's documentation describes it), at most limit of them, as guild
// member objects.
func (s *Server) serveMemberSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := q.Get("query")
	if !q.Has("query") {
		writeFormError(w, "query", "This field is required")
		return
	}
	limit := defaultSearchLimit
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxSearchLimit {
			writeFormError(w, "limit", "int value should be between 1 and 1000")
			return
		}
		limit = n
	}
	s.mu.Lock()
	members := s.members[r.PathValue("guild")]
	ids := make([]string, 0, len(members))
	for id := range members {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if len(ids[i]) != len(ids[j]) {
			return len(ids[i]) < len(ids[j])
		}
		return ids[i] < ids[j]
	})
	out := []map[string]any{}
	prefix := strings.ToLower(query)
	for _, id := range ids {
		if len(out) >= limit {
			break
		}
		m := members[id]
		if strings.HasPrefix(strings.ToLower(m.User.Username), prefix) ||
			(m.Nick != "" && strings.HasPrefix(strings.ToLower(m.Nick), prefix)) {
			out = append(out, m.payload())
		}
	}
	s.mu.Unlock()
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) serveCreateDM(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RecipientID string `json:"recipient_id"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if body.RecipientID == "" {
		writeFormError(w, "recipient_id", "This field is required")
		return
	}
	s.mu.Lock()
	id, ok := s.dmChannels[body.RecipientID]
	if !ok {
		id = s.snowflakeLocked()
		s.dmChannels[body.RecipientID] = id
	}
	s.mu.Unlock()
	WriteJSON(w, http.StatusOK, map[string]any{
		"id": id, "type": 1, "recipients": []any{User{ID: body.RecipientID, Username: "user" + body.RecipientID}.payload()},
	})
}

// messageBody is Create Message's (and Execute Webhook's) JSON body.
type messageBody struct {
	Content         string            `json:"content"`
	Nonce           json.RawMessage   `json:"nonce,omitempty"`
	EnforceNonce    bool              `json:"enforce_nonce,omitempty"`
	Reference       *MessageReference `json:"message_reference,omitempty"`
	AllowedMentions *AllowedMentions  `json:"allowed_mentions,omitempty"`
	Flags           int               `json:"flags,omitempty"`
	Embeds          []json.RawMessage `json:"embeds,omitempty"`
}

// check validates the content as Discord does; it writes the error.
func (b *messageBody) check(w http.ResponseWriter) bool {
	if b.Content == "" && len(b.Embeds) == 0 {
		WriteError(w, http.StatusBadRequest, CodeEmptyMessage, "Cannot send an empty message")
		return false
	}
	if utf8.RuneCountInString(b.Content) > MaxContent {
		writeFormError(w, "content", fmt.Sprintf("Must be %d or fewer in length.", MaxContent))
		return false
	}
	return true
}

// nonce is the nonce as a string (Discord takes an integer or a string).
func (b *messageBody) nonce() (string, bool) {
	if len(b.Nonce) == 0 || string(b.Nonce) == "null" {
		return "", true
	}
	var str string
	if err := json.Unmarshal(b.Nonce, &str); err == nil {
		return str, utf8.RuneCountInString(str) <= MaxNonce
	}
	var n json.Number
	if err := json.Unmarshal(b.Nonce, &n); err == nil {
		return n.String(), len(n.String()) <= MaxNonce
	}
	return "", false
}

func (s *Server) serveCreateMessage(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	var body messageBody
	if err := json.Unmarshal(raw, &body); err != nil {
		WriteError(w, http.StatusBadRequest, CodeInvalidFormBody, "Invalid Form Body")
		return
	}
	if !body.check(w) {
		return
	}
	nonce, ok := body.nonce()
	if !ok {
		writeFormError(w, "nonce", "Must be 25 or fewer in length.")
		return
	}
	channel := r.PathValue("channel")
	s.mu.Lock()
	defer s.mu.Unlock()
	// enforce_nonce: the same author's nonce within the window returns the
	// message it created instead of a new one.
	if body.EnforceNonce && nonce != "" {
		if e, ok := s.nonces[nonce]; ok && time.Since(e.at) < s.nonceWindow {
			WriteJSON(w, http.StatusOK, s.messageJSON(e.msg))
			return
		}
	}
	m := SentMessage{
		ID: s.snowflakeLocked(), ChannelID: channel, Content: body.Content, Nonce: nonce,
		EnforceNonce: body.EnforceNonce, Reference: body.Reference, AllowedMentions: body.AllowedMentions,
		Flags: body.Flags, Body: raw,
	}
	s.messages = append(s.messages, m)
	if body.EnforceNonce && nonce != "" {
		s.nonces[nonce] = nonceEntry{msg: m, at: time.Now()}
	}
	WriteJSON(w, http.StatusOK, s.messageJSON(m))
}

func (s *Server) messageJSON(m SentMessage) map[string]any {
	out := map[string]any{
		"id": m.ID, "channel_id": m.ChannelID, "content": m.Content, "type": 0,
		"author": s.botUser(), "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"tts": false, "mention_everyone": false, "mentions": []any{}, "mention_roles": []any{},
		"attachments": []any{}, "embeds": []any{}, "pinned": false, "flags": m.Flags,
	}
	if m.Nonce != "" {
		out["nonce"] = m.Nonce
	}
	if m.Reference != nil {
		out["type"] = 19 // REPLY
		out["message_reference"] = m.Reference
	}
	return out
}

func (s *Server) serveBulkCommands(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("app") != s.AppID {
		WriteError(w, http.StatusForbidden, CodeMissingPermissions, "Missing Access")
		return
	}
	var cmds []Command
	if !readJSON(w, r, &cmds) {
		return
	}
	for i, c := range cmds {
		if c.Name == "" || c.Description == "" && (c.Type == 0 || c.Type == 1) {
			writeFormError(w, strconv.Itoa(i), "name and description are required")
			return
		}
	}
	s.mu.Lock()
	// A bulk overwrite keeps the ids of commands whose names are unchanged.
	old := map[string]string{}
	for _, c := range s.commands {
		old[c.Name] = c.ID
	}
	for i := range cmds {
		cmds[i].ApplicationID = s.AppID
		if id, ok := old[cmds[i].Name]; ok {
			cmds[i].ID = id
		} else {
			cmds[i].ID = s.snowflakeLocked()
		}
	}
	s.commands = cmds
	s.commandPuts++
	s.mu.Unlock()
	WriteJSON(w, http.StatusOK, cmds)
}

func (s *Server) serveListCommands(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, s.Commands())
}

func (s *Server) serveCallback(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	var body struct {
		Type int `json:"type"`
		Data *struct {
			Content string   `json:"content"`
			Flags   int      `json:"flags"`
			Choices []Choice `json:"choices"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Type == 0 {
		WriteError(w, http.StatusBadRequest, CodeInvalidFormBody, "Invalid Form Body")
		return
	}
	cb := Callback{InteractionID: r.PathValue("id"), Token: r.PathValue("token"), Type: body.Type, Body: raw}
	if body.Data != nil {
		cb.Content, cb.Flags, cb.Choices = body.Data.Content, body.Data.Flags, body.Data.Choices
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.answered[cb.Token] {
		WriteError(w, http.StatusBadRequest, 40060, "Interaction has already been acknowledged.")
		return
	}
	s.answered[cb.Token] = true
	s.callbacks = append(s.callbacks, cb)
	w.WriteHeader(http.StatusNoContent)
}

// webhookTarget checks that a webhook request is for this application and
// an interaction that was answered.
func (s *Server) webhookTargetLocked(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("app") != s.AppID || !s.answered[r.PathValue("token")] {
		WriteError(w, http.StatusNotFound, CodeUnknownWebhook, "Unknown Webhook")
		return false
	}
	return true
}

func (s *Server) serveEditOriginal(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("message") != "@original" {
		WriteError(w, http.StatusNotFound, 10008, "Unknown Message")
		return
	}
	s.serveWebhookMessage(w, r, WebhookEditOriginal)
}

// serveDeleteOriginal deletes the original (deferred) response: once;
// then it, and editing it, are 404 Unknown Message.
func (s *Server) serveDeleteOriginal(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.webhookTargetLocked(w, r) {
		return
	}
	token := r.PathValue("token")
	if r.PathValue("message") != "@original" || s.deleted[token] {
		WriteError(w, http.StatusNotFound, 10008, "Unknown Message")
		return
	}
	s.deleted[token] = true
	s.webhook = append(s.webhook, WebhookMessage{Kind: WebhookDeleteOriginal, AppID: r.PathValue("app"), Token: token, MessageID: "@original"})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) serveFollowup(w http.ResponseWriter, r *http.Request) {
	s.serveWebhookMessage(w, r, WebhookFollowup)
}

func (s *Server) serveWebhookMessage(w http.ResponseWriter, r *http.Request, kind string) {
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	var body messageBody
	if err := json.Unmarshal(raw, &body); err != nil {
		WriteError(w, http.StatusBadRequest, CodeInvalidFormBody, "Invalid Form Body")
		return
	}
	if !body.check(w) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.webhookTargetLocked(w, r) {
		return
	}
	if kind == WebhookEditOriginal && s.deleted[r.PathValue("token")] {
		WriteError(w, http.StatusNotFound, 10008, "Unknown Message")
		return
	}
	wm := WebhookMessage{Kind: kind, AppID: r.PathValue("app"), Token: r.PathValue("token"),
		Content: body.Content, Flags: body.Flags, AllowedMentions: body.AllowedMentions, Body: raw}
	if kind == WebhookEditOriginal {
		wm.MessageID = "@original"
	} else {
		wm.MessageID = s.snowflakeLocked()
	}
	s.webhook = append(s.webhook, wm)
	id := wm.MessageID
	if id == "@original" {
		id = "original-" + wm.Token
	}
	WriteJSON(w, http.StatusOK, s.messageJSON(SentMessage{ID: id, Content: wm.Content, Flags: wm.Flags}))
}

// --- OAuth2 ----------------------------------------------------------------

// AuthorizeURL is the fake's consent page (like https://discord.com/oauth2/authorize).
func (s *Server) AuthorizeURL() string { return s.HTTP.URL + "/oauth2/authorize" }

// serveAuthorize plays the user who consents on Discord's page: it sends
// the browser back to redirect_uri with a code, the state and the guild
// chosen with NextAuthorize.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if q.Get("client_id") != s.AppID || q.Get("response_type") != "code" || err != nil || redirect.Scheme == "" {
		http.Error(w, "invalid OAuth2 request: client_id, response_type=code and redirect_uri are required", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	guild := s.nextAuthorize
	code := "code-" + s.snowflakeLocked()
	user := User{ID: "400000000000000000", Username: "installer"}
	if g, ok := s.guildLocked(guild); ok && g.OwnerID != "" {
		user = User{ID: g.OwnerID, Username: "owner"}
	}
	if s.nextInstaller != nil {
		user, s.nextInstaller = *s.nextInstaller, nil
	}
	s.codes[code] = authCode{guildID: guild, redirectURI: q.Get("redirect_uri"), scope: q.Get("scope"), user: user}
	s.mu.Unlock()
	back := redirect.Query()
	back.Set("code", code)
	back.Set("state", q.Get("state"))
	if guild != "" && strings.Contains(q.Get("scope"), "bot") {
		back.Set("guild_id", guild)
		back.Set("permissions", q.Get("permissions"))
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != s.AppID || secret != s.ClientSecret {
		WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	code := r.PostForm.Get("code")
	s.mu.Lock()
	grant, ok := s.codes[code]
	delete(s.codes, code) // a code is good once
	guild, known := s.guildLocked(grant.guildID)
	token := "access-" + s.snowflakeLocked()
	valid := ok && r.PostForm.Get("redirect_uri") == grant.redirectURI
	if valid {
		s.userTokens[token] = grant.user
	}
	shape := s.nextToken
	if valid {
		s.nextToken = nil // the shape is for one answer
	}
	s.mu.Unlock()
	if !valid {
		WriteJSON(w, http.StatusBadRequest, map[string]string{
			"error": "invalid_grant", "error_description": `Invalid "code" in request.`})
		return
	}
	withGuild, scope := true, grant.scope
	if shape != nil {
		withGuild, scope = shape.withGuild, shape.scope
	}
	out := map[string]any{
		"access_token": token, "token_type": "Bearer", "expires_in": 604800,
		"refresh_token": "refresh-" + token, "scope": scope,
	}
	if grant.guildID != "" && withGuild {
		if !known {
			guild = Guild{ID: grant.guildID, Name: "guild " + grant.guildID}
		}
		out["guild"] = guildPayload(guild)
	}
	WriteJSON(w, http.StatusOK, out)
}

// --- helpers ---------------------------------------------------------------

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		WriteError(w, http.StatusBadRequest, 50109, "The request body contains invalid JSON.")
		return nil, false
	}
	return raw, true
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	raw, ok := readBody(w, r)
	if !ok {
		return false
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	if err := d.Decode(v); err != nil {
		WriteError(w, http.StatusBadRequest, 50109, "The request body contains invalid JSON.")
		return false
	}
	return true
}

// writeFormError writes Discord's 50035 with its nested errors object.
func writeFormError(w http.ResponseWriter, field, message string) {
	WriteJSON(w, http.StatusBadRequest, map[string]any{
		"code": CodeInvalidFormBody, "message": "Invalid Form Body",
		"errors": map[string]any{field: map[string]any{"_errors": []map[string]string{
			{"code": "BASE_TYPE_INVALID", "message": message},
		}}},
	})
}
