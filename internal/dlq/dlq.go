// Package dlq reads and replays the dead-letter stream for operators
// (`waddlebot dlq list|show|replay`).
package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/schemas"
)

// Entry is one dead letter with its sequence in WB_DLQ.
type Entry struct {
	Seq    uint64
	Letter schemas.DeadLetter
}

// ErrNotFound means no dead letter has that sequence.
var ErrNotFound = errors.New("dlq: no dead letter with that sequence")

// ErrAlreadyReplayed means the letter was replayed within the stream's
// duplicate window, so the stream dropped this copy: nothing was published
// (and the letter is kept).
var ErrAlreadyReplayed = errors.New("dlq: already replayed; the stream dropped this copy")

// List returns up to limit dead letters, oldest first, optionally only those
// from one stream (WB_EVENTS, WB_COMMANDS, ...).
func List(ctx context.Context, js jetstream.JetStream, stream string, limit int) ([]Entry, error) {
	filter := schemas.SubjectDLQ + ".>"
	if stream != "" {
		filter = schemas.DLQSubject(stream)
	}
	cons, err := js.OrderedConsumer(ctx, schemas.StreamDLQ, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("dlq: unable to read %s: %w", schemas.StreamDLQ, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dlq: unable to read %s: %w", schemas.StreamDLQ, err)
	}
	want := int(info.NumPending)
	if limit > 0 && want > limit {
		want = limit
	}
	var out []Entry
	for len(out) < want {
		batch, err := cons.Fetch(want - len(out))
		if err != nil {
			return nil, fmt.Errorf("dlq: unable to read %s: %w", schemas.StreamDLQ, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			e, err := decode(m.Data())
			if err != nil {
				return nil, err
			}
			meta, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			e.Seq = meta.Sequence.Stream
			out = append(out, e)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("dlq: unable to read %s: %w", schemas.StreamDLQ, err)
		}
		if got == 0 {
			break
		}
	}
	return out, nil
}

// Show returns one dead letter.
func Show(ctx context.Context, js jetstream.JetStream, seq uint64) (Entry, error) {
	s, err := js.Stream(ctx, schemas.StreamDLQ)
	if err != nil {
		return Entry{}, fmt.Errorf("dlq: unable to open %s: %w", schemas.StreamDLQ, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Entry{}, fmt.Errorf("%w: %d", ErrNotFound, seq)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("dlq: unable to read %d: %w", seq, err)
	}
	e, err := decode(m.Data)
	e.Seq = seq
	return e, err
}

func decode(b []byte) (Entry, error) {
	var d schemas.DeadLetter
	if err := json.Unmarshal(b, &d); err != nil {
		return Entry{}, fmt.Errorf("dlq: a dead letter is unreadable: %w", err)
	}
	return Entry{Letter: d}, nil
}

// Replay publishes a dead letter's original message again, headers and body
// byte for byte, to its original subject, under a message id of its own (so
// the duplicate window lets it in, and a second replay of the same letter
// does not: that returns ErrAlreadyReplayed). With remove, the dead letter is
// deleted once the replay is stored.
func Replay(ctx context.Context, js jetstream.JetStream, seq uint64, remove bool) (string, error) {
	e, err := Show(ctx, js, seq)
	if err != nil {
		return "", err
	}
	d := e.Letter
	msg := &nats.Msg{Subject: d.Subject, Data: d.Body, Header: nats.Header{}}
	for k, vs := range d.Headers {
		if k == jetstream.MsgIDHeader || len(k) > 4 && k[:4] == "Nats" {
			continue
		}
		for _, v := range vs {
			msg.Header.Add(k, v)
		}
	}
	original := d.Stream + ":" + strconv.FormatUint(d.Sequence, 10)
	if ids := d.Headers[jetstream.MsgIDHeader]; len(ids) > 0 && ids[0] != "" {
		original = ids[0]
	}
	id := schemas.ReplayMsgID(original, seq)
	msg.Header.Set(jetstream.MsgIDHeader, id)
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return "", fmt.Errorf("dlq: unable to replay %d to %s: %w", seq, d.Subject, err)
	}
	if ack.Duplicate {
		return id, fmt.Errorf("%w (%d, as %s)", ErrAlreadyReplayed, seq, id)
	}
	if remove {
		s, err := js.Stream(ctx, schemas.StreamDLQ)
		if err != nil {
			return id, fmt.Errorf("dlq: replayed, but unable to open %s: %w", schemas.StreamDLQ, err)
		}
		if err := s.DeleteMsg(ctx, seq); err != nil {
			return id, fmt.Errorf("dlq: replayed, but unable to delete %d: %w", seq, err)
		}
	}
	return id, nil
}
