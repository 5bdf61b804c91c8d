package discord

import (
	"context"
	"errors"
	"fmt"

	"github.com/bwmarrin/discordgo"
)

// Option names of /waddlebot (CommandName).
const (
	optionCommand = "command"
	optionArgs    = "args"
)

// waddlebotCommand is /waddlebot <command> [args]: the command name is
// autocompleted from the module catalogue.
func waddlebotCommand() *discordgo.ApplicationCommand {
	return &discordgo.ApplicationCommand{
		Type:        discordgo.ChatApplicationCommand,
		Name:        CommandName,
		Description: "Run a WaddleBot command",
		Options: []*discordgo.ApplicationCommandOption{
			{
				Type: discordgo.ApplicationCommandOptionString, Name: optionCommand,
				Description: "The command to run", Required: true, Autocomplete: true,
			},
			{
				Type: discordgo.ApplicationCommandOptionString, Name: optionArgs,
				Description: "What to pass to the command",
			},
		},
	}
}

// RegisterCommands registers /waddlebot as the application's only global
// command. It is a bulk overwrite, so running it at every start is
// idempotent (Discord keeps the command's id when nothing changed) and
// removes commands an older version registered.
func RegisterCommands(ctx context.Context, s *discordgo.Session, appID string) error {
	if s == nil || appID == "" {
		return errors.New("discord: registering commands needs a session and the application id")
	}
	_, err := s.ApplicationCommandBulkOverwrite(appID, "", []*discordgo.ApplicationCommand{waddlebotCommand()},
		discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(true), discordgo.WithRestRetries(3))
	if err != nil {
		return fmt.Errorf("discord: unable to register the /%s command: %w", CommandName, err)
	}
	return nil
}
