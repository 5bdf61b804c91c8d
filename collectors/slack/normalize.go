package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/slack-go/slack/slackevents"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/metrics"
	"github.com/waddlebot/waddlebot/schemas"
)

// How long Intake trusts what it learned, and how much it remembers.
const (
	botUserIDTTL        = 10 * time.Minute
	botUserIDRetryAfter = 5 * time.Second // after a failed lookup, so a down database is not asked per message
	botUserIDBudget     = 5 * time.Second
	// botUserIDWait is how long an event waits for a team's bot user never
	// looked up before; past it the event goes on without (the bot's own
	// posts carry bot_id anyway), within Slack's 3-second deadline.
	botUserIDWait = time.Second
	recentEntries = 50000
)

// errIgnored marks a Slack event that is not a WaddleBot event: an edit, a
// deletion, a join notice, a bot's post.
var errIgnored = errors.New("slack: event not mapped")

// IntakeConfig configures an Intake.
type IntakeConfig struct {
	Publisher    Publisher
	Workspaces   Workspaces
	Interactions *collectors.Interactions
	// Catalogue lists the module manifests, so a slash command whose
	// replies are private is answered ephemerally. Optional: without it
	// every answer is public.
	Catalogue func(ctx context.Context) ([]schemas.Manifest, error)
	// Users tells users' roles (NewUserDirectory). Optional: without it
	// everyone is a member.
	Users  UserRoles
	Logger *slog.Logger
	Now    func() time.Time
}

// Intake is where both transports (Socket Mode and the Events API) hand
// what Slack sends: it normalizes, folds the message + app_mention pair of
// one post, drops bots and redeliveries, and publishes.
type Intake struct {
	pub          Publisher
	workspaces   Workspaces
	interactions *collectors.Interactions
	catalogue    func(ctx context.Context) ([]schemas.Manifest, error)
	users        UserRoles
	log          *slog.Logger
	now          func() time.Time

	// botMu guards botIDs only: lookups run outside it, one per team at a
	// time (botLookups), so a slow team holds up no other.
	botMu      sync.Mutex
	botIDs     map[string]botUserID // by team
	botLookups flights

	catMu      sync.Mutex
	catCached  []schemas.Manifest
	catCheckAt time.Time

	// Slack event_ids handled, so a retry of the same delivery is handled
	// once; and published event ids, so the second of a message +
	// app_mention pair is not published again (the stream's duplicate
	// window would drop it too, but only within its window).
	handled   *collectors.RecentIDs
	published *collectors.RecentIDs
}

type botUserID struct {
	id      string
	checkAt time.Time
}

