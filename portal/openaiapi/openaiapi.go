// Package openaiapi is WaddleBot's OpenAI-compatible endpoint on the shared
// HTTP server: POST /v1/chat/completions (plain JSON, or Server-Sent Events
// with "stream": true) and GET /v1/models. Tools outside chat (an editor
// plugin, a script using an OpenAI SDK) reach the model a community
// configured for the AI module with one of the portal's API keys
// (Authorization: Bearer wbk_…, scope ai), within the community's budget.
//
// The keys are admitted by portal/restapi (authentication, per-key request
// window, last-used, audit) and the model is resolved by actions/ai (the
// community's settings over the operator's defaults, secrets from the
// store), so neither is repeated here; this package only speaks OpenAI's
// wire format, including its error body {"error":{"message","type","code"}}.
package openaiapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/waddlebot/waddlebot/actions/ai"
	"github.com/waddlebot/waddlebot/actions/ai/provider"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/portal/restapi"
	"github.com/waddlebot/waddlebot/schemas"
)

// Base is where the endpoint lives, where OpenAI clients expect it.
const Base = "/v1"

// maxBody bounds a request body: a long conversation fits, a flood does not.
const maxBody = 1 << 20

// maxMessages bounds the turns of one request.
const maxMessages = 500

// Config configures the endpoint.
type Config struct {
	Store *store.Store
	// API admits the keys, exactly as /api/v1 does.
	API *restapi.Server
	// Models resolves a community's model as the AI module does.
	Models *ai.Resolver
	Clock  clock.Clock
	Logger *slog.Logger
}

// Server serves /v1.
type Server struct {
	cfg Config
	mux *http.ServeMux
	log *slog.Logger
}

// New builds the endpoint.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.API == nil || cfg.Models == nil {
		return nil, errors.New("openaiapi: needs a Store, the REST API and a model resolver")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With(logging.KeyPart, "openaiapi")}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST "+Base+"/chat/completions", s.admitted(s.chat))
	s.mux.HandleFunc("GET "+Base+"/models", s.admitted(s.models))
	s.mux.HandleFunc(Base+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: typeInvalid, Code: "unknown_url",
			Message: "Unknown request URL: " + r.Method + " " + r.URL.Path + ". This server has POST /v1/chat/completions and GET /v1/models."})
	})
	return s, nil
}

// ServeHTTP serves every /v1 route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// OpenAI's error types.
const (
	typeInvalid    = "invalid_request_error"
	typeAuth       = "authentication_error"
	typePermission = "permission_error"
	typeRate       = "rate_limit_error"
	typeQuota      = "insufficient_quota"
	typeAPI        = "api_error"
)

// apiError is an answer in OpenAI's error shape.
type apiError struct {
	Status     int
	Type, Code string
	Message    string
	RetryAfter int
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

type errorBody struct {
	Error errorInfo `json:"error"`
}

type errorInfo struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, errorBody{Error: errorInfo{Message: e.Message, Type: e.Type, Code: e.Code}})
}

// request is one admitted request: its key's community and that
// community's model.
type request struct {
	w         http.ResponseWriter
	r         *http.Request
	key       store.APIKey
	community schemas.Community
	model     ai.Model
}

// admitted admits the key (restapi), finds its community and model, runs h
// and audits the outcome.
func (s *Server) admitted(h func(q *request) *apiError) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		caller, rf := s.cfg.API.Admit(w, r, store.ScopeAI)
		status := http.StatusOK
		var e *apiError
		if rf != nil {
			if rf.Err != nil {
				s.log.Error("openaiapi: unable to admit a key", logging.Err(rf.Err))
			}
			e = refusal(rf)
		} else {
			q := &request{w: w, r: r, key: caller.Key()}
			e = s.load(q, caller.User())
			if e == nil {
				e = h(q)
			}
		}
		if e != nil {
			status = e.Status
			if e.Status > 0 {
				writeError(w, e)
			} else {
				// Status 0: the failure came after a stream began, and was
				// told in the stream; audit it as a gateway failure.
				status = http.StatusBadGateway
			}
		}
		s.cfg.API.Finish(caller, status)
	}
}

// refusal turns restapi's refusal into OpenAI's shape.
func refusal(rf *restapi.Refusal) *apiError {
	e := &apiError{Status: rf.Status, Code: rf.Code, Message: rf.Message, RetryAfter: rf.RetryAfter}
	switch rf.Status {
	case http.StatusUnauthorized:
		// What OpenAI answers a wrong key with, which SDKs turn into an
		// AuthenticationError.
		e.Type, e.Code = typeAuth, "invalid_api_key"
	case http.StatusForbidden:
		e.Type = typePermission
	case http.StatusTooManyRequests:
		e.Type, e.Code = typeRate, "rate_limit_exceeded"
	default:
		e.Type = typeAPI
	}
	return e
}

