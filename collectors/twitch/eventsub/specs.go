package eventsub

import "sort"

// Subscription types WaddleBot subscribes to.
const (
	ChatMessage      = "channel.chat.message"
	Follow           = "channel.follow"
	Subscribe        = "channel.subscribe"
	SubscriptionGift = "channel.subscription.gift"
	Cheer            = "channel.cheer"
	Raid             = "channel.raid"
	Ban              = "channel.ban"
	Unban            = "channel.unban"
	StreamOnline     = "stream.online"
	StreamOffline    = "stream.offline"
)

// OAuth scopes, as Twitch's EventSub and Helix references name them.
const (
	ScopeUserReadChat             = "user:read:chat"
	ScopeUserWriteChat            = "user:write:chat"
	ScopeUserBot                  = "user:bot"
	ScopeChannelBot               = "channel:bot"
	ScopeUserReadModeratedChannel = "user:read:moderated_channels"
	ScopeModeratorReadFollowers   = "moderator:read:followers"
	ScopeChannelReadSubscriptions = "channel:read:subscriptions"
	ScopeBitsRead                 = "bits:read"
	ScopeChannelModerate          = "channel:moderate"
	ScopeModeratorManageShoutouts = "moderator:manage:shoutouts"
	ScopeModeratorManageBans      = "moderator:manage:banned_users"
	ScopeModeratorManageMessages  = "moderator:manage:chat_messages"
	ScopeUserManageWhispers       = "user:manage:whispers"
)

// Spec is one subscription WaddleBot makes for every connected channel.
type Spec struct {
	Type, Version string
	// Scopes are what the broadcaster must grant for it (with the
	// broadcaster's token on a WebSocket, or to the app for webhook and
	// conduit subscriptions).
	Scopes []string
}

// Specs lists the subscriptions a channel gets. The scopes follow Twitch's
// EventSub reference: chat is read as the broadcaster (user:read:chat on the
// broadcaster's own token); follow v2 needs a moderator's
// moderator:read:followers, and the broadcaster is the moderator; raid and
// the stream events need none.
func Specs() []Spec {
	return []Spec{
		{Type: ChatMessage, Version: "1", Scopes: []string{ScopeUserReadChat}},
		{Type: Follow, Version: "2", Scopes: []string{ScopeModeratorReadFollowers}},
		{Type: Subscribe, Version: "1", Scopes: []string{ScopeChannelReadSubscriptions}},
		{Type: SubscriptionGift, Version: "1", Scopes: []string{ScopeChannelReadSubscriptions}},
		{Type: Cheer, Version: "1", Scopes: []string{ScopeBitsRead}},
		{Type: Raid, Version: "1"},
		{Type: Ban, Version: "1", Scopes: []string{ScopeChannelModerate}},
		{Type: Unban, Version: "1", Scopes: []string{ScopeChannelModerate}},
		{Type: StreamOnline, Version: "1"},
		{Type: StreamOffline, Version: "1"},
	}
}

// Condition is the condition of a subscription made with the broadcaster's
// own user token (EventSub WebSocket): chat is read as the broadcaster and
// the broadcaster is the moderator for follows.
func Condition(spec Spec, broadcasterID string) map[string]string {
	return condition(spec, broadcasterID, broadcasterID)
}

// AppCondition is the condition of a subscription made with the app token
// (webhook or conduit): chat is read as the bot, which the bot's user:bot
// and the broadcaster's channel:bot allow.
func AppCondition(spec Spec, broadcasterID, botID string) map[string]string {
	return condition(spec, broadcasterID, botID)
}

func condition(spec Spec, broadcasterID, chatReaderID string) map[string]string {
	switch spec.Type {
	case ChatMessage:
		return map[string]string{"broadcaster_user_id": broadcasterID, "user_id": chatReaderID}
	case Follow:
		return map[string]string{"broadcaster_user_id": broadcasterID, "moderator_user_id": broadcasterID}
	case Raid:
		// Raids into the channel; raids out of it are not events of its own.
		return map[string]string{"to_broadcaster_user_id": broadcasterID}
	}
	return map[string]string{"broadcaster_user_id": broadcasterID}
}

// BroadcasterScopes is what the connect link asks a broadcaster for: every
// Spec's scopes; channel:bot, so the bot may read and send chat in the
// channel with the app token without being a moderator; and
// moderator:manage:shoutouts, so a shoutout can be sent with the
// broadcaster's token when the bot is no moderator there (Send Shoutout
// needs a moderator's or the broadcaster's token).
func BroadcasterScopes() []string {
	// The moderator scopes let the broadcaster's own token carry out a
	// module's shoutout, timeout or delete where the bot is no moderator.
	set := map[string]bool{ScopeChannelBot: true, ScopeModeratorManageShoutouts: true,
		ScopeModeratorManageBans: true, ScopeModeratorManageMessages: true}
	for _, s := range Specs() {
		for _, scope := range s.Scopes {
			set[scope] = true
		}
	}
	return sorted(set)
}

// BotScopes is what the connect link asks the bot account for:
// user:read:chat and user:bot (read chat as the bot with the app token),
// user:write:chat (Send Chat Message), user:read:moderated_channels (is the
// bot a moderator, for its send budget) and moderator:manage:shoutouts
// (shoutouts as the bot where it is a moderator), moderator:manage:banned_users
// and moderator:manage:chat_messages (a module's timeout or delete, where it
// is a moderator) and user:manage:whispers (private replies).
func BotScopes() []string {
	return []string{ScopeModeratorManageBans, ScopeModeratorManageMessages, ScopeModeratorManageShoutouts,
		ScopeUserBot, ScopeUserManageWhispers, ScopeUserReadChat, ScopeUserReadModeratedChannel, ScopeUserWriteChat}
}

func sorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
