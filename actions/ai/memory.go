package ai

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/coord"
)

// Exchange is one question and its answer.
type Exchange struct {
	User     string    `json:"user"`
	Question string    `json:"q"`
	Answer   string    `json:"a"`
	At       time.Time `json:"at"`
}

// conversation is a channel's memory as stored in the KV bucket.
type conversation struct {
	Exchanges []Exchange `json:"exchanges"`
	Updated   time.Time  `json:"updated"`
}

// memory keeps each channel's last exchanges in JetStream KV, so whichever
// replica takes the next question continues the conversation. The bucket's
// own TTL (AI_MEMORY_TTL) only bounds storage; a community's shorter
// memory TTL is applied on read, from the time of the last exchange.
type memory struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// memoryKey names a channel's memory. Channel ids hold characters KV keys
// refuse, so the key is a hash under the community.
func memoryKey(communityID, platform, channelID string) string {
	h := sha256.Sum256([]byte(platform + "\x00" + channelID))
	return "c." + communityID + "." + hex.EncodeToString(h[:12])
}

// load returns the channel's exchanges still inside ttl.
func (m *memory) load(ctx context.Context, key string, ttl time.Duration) ([]Exchange, error) {
	c, _, err := m.get(ctx, key)
	if err != nil {
		return nil, err
	}
	cutoff := m.now().Add(-ttl)
	if c.Updated.Before(cutoff) {
		return nil, nil
	}
	out := c.Exchanges[:0]
	for _, e := range c.Exchanges {
		if !e.At.Before(cutoff) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *memory) get(ctx context.Context, key string) (conversation, uint64, error) {
	var c conversation
	e, err := m.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return c, 0, nil
	}
	if err != nil {
		return c, 0, fmt.Errorf("ai: unable to read memory %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		// Memory is a convenience: a bad value starts a fresh conversation.
		return conversation{}, e.Revision(), nil
	}
	return c, e.Revision(), nil
}

// add appends an exchange and keeps the last keep, with compare-and-swap so
// two replicas answering in one channel at once both land.
func (m *memory) add(ctx context.Context, key string, ex Exchange, keep int, ttl time.Duration) error {
	if keep <= 0 {
		return nil
	}
	for range 10 {
		c, rev, err := m.get(ctx, key)
		if err != nil {
			return err
		}
		cutoff := m.now().Add(-ttl)
		kept := make([]Exchange, 0, len(c.Exchanges)+1)
		for _, e := range c.Exchanges {
			if !e.At.Before(cutoff) {
				kept = append(kept, e)
			}
		}
		kept = append(kept, ex)
		if len(kept) > keep {
			kept = kept[len(kept)-keep:]
		}
		data, err := json.Marshal(conversation{Exchanges: kept, Updated: ex.At})
		if err != nil {
			return fmt.Errorf("ai: unable to encode memory: %w", err)
		}
		if rev == 0 {
			_, err = m.kv.Create(ctx, key, data)
		} else {
			_, err = m.kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return nil
		}
		if !conflict(err) {
			return fmt.Errorf("ai: unable to write memory %s: %w", key, err)
		}
	}
	return fmt.Errorf("ai: memory %s too contended", key)
}

// reset forgets the channel's conversation.
func (m *memory) reset(ctx context.Context, key string) error {
	if err := m.kv.Purge(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("ai: unable to reset memory %s: %w", key, err)
	}
	return nil
}

// conflict: another replica wrote the channel's memory first.
func conflict(err error) bool { return coord.IsConflict(err) }
