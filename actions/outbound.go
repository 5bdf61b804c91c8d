package actions

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Outbound turns a module's result into the messages to publish, in order:
// every part of every reply text, then the platform actions, then the overlay
// items. Ids are deterministic (reply n of the invocation, counting parts and
// actions together from 1; overlay n counting overlays from 1), so a retry
// produces the same messages and the streams' duplicate windows drop the
// copies. Every envelope is validated here, so a module's junk fails with an
// error wrapping schemas.ErrInvalid (dead-lettered with its reason) instead
// of reaching a sender. A nil or empty result gives no messages.
func Outbound(inv *schemas.Invocation, res *schemas.Result, now time.Time) ([]store.OutMessage, error) {
	return outbound(origin{ID: inv.ID, EventID: inv.Event.ID, Module: inv.Module,
		Target: schemas.TargetOf(&inv.Event), CommunityID: inv.Community.ID}, res, now)
}

// origin is what a result answers: an invocation, or a scheduled firing
// (whose id stands in for the invocation id and which has no event).
type origin struct {
	ID          string
	EventID     string
	Module      string
	Target      schemas.Target
	CommunityID string
	// after is how many replies of the invocation come before these: reply
	// ids count on from it.
	after int
}

func outbound(inv origin, res *schemas.Result, now time.Time) ([]store.OutMessage, error) {
	if res == nil {
		return []store.OutMessage{}, nil
	}
	if res.InvocationID != "" && res.InvocationID != inv.ID {
		return nil, fmt.Errorf("%w: result is for invocation %s, not %s", schemas.ErrInvalid, res.InvocationID, inv.ID)
	}
	now = now.UTC()
	target := inv.Target
	limit := schemas.TextLimit(target.Platform)
	msgs := make([]store.OutMessage, 0, len(res.Replies)+len(res.Actions)+len(res.Overlays))
	n := inv.after
	nextReply := func() schemas.Reply {
		n++
		return schemas.Reply{
			Version:      schemas.Version,
			ID:           schemas.ReplyID(inv.ID, n),
			InvocationID: inv.ID,
			EventID:      inv.EventID,
			Module:       inv.Module,
			Target:       target,
			Part:         1,
			Parts:        1,
			CreatedAt:    now,
		}
	}

	for i, rt := range res.Replies {
		if err := checkReplyText(rt); err != nil {
			return nil, fmt.Errorf("actions: reply %d of module %s: %w", i, inv.Module, err)
		}
		visibility := rt.Visibility
		if visibility == "" {
			visibility = schemas.VisibilityPublic
		}
		parts := SplitText(rt.Text, limit)
		for p, text := range parts {
			reply := nextReply()
			reply.Text = text
			reply.Part, reply.Parts = p+1, len(parts)
			reply.Visibility = visibility
			reply.Action = schemas.ActionMessage
			msg, err := replyMessage(&reply)
			if err != nil {
				return nil, fmt.Errorf("actions: reply %d of module %s: %w", i, inv.Module, err)
			}
			msgs = append(msgs, msg)
		}
	}

	for i, action := range res.Actions {
		if action.Action == "" || action.Action == schemas.ActionMessage || !action.Action.Valid() {
			return nil, fmt.Errorf("%w: action %d of module %s: %q is not a platform action", schemas.ErrInvalid, i, inv.Module, action.Action)
		}
		reply := nextReply()
		reply.Action = action.Action
		data := action
		reply.ActionData = &data
		msg, err := replyMessage(&reply)
		if err != nil {
			return nil, fmt.Errorf("actions: action %d of module %s: %w", i, inv.Module, err)
		}
		msgs = append(msgs, msg)
	}

	for i, item := range res.Overlays {
		// The id and the community are the runtime's to set: a module can
		// never push to another community's browser sources.
		item.Version = schemas.Version
		item.ID = schemas.OverlayID(inv.ID, i+1)
		item.CommunityID = inv.CommunityID
		if item.CreatedAt.IsZero() {
			item.CreatedAt = now
		}
		if err := item.Validate(); err != nil {
			return nil, fmt.Errorf("actions: overlay %d of module %s: %w", i, inv.Module, err)
		}
		data, err := json.Marshal(&item)
		if err != nil {
			return nil, fmt.Errorf("actions: unable to encode overlay item: %w", err)
		}
		if len(data) > maxMessageBytes {
			return nil, fmt.Errorf("%w: overlay %d of module %s is %d bytes, more than %d", schemas.ErrInvalid, i, inv.Module, len(data), maxMessageBytes)
		}
		msgs = append(msgs, store.OutMessage{
			Subject: schemas.OverlaySubject(item.CommunityID, item.Source),
			MsgID:   item.ID,
			Data:    data,
		})
	}
	return msgs, nil
}

// maxMessageBytes is the streams' MaxMsgSize: a bigger message would be
// refused at every publish, and its outbox row swept forever.
const maxMessageBytes = streams.MaxMessageBytes

// checkReplyText catches what splitting would hide: a blank text splits into
// no parts at all, and invalid UTF-8 would reach the platform as junk.
func checkReplyText(rt schemas.ReplyText) error {
	switch {
	case strings.TrimSpace(rt.Text) == "":
		return fmt.Errorf("%w: reply text is empty", schemas.ErrInvalid)
	case len(rt.Text) > schemas.MaxResultText:
		return fmt.Errorf("%w: reply text is %d bytes, more than %d", schemas.ErrInvalid, len(rt.Text), schemas.MaxResultText)
	case !utf8.ValidString(rt.Text):
		return fmt.Errorf("%w: reply text is not UTF-8", schemas.ErrInvalid)
	case !rt.Visibility.Valid():
		return fmt.Errorf("%w: reply visibility %q unknown", schemas.ErrInvalid, rt.Visibility)
	}
	return nil
}

func replyMessage(reply *schemas.Reply) (store.OutMessage, error) {
	if err := reply.Validate(); err != nil {
		return store.OutMessage{}, err
	}
	data, err := json.Marshal(reply)
	if err != nil {
		return store.OutMessage{}, fmt.Errorf("actions: unable to encode reply: %w", err)
	}
	return store.OutMessage{Subject: reply.Subject(), MsgID: reply.ID, Data: data}, nil
}
