package shoutout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/schemas"
)

// Requester sends a core NATS request and waits for its answer; a
// *nats.Conn is one.
type Requester interface {
	RequestWithContext(ctx context.Context, subject string, data []byte) (*nats.Msg, error)
}

// The Twitch collector's API operations (collectors/twitch/api.go). They
// are repeated here, with the answers' shapes, rather than imported: a
// module depends on the public wb.api contract, not on a collector's code.
const (
	opUserByLogin = "user_by_login" // args: login
	opChannelInfo = "channel_info"  // args: broadcaster_id or login
)

// twitchUser is the data of a user_by_login answer.
type twitchUser struct {
	ID          string `json:"id"`
	Login       string `json:"login"`
	DisplayName string `json:"display_name"`
}

// twitchChannel is the data of a channel_info answer.
type twitchChannel struct {
	BroadcasterID string `json:"broadcaster_id"`
	Login         string `json:"login"`
	DisplayName   string `json:"display_name"`
	Category      string `json:"category"`
	Title         string `json:"title"`
}

var (
	// errNotFound: Twitch says there is no such user or channel.
	errNotFound = errors.New("shoutout: not found on Twitch")
	// errUnreachable: no answer (no collector serving, a timeout) or
	// Twitch failed; the user is told to try again later.
	errUnreachable = errors.New("shoutout: Twitch lookup unavailable")
)

// lookup asks the Twitch collector for one operation and decodes its data
// into out. Every failure wraps errNotFound or errUnreachable.
func (m *module) lookup(ctx context.Context, requestID, operation string, args map[string]string, out any) error {
	if m.requester == nil {
		return fmt.Errorf("%w: the module was built without a NATS connection", errUnreachable)
	}
	body, err := json.Marshal(schemas.APIRequest{Version: schemas.Version, ID: requestID, Operation: operation, Args: args})
	if err != nil {
		return fmt.Errorf("%w: unable to encode the %s request: %v", errUnreachable, operation, err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.lookupTimeout)
	defer cancel()
	subject := schemas.APISubject(schemas.PlatformTwitch, operation)
	msg, err := m.requester.RequestWithContext(ctx, subject, body)
	if err != nil {
		// nats.ErrNoResponders when no collector serves the API,
		// context.DeadlineExceeded when it did not answer in time.
		return fmt.Errorf("%w: %s: %v", errUnreachable, subject, err)
	}
	var resp schemas.APIResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("%w: undecodable answer on %s: %v", errUnreachable, subject, err)
	}
	if err := resp.Validate(); err != nil {
		return fmt.Errorf("%w: answer on %s: %v", errUnreachable, subject, err)
	}
	if resp.Error != nil {
		if resp.Error.Code == "not_found" {
			return fmt.Errorf("%w: %s", errNotFound, resp.Error.Message)
		}
		return fmt.Errorf("%w: %s: %s", errUnreachable, subject, resp.Error.Error())
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		return fmt.Errorf("%w: undecodable %s data: %v", errUnreachable, operation, err)
	}
	return nil
}

// userByLogin looks a Twitch user up by login.
func (m *module) userByLogin(ctx context.Context, requestID, login string) (twitchUser, error) {
	var u twitchUser
	if err := m.lookup(ctx, requestID, opUserByLogin, map[string]string{"login": login}, &u); err != nil {
		return twitchUser{}, err
	}
	if u.ID == "" || u.Login == "" {
		return twitchUser{}, fmt.Errorf("%w: user_by_login answered without an id or login", errUnreachable)
	}
	return u, nil
}

// channelInfo looks up what a broadcaster last streamed, by id when known.
func (m *module) channelInfo(ctx context.Context, requestID, broadcasterID, login string) (twitchChannel, error) {
	args := map[string]string{"broadcaster_id": broadcasterID}
	if broadcasterID == "" {
		args = map[string]string{"login": login}
	}
	var c twitchChannel
	err := m.lookup(ctx, requestID, opChannelInfo, args, &c)
	return c, err
}
