// Package shoutout is the shoutout module: `!so @user` points the chat at
// another streamer (on Twitch with what they last streamed and Twitch's
// native shoutout), and a raid earns the raider a shoutout of its own, at
// most once per cooldown.
package shoutout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// Name is the module's name: its command subject is wb.cmd.shoutout.
const Name = "shoutout"

// Command is the shoutout command; CommandAlias is its long form.
const (
	Command      = "so"
	CommandAlias = "shoutout"
)

// Defaults of the module's per-community settings (reference: auto-shoutout
// on raid with a 60-minute per-target cooldown).
const (
	DefaultAutoOnRaid      = true
	DefaultCooldownMinutes = 60
	MaxCooldownMinutes     = 24 * 60
)

// DefaultLookupTimeout bounds each Twitch lookup: the handler runs inside
// the outbox transaction, which should not stay open for long.
const DefaultLookupTimeout = 3 * time.Second

// Bounds on what Twitch tells us, so every reply fits one Twitch message
// (500 characters) with room to spare. Twitch titles are at most 140.
const (
	maxShownName     = 50
	maxShownCategory = 100
	maxShownTitle    = 140
)

// Config builds the shoutout module.
type Config struct {
	// Store is where old shoutout records are pruned from; nil skips that.
	Store *store.Store
	// NATS carries the Twitch lookups (wb.api.twitch.*) when Requester is
	// nil.
	NATS *natsx.Conn
	// Requester, when set, carries the lookups instead of NATS (tests).
	Requester Requester
	// LookupTimeout bounds one lookup; default DefaultLookupTimeout.
	LookupTimeout time.Duration
	// Clock is what cooldowns count on; nil is the wall clock.
	Clock  clock.Clock
	Logger *slog.Logger
}

// settingsSchema is the JSON Schema of the per-community settings.
const settingsSchema = `{
  "type": "object",
  "properties": {
    "auto_on_raid": {"type": "boolean", "default": true,
      "description": "Shout out whoever raids the channel"},
    "auto_cooldown_minutes": {"type": "integer", "minimum": 0, "maximum": 1440, "default": 60,
      "description": "Minutes before the same raider gets another automatic shoutout in the same channel"}
  },
  "additionalProperties": false
}`

// Manifest is the module's entry in the catalogue.
func Manifest() schemas.Manifest {
	return schemas.Manifest{
		Name:           Name,
		Version:        "1.0.0",
		Description:    "Shoutouts for other streamers, and for raiders when they raid",
		DefaultEnabled: true,
		// The shoutout records commit with the result, in the outbox.
		Writes: true,
		Commands: []schemas.CommandSpec{{
			Name: Command, Aliases: []string{CommandAlias},
			Usage:       "so @user",
			Description: "Shouts a streamer out: on Twitch with what they last streamed, and Twitch's own shoutout",
			Permission:  string(schemas.RoleModerator),
		}},
		// No router throttle: the cooldown is per raider and per community
		// setting, which the module keeps itself.
		Triggers: []schemas.TriggerSpec{{Kind: schemas.KindRaid}},
		Settings: json.RawMessage(settingsSchema),
	}
}

