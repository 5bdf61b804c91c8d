package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the envelope version this build writes and the newest it reads.
// Additive changes (a new optional field) keep the version; anything a reader
// of the old version would misread bumps it.
const Version = 1

// Kind is what happened on the platform.
type Kind string

// Event kinds. A new kind is a schema change.
const (
	KindChat          Kind = "chat"
	KindCommand       Kind = "command" // a slash command (Discord /waddlebot, Slack /waddlebot)
	KindFollow        Kind = "follow"
	KindSubscription  Kind = "subscription"
	KindGift          Kind = "gift"
	KindCheer         Kind = "cheer"
	KindRaid          Kind = "raid"
	KindJoin          Kind = "join"
	KindLeave         Kind = "leave"
	KindBan           Kind = "ban"
	KindUnban         Kind = "unban"
	KindTimeout       Kind = "timeout"
	KindStreamOnline  Kind = "stream_online"
	KindStreamOffline Kind = "stream_offline"
)

// Kinds lists every event kind.
var Kinds = []Kind{KindChat, KindCommand, KindFollow, KindSubscription, KindGift, KindCheer,
	KindRaid, KindJoin, KindLeave, KindBan, KindUnban, KindTimeout, KindStreamOnline, KindStreamOffline}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	for _, q := range Kinds {
		if k == q {
			return true
		}
	}
	return false
}

// HasText reports whether events of this kind carry a message a command can
// be parsed from.
func (k Kind) HasText() bool { return k == KindChat || k == KindCommand }

// Role is a user's standing in a channel, as the platform reports it.
type Role string

// Roles, highest first. Broadcaster covers the Twitch broadcaster, the Discord
// guild owner and the Slack workspace owner or admin.
const (
	RoleBroadcaster Role = "broadcaster"
	RoleModerator   Role = "moderator"
	RoleVIP         Role = "vip"
	RoleSubscriber  Role = "subscriber"
	RoleMember      Role = "member"
)

// Permission levels for commands: a role, or everyone.
const PermissionEveryone = "everyone"

// RoleRank orders roles and permissions: higher may do more. Unknown → -1.
func RoleRank(r string) int {
	switch Role(r) {
	case RoleBroadcaster, "owner":
		return 5
	case RoleModerator:
		return 4
	case RoleVIP:
		return 3
	case RoleSubscriber:
		return 2
	case RoleMember:
		return 1
	}
	if r == PermissionEveryone {
		return 0
	}
	return -1
}

// ValidPermission reports whether p names a permission level.
func ValidPermission(p string) bool { return RoleRank(p) >= 0 && p != "owner" }

// Channel is where an event happened.
type Channel struct {
	// ID is the platform's channel id: Twitch broadcaster id, Discord channel
	// snowflake, Slack channel id, a console channel name.
	ID string `json:"id" jsonschema:"minLength=1"`
	// Name is the human name (Twitch login, #general), when known.
	Name string `json:"name,omitempty"`
	// ServerID is the Discord guild or Slack team; empty on Twitch and console.
	ServerID string `json:"server_id,omitempty"`
}

