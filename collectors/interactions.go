package collectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Interaction is what a collector keeps to answer a slash command after
// acknowledging it: replies to the command's event go through it instead of
// an ordinary message.
type Interaction struct {
	// Discord: the application id and interaction token of the deferred
	// response (follow-ups are accepted for 15 minutes).
	AppID string `json:"app_id,omitempty"`
	Token string `json:"token,omitempty"`
	// Slack: the slash command's response URL.
	ResponseURL string `json:"response_url,omitempty"`
	// Ephemeral: only the user who asked sees the answer.
	Ephemeral bool `json:"ephemeral,omitempty"`
}

// Interactions stores Interactions in streams.BucketInteractions, shared by
// every replica (the replica that sends may not be the one that received).
type Interactions struct{ kv jetstream.KeyValue }

// OpenInteractions opens the bucket.
func OpenInteractions(ctx context.Context, js jetstream.JetStream) (*Interactions, error) {
	kv, err := js.KeyValue(ctx, streams.BucketInteractions)
	if err != nil {
		return nil, fmt.Errorf("collectors: unable to open bucket %s: %w", streams.BucketInteractions, err)
	}
	return &Interactions{kv: kv}, nil
}

func interactionKey(platform, eventID string) string {
	return platform + "." + schemas.EncodeToken(eventID)
}

// Put keeps the interaction of a platform's event.
func (i *Interactions) Put(ctx context.Context, platform, eventID string, in Interaction) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if _, err := i.kv.Put(ctx, interactionKey(platform, eventID), b); err != nil {
		return fmt.Errorf("collectors: unable to keep the interaction of %s: %w", eventID, err)
	}
	return nil
}

// Get returns the interaction of an event; ok is false when there is none
// (an ordinary message, or one older than streams.InteractionsTTL).
func (i *Interactions) Get(ctx context.Context, platform, eventID string) (in Interaction, ok bool, err error) {
	if eventID == "" {
		return Interaction{}, false, nil
	}
	e, err := i.kv.Get(ctx, interactionKey(platform, eventID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Interaction{}, false, nil
	}
	if err != nil {
		return Interaction{}, false, fmt.Errorf("collectors: unable to read the interaction of %s: %w", eventID, err)
	}
	if err := json.Unmarshal(e.Value(), &in); err != nil {
		return Interaction{}, false, fmt.Errorf("collectors: unreadable interaction of %s: %w", eventID, err)
	}
	return in, true, nil
}

// ClaimOriginal decides which reply answers an interaction's original
// (deferred) response: the first reply id to ask gets it, and keeps it when
// asked again (a redelivery); every other reply to the same event is a
// follow-up. Without this, a module's second reply would overwrite its
// first.
func (i *Interactions) ClaimOriginal(ctx context.Context, platform, eventID, replyID string) (bool, error) {
	key := interactionKey(platform, eventID) + ".original"
	_, err := i.kv.Create(ctx, key, []byte(replyID))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, fmt.Errorf("collectors: unable to claim the answer of %s: %w", eventID, err)
	}
	e, err := i.kv.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("collectors: unable to read who answers %s: %w", eventID, err)
	}
	return string(e.Value()) == replyID, nil
}
