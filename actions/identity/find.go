package identity

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

// opMember and opUserByLogin are the collectors' lookups (wb.api): Discord
// and Slack find a member of a server by name, mention or id; Twitch a user
// by login. All answer {id, login, display_name}.
const (
	opMember      = "member"
	opUserByLogin = "user_by_login"
)

type apiUser struct {
	ID          string `json:"id"`
	Login       string `json:"login"`
	DisplayName string `json:"display_name"`
}

// twitchLogin is what a Twitch login can be.
var twitchLogin = regexp.MustCompile(`^[A-Za-z0-9_]{1,25}$`)

// maxName bounds a name typed after !link.
const maxName = 100

// find looks up the account a user named on another platform, and where a
// private message reaches it. problem is the reply when it cannot be
// found or reached; err is for failures that should retry the invocation.
func (m *module) find(ctx context.Context, inv *schemas.Invocation, platform, name string) (a account, dest schemas.Target, problem string, err error) {
	name = strings.TrimSpace(name)
	shown := actions.Clip(name, 50)
	if platform == schemas.PlatformTwitch {
		login := strings.TrimPrefix(name, "@")
		if !twitchLogin.MatchString(login) {
			return account{}, schemas.Target{}, fmt.Sprintf("%q is not a Twitch login (letters, digits and _, at most 25).", shown), nil
		}
		var u apiUser
		if problem := m.lookup(ctx, inv, platform, opUserByLogin, map[string]string{"login": login}, shown, &u); problem != "" {
			return account{}, schemas.Target{}, problem, nil
		}
		a = account{platform: platform, userID: u.ID, login: u.Login, display: u.DisplayName}
		// A whisper needs no channel; the reply subject does.
		return a, schemas.Target{Platform: platform, ChannelID: u.ID, UserID: u.ID}, "", nil
	}

	channels, err := m.st.Channels(ctx, inv.Community.ID)
	if err != nil {
		return account{}, schemas.Target{}, "", fmt.Errorf("identity: unable to list the community's channels: %w", err)
	}
	// Each server of the community on that platform, with a channel in it
	// (Slack's ephemeral messages are posted in a channel).
	servers := map[string]string{}
	var order []string
	for _, c := range channels {
		if c.Platform != platform || c.ServerID == "" {
			continue
		}
		if _, seen := servers[c.ServerID]; !seen {
			order = append(order, c.ServerID)
			servers[c.ServerID] = ""
		}
		if c.ChannelID != c.ServerID && servers[c.ServerID] == "" {
			servers[c.ServerID] = c.ChannelID
		}
	}
	if len(order) == 0 {
		return account{}, schemas.Target{}, fmt.Sprintf("This community has no %s connected, so I can't reach a %s account from here.",
			serverWord(platform), platformName(platform)), nil
	}
	for _, server := range order {
		var u apiUser
		problem := m.lookup(ctx, inv, platform, opMember, map[string]string{"server_id": server, "name": name}, shown, &u)
		if problem == errNotMember {
			continue
		}
		if problem != "" {
			return account{}, schemas.Target{}, problem, nil
		}
		channel := servers[server]
		if channel == "" {
			channel = server
		}
		a = account{platform: platform, userID: u.ID, login: u.Login, display: u.DisplayName}
		return a, schemas.Target{Platform: platform, ServerID: server, ChannelID: channel, UserID: u.ID}, "", nil
	}
	return account{}, schemas.Target{}, fmt.Sprintf("I can't find %s in this community's %s.", shown, serverWord(platform)), nil
}

// errNotMember is lookup's answer for "not found" on Discord and Slack:
// find tries the community's next server.
const errNotMember = "\x00not found"

// lookup runs one wb.api lookup; its result is "" on success, else what to
// tell the user.
func (m *module) lookup(ctx context.Context, inv *schemas.Invocation, platform, op string, args map[string]string, shown string, out *apiUser) string {
	ctx, cancel := context.WithTimeout(ctx, m.lookupTimeout)
	defer cancel()
	err := actions.Lookup(ctx, m.requester, platform, op, inv.ID, args, out)
	var le *actions.LookupError
	switch {
	case err == nil && (out.ID == "" || out.Login == ""):
		m.log.Warn("identity: lookup answered without an id or login", logging.KeyPlatform, platform)
		return fmt.Sprintf("I can't reach %s right now; try again in a minute.", platformName(platform))
	case err == nil:
		return ""
	case errors.Is(err, actions.ErrNotFound):
		if op == opMember {
			return errNotMember
		}
		return fmt.Sprintf("%s has no user %s.", platformName(platform), shown)
	case errors.Is(err, actions.ErrLookupRefused) && errors.As(err, &le):
		return actions.Clip(le.Message, 200)
	}
	m.log.Warn("identity: account lookup failed", logging.KeyPlatform, platform, logging.Err(err))
	return fmt.Sprintf("I can't reach %s right now; try again in a minute.", platformName(platform))
}

func serverWord(platform string) string {
	if platform == schemas.PlatformSlack {
		return "Slack workspace"
	}
	return "Discord server"
}