// load finds the key's community and model. A site-wide key has no
// community and so no model: it is refused.
func (s *Server) load(q *request, owner store.PortalUser) *apiError {
	ctx := q.r.Context()
	if q.key.CommunityID == "" {
		return &apiError{Status: http.StatusForbidden, Type: typePermission, Code: "community_key_required",
			Message: "This is a site-wide key; the OpenAI-compatible endpoint answers with a community's model, so it needs a key that belongs to a community."}
	}
	com, err := s.cfg.Store.Community(ctx, q.key.CommunityID)
	if errors.Is(err, store.ErrNotFound) {
		return &apiError{Status: http.StatusForbidden, Type: typePermission, Code: "community_gone", Message: "This key's community no longer exists."}
	}
	if err != nil {
		return s.internal("read the community", err)
	}
	q.community = com
	// A key never outlives its owner's membership.
	role, err := s.cfg.Store.MemberRole(ctx, com.ID, owner.ID)
	if err != nil {
		return s.internal("read the membership", err)
	}
	if role == "" && !owner.SuperAdmin {
		return &apiError{Status: http.StatusForbidden, Type: typePermission, Code: "not_a_member",
			Message: "The key's owner is no longer a member of its community."}
	}
	mods, err := s.cfg.Store.CommunityModules(ctx, com.ID)
	if err != nil {
		return s.internal("read the community's modules", err)
	}
	choice, ok := mods[ai.Name]
	if !ok {
		choice.Enabled = ai.Manifest().DefaultEnabled
	}
	if !choice.Enabled {
		return &apiError{Status: http.StatusForbidden, Type: typePermission, Code: "ai_disabled",
			Message: "AI is turned off for this community; an owner or admin turns the ai module on in the portal."}
	}
	mdl, err := s.cfg.Models.Community(ctx, com.ID, choice.Settings)
	if err != nil {
		s.log.Error("openaiapi: community's provider not usable", logging.KeyCommunity, com.ID, logging.Err(err))
		return &apiError{Status: http.StatusBadGateway, Type: typeAPI, Code: "provider_misconfigured",
			Message: "The community's AI provider is not set up correctly; an admin should check the AI settings in the portal."}
	}
	if com.Provisional && !mdl.AllowProvisional {
		return &apiError{Status: http.StatusForbidden, Type: typePermission, Code: "ai_disabled",
			Message: "AI is off for this community until its owner confirms it."}
	}
	q.model = mdl
	return nil
}

func (s *Server) internal(what string, err error) *apiError {
	s.log.Error("openaiapi: unable to "+what, logging.Err(err))
	return &apiError{Status: http.StatusServiceUnavailable, Type: typeAPI, Code: "unavailable",
		Message: "Something went wrong; please try again in a minute."}
}

// GET /v1/models.

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Server) models(q *request) *apiError {
	writeJSON(q.w, http.StatusOK, map[string]any{"object": "list", "data": []modelObject{s.modelObject(q)}})
	return nil
}

func (s *Server) modelObject(q *request) modelObject {
	return modelObject{ID: q.model.Name, Object: "model", Created: s.cfg.Clock.Now().Unix(), OwnedBy: "waddlebot:" + q.model.Kind}
}

// POST /v1/chat/completions.

// chatRequest is the part of OpenAI's request this endpoint reads; every
// other field an SDK sends (user, n, top_p, seed, …) is accepted and
// ignored.
type chatRequest struct {
	Model               string         `json:"model"`
	Messages            []chatMessage  `json:"messages"`
	Stream              bool           `json:"stream"`
	Temperature         *float64       `json:"temperature"`
	MaxTokens           *int           `json:"max_tokens"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
	N                   *int           `json:"n"`
	StreamOptions       *streamOptions `json:"stream_options"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// contentPart is one part of an array content ("type": "text" only).
type contentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func invalid(code, msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Code: code, Message: msg}
}