// User is who caused an event.
type User struct {
	ID          string `json:"id,omitempty"`
	Login       string `json:"login,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	Roles       []Role `json:"roles,omitempty"`
	// Bot is true for messages from bots (collectors drop the bot's own).
	Bot bool `json:"bot,omitempty"`
}

// Highest returns the rank of the user's highest role (0 for none).
func (u User) Highest() int {
	best := 0
	for _, r := range u.Roles {
		if n := RoleRank(string(r)); n > best {
			best = n
		}
	}
	return best
}

// HasRole reports whether the user holds role r.
func (u User) HasRole(r Role) bool {
	for _, q := range u.Roles {
		if q == r {
			return true
		}
	}
	return false
}

// Name is the best name to address the user by.
func (u User) Name() string {
	switch {
	case u.DisplayName != "":
		return u.DisplayName
	case u.Login != "":
		return u.Login
	}
	return u.ID
}

// EventData holds what only some kinds carry.
type EventData struct {
	Bits     int    `json:"bits,omitempty"`     // cheer
	Viewers  int    `json:"viewers,omitempty"`  // raid
	Tier     string `json:"tier,omitempty"`     // subscription, gift: "1000", "2000", "3000", "prime"
	Months   int    `json:"months,omitempty"`   // subscription: cumulative months
	Count    int    `json:"count,omitempty"`    // gift: how many subs
	Gifted   bool   `json:"gifted,omitempty"`   // subscription that was a gift
	Category string `json:"category,omitempty"` // stream_online: game or category
	// Target is the user a moderation action (ban, timeout, unban) or a raid
	// came from or applies to.
	Target          *User  `json:"target,omitempty"`
	DurationSeconds int    `json:"duration_seconds,omitempty"` // timeout
	Reason          string `json:"reason,omitempty"`
}

// Event is one thing that happened on a platform, normalized. Collectors
// publish it to wb.events.<platform>.<channel>.<kind>.
type Event struct {
	Version int `json:"version" jsonschema:"minimum=1"`
	// ID is deterministic: see EventID and NewEventID.
	ID              string     `json:"id" jsonschema:"format=uuid"`
	Platform        string     `json:"platform" jsonschema:"enum=twitch,enum=discord,enum=slack,enum=console"`
	PlatformEventID string     `json:"platform_event_id,omitempty"`
	Kind            Kind       `json:"kind" jsonschema:"enum=chat,enum=command,enum=follow,enum=subscription,enum=gift,enum=cheer,enum=raid,enum=join,enum=leave,enum=ban,enum=unban,enum=timeout,enum=stream_online,enum=stream_offline"`
	Channel         Channel    `json:"channel"`
	User            User       `json:"user"`
	Text            string     `json:"text,omitempty"`
	ThreadID        string     `json:"thread_id,omitempty"`
	ReplyToID       string     `json:"reply_to_id,omitempty"`
	Data            *EventData `json:"data,omitempty"`
	OccurredAt      time.Time  `json:"occurred_at"`
	ReceivedAt      time.Time  `json:"received_at"`
}

// MaxEventText bounds an event's text; no platform sends more.
const MaxEventText = 40000

// ErrInvalid wraps every validation failure, so consumers can tell a message
// that will never be good from one that failed for a while.
var ErrInvalid = errors.New("invalid envelope")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func checkVersion(v int) error {
	if v < 1 || v > Version {
		return invalid("version %d not supported (this build reads 1..%d)", v, Version)
	}
	return nil
}

// Validate checks what the hot path relies on.
func (e *Event) Validate() error {
	if err := checkVersion(e.Version); err != nil {
		return err
	}
	switch {
	case !validUUID(e.ID):
		return invalid("event id %q is not a UUID", e.ID)
	case !ValidPlatform(e.Platform):
		return invalid("event platform %q unknown", e.Platform)
	case !e.Kind.Valid():
		return invalid("event kind %q unknown", e.Kind)
	case e.Channel.ID == "":
		return invalid("event has no channel id")
	case e.Kind.HasText() && e.User.ID == "" && e.User.Login == "":
		return invalid("%s event has no user", e.Kind)
	case len(e.Text) > MaxEventText:
		return invalid("event text is %d bytes, more than %d", len(e.Text), MaxEventText)
	case !utf8.ValidString(e.Text):
		return invalid("event text is not UTF-8")
	case e.OccurredAt.IsZero():
		return invalid("event has no occurred_at")
	}
	for _, r := range e.User.Roles {
		if RoleRank(string(r)) < 1 {
			return invalid("event user role %q unknown", r)
		}
	}
	return nil
}

// Subject is where the event is published.
func (e *Event) Subject() string { return EventSubject(e.Platform, e.Channel.ID, e.Kind) }

// Community is what the router tells a module about the community an event
// belongs to.
type Community struct {
	ID          string `json:"id" jsonschema:"format=uuid"`
	Name        string `json:"name,omitempty"`
	Prefix      string `json:"prefix"`
	TimeZone    string `json:"time_zone"`
	Locale      string `json:"locale"`
	Provisional bool   `json:"provisional,omitempty"`
}

// Route prefixes.
const (
	RouteCommand = "cmd:"
	RouteTrigger = "on:"
)

// Invocation is the router's instruction to one module, published to
// wb.cmd.<module>. It carries everything the module needs, so modules never
// parse platform events or re-derive permissions.
type Invocation struct {
	Version int    `json:"version" jsonschema:"minimum=1"`
	ID      string `json:"id" jsonschema:"format=uuid"`
	Event   Event  `json:"event"`
	// Community and the module's settings for it.
	Community Community       `json:"community"`
	Settings  json.RawMessage `json:"settings,omitempty"`
	// PersonID is the cross-platform identity of the user, when linked.
	PersonID string   `json:"person_id,omitempty"`
	Labels   []string `json:"labels,omitempty"`
	Module   string   `json:"module"`
	// Route is "cmd:<name>" for a command, "on:<kind>" for an event trigger.
	Route string `json:"route"`
	// Command is the canonical command name; Invoked is what the user typed
	// (an alias or the command's own alias, without prefix).
	Command string   `json:"command,omitempty"`
	Invoked string   `json:"invoked,omitempty"`
	Args    []string `json:"args,omitempty"`
	// ArgText is the raw text after the command word, quotes kept.
	ArgText  string    `json:"arg_text,omitempty"`
	Deadline time.Time `json:"deadline"`
}

// Validate checks the invocation and the event inside it.
func (in *Invocation) Validate() error {
	if err := checkVersion(in.Version); err != nil {
		return err
	}
	switch {
	case !validUUID(in.ID):
		return invalid("invocation id %q is not a UUID", in.ID)
	case !ValidName(in.Module):
		return invalid("invocation module %q is not a valid name", in.Module)
	case !validUUID(in.Community.ID):
		return invalid("invocation community id %q is not a UUID", in.Community.ID)
	case in.Deadline.IsZero():
		return invalid("invocation has no deadline")
	}
	switch {
	case strings.HasPrefix(in.Route, RouteCommand):
		if in.Command == "" || in.Route != RouteCommand+in.Command {
			return invalid("invocation route %q does not match command %q", in.Route, in.Command)
		}
	case strings.HasPrefix(in.Route, RouteTrigger):
		if !Kind(strings.TrimPrefix(in.Route, RouteTrigger)).Valid() {
			return invalid("invocation route %q names no event kind", in.Route)
		}
	default:
		return invalid("invocation route %q is neither cmd: nor on:", in.Route)
	}
	if err := in.Event.Validate(); err != nil {
		return fmt.Errorf("invocation event: %w", err)
	}
	if len(in.Settings) > 0 && !json.Valid(in.Settings) {
		return invalid("invocation settings are not JSON")
	}
	return nil
}

// Subject is where the invocation is published.
func (in *Invocation) Subject() string { return CommandSubject(in.Module) }

// Visibility says who sees a reply.
type Visibility string

// Visibilities.
const (
	VisibilityPublic    Visibility = "public"
	VisibilityPrivate   Visibility = "private"   // whisper / DM
	VisibilityEphemeral Visibility = "ephemeral" // only the invoker, where the platform can
)

// Valid reports whether v is a known visibility (empty means public).
func (v Visibility) Valid() bool {
	return v == "" || v == VisibilityPublic || v == VisibilityPrivate || v == VisibilityEphemeral
}

// Action is what a reply asks the collector to do.
type Action string

// Actions.
const (
	ActionMessage  Action = "message"
	ActionShoutout Action = "shoutout"
	ActionDelete   Action = "delete"
	ActionTimeout  Action = "timeout"
)

// Valid reports whether a is a known action (empty means message).
func (a Action) Valid() bool {
	return a == "" || a == ActionMessage || a == ActionShoutout || a == ActionDelete || a == ActionTimeout
}

// ReplyText is one reply a module asks for.
type ReplyText struct {
	Text       string     `json:"text"`
	Visibility Visibility `json:"visibility,omitempty" jsonschema:"enum=public,enum=private,enum=ephemeral"`
}

// PlatformAction is a platform action a module asks for.
type PlatformAction struct {
	Action Action `json:"action" jsonschema:"enum=shoutout,enum=delete,enum=timeout"`
	// TargetUserID / TargetLogin: whom a shoutout or timeout is for.
	TargetUserID    string `json:"target_user_id,omitempty"`
	TargetLogin     string `json:"target_login,omitempty"`
	MessageID       string `json:"message_id,omitempty"` // delete
	DurationSeconds int    `json:"duration_seconds,omitempty"`
	Reason          string `json:"reason,omitempty"`
}

// Result is what a module returns for one invocation.
type Result struct {
	Version      int              `json:"version" jsonschema:"minimum=1"`
	InvocationID string           `json:"invocation_id" jsonschema:"format=uuid"`
	Module       string           `json:"module,omitempty"`
	Replies      []ReplyText      `json:"replies,omitempty"`
	Overlays     []OverlayItem    `json:"overlays,omitempty"`
	Actions      []PlatformAction `json:"actions,omitempty"`
}

// MaxResultText bounds one reply text before splitting.
const MaxResultText = 20000

// Validate checks a result, as the relay does for external modules.
func (r *Result) Validate() error {
	if err := checkVersion(r.Version); err != nil {
		return err
	}
	if !validUUID(r.InvocationID) {
		return invalid("result invocation id %q is not a UUID", r.InvocationID)
	}
	for i, t := range r.Replies {
		switch {
		case strings.TrimSpace(t.Text) == "":
			return invalid("result reply %d is empty", i)
		case len(t.Text) > MaxResultText:
			return invalid("result reply %d is %d bytes, more than %d", i, len(t.Text), MaxResultText)
		case !utf8.ValidString(t.Text):
			return invalid("result reply %d is not UTF-8", i)
		case !t.Visibility.Valid():
			return invalid("result reply %d visibility %q unknown", i, t.Visibility)
		}
	}
	for i, a := range r.Actions {
		if a.Action == "" || a.Action == ActionMessage || !a.Action.Valid() {
			return invalid("result action %d %q unknown", i, a.Action)
		}
	}
	for i := range r.Overlays {
		if err := r.Overlays[i].validateContent(); err != nil {
			return fmt.Errorf("result overlay %d: %w", i, err)
		}
	}
	return nil
}

// Target is where a reply goes.
type Target struct {
	Platform  string `json:"platform" jsonschema:"enum=twitch,enum=discord,enum=slack,enum=console"`
	ServerID  string `json:"server_id,omitempty"`
	ChannelID string `json:"channel_id" jsonschema:"minLength=1"`
	// ChannelName helps platforms that address channels by name (Twitch IRC,
	// console).
	ChannelName string `json:"channel_name,omitempty"`
	ThreadID    string `json:"thread_id,omitempty"`
	ReplyToID   string `json:"reply_to_id,omitempty"`
	// UserID is whom a private or ephemeral reply is for.
	UserID string `json:"user_id,omitempty"`
}

// TargetOf is where replies to an event go.
func TargetOf(e *Event) Target {
	return Target{
		Platform:    e.Platform,
		ServerID:    e.Channel.ServerID,
		ChannelID:   e.Channel.ID,
		ChannelName: e.Channel.Name,
		ThreadID:    e.ThreadID,
		ReplyToID:   e.PlatformEventID,
		UserID:      e.User.ID,
	}
}

// Reply is one message (or platform action) for a collector to send,
// published to wb.reply.<platform>.<channel>. Its text is already split to
// the platform's limit: senders never split.
type Reply struct {
	Version      int        `json:"version" jsonschema:"minimum=1"`
	ID           string     `json:"id" jsonschema:"format=uuid"`
	InvocationID string     `json:"invocation_id" jsonschema:"format=uuid"`
	EventID      string     `json:"event_id,omitempty"`
	Module       string     `json:"module,omitempty"`
	Target       Target     `json:"target"`
	Text         string     `json:"text,omitempty"`
	Part         int        `json:"part" jsonschema:"minimum=1"`
	Parts        int        `json:"parts" jsonschema:"minimum=1"`
	Visibility   Visibility `json:"visibility,omitempty" jsonschema:"enum=public,enum=private,enum=ephemeral"`
	Action       Action     `json:"action,omitempty" jsonschema:"enum=message,enum=shoutout,enum=delete,enum=timeout"`
	// ActionData details a platform action.
	ActionData *PlatformAction `json:"action_data,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
}

