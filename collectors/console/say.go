package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/schemas"
)

// SayOptions tune SayAndWait.
type SayOptions struct {
	// Wait is how long to wait for the first reply (default 5 s), and for
	// the missing parts of a multi-part reply.
	Wait time.Duration
	// Quiet is how long to wait for more after a reply (default 300 ms).
	Quiet time.Duration
	// NoWait publishes and returns at once.
	NoWait bool
}

// ErrNoReply means no reply to the event came within SayOptions.Wait.
var ErrNoReply = errors.New("no reply")

type noReplyError struct{ wait time.Duration }

func (e noReplyError) Error() string {
	return fmt.Sprintf("no reply within %s: is `waddlebot dev` running, and is the command known?", e.wait)
}

func (e noReplyError) Is(target error) bool { return target == ErrNoReply }

// ErrIncompleteReply means a multi-part reply stopped arriving before its
// last part; the parts that came are returned with it.
var ErrIncompleteReply = errors.New("console: incomplete reply")

// SayAndWait is the client side of `waddlebot say`: it talks to NATS only,
// from another process than the one running the pipeline. It starts
// listening to the channel's replies before it publishes the event, so no
// reply can slip past, then collects the replies to that event: until Quiet
// passes with nothing new after at least one reply and every part of each
// multi-part reply is in, or until Wait passes with none (ErrNoReply).
func SayAndWait(ctx context.Context, conn *natsx.Conn, m Message, o SayOptions) (*schemas.Event, []schemas.Reply, error) {
	if o.Wait <= 0 {
		o.Wait = 5 * time.Second
	}
	if o.Quiet <= 0 {
		o.Quiet = 300 * time.Millisecond
	}
	ev, err := NewEvent(m, time.Now())
	if err != nil {
		return nil, nil, err
	}
	pub := collectors.NewPublisher(conn.JS, logging.Discard())
	if o.NoWait {
		if err := pub.Publish(ctx, ev); err != nil {
			return nil, nil, fmt.Errorf("console: unable to say it: %w", err)
		}
		return ev, nil, nil
	}

	cons, err := conn.JS.OrderedConsumer(ctx, schemas.StreamReplies, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{schemas.ReplySubject(schemas.PlatformConsole, ev.Channel.ID)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("console: unable to listen for replies: %w", err)
	}
	// Messages creates the consumer on the server before returning: from
	// here on every new reply on the channel reaches us.
	iter, err := cons.Messages()
	if err != nil {
		return nil, nil, fmt.Errorf("console: unable to listen for replies: %w", err)
	}
	incoming := make(chan jetstream.Msg)
	go func() {
		defer close(incoming)
		for {
			msg, err := iter.Next()
			if err != nil {
				return // stopped
			}
			incoming <- msg
		}
	}()
	// Stop, then drain, so the reader goroutine ends.
	defer func() {
		iter.Stop()
		for range incoming {
		}
	}()

	if err := pub.Publish(ctx, ev); err != nil {
		return nil, nil, fmt.Errorf("console: unable to say it: %w", err)
	}
	replies, err := collect(ctx, incoming, ev.ID, o)
	return ev, replies, err
}

// collect gathers the replies to eventID from incoming.
func collect(ctx context.Context, incoming <-chan jetstream.Msg, eventID string, o SayOptions) ([]schemas.Reply, error) {
	var replies []schemas.Reply
	seen := map[string]bool{}
	parts := map[string]map[int]bool{} // invocation → parts received
	total := map[string]int{}          // invocation → parts expected

	complete := func() bool {
		for inv, want := range total {
			if len(parts[inv]) < want {
				return false
			}
		}
		return true
	}

	timer := time.NewTimer(o.Wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return replies, ctx.Err()
		case msg, ok := <-incoming:
			if !ok {
				return replies, errors.New("console: reply stream closed")
			}
			var r schemas.Reply
			if json.Unmarshal(msg.Data(), &r) != nil || r.EventID != eventID || seen[r.ID] {
				continue
			}
			seen[r.ID] = true
			replies = append(replies, r)
			if parts[r.InvocationID] == nil {
				parts[r.InvocationID] = map[int]bool{}
			}
			parts[r.InvocationID][r.Part] = true
			total[r.InvocationID] = max(total[r.InvocationID], r.Parts)
			next := o.Quiet
			if !complete() {
				next = o.Wait
			}
			timer.Reset(next)
		case <-timer.C:
			switch {
			case len(replies) == 0:
				return nil, noReplyError{wait: o.Wait}
			case !complete():
				return replies, fmt.Errorf("%w: parts missing after waiting %s", ErrIncompleteReply, o.Wait)
			}
			return replies, nil
		}
	}
}