// parseChat reads and checks a chat request body.
func parseChat(body io.Reader) (chatRequest, []provider.Message, *apiError) {
	raw, err := io.ReadAll(io.LimitReader(body, maxBody+1))
	if err != nil {
		return chatRequest{}, nil, invalid("invalid_body", "Unable to read the request body.")
	}
	if len(raw) > maxBody {
		return chatRequest{}, nil, invalid("body_too_large", fmt.Sprintf("The request body is larger than %d bytes.", maxBody))
	}
	var req chatRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return req, nil, invalid("invalid_json", "The body is not a chat completion request in JSON: "+err.Error())
	}
	if strings.TrimSpace(req.Model) == "" {
		return req, nil, invalid("missing_model", "model is required; GET /v1/models lists this community's model.")
	}
	if len(req.Messages) == 0 {
		return req, nil, invalid("missing_messages", "messages must hold at least one message.")
	}
	if len(req.Messages) > maxMessages {
		return req, nil, invalid("too_many_messages", fmt.Sprintf("messages holds more than %d messages.", maxMessages))
	}
	if req.N != nil && *req.N != 1 {
		return req, nil, invalid("unsupported_n", "Only n = 1 is supported.")
	}
	if t := req.Temperature; t != nil && (*t < 0 || *t > 2) {
		return req, nil, invalid("invalid_temperature", "temperature must be between 0 and 2.")
	}
	for _, m := range []*int{req.MaxTokens, req.MaxCompletionTokens} {
		if m != nil && *m < 1 {
			return req, nil, invalid("invalid_max_tokens", "max_tokens must be at least 1.")
		}
	}
	msgs := make([]provider.Message, 0, len(req.Messages))
	for i, m := range req.Messages {
		role := m.Role
		switch role {
		case "system", "user", "assistant":
		case "developer":
			// OpenAI's newer name for system instructions.
			role = "system"
		default:
			return req, nil, invalid("invalid_role", fmt.Sprintf("messages[%d].role %q is not one of system, developer, user, assistant.", i, m.Role))
		}
		text, err := contentText(m.Content)
		if err != nil {
			return req, nil, invalid("invalid_content", fmt.Sprintf("messages[%d].content %s.", i, err))
		}
		msgs = append(msgs, provider.Message{Role: role, Content: text})
	}
	return req, msgs, nil
}

// contentText reads a message's content: a string, or an array of text
// parts (what SDKs send for multi-part messages).
func contentText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", errors.New("is missing")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []contentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("must be a string or an array of text parts")
	}
	var b strings.Builder
	for i, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("part %d has type %q; only text is supported", i, p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

func (s *Server) chat(q *request) *apiError {
	req, msgs, e := parseChat(q.r.Body)
	if e != nil {
		return e
	}
	if req.Model != q.model.Name {
		return &apiError{Status: http.StatusNotFound, Type: typeInvalid, Code: "model_not_found",
			Message: fmt.Sprintf("The model %q does not exist for this community; its model is %q (see GET /v1/models).", req.Model, q.model.Name)}
	}
	ctx := q.r.Context()
	left, err := s.cfg.Models.TokensLeft(ctx, q.community.ID, q.model.DailyTokens)
	if err != nil {
		return s.internal("check the token budget", err)
	}
	if !left {
		now := s.cfg.Clock.Now().UTC()
		tomorrow := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
		return &apiError{Status: http.StatusTooManyRequests, Type: typeQuota, Code: "insufficient_quota",
			RetryAfter: max(int(tomorrow.Sub(now).Seconds()), 1),
			Message:    fmt.Sprintf("This community used its daily AI budget of %d tokens; it renews at 00:00 UTC.", q.model.DailyTokens)}
	}
	preq := provider.Request{Model: q.model.Name, Messages: msgs, Temperature: q.model.Temperature, MaxTokens: q.model.MaxTokens}
	if req.Temperature != nil {
		preq.Temperature = *req.Temperature
	}
	// The community's max_tokens is a ceiling a client may only lower.
	for _, m := range []*int{req.MaxTokens, req.MaxCompletionTokens} {
		if m != nil && (preq.MaxTokens <= 0 || *m < preq.MaxTokens) {
			preq.MaxTokens = *m
		}
	}
	id := uuid.New()
	log := s.log.With(logging.KeyCommunity, q.community.ID, logging.KeyID, id.String(), "key_id", q.key.ID, "model", q.model.Name)
	if req.Stream {
		return s.stream(q, log, id, preq, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
	}
	resp, err := q.model.Provider.Chat(ctx, preq)
	if err != nil {
		return s.providerError(log, err)
	}
	s.record(q, log, id, resp)
	writeJSON(q.w, http.StatusOK, map[string]any{
		"id": "chatcmpl-" + id.String(), "object": "chat.completion", "created": s.cfg.Clock.Now().Unix(),
		"model": modelName(resp, q.model),
		"choices": []map[string]any{{"index": 0, "message": map[string]string{"role": "assistant", "content": resp.Content},
			"finish_reason": "stop"}},
		"usage": usage(resp),
	})
	log.Info("openaiapi: answered", "tokens", resp.Tokens, "stream", false)
	return nil
}

func modelName(resp provider.Response, m ai.Model) string {
	if resp.Model != "" {
		return resp.Model
	}
	return m.Name
}

// usage is OpenAI's usage object, nil when the endpoint did not count.
func usage(resp provider.Response) any {
	if resp.Tokens == 0 && resp.PromptTokens == 0 && resp.CompletionTokens == 0 {
		return nil
	}
	total := resp.Tokens
	if total == 0 {
		total = resp.PromptTokens + resp.CompletionTokens
	}
	return map[string]int{"prompt_tokens": resp.PromptTokens, "completion_tokens": resp.CompletionTokens, "total_tokens": total}
}

// record counts the answer against the community's daily budget; the
// client's hang-up must not lose the count.
func (s *Server) record(q *request, log *slog.Logger, id uuid.UUID, resp provider.Response) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(q.r.Context()), 5*time.Second)
	defer cancel()
	if err := s.cfg.Models.Record(ctx, id.String(), q.community.ID, resp.Tokens); err != nil {
		log.Warn("openaiapi: unable to record token usage", logging.Err(err))
	}
}