// NewIntake makes an Intake.
func NewIntake(cfg IntakeConfig) *Intake {
	if cfg.Logger == nil {
		cfg.Logger = logging.Discard()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Intake{pub: cfg.Publisher, workspaces: cfg.Workspaces, interactions: cfg.Interactions,
		catalogue: cfg.Catalogue, users: cfg.Users, log: cfg.Logger, now: cfg.Now,
		botIDs:  map[string]botUserID{},
		handled: collectors.NewRecentIDs(recentEntries), published: collectors.NewRecentIDs(recentEntries)}
}

// HandleEvent handles one Events API callback (from either transport).
// teamID is the workspace it was delivered for; empty means ev.TeamID. It
// returns an error only when the event could not be published (or the
// workspace not disconnected), so the caller must let Slack retry it;
// unmapped and malformed events return nil, since retrying cannot help.
func (in *Intake) HandleEvent(ctx context.Context, teamID string, ev slackevents.EventsAPIEvent) error {
	if teamID == "" {
		teamID = ev.TeamID
	}
	eventID := ""
	if cb, ok := ev.Data.(*slackevents.EventsAPICallbackEvent); ok && cb != nil {
		eventID = cb.EventID
	}
	if eventID != "" && in.handled.Has(eventID) {
		skipped("duplicate")
		in.log.Debug("slack: redelivered event dropped", logging.KeyPlatform, platformName, logging.KeyID, eventID)
		return nil
	}
	if err := in.handleInner(ctx, teamID, ev.InnerEvent); err != nil {
		return err
	}
	if eventID != "" {
		// Remembered only once handled, so a failed publish is retried.
		in.handled.Add(eventID)
	}
	return nil
}

func (in *Intake) handleInner(ctx context.Context, teamID string, inner slackevents.EventsAPIInnerEvent) error {
	switch data := inner.Data.(type) {
	case *slackevents.MessageEvent:
		return in.handleMessage(ctx, teamID, messageFromEvent(data))
	case *slackevents.AppMentionEvent:
		return in.handleMessage(ctx, teamID, messageFromMention(data))
	case *slackevents.AppUninstalledEvent:
		return in.disconnect(ctx, teamID, "app_uninstalled")
	case *slackevents.TokensRevokedEvent:
		// Revoked user tokens leave the bot token working: only a revoked
		// bot token disconnects the workspace.
		if len(data.Tokens.Bot) == 0 {
			return nil
		}
		return in.disconnect(ctx, teamID, "tokens_revoked")
	}
	skipped("unmapped")
	in.log.Debug("slack: event of an unmapped type dropped", logging.KeyPlatform, platformName, "type", inner.Type)
	return nil
}

func (in *Intake) disconnect(ctx context.Context, teamID, reason string) error {
	if teamID == "" {
		return nil
	}
	if err := in.workspaces.Disconnect(ctx, teamID, reason); err != nil {
		return fmt.Errorf("slack: unable to disconnect team %s after %s: %w", teamID, reason, err)
	}
	in.forgetBot(teamID)
	in.log.Info("slack: workspace disconnected", logging.KeyPlatform, platformName, "team", teamID, logging.KeyReason, reason)
	return nil
}

func (in *Intake) handleMessage(ctx context.Context, teamID string, m message) error {
	m.team = teamID
	botID := in.botUserID(ctx, teamID)
	ev, err := normalize(m, botID)
	if errors.Is(err, errIgnored) {
		skipped("unmapped")
		return nil
	}
	if err != nil {
		skipped("malformed")
		in.log.Warn("slack: malformed message dropped", logging.KeyPlatform, platformName, logging.Err(err))
		return nil
	}
	if ev.User.Bot {
		// The bot reads the channels it writes to: its own messages, and
		// other bots', must not trigger commands (or answer each other).
		skipped("own_message")
		in.log.Debug("slack: a bot's message dropped", logging.KeyPlatform, platformName,
			logging.KeyChannel, ev.Channel.ID, logging.KeyEvent, ev.ID)
		return nil
	}
	ev.User.Roles = in.roles(ctx, teamID, ev.User.ID)
	return in.publish(ctx, ev)
}

// publish drops an event published recently (the other half of a message +
// app_mention pair) and publishes the rest.
func (in *Intake) publish(ctx context.Context, ev *schemas.Event) error {
	if in.published.Has(ev.ID) {
		skipped("duplicate")
		in.log.Debug("slack: event already published", logging.KeyPlatform, platformName,
			logging.KeyChannel, ev.Channel.ID, logging.KeyEvent, ev.ID)
		return nil
	}
	if err := in.pub.Publish(ctx, ev); err != nil {
		if errors.Is(err, schemas.ErrInvalid) {
			skipped("invalid")
			in.log.Warn("slack: invalid event dropped", logging.KeyPlatform, platformName,
				logging.KeyEvent, ev.ID, logging.Err(err))
			return nil
		}
		return fmt.Errorf("slack: unable to publish %s event %s: %w", ev.Kind, ev.ID, err)
	}
	in.published.Add(ev.ID)
	return nil
}

// botUserID is the bot's user id in a team, cached; "" when unknown (a
// failed or slow lookup lets messages flow on rather than wait for the
// database; the bot's own posts carry bot_id anyway). A stale id is
// returned at once while it is refreshed.
func (in *Intake) botUserID(ctx context.Context, teamID string) string {
	if in.workspaces == nil || teamID == "" {
		return ""
	}
	in.botMu.Lock()
	cached, ok := in.botIDs[teamID]
	in.botMu.Unlock()
	if ok && in.now().Before(cached.checkAt) {
		return cached.id
	}
	// The lookup outlives this caller, so a slow answer still serves the
	// team's next event.
	lookupCtx := context.WithoutCancel(ctx)
	done := in.botLookups.start(teamID, func() { in.refreshBotUserID(lookupCtx, teamID, cached.id) })
	if cached.id != "" {
		return cached.id
	}
	wait := time.NewTimer(botUserIDWait)
	defer wait.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return ""
	case <-wait.C:
		return ""
	}
	in.botMu.Lock()
	defer in.botMu.Unlock()
	return in.botIDs[teamID].id
}

