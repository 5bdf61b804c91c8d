package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// effects collects what a handler asks of the runtime besides its result:
// notices for the routers' caches, and private messages to someone other
// than the invoker. They are published only once the handler's writes
// commit, and stored with the result, so a replay publishes them again.
type effects struct {
	mu        sync.Mutex
	community bool
	identity  bool
	direct    []directMessage
}

type directMessage struct {
	target schemas.Target
	text   string
}

type effectsKey struct{}

func withEffects(ctx context.Context) (context.Context, *effects) {
	e := &effects{}
	return context.WithValue(ctx, effectsKey{}, e), e
}

func effectsOf(ctx context.Context) *effects {
	e, _ := ctx.Value(effectsKey{}).(*effects)
	return e
}

// CommunityChanged tells the runtime that the handler's writes change what
// routers cache about the community (its aliases, its users' labels): once
// the writes commit, the runtime announces wb.control.community.<id>, and
// routers reload before the next command. Only modules that write may call it.
func CommunityChanged(ctx context.Context) {
	if e := effectsOf(ctx); e != nil {
		e.mu.Lock()
		e.community = true
		e.mu.Unlock()
	}
}

// IdentityChanged tells the runtime that the handler linked or unlinked
// platform accounts: once the writes commit, the runtime announces
// wb.control.identity and routers resolve persons afresh.
func IdentityChanged(ctx context.Context) {
	if e := effectsOf(ctx); e != nil {
		e.mu.Lock()
		e.identity = true
		e.mu.Unlock()
	}
}

// SendPrivately asks the runtime to send text privately to the user of
// target (a whisper on Twitch, a DM on Discord, an ephemeral message on
// Slack), on any platform: the identity module's link codes go to the
// account being linked, not to whoever asked. It is for built-in modules
// only; an external module's result can only answer its own invocation.
// Only modules that write may call it (the message is stored with the
// result until it is published).
func SendPrivately(ctx context.Context, target schemas.Target, text string) error {
	e := effectsOf(ctx)
	if e == nil {
		return fmt.Errorf("%w: SendPrivately outside a writing module's handler", schemas.ErrInvalid)
	}
	if target.UserID == "" || !schemas.ValidPlatform(target.Platform) || target.ChannelID == "" {
		return fmt.Errorf("%w: a private message needs a platform, a channel and a user", schemas.ErrInvalid)
	}
	e.mu.Lock()
	e.direct = append(e.direct, directMessage{target: target, text: text})
	e.mu.Unlock()
	return nil
}

// messages are the effects' messages for an invocation whose result gave
// msgs: private messages numbered after the result's replies (so every
// reply id of the invocation is distinct and a retry repeats them), then
// the notices.
func (e *effects) messages(inv *schemas.Invocation, msgs []store.OutMessage, now time.Time) ([]store.OutMessage, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	replies := 0
	for _, m := range msgs {
		if strings.HasPrefix(m.Subject, schemas.SubjectReplies+".") {
			replies++
		}
	}
	for i, d := range e.direct {
		// No event id: the message answers nothing on its platform (a
		// Discord or Slack sender would look for an interaction to
		// follow up).
		out, err := outbound(origin{ID: inv.ID, Module: inv.Module, Target: d.target, CommunityID: inv.Community.ID, after: replies},
			&schemas.Result{Replies: []schemas.ReplyText{{Text: d.text, Visibility: schemas.VisibilityPrivate}}}, now)
		if err != nil {
			return nil, fmt.Errorf("actions: private message %d of module %s: %w", i, inv.Module, err)
		}
		replies += len(out)
		msgs = append(msgs, out...)
	}
	if e.community {
		msgs = append(msgs, store.OutMessage{Subject: schemas.ControlCommunity(inv.Community.ID),
			Data: json.RawMessage(strconv.Quote(inv.Community.ID))})
	}
	if e.identity {
		msgs = append(msgs, store.OutMessage{Subject: schemas.ControlIdentity, Data: json.RawMessage(`""`)})
	}
	return msgs, nil
}