// stream answers as Server-Sent Events of chat.completion.chunk. The
// headers wait for the model's first piece, so a model that is missing,
// refuses the key or times out before answering still gets its own HTTP
// status; a failure after that is told in the stream as an error event.
func (s *Server) stream(q *request, log *slog.Logger, id uuid.UUID, preq provider.Request, includeUsage bool) *apiError {
	w := q.w
	fl, _ := w.(http.Flusher)
	created := s.cfg.Clock.Now().Unix()
	chunkID := "chatcmpl-" + id.String()
	model := q.model.Name
	started := false
	send := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return err
		}
		if fl != nil {
			fl.Flush()
		}
		return nil
	}
	chunk := func(delta map[string]string, finish any) map[string]any {
		return map[string]any{"id": chunkID, "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []map[string]any{{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	start := func() error {
		if started {
			return nil
		}
		started = true
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Connection", "keep-alive")
		// A buffering proxy in front would hold the whole answer back.
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		return send(chunk(map[string]string{"role": "assistant", "content": ""}, nil))
	}
	var resp provider.Response
	var err error
	if st, ok := q.model.Provider.(provider.Streamer); ok {
		resp, err = st.ChatStream(q.r.Context(), preq, func(d string) error {
			if err := start(); err != nil {
				return err
			}
			return send(chunk(map[string]string{"content": d}, nil))
		})
	} else {
		// A provider without streaming: one piece with the whole answer.
		resp, err = q.model.Provider.Chat(q.r.Context(), preq)
		if err == nil && resp.Content != "" {
			if err = start(); err == nil {
				err = send(chunk(map[string]string{"content": resp.Content}, nil))
			}
		}
	}
	if err != nil {
		if !started {
			return s.providerError(log, err)
		}
		e := s.providerError(log, err)
		_ = send(errorBody{Error: errorInfo{Message: e.Message, Type: e.Type, Code: e.Code}})
		return &apiError{Status: 0, Code: e.Code}
	}
	s.record(q, log, id, resp)
	if err := start(); err != nil {
		return nil
	}
	if resp.Model != "" {
		model = resp.Model
	}
	final := chunk(map[string]string{}, "stop")
	u := usage(resp)
	if includeUsage {
		_ = send(final)
		_ = send(map[string]any{"id": chunkID, "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []any{}, "usage": u})
	} else {
		if u != nil {
			final["usage"] = u
		}
		_ = send(final)
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
	log.Info("openaiapi: answered", "tokens", resp.Tokens, "stream", true)
	return nil
}

// providerError maps a model failure to the status a client can act on.
func (s *Server) providerError(log *slog.Logger, err error) *apiError {
	kind := provider.KindOf(err)
	log.Error("openaiapi: model call failed", logging.KeyReason, kind.String(), logging.Err(err))
	switch kind {
	case provider.KindModelNotFound:
		return &apiError{Status: http.StatusNotFound, Type: typeInvalid, Code: "model_not_found",
			Message: "The community's model is not installed or not known to its provider; an admin should check the AI settings."}
	case provider.KindUnauthorized:
		return &apiError{Status: http.StatusBadGateway, Type: typeAPI, Code: "upstream_unauthorized",
			Message: "The community's AI provider refused the key WaddleBot sent it; an admin should check the AI settings."}
	case provider.KindTimeout:
		return &apiError{Status: http.StatusGatewayTimeout, Type: typeAPI, Code: "upstream_timeout",
			Message: "The community's model took too long to answer; try again in a bit."}
	case provider.KindTransient:
		return &apiError{Status: http.StatusBadGateway, Type: typeAPI, Code: "upstream_unavailable",
			Message: "The community's model is not answering right now; try again in a bit."}
	case provider.KindMalformed:
		return &apiError{Status: http.StatusBadGateway, Type: typeAPI, Code: "upstream_malformed",
			Message: "The community's AI provider answered something that is not a chat completion."}
	case provider.KindBadRequest:
		return &apiError{Status: http.StatusBadGateway, Type: typeAPI, Code: "upstream_refused",
			Message: "The community's AI provider refused the request; an admin should check the AI settings."}
	}
	return &apiError{Status: http.StatusBadGateway, Type: typeAPI, Code: "upstream_error",
		Message: "The community's model failed to answer; try again in a bit."}
}
