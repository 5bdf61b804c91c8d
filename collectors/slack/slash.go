package slack

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/slack-go/slack"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

// How long the catalogue read for a command's visibility is trusted.
const (
	catalogueTTL        = time.Minute
	catalogueRetryAfter = 5 * time.Second
)

// HandleSlash publishes a /waddlebot command as a command event whose text
// is the bare "ping args", after keeping its response URL, through which
// the sender answers it. The caller has acknowledged it already (or does
// so whatever this returns): Slack does not redeliver slash commands.
func (in *Intake) HandleSlash(ctx context.Context, cmd slack.SlashCommand) error {
	if cmd.TeamID == "" || cmd.ChannelID == "" || cmd.UserID == "" {
		skipped("malformed")
		in.log.Warn("slack: slash command without a team, channel or user dropped", logging.KeyPlatform, platformName,
			logging.KeyCommand, cmd.Command)
		return nil
	}
	key := "command:" + cmd.TeamID + ":" + cmd.TriggerID
	id := schemas.EventID(platformName, key)
	if cmd.TriggerID == "" {
		// Slack always sends one; without it there is nothing to derive a
		// stable id from.
		id = schemas.NewEventID()
	}
	text := strings.TrimSpace(cmd.Text)
	ev := &schemas.Event{
		ID:              id,
		Platform:        platformName,
		PlatformEventID: cmd.TriggerID,
		Kind:            schemas.KindCommand,
		Channel:         schemas.Channel{ID: cmd.ChannelID, Name: cmd.ChannelName, ServerID: cmd.TeamID},
		User: schemas.User{ID: cmd.UserID, Login: cmd.UserID, DisplayName: cmd.UserName,
			Roles: in.roles(ctx, cmd.TeamID, cmd.UserID)},
		Text:       text,
		OccurredAt: in.now().UTC(),
	}
	if in.interactions != nil && cmd.ResponseURL != "" {
		interaction := collectors.Interaction{ResponseURL: cmd.ResponseURL, Ephemeral: in.private(ctx, text)}
		if err := in.interactions.Put(ctx, platformName, ev.ID, interaction); err != nil {
			return fmt.Errorf("slack: unable to keep the response URL of %s: %w", cmd.Command, err)
		}
	}
	return in.publish(ctx, ev)
}

// private reports whether the command named by text answers only its
// invoker (its manifest says private or ephemeral). Unknown: public.
func (in *Intake) private(ctx context.Context, text string) bool {
	name, _, _ := strings.Cut(text, " ")
	name = strings.ToLower(strings.TrimRightFunc(name, unicode.IsSpace))
	if name == "" {
		return false
	}
	for _, m := range in.manifests(ctx) {
		for _, c := range m.Commands {
			if !strings.EqualFold(c.Name, name) && !containsFold(c.Aliases, name) {
				continue
			}
			return c.Visibility == schemas.VisibilityPrivate || c.Visibility == schemas.VisibilityEphemeral
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, q := range list {
		if strings.EqualFold(q, s) {
			return true
		}
	}
	return false
}

// manifests is the catalogue, cached for a minute; on a failed read the
// last copy serves (or none: answers are public).
func (in *Intake) manifests(ctx context.Context) []schemas.Manifest {
	if in.catalogue == nil {
		return nil
	}
	in.catMu.Lock()
	defer in.catMu.Unlock()
	now := in.now()
	if !in.catCheckAt.IsZero() && now.Before(in.catCheckAt) {
		return in.catCached
	}
	ms, err := in.catalogue(ctx)
	if err != nil {
		in.log.Warn("slack: unable to read the catalogue; slash command answers are public until it is read",
			logging.KeyPlatform, platformName, logging.Err(err))
		in.catCheckAt = now.Add(catalogueRetryAfter)
		return in.catCached
	}
	in.catCached, in.catCheckAt = ms, now.Add(catalogueTTL)
	return ms
}
