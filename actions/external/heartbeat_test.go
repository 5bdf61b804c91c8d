package external_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/external"
	"github.com/waddlebot/waddlebot/collectors/console"
	"github.com/waddlebot/waddlebot/internal/natsauth"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// heartbeat reads a key of the heartbeat bucket as the portal would; ok is
// false when there is none.
func (r *rig) heartbeat(key string) (actions.Heartbeat, bool) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := r.env.Admin.JS.KeyValue(ctx, streams.BucketHeartbeats)
	if err != nil {
		r.t.Fatal(err)
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return actions.Heartbeat{}, false
	}
	if err != nil {
		r.t.Fatal(err)
	}
	var hb actions.Heartbeat
	if err := json.Unmarshal(e.Value(), &hb); err != nil {
		r.t.Fatalf("heartbeat %s: %v", key, err)
	}
	return hb, true
}

// The relay keeps a heartbeat for each module it serves, in the key the
// portal counts (<module>.<instance>); it drops it while the module leaves
// invocations unanswered, restores it when the module answers again, and
// deletes it when it stops serving the module.
func TestRelayHeartbeatFollowsTheModule(t *testing.T) {
	r := start(t, nil, func(c *external.Config) {
		c.InstanceID = "relay-test"
		c.HeartbeatEvery = 50 * time.Millisecond
		c.ResultTimeout = 200 * time.Millisecond
	})
	key := actions.HeartbeatKey("weather", "relay-test")
	if _, ok := r.heartbeat(key); ok {
		t.Fatal("a heartbeat before the module is registered")
	}
	r.add("weather", store.ExternalNATS, "", nil)
	natstest.Eventually(t, wait, "the served module's heartbeat", func() bool { _, ok := r.heartbeat(key); return ok })
	hb, _ := r.heartbeat(key)
	if hb.Module != "weather" || hb.Version != "1.0.0" || hb.Instance != "relay-test" || hb.At.IsZero() || hb.StartedAt.IsZero() {
		t.Fatalf("heartbeat %+v", hb)
	}

	var answering atomic.Bool
	mod := r.env.Mint(t, "weather", natsauth.ExternalModulePermissions("weather"))
	serveNATS(t, mod, "weather", func(inv *schemas.Invocation) *schemas.Result {
		if !answering.Load() {
			return nil
		}
		return &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Replies: []schemas.ReplyText{{Text: "sunny"}}}
	})

	// Silent: the first missed result removes the heartbeat.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	natstest.Eventually(t, wait, "the heartbeat gone while the module is silent", func() bool {
		if _, ok := r.heartbeat(key); !ok {
			return true
		}
		if _, _, err := console.SayAndWait(ctx, r.env.Admin, console.Message{Channel: "main", User: "dan", Text: "#weather"},
			console.SayOptions{NoWait: true}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		_, ok := r.heartbeat(key)
		return !ok
	})

	// Answering again brings it back.
	answering.Store(true)
	if _, replies := r.say("#weather"); len(replies) == 0 || replies[0].Text != "sunny" {
		t.Fatalf("replies %+v", replies)
	}
	natstest.Eventually(t, wait, "the heartbeat back once the module answers", func() bool { _, ok := r.heartbeat(key); return ok })

	// Removed: the relay stops serving it and deletes the key at once.
	if err := r.st.RemoveExternalModule(ctx, "test", "weather", nil); err != nil {
		t.Fatal(err)
	}
	if err := r.env.Admin.NC.Publish(schemas.ControlRegistry, []byte("weather")); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, wait, "the relay to stop serving weather", func() bool { return !r.relay.Serving("weather") })
	natstest.Eventually(t, wait, "the heartbeat deleted", func() bool { _, ok := r.heartbeat(key); return !ok })
}