// Validate checks a reply, including that its text fits its platform.
func (r *Reply) Validate() error {
	if err := checkVersion(r.Version); err != nil {
		return err
	}
	switch {
	case !validUUID(r.ID):
		return invalid("reply id %q is not a UUID", r.ID)
	case !validUUID(r.InvocationID):
		return invalid("reply invocation id %q is not a UUID", r.InvocationID)
	case !ValidPlatform(r.Target.Platform):
		return invalid("reply platform %q unknown", r.Target.Platform)
	case r.Target.ChannelID == "":
		return invalid("reply has no channel")
	case r.Part < 1 || r.Parts < r.Part:
		return invalid("reply part %d of %d", r.Part, r.Parts)
	case !r.Visibility.Valid():
		return invalid("reply visibility %q unknown", r.Visibility)
	case !r.Action.Valid():
		return invalid("reply action %q unknown", r.Action)
	case !utf8.ValidString(r.Text):
		return invalid("reply text is not UTF-8")
	}
	if r.Action == "" || r.Action == ActionMessage {
		if strings.TrimSpace(r.Text) == "" {
			return invalid("reply message is empty")
		}
		if n, limit := utf8.RuneCountInString(r.Text), TextLimit(r.Target.Platform); n > limit {
			return invalid("reply text is %d characters, %s allows %d", n, r.Target.Platform, limit)
		}
	} else if r.ActionData == nil {
		return invalid("reply action %q has no action data", r.Action)
	}
	return nil
}

