package discord

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/waddlebot/waddlebot/schemas"
)

// Permission bits that make a member a WaddleBot moderator.
const (
	permissionAdministrator = int64(1) << 3
	permissionManageGuild   = int64(1) << 5
)

// Message types that are someone talking (DEFAULT, REPLY); the others are
// system notices (joins, pins, boosts) that are not chat.
const (
	messageTypeDefault = 0
	messageTypeReply   = 19
)

// guildView is what normalizing needs to know about a guild: who owns it,
// what its roles allow, and its channels' names.
type guildView struct {
	OwnerID string
	// RolePermissions by role id; the @everyone role has the guild's id.
	RolePermissions map[string]int64
}

// directory finds guilds and channels the session has seen (discordgo's
// state, filled by GUILD_CREATE, or REST).
type directory interface {
	guild(guildID string) (guildView, bool)
	// channel returns a channel's name and whether it is a thread.
	channel(channelID string) (name string, thread bool)
}

// wireUser is a Discord user object.
type wireUser struct {
	ID         string `json:"id"`
	Username   string `json:"username"`
	GlobalName string `json:"global_name"`
	Bot        bool   `json:"bot"`
}

func (u wireUser) user() schemas.User {
	return schemas.User{ID: u.ID, Login: u.Username, DisplayName: u.GlobalName, Bot: u.Bot}
}

// wireMember is a guild member object (partial in MESSAGE_CREATE: no user).
type wireMember struct {
	User  *wireUser `json:"user"`
	Nick  string    `json:"nick"`
	Roles []string  `json:"roles"`
	// Permissions is only in interactions: the member's computed
	// permissions in the channel, as a decimal string.
	Permissions                string     `json:"permissions"`
	JoinedAt                   *time.Time `json:"joined_at"`
	CommunicationDisabledUntil *time.Time `json:"communication_disabled_until"`
}

type wireMessage struct {
	ID        string      `json:"id"`
	ChannelID string      `json:"channel_id"`
	GuildID   string      `json:"guild_id"`
	Author    *wireUser   `json:"author"`
	Member    *wireMember `json:"member"`
	Content   string      `json:"content"`
	Timestamp time.Time   `json:"timestamp"`
	Type      int         `json:"type"`
	WebhookID string      `json:"webhook_id"`
}

// normalizeMessage turns a MESSAGE_CREATE payload into a chat event. It
// returns nil (and no error) for messages that are not chat from a person:
// the bot's own (botID), other bots', webhooks', system messages, and
// messages without text (attachments only).
func normalizeMessage(raw []byte, botID string, dir directory, now time.Time) (*schemas.Event, error) {
	var m wireMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("discord: unreadable MESSAGE_CREATE: %w", err)
	}
	switch {
	case m.Author == nil || m.Author.ID == "" || m.ID == "" || m.ChannelID == "":
		return nil, fmt.Errorf("discord: MESSAGE_CREATE without id, channel or author")
	case m.Author.ID == botID || m.Author.Bot || m.WebhookID != "":
		return nil, nil
	case m.Type != messageTypeDefault && m.Type != messageTypeReply:
		return nil, nil
	case strings.TrimSpace(m.Content) == "":
		return nil, nil
	}
	user := m.Author.user()
	if m.Member != nil && m.Member.Nick != "" {
		user.DisplayName = m.Member.Nick
	}
	var roles []string
	if m.Member != nil {
		roles = m.Member.Roles
	}
	user.Roles = rolesOf(m.Author.ID, m.GuildID, roles, "", dir)
	occurred := m.Timestamp
	if occurred.IsZero() {
		occurred = now
	}
	ev := &schemas.Event{
		Version: schemas.Version, ID: schemas.EventID(schemas.PlatformDiscord, m.ID),
		Platform: schemas.PlatformDiscord, PlatformEventID: m.ID, Kind: schemas.KindChat,
		Channel: channelOf(m.ChannelID, m.GuildID, dir), User: user, Text: m.Content,
		// Replies to this event answer this message.
		ReplyToID:  m.ID,
		OccurredAt: occurred.UTC(), ReceivedAt: now.UTC(),
	}
	if _, thread := dir.channel(m.ChannelID); thread {
		ev.ThreadID = m.ChannelID
	}
	if err := ev.Validate(); err != nil {
		return nil, fmt.Errorf("discord: message %s: %w", m.ID, err)
	}
	return ev, nil
}

