package twitch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/schemas"
)

// API operations served on wb.api.twitch.<operation>.
const (
	OpUserByLogin = "user_by_login" // args: login → APIUser
	OpChannelInfo = "channel_info"  // args: broadcaster_id or login → APIChannel
)

// apiQueue is the queue group every collector replica serves the API in,
// so each request is answered once.
const apiQueue = "twitch-api"

// apiLookupTimeout bounds one lookup, well inside a caller's request
// timeout.
const apiLookupTimeout = 10 * time.Second

// apiConcurrency bounds lookups in flight per replica.
const apiConcurrency = 16

// APIUser is the data of a user_by_login answer.
type APIUser struct {
	ID          string `json:"id"`
	Login       string `json:"login"`
	DisplayName string `json:"display_name"`
}

// APIChannel is the data of a channel_info answer.
type APIChannel struct {
	BroadcasterID string `json:"broadcaster_id"`
	Login         string `json:"login"`
	DisplayName   string `json:"display_name"`
	Category      string `json:"category"`
	Title         string `json:"title"`
}

// APIConfig configures ServeAPI.
type APIConfig struct {
	Conn   *natsx.Conn
	Helix  *Helix
	Tokens Tokens
	Logger *slog.Logger
}

// ServeAPI answers Twitch lookups (schemas.APIRequest → schemas.APIResponse)
// over core NATS request/reply until ctx ends.
func ServeAPI(ctx context.Context, cfg APIConfig) error {
	if cfg.Conn == nil || cfg.Conn.NC == nil || cfg.Helix == nil || cfg.Tokens == nil {
		return errors.New("twitch: the API needs a NATS connection, Helix and Tokens")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &api{helix: cfg.Helix, tokens: cfg.Tokens, log: cfg.Logger.With(logging.KeyPart, "api")}
	// slots holds one token per lookup in flight. Shutting down takes every
	// slot, which waits for the lookups running and leaves none for a
	// message that arrives meanwhile (a WaitGroup here could see Add after
	// Wait began, since a NATS callback may still be running after
	// Unsubscribe).
	slots := make(chan struct{}, apiConcurrency)
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
			a.serve(ctx, msg)
		}()
	}
	var subs []*nats.Subscription
	defer func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
		for range apiConcurrency {
			slots <- struct{}{}
		}
	}()
	for _, op := range []string{OpUserByLogin, OpChannelInfo} {
		subject := schemas.APISubject(schemas.PlatformTwitch, op)
		sub, err := cfg.Conn.NC.QueueSubscribe(subject, apiQueue, handle)
		if err != nil {
			return fmt.Errorf("twitch: unable to serve %s: %w", subject, err)
		}
		subs = append(subs, sub)
	}
	a.log.Info("twitch: API serving", logging.KeySubject, schemas.APISubject(schemas.PlatformTwitch, "*"))
	<-ctx.Done()
	return nil
}

type api struct {
	helix  *Helix
	tokens Tokens
	log    *slog.Logger
}

// serve answers one request.
func (a *api) serve(ctx context.Context, msg *nats.Msg) {
	if msg.Reply == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, apiLookupTimeout)
	defer cancel()
	var req schemas.APIRequest
	var data any
	apiErr := func() *schemas.APIError {
		var err *schemas.APIError
		if req, err = decodeAPIRequest(msg.Subject, msg.Data); err != nil {
			return err
		}
		switch req.Operation {
		case OpUserByLogin:
			data, err = a.userByLogin(ctx, req.Args["login"])
		case OpChannelInfo:
			data, err = a.channelInfo(ctx, req.Args["broadcaster_id"], req.Args["login"])
		}
		return err
	}()
	resp := schemas.APIResponse{Version: schemas.Version, ID: req.ID, Error: apiErr}
	if apiErr == nil {
		b, err := json.Marshal(data)
		if err != nil {
			resp.Error = &schemas.APIError{Code: "internal", Message: err.Error()}
		} else {
			resp.Data = b
		}
	} else if apiErr.Code != "not_found" && apiErr.Code != "invalid" {
		a.log.Warn("twitch: API lookup failed", logging.KeySubject, msg.Subject, logging.KeyID, req.ID,
			logging.KeyReason, apiErr.Code, logging.KeyError, apiErr.Message)
	}
	body, err := json.Marshal(resp)
	if err != nil {
		return
	}
	if err := msg.Respond(body); err != nil {
		a.log.Debug("twitch: unable to answer an API request", logging.KeySubject, msg.Subject, logging.KeyError, err)
	}
}