// Subject is where the reply is published.
func (r *Reply) Subject() string { return ReplySubject(r.Target.Platform, r.Target.ChannelID) }

// TextLimit is the longest message, in characters, a platform accepts.
func TextLimit(platform string) int {
	switch platform {
	case PlatformTwitch:
		return 500 // Helix Send Chat Message: "The message is limited to a maximum of 500 characters."
	case PlatformDiscord:
		return 2000 // Create Message: content up to 2000 characters.
	case PlatformSlack:
		return 4000 // chat.postMessage: Slack truncates text over 40,000 and advises 4,000.
	}
	return 2000
}

// Overlay sources.
const (
	OverlayTicker     = "ticker"
	OverlayAlert      = "alert"
	OverlayNowPlaying = "nowplaying"
	OverlayGeneral    = "general"
)

// OverlayItem is pushed to a community's browser sources over
// wb.overlay.<community>.<source>.
type OverlayItem struct {
	Version     int             `json:"version,omitempty"`
	ID          string          `json:"id,omitempty"`
	CommunityID string          `json:"community_id,omitempty"`
	Source      string          `json:"source" jsonschema:"enum=ticker,enum=alert,enum=nowplaying,enum=general"`
	Text        string          `json:"text,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	DurationMS  int             `json:"duration_ms,omitempty"`
	CreatedAt   time.Time       `json:"created_at,omitzero"`
}

func (o *OverlayItem) validateContent() error {
	switch o.Source {
	case OverlayTicker, OverlayAlert, OverlayNowPlaying, OverlayGeneral:
	default:
		return invalid("overlay source %q unknown", o.Source)
	}
	if len(o.Data) > 0 && !json.Valid(o.Data) {
		return invalid("overlay data is not JSON")
	}
	return nil
}

// Validate checks an overlay item as published.
func (o *OverlayItem) Validate() error {
	if err := checkVersion(o.Version); err != nil {
		return err
	}
	if !validUUID(o.ID) || !validUUID(o.CommunityID) {
		return invalid("overlay item needs a UUID id and community id")
	}
	return o.validateContent()
}

// DeadLetter is a message the pipeline gave up on, published to
// wb.dlq.<stream> with Nats-Msg-Id "<stream>:<seq>".
type DeadLetter struct {
	Version  int                 `json:"version" jsonschema:"minimum=1"`
	Stream   string              `json:"stream"`
	Consumer string              `json:"consumer"`
	Subject  string              `json:"subject"`
	Sequence uint64              `json:"sequence"`
	Headers  map[string][]string `json:"headers,omitempty"`
	// Body is the original message, byte for byte (base64 in JSON).
	Body     []byte    `json:"body"`
	Reason   string    `json:"reason"`
	Failures int       `json:"failures"`
	FailedAt time.Time `json:"failed_at"`
}

// Validate checks a dead letter.
func (d *DeadLetter) Validate() error {
	if err := checkVersion(d.Version); err != nil {
		return err
	}
	if d.Stream == "" || d.Subject == "" || d.Reason == "" {
		return invalid("dead letter needs stream, subject and reason")
	}
	return nil
}

// MsgID is the dead letter's Nats-Msg-Id.
func (d *DeadLetter) MsgID() string { return fmt.Sprintf("%s:%d", d.Stream, d.Sequence) }

// APIRequest asks a collector for a lookup over wb.api.<platform>.<operation>
// (request/reply, not stored).
type APIRequest struct {
	Version   int               `json:"version" jsonschema:"minimum=1"`
	ID        string            `json:"id,omitempty"`
	Operation string            `json:"operation"`
	Args      map[string]string `json:"args,omitempty"`
}

// Validate checks an API request.
func (a *APIRequest) Validate() error {
	if err := checkVersion(a.Version); err != nil {
		return err
	}
	if !ValidName(a.Operation) {
		return invalid("api operation %q is not a valid name", a.Operation)
	}
	return nil
}

// APIError is a typed failure of an API request.
type APIError struct {
	// Code: not_found, invalid, unavailable, unauthorized, rate_limited, internal.
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// APIResponse answers an APIRequest with data or a typed error.
type APIResponse struct {
	Version int             `json:"version" jsonschema:"minimum=1"`
	ID      string          `json:"id,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Error   *APIError       `json:"error,omitempty"`
}

// Validate checks an API response.
func (a *APIResponse) Validate() error {
	if err := checkVersion(a.Version); err != nil {
		return err
	}
	if (a.Error == nil) == (len(a.Data) == 0) {
		return invalid("api response needs exactly one of data and error")
	}
	return nil
}