func (in *Intake) refreshBotUserID(ctx context.Context, teamID, previous string) {
	ctx, cancel := context.WithTimeout(ctx, botUserIDBudget)
	id, err := in.workspaces.BotUserID(ctx, teamID)
	cancel()
	entry := botUserID{id: id, checkAt: in.now().Add(botUserIDTTL)}
	if err != nil {
		if !errors.Is(err, ErrNotInstalled) {
			in.log.Warn("slack: unable to look up the bot user; its mentions are not recognised until it is known",
				logging.KeyPlatform, platformName, "team", teamID, logging.Err(err))
		}
		entry = botUserID{id: previous, checkAt: in.now().Add(botUserIDRetryAfter)}
	}
	in.botMu.Lock()
	in.botIDs[teamID] = entry
	in.botMu.Unlock()
}

// roles is the user's roles in the team: member unless a UserRoles says
// more.
func (in *Intake) roles(ctx context.Context, teamID, userID string) []schemas.Role {
	if in.users == nil {
		return []schemas.Role{schemas.RoleMember}
	}
	// A copy: the directory's cached slice is shared between events.
	return slices.Clone(in.users.Roles(ctx, teamID, userID))
}

func (in *Intake) forgetBot(teamID string) {
	in.botMu.Lock()
	delete(in.botIDs, teamID)
	in.botMu.Unlock()
}

// message is what message and app_mention events share.
type message struct {
	team, channel, user, botID, subtype string
	text, ts, threadTS                  string
	edited                              bool
}

func messageFromEvent(e *slackevents.MessageEvent) message {
	return message{channel: e.Channel, user: e.User, botID: e.BotID, subtype: e.SubType,
		text: e.Text, ts: e.TimeStamp, threadTS: e.ThreadTimeStamp}
}

func messageFromMention(e *slackevents.AppMentionEvent) message {
	return message{channel: e.Channel, user: e.User, botID: e.BotID,
		text: e.Text, ts: e.TimeStamp, threadTS: e.ThreadTimeStamp, edited: e.Edited != nil}
}

// postSubtypes are the message subtypes that are a person's new post.
// Everything else (message_changed, message_deleted, channel_join,
// bot_message…) is not chat.
var postSubtypes = map[string]bool{"": true, "thread_broadcast": true, "file_share": true, "me_message": true}

