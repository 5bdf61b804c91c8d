package twitch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/schemas"
)

// API operations served on wb.api.twitch.<operation>.
const (
	OpUserByLogin = "user_by_login" // args: login → APIUser
	OpChannelInfo = "channel_info"  // args: broadcaster_id or login → APIChannel
)

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
	a := &api{helix: cfg.Helix, tokens: cfg.Tokens}
	return collectors.ServeAPI(ctx, collectors.APIServerConfig{
		Conn: cfg.Conn, Platform: schemas.PlatformTwitch, Queue: "twitch-api", Logger: cfg.Logger,
		Ops: map[string]collectors.APIOp{
			OpUserByLogin: func(ctx context.Context, args map[string]string) (any, *schemas.APIError) {
				return a.userByLogin(ctx, args["login"])
			},
			OpChannelInfo: func(ctx context.Context, args map[string]string) (any, *schemas.APIError) {
				return a.channelInfo(ctx, args["broadcaster_id"], args["login"])
			},
		},
	})
}

type api struct {
	helix  *Helix
	tokens Tokens
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
