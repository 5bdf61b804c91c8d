package discord

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
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

// catalogueWait is the longest an interaction waits for the catalogue:
// Discord wants the deferral within 3 s of the command, and the time is
// counted from when the interaction was read.
const catalogueWait = time.Second

// catalogueRetry is how long a failed catalogue read is not tried again
// (interactions meanwhile answer as if no command were private).
const catalogueRetry = 5 * time.Second

// catalogueReadTimeout bounds one read of the catalogue; it runs on its
// own, so a slow database delays no interaction past catalogueWait.
const catalogueReadTimeout = 10 * time.Second

// interaction answers an INTERACTION_CREATE: an autocomplete gets command
// names; the /waddlebot command is deferred at once (Discord wants an
// answer within 3 s), its follow-up handle kept for the sender, and a
// command event published.
func (sh *shard) interaction(ctx context.Context, raw json.RawMessage) {
	readAt := time.Now()
	var in wireInteraction
	if err := json.Unmarshal(raw, &in); err != nil {
		sh.log.Warn("discord: unreadable INTERACTION_CREATE", logging.Err(err))
		return
	}
	if in.Data.Name != CommandName {
		return
	}
	handle := &discordgo.Interaction{ID: in.ID, AppID: in.ApplicationID, Token: in.Token}
	switch in.Type {
	case interactionAutocomplete:
		manifests, _ := sh.g.manifests(ctx, readAt.Add(catalogueWait))
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
			sh.log.Warn("discord: unable to answer an autocomplete", logging.Err(redactURL(err)))
		}
	case interactionApplicationCommand:
		if u := in.invoker(); in.ID == "" || in.ChannelID == "" || u == nil || u.ID == "" {
			sh.log.Warn("discord: interaction without id, channel or user dropped")
			return
		}
		// Deferred before anything slower (a guild looked up for roles):
		// only whether the command answers privately is needed for it.
		manifests, _ := sh.g.manifests(ctx, readAt.Add(catalogueWait))
		private := commandPrivate(manifests, in.commandText())
		data := &discordgo.InteractionResponseData{}
		if private {
			data.Flags = discordgo.MessageFlagsEphemeral
		}
		err := sh.session.InteractionRespond(handle, &discordgo.InteractionResponse{
			Type: discordgo.InteractionResponseDeferredChannelMessageWithSource, Data: data,
		}, discordgo.WithContext(ctx))
		if err != nil {
			// Without the deferral Discord shows the user a failure and
			// the token takes no follow-up: running the command would
			// answer nobody.
			sh.log.Warn("discord: unable to defer an interaction", "interaction_id", in.ID, logging.Err(redactURL(err)))
			return
		}
		ev, err := normalizeInteraction(in, stateDirectory{s: sh.session, ctx: ctx}, sh.g.now())
		if err != nil {
			sh.log.Warn("discord: interaction dropped", logging.Err(err))
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

// catalogueCache keeps the manifests read from the catalogue. Reads run
// on their own goroutine, outside the lock, one at a time; a failure is
// remembered for catalogueRetry so that a database that is down does not
// cost every interaction a wait.
type catalogueCache struct {
	mu        sync.Mutex
	manifests []schemas.Manifest
	known     bool
	readAt    time.Time
	failedAt  time.Time
	reading   chan struct{} // closed when the read in flight ends; nil when none
}

// manifests returns the catalogue and whether it is known. A stale one is
// returned at once (and refreshed meanwhile); with none yet it waits for
// a read until deadline at most.
func (g *Gateway) manifests(ctx context.Context, deadline time.Time) ([]schemas.Manifest, bool) {
	c := &g.catalogue
	now := g.now()
	c.mu.Lock()
	fresh := c.known && now.Sub(c.readAt) < catalogueTTL
	failedRecently := !c.failedAt.IsZero() && now.Sub(c.failedAt) < catalogueRetry
	if fresh || failedRecently {
		defer c.mu.Unlock()
		return c.manifests, c.known
	}
	if c.reading == nil {
		c.reading = make(chan struct{})
		g.background.Add(1)
		go g.readCatalogue()
	}
	reading, known, ms := c.reading, c.known, c.manifests
	c.mu.Unlock()
	if known {
		return ms, true
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-reading:
	case <-timer.C:
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.manifests, c.known
}

// readCatalogue reads the catalogue once into the cache.
func (g *Gateway) readCatalogue() {
	defer g.background.Done()
	ctx, cancel := context.WithTimeout(context.Background(), catalogueReadTimeout)
	defer cancel()
	ms, err := g.cfg.Catalogue(ctx)
	c := &g.catalogue
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		g.log.Warn("discord: unable to read the catalogue; using the last one", "retry_in", catalogueRetry, logging.Err(err))
		c.failedAt = g.now()
	} else {
		c.manifests, c.known, c.readAt, c.failedAt = ms, true, g.now(), time.Time{}
	}
	close(c.reading)
	c.reading = nil
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
