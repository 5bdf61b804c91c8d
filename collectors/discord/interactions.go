package discord

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

// CommandName is the application command WaddleBot registers; its options
// are "command" (autocompleted) and "args".
const CommandName = "waddlebot"

// maxChoices is the most autocomplete choices Discord accepts.
const maxChoices = 25

// Interaction types (INTERACTION_CREATE "type").
const (
	interactionApplicationCommand = 2
	interactionAutocomplete       = 4
)

type wireOption struct {
	Name    string          `json:"name"`
	Type    int             `json:"type"`
	Value   json.RawMessage `json:"value"`
	Focused bool            `json:"focused"`
	Options []wireOption    `json:"options"`
}

func (o wireOption) text() string {
	var s string
	if json.Unmarshal(o.Value, &s) == nil {
		return s
	}
	return strings.Trim(string(o.Value), `"`)
}

type wireInteraction struct {
	ID            string      `json:"id"`
	ApplicationID string      `json:"application_id"`
	Type          int         `json:"type"`
	Token         string      `json:"token"`
	GuildID       string      `json:"guild_id"`
	ChannelID     string      `json:"channel_id"`
	Member        *wireMember `json:"member"`
	User          *wireUser   `json:"user"`
	Data          struct {
		Name    string       `json:"name"`
		Options []wireOption `json:"options"`
	} `json:"data"`
}

// invoker is who used the command: the member in a guild, the user in a DM.
func (in wireInteraction) invoker() *wireUser {
	if in.Member != nil && in.Member.User != nil {
		return in.Member.User
	}
	return in.User
}

func (in wireInteraction) option(name string) (wireOption, bool) {
	for _, o := range in.Data.Options {
		if o.Name == name {
			return o, true
		}
	}
	return wireOption{}, false
}

// commandText is the bare command line the router parses ("ping a b"):
// the command option without a prefix the user may have typed, then args.
func (in wireInteraction) commandText() string {
	cmd, _ := in.option("command")
	args, _ := in.option("args")
	name := strings.TrimLeft(strings.TrimSpace(cmd.text()), "!#/")
	return strings.TrimSpace(name + " " + strings.TrimSpace(args.text()))
}

// normalizeInteraction turns an application command interaction into a
// command event (its id is the interaction's); private says whether the
// command's replies are private.
func normalizeInteraction(in wireInteraction, dir directory, now time.Time) (*schemas.Event, error) {
	u := in.invoker()
	if in.ID == "" || in.ChannelID == "" || u == nil || u.ID == "" {
		return nil, fmt.Errorf("discord: interaction without id, channel or user")
	}
	user := u.user()
	var roles []string
	perms := ""
	if in.Member != nil {
		roles, perms = in.Member.Roles, in.Member.Permissions
		if in.Member.Nick != "" {
			user.DisplayName = in.Member.Nick
		}
	}
	user.Roles = rolesOf(u.ID, in.GuildID, roles, perms, dir)
	ev := &schemas.Event{
		Version: schemas.Version, ID: schemas.EventID(schemas.PlatformDiscord, in.ID),
		Platform: schemas.PlatformDiscord, PlatformEventID: in.ID, Kind: schemas.KindCommand,
		Channel: channelOf(in.ChannelID, in.GuildID, dir), User: user, Text: in.commandText(),
		OccurredAt: now.UTC(), ReceivedAt: now.UTC(),
	}
	if _, thread := dir.channel(in.ChannelID); thread {
		ev.ThreadID = in.ChannelID
	}
	if err := ev.Validate(); err != nil {
		return nil, fmt.Errorf("discord: interaction %s: %w", in.ID, err)
	}
	return ev, nil
}