// channelOf is the event channel of a guild (or DM) channel. Replies are
// sent to Channel.ID, so a thread's messages keep the thread as their
// channel (ThreadID says it is one).
func channelOf(channelID, guildID string, dir directory) schemas.Channel {
	name, _ := dir.channel(channelID)
	return schemas.Channel{ID: channelID, Name: name, ServerID: guildID}
}

// guildChannel is the event channel of guild-level events (joins, bans,
// timeouts), which happen in no channel: the guild's id stands for it.
func guildChannel(guildID string) schemas.Channel {
	return schemas.Channel{ID: guildID, ServerID: guildID}
}

// rolesOf gives a member WaddleBot roles from Discord permissions: the
// guild owner is the broadcaster; ADMINISTRATOR or MANAGE_GUILD make a
// moderator; everyone else in a guild (or a DM) is a member. computed is
// the member's permissions when Discord computed them (interactions); else
// they are the union of the member's roles' and @everyone's permissions.
func rolesOf(userID, guildID string, memberRoles []string, computed string, dir directory) []schemas.Role {
	if guildID == "" {
		return []schemas.Role{schemas.RoleMember}
	}
	g, known := dir.guild(guildID)
	if known && g.OwnerID != "" && g.OwnerID == userID {
		return []schemas.Role{schemas.RoleBroadcaster}
	}
	var perms int64
	if p, err := strconv.ParseInt(computed, 10, 64); err == nil {
		perms = p
	} else if known {
		perms = g.RolePermissions[guildID]
		for _, r := range memberRoles {
			perms |= g.RolePermissions[r]
		}
	}
	if perms&(permissionAdministrator|permissionManageGuild) != 0 {
		return []schemas.Role{schemas.RoleModerator}
	}
	return []schemas.Role{schemas.RoleMember}
}

type wireMemberEvent struct {
	GuildID string `json:"guild_id"`
	wireMember
}

// normalizeMemberAdd turns GUILD_MEMBER_ADD into a join event.
func normalizeMemberAdd(raw []byte, botID string, now time.Time) (*schemas.Event, error) {
	var m wireMemberEvent
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("discord: unreadable GUILD_MEMBER_ADD: %w", err)
	}
	if m.GuildID == "" || m.User == nil || m.User.ID == "" {
		return nil, fmt.Errorf("discord: GUILD_MEMBER_ADD without guild or user")
	}
	if m.User.ID == botID {
		return nil, nil
	}
	occurred := now
	if m.JoinedAt != nil && !m.JoinedAt.IsZero() {
		occurred = *m.JoinedAt
	}
	user := m.User.user()
	user.Roles = []schemas.Role{schemas.RoleMember}
	ev := &schemas.Event{
		Version: schemas.Version, Platform: schemas.PlatformDiscord, Kind: schemas.KindJoin,
		// Joining again later is another event: the time tells them apart.
		ID:      schemas.EventID(schemas.PlatformDiscord, "join:"+m.GuildID+":"+m.User.ID+":"+occurred.UTC().Format(time.RFC3339Nano)),
		Channel: guildChannel(m.GuildID), User: user,
		OccurredAt: occurred.UTC(), ReceivedAt: now.UTC(),
	}
	return ev, ev.Validate()
}

