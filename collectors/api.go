package collectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/schemas"
)

// Defaults of APIServerConfig.
const (
	// DefaultAPITimeout bounds one lookup, well inside a caller's request
	// timeout.
	DefaultAPITimeout = 10 * time.Second
	// DefaultAPIConcurrency bounds lookups in flight per replica.
	DefaultAPIConcurrency = 16
)

// APIOp answers one operation: data to encode as JSON, or a typed error.
type APIOp func(ctx context.Context, args map[string]string) (any, *schemas.APIError)

// APIServerConfig configures ServeAPI.
type APIServerConfig struct {
	Conn     *natsx.Conn
	Platform string
	// Queue is the queue group every replica serves in, so each request is
	// answered once; "" means "<platform>-api".
	Queue string
	// Ops are the operations served, each on wb.api.<platform>.<operation>.
	Ops         map[string]APIOp
	Concurrency int           // default DefaultAPIConcurrency
	Timeout     time.Duration // default DefaultAPITimeout
	Logger      *slog.Logger
}

// ServeAPI answers lookups (schemas.APIRequest → schemas.APIResponse) over
// core NATS request/reply until ctx ends, then waits for the lookups in
// flight.
func ServeAPI(ctx context.Context, cfg APIServerConfig) error {
	if cfg.Conn == nil || cfg.Conn.NC == nil || cfg.Platform == "" || len(cfg.Ops) == 0 {
		return errors.New("collectors: the API needs a NATS connection, a platform and operations")
	}
	if cfg.Queue == "" {
		cfg.Queue = cfg.Platform + "-api"
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultAPIConcurrency
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultAPITimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &apiServer{cfg: cfg, log: cfg.Logger.With(logging.KeyPart, "api")}
	// slots holds one token per lookup in flight. Shutting down takes every
	// slot, which waits for the lookups running and leaves none for a
	// message that arrives meanwhile (a WaitGroup here could see Add after
	// Wait began, since a NATS callback may still be running after
	// Unsubscribe).
	slots := make(chan struct{}, cfg.Concurrency)
	handle := func(msg *nats.Msg) {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if ctx.Err() != nil {
			// select picks at random when both are ready.
			<-slots
			return
		}
		go func() {
			defer func() { <-slots }()
			s.serve(ctx, msg)
		}()
	}
	var subs []*nats.Subscription
	defer func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
		for range cfg.Concurrency {
			slots <- struct{}{}
		}
	}()
	for _, op := range slices.Sorted(maps.Keys(cfg.Ops)) {
		subject := schemas.APISubject(cfg.Platform, op)
		sub, err := cfg.Conn.NC.QueueSubscribe(subject, cfg.Queue, handle)
		if err != nil {
			return fmt.Errorf("%s: unable to serve %s: %w", cfg.Platform, subject, err)
		}
		subs = append(subs, sub)
	}
	s.log.Info(cfg.Platform+": API serving", logging.KeySubject, schemas.APISubject(cfg.Platform, "*"))
	<-ctx.Done()
	return nil
}

type apiServer struct {
	cfg APIServerConfig
	log *slog.Logger
}

// serve answers one request.
func (s *apiServer) serve(ctx context.Context, msg *nats.Msg) {
	if msg.Reply == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, data, apiErr := s.answer(ctx, msg)
	resp := schemas.APIResponse{Version: schemas.Version, ID: req.ID, Error: apiErr}
	if apiErr == nil {
		b, err := json.Marshal(data)
		if err != nil {
			resp.Error = &schemas.APIError{Code: "internal", Message: err.Error()}
		} else {
			resp.Data = b
		}
	}
	if resp.Error != nil && resp.Error.Code != "not_found" && resp.Error.Code != "invalid" {
		s.log.Warn(s.cfg.Platform+": API lookup failed", logging.KeySubject, msg.Subject, logging.KeyID, req.ID,
			logging.KeyReason, resp.Error.Code, logging.KeyError, resp.Error.Message)
	}
	body, err := json.Marshal(resp)
	if err != nil {
		return
	}
	if err := msg.Respond(body); err != nil {
		s.log.Debug(s.cfg.Platform+": unable to answer an API request", logging.KeySubject, msg.Subject, logging.KeyError, err)
	}
}

func (s *apiServer) answer(ctx context.Context, msg *nats.Msg) (req schemas.APIRequest, data any, apiErr *schemas.APIError) {
	defer func() {
		// One lookup's bug must not take the whole collector down.
		if r := recover(); r != nil {
			data, apiErr = nil, &schemas.APIError{Code: "internal", Message: fmt.Sprintf("the lookup failed: %v", r)}
		}
	}()
	req, apiErr = DecodeAPIRequest(s.cfg.Platform, msg.Subject, msg.Data)
	if apiErr != nil {
		return req, nil, apiErr
	}
	op, ok := s.cfg.Ops[req.Operation]
	if !ok {
		return req, nil, &schemas.APIError{Code: "invalid", Message: fmt.Sprintf("%s has no operation %q", s.cfg.Platform, req.Operation)}
	}
	args := req.Args
	if args == nil {
		args = map[string]string{}
	}
	data, apiErr = op(ctx, args)
	if apiErr == nil && data == nil {
		apiErr = &schemas.APIError{Code: "internal", Message: "the lookup answered nothing"}
	}
	return req, data, apiErr
}

// DecodeAPIRequest reads and checks a request that arrived on subject for
// platform.
func DecodeAPIRequest(platform, subject string, data []byte) (schemas.APIRequest, *schemas.APIError) {
	var req schemas.APIRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return schemas.APIRequest{}, &schemas.APIError{Code: "invalid", Message: "the request is not a JSON API request: " + err.Error()}
	}
	if err := req.Validate(); err != nil {
		return req, &schemas.APIError{Code: "invalid", Message: err.Error()}
	}
	// The subject names the operation; a body that says otherwise is a
	// caller's mistake worth telling them about.
	if want := schemas.APISubject(platform, req.Operation); want != subject {
		return req, &schemas.APIError{Code: "invalid", Message: fmt.Sprintf("operation %q was sent to %s", req.Operation, subject)}
	}
	return req, nil
}