// decodeAPIRequest reads and checks a request that arrived on subject.
func decodeAPIRequest(subject string, data []byte) (schemas.APIRequest, *schemas.APIError) {
	var req schemas.APIRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return req, &schemas.APIError{Code: "invalid", Message: "the request is not a JSON API request: " + err.Error()}
	}
	if err := req.Validate(); err != nil {
		return req, &schemas.APIError{Code: "invalid", Message: err.Error()}
	}
	// The subject names the operation; a body that says otherwise is a
	// caller's mistake worth telling them about.
	if want := schemas.APISubject(schemas.PlatformTwitch, req.Operation); want != subject {
		return req, &schemas.APIError{Code: "invalid", Message: fmt.Sprintf("operation %q was sent to %s", req.Operation, subject)}
	}
	return req, nil
}

func (a *api) userByLogin(ctx context.Context, login string) (*APIUser, *schemas.APIError) {
	if login == "" {
		return nil, &schemas.APIError{Code: "invalid", Message: "user_by_login needs args.login"}
	}
	u, apiErr := a.user(ctx, url.Values{"login": {login}})
	if apiErr != nil {
		return nil, apiErr
	}
	return &APIUser{ID: u.ID, Login: u.Login, DisplayName: u.DisplayName}, nil
}

func (a *api) user(ctx context.Context, query url.Values) (*helixUser, *schemas.APIError) {
	user, res, err := getUser(ctx, a.helix, a.tokens, query)
	if apiErr := lookupError("Get Users", res, err); apiErr != nil {
		return nil, apiErr
	}
	if user == nil {
		return nil, &schemas.APIError{Code: "not_found", Message: "no such Twitch user"}
	}
	return user, nil
}

func (a *api) channelInfo(ctx context.Context, broadcasterID, login string) (*APIChannel, *schemas.APIError) {
	if broadcasterID == "" {
		if login == "" {
			return nil, &schemas.APIError{Code: "invalid", Message: "channel_info needs args.broadcaster_id or args.login"}
		}
		u, apiErr := a.user(ctx, url.Values{"login": {login}})
		if apiErr != nil {
			return nil, apiErr
		}
		broadcasterID = u.ID
	}
	res, err := withAppToken(ctx, a.tokens, func(token string) (*helixResult, error) {
		return a.helix.call(ctx, http.MethodGet, "/channels", url.Values{"broadcaster_id": {broadcasterID}}, nil, token)
	})
	if apiErr := lookupError("Get Channel Information", res, err); apiErr != nil {
		return nil, apiErr
	}
	var out struct {
		Data []struct {
			BroadcasterID    string `json:"broadcaster_id"`
			BroadcasterLogin string `json:"broadcaster_login"`
			BroadcasterName  string `json:"broadcaster_name"`
			GameName         string `json:"game_name"`
			Title            string `json:"title"`
		} `json:"data"`
	}
	if err := json.Unmarshal(res.body, &out); err != nil {
		return nil, &schemas.APIError{Code: "internal", Message: "undecodable Get Channel Information response: " + err.Error()}
	}
	if len(out.Data) == 0 {
		return nil, &schemas.APIError{Code: "not_found", Message: "no such Twitch channel"}
	}
	c := out.Data[0]
	return &APIChannel{BroadcasterID: c.BroadcasterID, Login: c.BroadcasterLogin, DisplayName: c.BroadcasterName,
		Category: c.GameName, Title: c.Title}, nil
}

// lookupError turns a failed Helix lookup into the API's typed error.
func lookupError(what string, res *helixResult, err error) *schemas.APIError {
	switch {
	case err != nil:
		return &schemas.APIError{Code: "unavailable", Message: what + ": " + err.Error()}
	case res.status >= 200 && res.status < 300:
		return nil
	case res.status == http.StatusTooManyRequests:
		return &schemas.APIError{Code: "rate_limited", Message: what + ": " + res.message()}
	case res.status == http.StatusUnauthorized:
		return &schemas.APIError{Code: "unauthorized", Message: what + ": " + res.message()}
	case res.status == http.StatusNotFound:
		return &schemas.APIError{Code: "not_found", Message: what + ": " + res.message()}
	case res.status == http.StatusBadRequest:
		return &schemas.APIError{Code: "invalid", Message: what + ": " + res.message()}
	default:
		return &schemas.APIError{Code: "unavailable", Message: fmt.Sprintf("%s: %d %s", what, res.status, res.message())}
	}
}