// New builds the shoutout module.
func New(cfg Config) actions.Module {
	m := &module{st: cfg.Store, requester: cfg.Requester, lookupTimeout: cfg.LookupTimeout, clock: cfg.Clock, log: cfg.Logger}
	if m.requester == nil && cfg.NATS != nil && cfg.NATS.NC != nil {
		m.requester = cfg.NATS.NC
	}
	if m.lookupTimeout <= 0 {
		m.lookupTimeout = DefaultLookupTimeout
	}
	if m.clock == nil {
		m.clock = clock.Real{}
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.log = m.log.With(logging.KeyModule, Name)
	mod := actions.Module{Manifest: Manifest(), Handle: m.handle}
	if m.st != nil {
		mod.Housekeep = m.housekeep
	}
	return mod
}

type module struct {
	st            *store.Store
	requester     Requester
	lookupTimeout time.Duration
	clock         clock.Clock
	log           *slog.Logger
}

func (m *module) housekeep(ctx context.Context) error {
	return pruneRecords(ctx, m.st.Pool(), m.clock.Now().Add(-keepRecords))
}

// settings are a community's choices, with the defaults filled in.
type settings struct {
	AutoOnRaid bool
	Cooldown   time.Duration
}

// readSettings reads the community's settings; what is missing or out of
// range takes the default, so a bad setting never stops the module.
func readSettings(raw json.RawMessage) settings {
	s := settings{AutoOnRaid: DefaultAutoOnRaid, Cooldown: DefaultCooldownMinutes * time.Minute}
	var typed struct {
		AutoOnRaid          *bool `json:"auto_on_raid"`
		AutoCooldownMinutes *int  `json:"auto_cooldown_minutes"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &typed) != nil {
		return s
	}
	if typed.AutoOnRaid != nil {
		s.AutoOnRaid = *typed.AutoOnRaid
	}
	if n := typed.AutoCooldownMinutes; n != nil && *n >= 0 && *n <= MaxCooldownMinutes {
		s.Cooldown = time.Duration(*n) * time.Minute
	}
	return s
}

func (m *module) handle(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
	if tx == nil {
		return nil, errors.New("shoutout: run outside the outbox transaction")
	}
	var out *shout
	var err error
	switch {
	case inv.Route == schemas.RouteTrigger+string(schemas.KindRaid):
		out, err = m.raid(ctx, inv, tx)
	case inv.Command == Command:
		out, err = m.shoutout(ctx, inv, tx)
	default:
		return nil, fmt.Errorf("%w: shoutout has no command %q (route %q)", schemas.ErrInvalid, inv.Command, inv.Route)
	}
	if err != nil {
		return nil, err
	}
	res := &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: Name}
	if out != nil {
		res.Replies = []schemas.ReplyText{{Text: out.text}}
		if out.native != nil {
			res.Actions = []schemas.PlatformAction{*out.native}
		}
	}
	return res, nil
}

// shout is what the module answers: a message, and perhaps Twitch's native
// shoutout. nil: nothing at all (a raider still cooling down).
type shout struct {
	text   string
	native *schemas.PlatformAction
}

func say(text string) *shout { return &shout{text: text} }

// shoutout answers `!so <target>`.
func (m *module) shoutout(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*shout, error) {
	ev := &inv.Event
	t, prob := parseTarget(ev.Platform, inv.ArgText)
	switch prob {
	case problemNoTarget:
		return say(fmt.Sprintf("Usage: %sso @user — shouts a streamer out.", actions.CommandPrefix(inv))), nil
	case problemNotLogin:
		return say("That isn't a Twitch login: logins are 3 to 25 letters, digits or _."), nil
	case problemBadName:
		return say(fmt.Sprintf("I can only shout out a Twitch login, a mention, or a name of letters, digits, _, - and . (at most %d).", MaxNameLength)), nil
	}
	if isSelf(ev, t) {
		return say("You can't shout yourself out."), nil
	}
	if ev.Platform != schemas.PlatformTwitch {
		return say(textShoutout(t)), nil
	}

	user, err := m.userByLogin(ctx, inv.ID, t.login)
	switch {
	case errors.Is(err, errNotFound):
		return say(fmt.Sprintf("No Twitch user named %s.", t.login)), nil
	case err != nil:
		m.log.Warn("shoutout: Twitch user lookup failed", logging.KeyID, inv.ID, logging.Err(err))
		return say(fmt.Sprintf("I couldn't reach Twitch right now to look up %s; please try again in a minute.", t.login)), nil
	case user.ID == ev.User.ID:
		return say("You can't shout yourself out."), nil
	case user.ID == ev.Channel.ID:
		return say(fmt.Sprintf("%s is this channel's own broadcaster: shout out someone else!", clip(user.DisplayName, maxShownName))), nil
	}
	// What they streamed makes the shoutout better but is not needed for it.
	ch, err := m.channelInfo(ctx, inv.ID, user.ID, user.Login)
	if err != nil {
		m.log.Info("shoutout: no channel information; shouting out without it", logging.KeyID, inv.ID, logging.Err(err))
		ch = twitchChannel{}
	}
	native, err := m.recordShoutout(ctx, inv, tx, user.ID)
	if err != nil {
		return nil, err
	}
	out := say(twitchShoutout("Go check out "+displayName(user.DisplayName, user.Login), user.Login, ch))
	if native {
		out.native = &schemas.PlatformAction{Action: schemas.ActionShoutout, TargetUserID: user.ID, TargetLogin: user.Login}
	}
	return out, nil
}

// raid shouts out whoever raided the channel, unless the community turned
// that off or the raider was shouted out within the cooldown.
func (m *module) raid(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*shout, error) {
	set := readSettings(inv.Settings)
	if !set.AutoOnRaid {
		return nil, nil
	}
	ev := &inv.Event
	raider := ev.User
	if ev.Data != nil && ev.Data.Target != nil {
		raider = *ev.Data.Target
	}
	login := strings.ToLower(raider.Login)
	if raider.ID == "" && login == "" {
		m.log.Warn("shoutout: raid event names no raider", logging.KeyID, inv.ID)
		return nil, nil
	}
	key := raider.ID
	if key == "" {
		key = login
	}
	if ev.Platform != schemas.PlatformTwitch || raider.ID == ev.Channel.ID {
		// Only Twitch has raids, and it does not raid a channel into itself.
		return nil, nil
	}
	// Looked up before the record is locked, so the lock (which a !so in
	// the same channel waits for) is held for milliseconds, not a lookup.
	ch, err := m.channelInfo(ctx, inv.ID, raider.ID, login)
	if err != nil {
		m.log.Info("shoutout: no channel information for the raider; shouting out without it", logging.KeyID, inv.ID, logging.Err(err))
		ch = twitchChannel{}
	}
	if login == "" {
		login = strings.ToLower(ch.Login)
	}
	// Locked until the transaction ends: a second raid by the same raider
	// delivered meanwhile waits here, then sees this shoutout.
	rec, err := lockRecord(ctx, tx, inv.Community.ID, channelKey(ev), key)
	if err != nil {
		return nil, err
	}
	now := m.clock.Now()
	if rec.coolingDown(now, set.Cooldown) {
		m.log.Debug("shoutout: raider shouted out within the cooldown", logging.KeyID, inv.ID, "raider", login)
		return nil, nil
	}
	native := rec.nativeAllowed(now)
	if err := saveShoutout(ctx, tx, inv.Community.ID, channelKey(ev), key, inv.ID, now, native); err != nil {
		return nil, err
	}
	name := displayName(raider.DisplayName, login)
	if name == "" {
		name = displayName(ch.DisplayName, ch.Login)
	}
	if name == "" {
		name = "raider"
	}
	text := fmt.Sprintf("Thanks for the raid, %s!", name)
	if login != "" {
		text = twitchShoutout(text+" Go check them out", login, ch)
	}
	out := say(text)
	if native {
		out.native = &schemas.PlatformAction{Action: schemas.ActionShoutout, TargetUserID: raider.ID, TargetLogin: login}
	}
	return out, nil
}

// recordShoutout records a manual shoutout of a Twitch user in this
// channel (so a raid right after it does not repeat it) and reports whether
// Twitch would take a native shoutout now.
func (m *module) recordShoutout(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, userID string) (bool, error) {
	rec, err := lockRecord(ctx, tx, inv.Community.ID, channelKey(&inv.Event), userID)
	if err != nil {
		return false, err
	}
	now := m.clock.Now()
	native := rec.nativeAllowed(now)
	if err := saveShoutout(ctx, tx, inv.Community.ID, channelKey(&inv.Event), userID, inv.ID, now, native); err != nil {
		return false, err
	}
	return native, nil
}

// channelKey names the event's channel in shoutout records.
func channelKey(ev *schemas.Event) string { return ev.Platform + ":" + ev.Channel.ID }

// isSelf reports whether the target is the user who typed the command.
func isSelf(ev *schemas.Event, t target) bool {
	u := ev.User
	switch t.kind {
	case kindTwitchLogin:
		return u.Login != "" && strings.EqualFold(u.Login, t.login)
	case kindMention:
		return u.ID != "" && u.ID == t.userID
	case kindName:
		return (u.Login != "" && strings.EqualFold(u.Login, t.shown)) ||
			(u.DisplayName != "" && strings.EqualFold(u.DisplayName, t.shown))
	}
	return false
}

// textShoutout is the shoutout off Twitch: no lookup, the link when the
// target is a Twitch login.
func textShoutout(t target) string {
	switch t.kind {
	case kindTwitchLogin:
		return fmt.Sprintf("Go check out %s — %s", t.login, channelURL(t.login))
	default:
		return fmt.Sprintf("Go check out %s!", t.shown)
	}
}

// twitchShoutout follows intro ("Go check out Bob") with the streamer's
// link and what they last streamed, when Twitch told us. The link comes
// before the title, so it survives whatever the title holds.
func twitchShoutout(intro, login string, ch twitchChannel) string {
	text := intro + " at " + channelURL(login)
	category := clip(sanitize(ch.Category), maxShownCategory)
	title := clip(sanitize(ch.Title), maxShownTitle)
	switch {
	case category != "" && title != "":
		text += fmt.Sprintf(" — last seen playing %s: %s", category, title)
	case category != "":
		text += " — last seen playing " + category
	case title != "":
		text += " — last seen streaming: " + title
	}
	return text
}

func channelURL(login string) string { return "https://twitch.tv/" + login }

// displayName is the name to show: Twitch's display name, else the login.
func displayName(display, login string) string {
	if d := clip(sanitize(display), maxShownName); d != "" {
		return d
	}
	return login
}

// sanitize turns line breaks and other control characters into spaces and
// trims: one shoutout is one line.
func sanitize(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "")
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// clip cuts s to at most n characters, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n-1])) + "…"
}
