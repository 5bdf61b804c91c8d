// Package collectors is the runtime every platform collector shares: the
// Publisher that turns normalized platform events into WB_EVENTS messages,
// the Sender that drains a platform's replies from WB_REPLIES within a
// per-channel send budget, and HoldLease for long-lived platform connections
// that at most one replica may hold.
package collectors

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/metrics"
	"github.com/waddlebot/waddlebot/schemas"
)

// Publisher publishes normalized events to WB_EVENTS.
type Publisher struct {
	js  jetstream.JetStream
	log *slog.Logger
}

// NewPublisher publishes through js. A nil logger discards.
func NewPublisher(js jetstream.JetStream, log *slog.Logger) *Publisher {
	if log == nil {
		log = logging.Discard()
	}
	return &Publisher{js: js, log: log}
}

// Publish completes the envelope (Version and ReceivedAt when zero),
// validates it and publishes it to its subject with Nats-Msg-Id set to the
// event id, so that a platform's redelivery of the same event dies in the
// stream's duplicate window. ev is updated in place. An invalid event is
// never published: the error wraps schemas.ErrInvalid.
func (p *Publisher) Publish(ctx context.Context, ev *schemas.Event) error {
	if ev.Version == 0 {
		ev.Version = schemas.Version
	}
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = time.Now().UTC()
	}
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("collectors: refusing to publish event %q: %w", ev.ID, err)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("collectors: unable to encode event %s: %w", ev.ID, err)
	}
	subject := ev.Subject()
	ack, err := p.js.Publish(ctx, subject, body, jetstream.WithMsgID(ev.ID))
	if err != nil {
		return fmt.Errorf("collectors: unable to publish event %s to %s: %w", ev.ID, subject, err)
	}
	if ack.Duplicate {
		// The platform (or a retry of ours) sent this event before: the
		// stream kept the first copy, so it is not counted again.
		p.log.Debug("collectors: duplicate event dropped by the stream", logging.KeyPlatform, ev.Platform,
			logging.KeySubject, subject, logging.KeyEvent, ev.ID)
		return nil
	}
	metrics.EventsPublished.WithLabelValues(ev.Platform, string(ev.Kind)).Inc()
	p.log.Debug("collectors: event published", logging.KeyPlatform, ev.Platform, logging.KeySubject, subject,
		logging.KeyEvent, ev.ID, logging.KeySeq, ack.Sequence)
	return nil
}
