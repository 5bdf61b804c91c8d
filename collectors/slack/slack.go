// Package slack is WaddleBot's Slack collector: Socket Mode / Events API
// intake, slash commands, replies through chat.postMessage or a command's
// response URL, and the OAuth install flow that adds workspaces.
package slack

import (
	"context"
	"errors"
	"strings"

	"github.com/slack-go/slack"

	"github.com/waddlebot/waddlebot/schemas"
)

// platformName is the platform as subjects and event ids spell it.
const platformName = "slack"

// ErrNotInstalled is returned for a team the bot has no token for: never
// installed, uninstalled, or its token revoked.
var ErrNotInstalled = errors.New("slack: workspace not installed")

// Workspaces knows the workspaces (teams) the bot is installed in.
type Workspaces interface {
	// BotToken is the team's bot token (xoxb-…); ErrNotInstalled when none.
	BotToken(ctx context.Context, teamID string) (string, error)
	// BotUserID is the bot's own user id in the team, to drop its own
	// messages and to recognise mentions of it.
	BotUserID(ctx context.Context, teamID string) (string, error)
	// Disconnect forgets the team's token after app_uninstalled /
	// tokens_revoked, or a send refused with token_revoked.
	Disconnect(ctx context.Context, teamID, reason string) error
}

// Publisher publishes a normalized event (collectors.Publisher satisfies it).
type Publisher interface {
	Publish(ctx context.Context, ev *schemas.Event) error
}

// DefaultAPIURL is Slack's Web API base.
const DefaultAPIURL = slack.APIURL

// normalizeAPIURL defaults the Web API base and gives it the trailing slash
// slack-go appends method names to.
func normalizeAPIURL(apiURL string) string {
	if apiURL == "" {
		return DefaultAPIURL
	}
	return strings.TrimRight(apiURL, "/") + "/"
}