// normalizeBan turns GUILD_BAN_ADD into a ban event. Discord does not say
// who banned (that is in the audit log), so User is the banned member too.
// key tells this ban from a later one of the same user (the gateway
// session and sequence, the same when a resume replays it).
func normalizeBan(raw []byte, key string, now time.Time) (*schemas.Event, error) {
	var b struct {
		GuildID string    `json:"guild_id"`
		User    *wireUser `json:"user"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("discord: unreadable GUILD_BAN_ADD: %w", err)
	}
	if b.GuildID == "" || b.User == nil || b.User.ID == "" {
		return nil, fmt.Errorf("discord: GUILD_BAN_ADD without guild or user")
	}
	target := b.User.user()
	ev := &schemas.Event{
		Version: schemas.Version, Platform: schemas.PlatformDiscord, Kind: schemas.KindBan,
		ID:      schemas.EventID(schemas.PlatformDiscord, "ban:"+b.GuildID+":"+b.User.ID+":"+key),
		Channel: guildChannel(b.GuildID), User: target,
		Data:       &schemas.EventData{Target: &target},
		OccurredAt: now.UTC(), ReceivedAt: now.UTC(),
	}
	return ev, ev.Validate()
}

// normalizeMemberUpdate turns a GUILD_MEMBER_UPDATE that times a member out
// (communication_disabled_until in the future) into a timeout event; other
// updates (roles, nicknames, a timeout lifted) give nil.
func normalizeMemberUpdate(raw []byte, now time.Time) (*schemas.Event, error) {
	var m wireMemberEvent
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("discord: unreadable GUILD_MEMBER_UPDATE: %w", err)
	}
	if m.GuildID == "" || m.User == nil || m.User.ID == "" {
		return nil, fmt.Errorf("discord: GUILD_MEMBER_UPDATE without guild or user")
	}
	until := m.CommunicationDisabledUntil
	if until == nil || !until.After(now) {
		return nil, nil
	}
	target := m.User.user()
	ev := &schemas.Event{
		Version: schemas.Version, Platform: schemas.PlatformDiscord, Kind: schemas.KindTimeout,
		// The end time is what makes one timeout different from another.
		ID:      schemas.EventID(schemas.PlatformDiscord, "timeout:"+m.GuildID+":"+m.User.ID+":"+until.UTC().Format(time.RFC3339Nano)),
		Channel: guildChannel(m.GuildID), User: target,
		Data:       &schemas.EventData{Target: &target, DurationSeconds: int(until.Sub(now).Round(time.Second) / time.Second)},
		OccurredAt: now.UTC(), ReceivedAt: now.UTC(),
	}
	return ev, ev.Validate()
}

// maxTimeoutMemory bounds the timeouts remembered (a guild's members can
// be many; forgetting costs at most a repeated event, which the event id
// lets the stream's duplicate window drop).
const maxTimeoutMemory = 10000

// timeoutMemory remembers, per guild and member, the end of the timeout
// last published: every GUILD_MEMBER_UPDATE of a timed-out member (a role
// or nickname change) carries communication_disabled_until again, and
// only a new end is a new timeout.
type timeoutMemory struct {
	mu   sync.Mutex
	last map[string]time.Time // guild:user → communication_disabled_until
}

// changed notes the member update raw, normalized as ev (nil: no timeout
// in force), and reports whether ev is a timeout not published yet.
func (m *timeoutMemory) changed(raw []byte, ev *schemas.Event) bool {
	var u wireMemberEvent
	if err := json.Unmarshal(raw, &u); err != nil || u.User == nil {
		return ev != nil
	}
	key := u.GuildID + ":" + u.User.ID
	m.mu.Lock()
	defer m.mu.Unlock()
	if ev == nil || u.CommunicationDisabledUntil == nil {
		delete(m.last, key)
		return false
	}
	until := *u.CommunicationDisabledUntil
	if last, ok := m.last[key]; ok && last.Equal(until) {
		return false
	}
	if len(m.last) >= maxTimeoutMemory {
		clear(m.last)
	}
	m.last[key] = until
	return true
}
