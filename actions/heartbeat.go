package actions

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

// Heartbeat is the value a running module replica keeps fresh in the
// heartbeat bucket (streams.BucketHeartbeats), whose TTL removes the key of a
// replica that died without saying so.
type Heartbeat struct {
	Module    string    `json:"module"`
	Version   string    `json:"version"`
	Instance  string    `json:"instance"`
	StartedAt time.Time `json:"started_at"`
	At        time.Time `json:"at"`
}

// HeartbeatKey is the key of one replica's heartbeat: <module>.<instance>,
// the instance encoded as one token, so `<module>.*` lists a module's replicas.
func HeartbeatKey(module, instance string) string {
	return module + "." + schemas.EncodeToken(instance)
}

type heartbeat struct {
	kv    jetstream.KeyValue
	log   *slog.Logger
	every time.Duration
	key   string
	value Heartbeat
}

func (h *heartbeat) run(ctx context.Context) {
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.beat(ctx)
		}
	}
}

func (h *heartbeat) beat(ctx context.Context) {
	h.value.At = time.Now().UTC()
	doc, err := json.Marshal(h.value)
	if err != nil {
		h.log.Error("actions: unable to encode heartbeat", logging.Err(err))
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := h.kv.Put(pctx, h.key, doc); err != nil && ctx.Err() == nil {
		h.log.Warn("actions: unable to write heartbeat", "key", h.key, logging.Err(err))
	}
}

// remove deletes the key at shutdown, so the module stops counting as alive
// now rather than when the TTL runs out.
func (h *heartbeat) remove() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.kv.Delete(ctx, h.key); err != nil {
		h.log.Warn("actions: unable to delete heartbeat", "key", h.key, logging.Err(err))
	}
}