// interaction answers an INTERACTION_CREATE: an autocomplete gets command
// names; the /waddlebot command is deferred at once (Discord wants an
// answer within 3 s), its follow-up handle kept for the sender, and a
// command event published.
func (sh *shard) interaction(ctx context.Context, raw json.RawMessage) {
	var in wireInteraction
	if err := json.Unmarshal(raw, &in); err != nil {
		sh.log.Warn("discord: unreadable INTERACTION_CREATE", logging.Err(err))
		return
	}
	if in.Data.Name != CommandName {
		return
	}
	handle := &discordgo.Interaction{ID: in.ID, AppID: in.ApplicationID, Token: in.Token}
	manifests := sh.g.manifests(ctx)
	switch in.Type {
	case interactionAutocomplete:
		typed := ""
		if o, ok := in.option("command"); ok {
			typed = o.text()
		}
		choices := []*discordgo.ApplicationCommandOptionChoice{}
		for _, name := range commandChoices(manifests, typed) {
			choices = append(choices, &discordgo.ApplicationCommandOptionChoice{Name: name, Value: name})
		}
		err := sh.session.InteractionRespond(handle, &discordgo.InteractionResponse{
			Type: discordgo.InteractionApplicationCommandAutocompleteResult,
			Data: &discordgo.InteractionResponseData{Choices: choices},
		}, discordgo.WithContext(ctx))
		if err != nil {
			sh.log.Warn("discord: unable to answer an autocomplete", logging.Err(err))
		}
	case interactionApplicationCommand:
		ev, err := normalizeInteraction(in, stateDirectory{sh.session}, sh.g.now())
		if err != nil {
			sh.log.Warn("discord: interaction dropped", logging.Err(err))
			return
		}
		private := commandPrivate(manifests, ev.Text)
		data := &discordgo.InteractionResponseData{}
		if private {
			data.Flags = discordgo.MessageFlagsEphemeral
		}
		err = sh.session.InteractionRespond(handle, &discordgo.InteractionResponse{
			Type: discordgo.InteractionResponseDeferredChannelMessageWithSource, Data: data,
		}, discordgo.WithContext(ctx))
		if err != nil {
			// Without the deferral Discord shows the user a failure and
			// the token takes no follow-up: running the command would
			// answer nobody.
			sh.log.Warn("discord: unable to defer an interaction", "event_id", ev.ID, logging.Err(err))
			return
		}
		keep := collectors.Interaction{AppID: in.ApplicationID, Token: in.Token, Ephemeral: private}
		if err := sh.g.cfg.Interactions.Put(ctx, schemas.PlatformDiscord, ev.ID, keep); err != nil {
			sh.log.Error("discord: unable to keep an interaction", "event_id", ev.ID, logging.Err(err))
			return
		}
		sh.publish(ctx, ev)
	}
}

// manifests returns the catalogue, read at most once a minute; on error
// the last one read (possibly none) is used.
func (g *Gateway) manifests(ctx context.Context) []schemas.Manifest {
	g.catalogueMu.Lock()
	defer g.catalogueMu.Unlock()
	if g.catalogue != nil && g.now().Sub(g.catalogueRead) < catalogueTTL {
		return g.catalogue
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ms, err := g.cfg.Catalogue(ctx)
	if err != nil {
		g.log.Warn("discord: unable to read the catalogue; using the last one", logging.Err(err))
		return g.catalogue
	}
	if ms == nil {
		ms = []schemas.Manifest{}
	}
	g.catalogue, g.catalogueRead = ms, g.now()
	return ms
}

// commandChoices are the command names (and aliases) that start with what
// was typed, sorted, at most maxChoices.
func commandChoices(manifests []schemas.Manifest, typed string) []string {
	typed = strings.ToLower(strings.TrimLeft(strings.TrimSpace(typed), "!#/"))
	seen := map[string]bool{}
	var out []string
	for _, m := range manifests {
		for _, c := range m.Commands {
			for _, name := range append([]string{c.Name}, c.Aliases...) {
				if name == "" || seen[name] || !strings.HasPrefix(strings.ToLower(name), typed) {
					continue
				}
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	if len(out) > maxChoices {
		out = out[:maxChoices]
	}
	return out
}

// commandPrivate reports whether the command of a command line answers
// privately (its manifest's visibility is private or ephemeral).
func commandPrivate(manifests []schemas.Manifest, text string) bool {
	name, _, _ := strings.Cut(text, " ")
	name = strings.ToLower(name)
	for _, m := range manifests {
		for _, c := range m.Commands {
			for _, n := range append([]string{c.Name}, c.Aliases...) {
				if strings.ToLower(n) == name {
					return c.Visibility == schemas.VisibilityPrivate || c.Visibility == schemas.VisibilityEphemeral
				}
			}
		}
	}
	return false
}
