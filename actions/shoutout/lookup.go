package shoutout

import (
	"context"
	"errors"
	"fmt"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/schemas"
)

// Requester sends a core NATS request and waits for its answer; a
// *nats.Conn is one.
type Requester = actions.Requester

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
	ctx, cancel := context.WithTimeout(ctx, m.lookupTimeout)
	defer cancel()
	err := actions.Lookup(ctx, m.requester, schemas.PlatformTwitch, operation, requestID, args, out)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, actions.ErrNotFound):
		return fmt.Errorf("%w: %v", errNotFound, err)
	}
	return fmt.Errorf("%w: %v", errUnreachable, err)
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
