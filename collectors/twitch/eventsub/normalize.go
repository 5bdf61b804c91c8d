package eventsub

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/waddlebot/waddlebot/schemas"
)

// ErrIgnored means Normalize does not map the notification's subscription
// type or version to an event; the caller drops it without an error.
var ErrIgnored = errors.New("eventsub: subscription type not mapped")

// Normalize turns a notification into an event. Version and ReceivedAt are
// left for the Publisher. An error that is not ErrIgnored means the event
// lacks what Twitch documents it always has.
func Normalize(n Notification) (*schemas.Event, error) {
	var (
		ev  *schemas.Event
		err error
	)
	switch n.Subscription.Type + "@" + n.Subscription.Version {
	case ChatMessage + "@1":
		ev, err = chatMessage(n)
	case Follow + "@2":
		ev, err = follow(n)
	case Subscribe + "@1":
		ev, err = subscribe(n)
	case SubscriptionGift + "@1":
		ev, err = gift(n)
	case Cheer + "@1":
		ev, err = cheer(n)
	case Raid + "@1":
		ev, err = raid(n)
	case Ban + "@1":
		ev, err = ban(n)
	case Unban + "@1":
		ev, err = unban(n)
	case StreamOnline + "@1":
		ev, err = streamOnline(n)
	case StreamOffline + "@1":
		ev, err = streamOffline(n)
	default:
		return nil, fmt.Errorf("%w: %s version %s", ErrIgnored, n.Subscription.Type, n.Subscription.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("eventsub: unable to normalize %s notification %s: %w", n.Subscription.Type, n.MessageID, err)
	}
	if ev.Channel.ID == "" {
		return nil, fmt.Errorf("eventsub: %s notification %s has no broadcaster", n.Subscription.Type, n.MessageID)
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = n.Timestamp
	}
	if ev.OccurredAt.IsZero() {
		return nil, fmt.Errorf("eventsub: %s notification %s has no time", n.Subscription.Type, n.MessageID)
	}
	ev.OccurredAt = ev.OccurredAt.UTC()
	return ev, nil
}

// broadcaster is the channel part every event has.
type broadcaster struct {
	ID    string `json:"broadcaster_user_id"`
	Login string `json:"broadcaster_user_login"`
	Name  string `json:"broadcaster_user_name"`
}

func (b broadcaster) channel() schemas.Channel { return schemas.Channel{ID: b.ID, Name: b.Login} }

// user is the user_* triple most events have; the ids are null for
// anonymous gifts and cheers.
type user struct {
	ID    string `json:"user_id"`
	Login string `json:"user_login"`
	Name  string `json:"user_name"`
}

func (u user) user() schemas.User { return schemas.User{ID: u.ID, Login: u.Login, DisplayName: u.Name} }

// byDelivery starts an event whose id is the delivery's message id, which
// Twitch keeps when it redelivers.
func byDelivery(n Notification, kind schemas.Kind, b broadcaster) *schemas.Event {
	return &schemas.Event{
		ID: schemas.EventID(schemas.PlatformTwitch, n.MessageID), Platform: schemas.PlatformTwitch,
		PlatformEventID: n.MessageID, Kind: kind, Channel: b.channel(),
	}
}

func decode(n Notification, v any) error {
	if err := json.Unmarshal(n.Event, v); err != nil {
		return fmt.Errorf("unable to parse event: %w", err)
	}
	return nil
}

type chatEvent struct {
	broadcaster
	ChatterID    string `json:"chatter_user_id"`
	ChatterLogin string `json:"chatter_user_login"`
	ChatterName  string `json:"chatter_user_name"`
	MessageID    string `json:"message_id"`
	Message      struct {
		Text string `json:"text"`
	} `json:"message"`
	Badges []struct {
		SetID string `json:"set_id"`
	} `json:"badges"`
	Reply *struct {
		ParentMessageID string `json:"parent_message_id"`
	} `json:"reply"`
}

// chatMessage keys the event by the chat message id rather than the
// delivery id, so one message read over two transports (a WebSocket and a
// conduit during a switch-over) is one event.
func chatMessage(n Notification) (*schemas.Event, error) {
	var e chatEvent
	if err := decode(n, &e); err != nil {
		return nil, err
	}
	if e.MessageID == "" || e.ChatterID == "" {
		return nil, errors.New("chat message has no message_id or chatter")
	}
	ev := &schemas.Event{
		ID: schemas.EventID(schemas.PlatformTwitch, e.MessageID), Platform: schemas.PlatformTwitch,
		PlatformEventID: e.MessageID, Kind: schemas.KindChat, Channel: e.channel(),
		User: schemas.User{ID: e.ChatterID, Login: e.ChatterLogin, DisplayName: e.ChatterName},
		Text: e.Message.Text,
	}
	badges := map[string]bool{}
	for _, b := range e.Badges {
		badges[b.SetID] = true
	}
	// Highest first, as schemas lists them. The broadcaster always wears the
	// broadcaster badge, but the id check does not depend on it.
	if badges["broadcaster"] || e.ChatterID == e.ID {
		ev.User.Roles = append(ev.User.Roles, schemas.RoleBroadcaster)
	}
	if badges["moderator"] {
		ev.User.Roles = append(ev.User.Roles, schemas.RoleModerator)
	}
	if badges["vip"] {
		ev.User.Roles = append(ev.User.Roles, schemas.RoleVIP)
	}
	// A founder is one of the first subscribers and shows that badge
	// instead of the subscriber one.
	if badges["subscriber"] || badges["founder"] {
		ev.User.Roles = append(ev.User.Roles, schemas.RoleSubscriber)
	}
	if e.Reply != nil {
		ev.ReplyToID = e.Reply.ParentMessageID
	}
	return ev, nil
}

func follow(n Notification) (*schemas.Event, error) {
	var e struct {
		broadcaster
		user
		FollowedAt time.Time `json:"followed_at"`
	}
	if err := decode(n, &e); err != nil {
		return nil, err
	}
	ev := byDelivery(n, schemas.KindFollow, e.broadcaster)
	ev.User = e.user.user()
	ev.OccurredAt = e.FollowedAt
	return ev, nil
}

func subscribe(n Notification) (*schemas.Event, error) {
	var e struct {
		broadcaster
		user
		Tier   string `json:"tier"`
		IsGift bool   `json:"is_gift"`
	}
	if err := decode(n, &e); err != nil {
		return nil, err
	}
	ev := byDelivery(n, schemas.KindSubscription, e.broadcaster)
	ev.User = e.user.user()
	ev.Data = &schemas.EventData{Tier: e.Tier, Gifted: e.IsGift}
	return ev, nil
}

func gift(n Notification) (*schemas.Event, error) {
	var e struct {
		broadcaster
		user
		Total       int    `json:"total"`
		Tier        string `json:"tier"`
		IsAnonymous bool   `json:"is_anonymous"`
	}
	if err := decode(n, &e); err != nil {
		return nil, err
	}
	ev := byDelivery(n, schemas.KindGift, e.broadcaster)
	if !e.IsAnonymous {
		// An anonymous gifter has no user: the event has none either.
		ev.User = e.user.user()
	}
	ev.Data = &schemas.EventData{Tier: e.Tier, Count: e.Total}
	return ev, nil
}

func cheer(n Notification) (*schemas.Event, error) {
	var e struct {
		broadcaster
		user
		IsAnonymous bool   `json:"is_anonymous"`
		Message     string `json:"message"`
		Bits        int    `json:"bits"`
	}
	if err := decode(n, &e); err != nil {
		return nil, err
	}
	ev := byDelivery(n, schemas.KindCheer, e.broadcaster)
	if !e.IsAnonymous {
		ev.User = e.user.user()
	}
	ev.Text = e.Message
	ev.Data = &schemas.EventData{Bits: e.Bits}
	return ev, nil
}

// raid happens in the channel raided: the event's channel is the
// to_broadcaster, its user and target the raiding broadcaster.
func raid(n Notification) (*schemas.Event, error) {
	var e struct {
		FromID    string `json:"from_broadcaster_user_id"`
		FromLogin string `json:"from_broadcaster_user_login"`
		FromName  string `json:"from_broadcaster_user_name"`
		ToID      string `json:"to_broadcaster_user_id"`
		ToLogin   string `json:"to_broadcaster_user_login"`
		ToName    string `json:"to_broadcaster_user_name"`
		Viewers   int    `json:"viewers"`
	}
	if err := decode(n, &e); err != nil {
		return nil, err
	}
	ev := byDelivery(n, schemas.KindRaid, broadcaster{ID: e.ToID, Login: e.ToLogin, Name: e.ToName})
	raider := schemas.User{ID: e.FromID, Login: e.FromLogin, DisplayName: e.FromName}
	ev.User = raider
	ev.Data = &schemas.EventData{Viewers: e.Viewers, Target: &raider}
	return ev, nil
}

type moderation struct {
	broadcaster
	user
	ModeratorID    string `json:"moderator_user_id"`
	ModeratorLogin string `json:"moderator_user_login"`
	ModeratorName  string `json:"moderator_user_name"`
}

func (m moderation) moderator() schemas.User {
	return schemas.User{ID: m.ModeratorID, Login: m.ModeratorLogin, DisplayName: m.ModeratorName}
}

// ban is a ban, or a timeout when it is not permanent: the user is the
// moderator who acted, the target the one banned.
func ban(n Notification) (*schemas.Event, error) {
	var e struct {
		moderation
		Reason      string     `json:"reason"`
		BannedAt    time.Time  `json:"banned_at"`
		EndsAt      *time.Time `json:"ends_at"`
		IsPermanent bool       `json:"is_permanent"`
	}
	if err := decode(n, &e); err != nil {
		return nil, err
	}
	kind := schemas.KindBan
	if !e.IsPermanent {
		kind = schemas.KindTimeout
	}
	ev := byDelivery(n, kind, e.broadcaster)
	target := e.user.user()
	ev.User = e.moderator()
	ev.OccurredAt = e.BannedAt
	ev.Data = &schemas.EventData{Target: &target, Reason: e.Reason}
	if !e.IsPermanent && e.EndsAt != nil && !e.BannedAt.IsZero() {
		if d := e.EndsAt.Sub(e.BannedAt); d > 0 {
			ev.Data.DurationSeconds = int(math.Round(d.Seconds()))
		}
	}
	return ev, nil
}

func unban(n Notification) (*schemas.Event, error) {
	var e moderation
	if err := decode(n, &e); err != nil {
		return nil, err
	}
	ev := byDelivery(n, schemas.KindUnban, e.broadcaster)
	target := e.user.user()
	ev.User = e.moderator()
	ev.Data = &schemas.EventData{Target: &target}
	return ev, nil
}

// streamOnline carries no category (stream.online has none); the user is
// the broadcaster who went live.
func streamOnline(n Notification) (*schemas.Event, error) {
	var e struct {
		broadcaster
		StartedAt time.Time `json:"started_at"`
	}
	if err := decode(n, &e); err != nil {
		return nil, err
	}
	ev := byDelivery(n, schemas.KindStreamOnline, e.broadcaster)
	ev.User = schemas.User{ID: e.ID, Login: e.Login, DisplayName: e.Name}
	ev.OccurredAt = e.StartedAt
	return ev, nil
}

func streamOffline(n Notification) (*schemas.Event, error) {
	var e broadcaster
	if err := decode(n, &e); err != nil {
		return nil, err
	}
	ev := byDelivery(n, schemas.KindStreamOffline, e)
	ev.User = schemas.User{ID: e.ID, Login: e.Login, DisplayName: e.Name}
	return ev, nil
}