// normalize turns a message or app_mention into a chat event. The event key
// is team:channel:ts, the same for both events Slack sends for one post
// that mentions the bot, so they become one event.
//
// A post that starts with the bot's mention ("@WaddleBot !ping") loses
// that mention when what follows may be a prefixed command, so the router
// sees "!ping". Otherwise ("@WaddleBot hello") the text is kept whole, so a
// module can still tell the bot was addressed. "@WaddleBot ping" is chat,
// not a command: commands need the community's prefix or /waddlebot.
//
// A bot's post is returned with User.Bot set (the caller drops it).
func normalize(m message, botUserID string) (*schemas.Event, error) {
	if !postSubtypes[m.subtype] || m.edited {
		return nil, errIgnored
	}
	switch {
	case m.team == "":
		return nil, errors.New("slack: message without a team")
	case m.channel == "":
		return nil, errors.New("slack: message without a channel")
	case m.ts == "":
		return nil, errors.New("slack: message without a ts")
	}
	occurred, err := parseTS(m.ts)
	if err != nil {
		return nil, err
	}
	if m.user == "" && m.botID == "" {
		return nil, errors.New("slack: message without a user")
	}
	if !utf8.ValidString(m.text) {
		return nil, errors.New("slack: message text is not UTF-8")
	}
	key := m.team + ":" + m.channel + ":" + m.ts
	ev := &schemas.Event{
		ID:              schemas.EventID(platformName, key),
		Platform:        platformName,
		PlatformEventID: m.ts,
		Kind:            schemas.KindChat,
		Channel:         schemas.Channel{ID: m.channel, ServerID: m.team},
		// Labels and mentions name Slack users by id: Slack has no stable
		// login, so the id stands in for it.
		User:       schemas.User{ID: m.user, Login: m.user},
		Text:       truncateText(stripBotMention(m.text, botUserID)),
		ThreadID:   m.threadTS,
		OccurredAt: occurred,
	}
	switch {
	case m.botID != "" || m.subtype == "bot_message":
		ev.User.Bot = true
	case botUserID != "" && m.user == botUserID:
		ev.User.Bot = true
	default:
		// Whoever posts in a workspace's channel is a member of it.
		ev.User.Roles = []schemas.Role{schemas.RoleMember}
	}
	return ev, nil
}

// stripBotMention removes a leading "<@BOT>" (or "<@BOT|name>") when what
// follows starts with a symbol, as a command prefix does.
func stripBotMention(text, botUserID string) string {
	if botUserID == "" {
		return text
	}
	trimmed := strings.TrimLeftFunc(text, unicode.IsSpace)
	rest, ok := strings.CutPrefix(trimmed, "<@"+botUserID)
	if !ok {
		return text
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 || (end > 0 && rest[0] != '|') {
		return text // "<@BOT…" is another user's id or not a mention
	}
	rest = strings.TrimLeft(rest[end+1:], " \t\n:,")
	r, _ := utf8.DecodeRuneInString(rest)
	if rest == "" || unicode.IsLetter(r) || unicode.IsDigit(r) {
		return text
	}
	return rest
}

// truncateText keeps text within schemas.MaxEventText bytes: Slack counts
// its 40,000 limit in characters, so a long post of accented letters would
// otherwise be refused whole.
func truncateText(text string) string {
	if len(text) <= schemas.MaxEventText {
		return text
	}
	cut := schemas.MaxEventText
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut]
}

const maxUnixSeconds = 253402300799 // 9999-12-31T23:59:59Z

// parseTS reads Slack's "seconds.micros" message timestamp.
func parseTS(ts string) (time.Time, error) {
	secs, frac, _ := strings.Cut(ts, ".")
	s, err := strconv.ParseInt(secs, 10, 64)
	// Past year 9999 a time no longer encodes as JSON.
	if err != nil || s <= 0 || s > maxUnixSeconds || len(frac) > 9 {
		return time.Time{}, fmt.Errorf("slack: malformed ts %q", ts)
	}
	var nanos int64
	if frac != "" {
		n, err := strconv.ParseInt(frac, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("slack: malformed ts %q", ts)
		}
		for i := len(frac); i < 9; i++ {
			n *= 10
		}
		nanos = n
	}
	return time.Unix(s, nanos).UTC(), nil
}

func skipped(reason string) {
	metrics.EventsSkipped.WithLabelValues(platformName, reason).Inc()
}
