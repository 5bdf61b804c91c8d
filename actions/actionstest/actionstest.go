// Package actionstest helps test modules through the worker: hand-built invocations and readers of the streams they publish to.
package actionstest

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Channel is the console channel test invocations come from.
const Channel = "test-channel"

// Invocation builds a valid invocation of a module's command, as the router
// would publish it for "!<command> <args…>" typed by alice on the console,
// in a community of its own with prefix "!". Change its fields before
// publishing to test other cases.
func Invocation(module, command string, args ...string) *schemas.Invocation {
	now := time.Now().UTC()
	text := "!" + command
	for _, a := range args {
		text += " " + a
	}
	ev := schemas.Event{
		Version:    schemas.Version,
		ID:         schemas.NewEventID(),
		Platform:   schemas.PlatformConsole,
		Kind:       schemas.KindChat,
		Channel:    schemas.Channel{ID: Channel, Name: Channel},
		User:       schemas.User{ID: "u-alice", Login: "alice", DisplayName: "Alice"},
		Text:       text,
		OccurredAt: now,
		ReceivedAt: now,
	}
	ev.PlatformEventID = ev.ID
	route := schemas.RouteCommand + command
	argText := ""
	if len(args) > 0 {
		argText = text[len("!"+command)+1:]
	}
	return &schemas.Invocation{
		Version:   schemas.Version,
		ID:        schemas.InvocationID(ev.ID, module, route),
		Event:     ev,
		Community: schemas.Community{ID: uuid.NewString(), Name: "test", Prefix: "!", TimeZone: "UTC", Locale: "en"},
		Module:    module,
		Route:     route,
		Command:   command,
		Invoked:   command,
		Args:      args,
		ArgText:   argText,
		Deadline:  now.Add(time.Minute),
	}
}

// Publish puts an invocation on its command subject with its id as
// Nats-Msg-Id, as the router does.
func Publish(t testing.TB, js jetstream.JetStream, inv *schemas.Invocation) {
	t.Helper()
	PublishAs(t, js, inv, inv.ID)
}

// PublishAs publishes an invocation under another Nats-Msg-Id, which gets
// past the duplicate window the way a redelivery does.
func PublishAs(t testing.TB, js jetstream.JetStream, inv *schemas.Invocation, msgID string) {
	t.Helper()
	data, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), inv.Subject(), data, jetstream.WithMsgID(msgID)); err != nil {
		t.Fatalf("publish invocation: %v", err)
	}
}

// Messages returns what a stream holds on subjects matching filter ("" for
// all), oldest first.
func Messages(t testing.TB, js jetstream.JetStream, stream, filter string) []*jetstream.RawStreamMsg {
	t.Helper()
	return natstest.Messages(t, js, stream, filter)
}

// Replies returns the replies in WB_REPLIES, oldest first, with the subject
// each was published on.
func Replies(t testing.TB, js jetstream.JetStream) []Reply {
	t.Helper()
	var out []Reply
	for _, m := range Messages(t, js, schemas.StreamReplies, "") {
		var r Reply
		if err := json.Unmarshal(m.Data, &r.Reply); err != nil {
			t.Fatalf("reply at %d: %v", m.Sequence, err)
		}
		r.Subject = m.Subject
		out = append(out, r)
	}
	return out
}

// Reply is a reply as stored, with its subject.
type Reply struct {
	schemas.Reply
	Subject string
}

// RepliesTo returns the replies to one invocation.
func RepliesTo(t testing.TB, js jetstream.JetStream, invocationID string) []Reply {
	t.Helper()
	var out []Reply
	for _, r := range Replies(t, js) {
		if r.InvocationID == invocationID {
			out = append(out, r)
		}
	}
	return out
}

// DeadLetters returns the dead letters of one stream, oldest first.
func DeadLetters(t testing.TB, js jetstream.JetStream, stream string) []schemas.DeadLetter {
	t.Helper()
	var out []schemas.DeadLetter
	for _, m := range Messages(t, js, schemas.StreamDLQ, schemas.DLQSubject(stream)) {
		var dl schemas.DeadLetter
		if err := json.Unmarshal(m.Data, &dl); err != nil {
			t.Fatalf("dead letter at %d: %v", m.Sequence, err)
		}
		out = append(out, dl)
	}
	return out
}

// Eventually waits up to timeout for cond, failing the test with what.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	natstest.Eventually(t, timeout, what, cond)
}

// Settled reports whether a durable consumer has nothing left to deliver
// and nothing unacknowledged.
func Settled(t testing.TB, js jetstream.JetStream, stream, consumer string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done, err := streams.CaughtUp(ctx, js, stream, consumer)
	return err == nil && done
}

// LazyRequester lets a module that makes wb.api lookups be built before the
// pipeline's NATS server exists (pipelinetest builds modules inside Start);
// the test connects it once Start returns, before any command is typed.
type LazyRequester struct{ nc atomic.Pointer[nats.Conn] }

// Connect makes the requester send over nc.
func (l *LazyRequester) Connect(nc *nats.Conn) { l.nc.Store(nc) }

// RequestWithContext sends a request once connected.
func (l *LazyRequester) RequestWithContext(ctx context.Context, subject string, data []byte) (*nats.Msg, error) {
	nc := l.nc.Load()
	if nc == nil {
		return nil, errors.New("actionstest: LazyRequester not connected yet")
	}
	return nc.RequestWithContext(ctx, subject, data)
}
