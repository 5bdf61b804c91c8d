package external

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/logging"
)

// The relay keeps one heartbeat per external module it serves, in the same
// bucket, key shape (<module>.<instance>) and value as a built-in worker's,
// so the portal's modules page counts it without knowing about the relay.
//
// Which signal: the relay cannot see whether a NATS module is subscribed
// (a probe on wb.ext.<module>.invoke would reach the module as a bogus
// invocation), and an idle module answers nothing, so "answered within the
// last few minutes" would call every quiet module dead. The heartbeat is
// therefore written while the relay serves the module's consumer and the
// module has not gone silent: once a handed-over invocation goes
// unanswered (a NATS result timeout, a webhook that cannot be reached or
// answers 5xx) the key is removed until the module answers again. A module
// that is down shows "not running" from its first missed invocation; one
// that was never asked shows as served.

// moduleHealth is what the handlers learn about a module's answers.
type moduleHealth struct {
	// silent is set when an invocation went unanswered and cleared by the
	// next answer.
	silent atomic.Bool
	// kick wakes the heartbeat when silent flips, so the page follows
	// within a moment rather than a heartbeat period.
	kick chan struct{}
}

func newHealth() *moduleHealth { return &moduleHealth{kick: make(chan struct{}, 1)} }

func (h *moduleHealth) set(silent bool) {
	if h.silent.Swap(silent) != silent {
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
}

func (h *moduleHealth) answered() { h.set(false) }
func (h *moduleHealth) missed()   { h.set(true) }

// alive is whether the module's heartbeat should exist.
func (h *moduleHealth) alive() bool { return !h.silent.Load() }

func defaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("relay-%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// heartbeat writes a served module's key every r.cfg.HeartbeatEvery while
// ctx lasts and the module is not silent, and deletes it once done closes
// (the module's loop has drained): the module then stops counting as alive
// at once rather than when the bucket's TTL runs out.
func (r *Relay) heartbeat(ctx context.Context, kv jetstream.KeyValue, module, version string, health *moduleHealth, done <-chan struct{}) {
	key := actions.HeartbeatKey(module, r.cfg.InstanceID)
	value := actions.Heartbeat{Module: module, Version: version, Instance: r.cfg.InstanceID, StartedAt: time.Now().UTC()}
	log := r.log.With(logging.KeyModule, module)
	written := false
	beat := func() {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if !health.alive() {
			if written {
				if err := kv.Delete(wctx, key); err != nil && ctx.Err() == nil {
					log.Warn("external: unable to delete heartbeat", "key", key, logging.Err(err))
					return
				}
				written = false
			}
			return
		}
		value.At = time.Now().UTC()
		doc, err := json.Marshal(value)
		if err != nil {
			log.Error("external: unable to encode heartbeat", logging.Err(err))
			return
		}
		if _, err := kv.Put(wctx, key, doc); err != nil {
			if ctx.Err() == nil {
				log.Warn("external: unable to write heartbeat", "key", key, logging.Err(err))
			}
			return
		}
		written = true
	}
	beat()
	tick := time.NewTicker(r.cfg.HeartbeatEvery)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			beat()
		case <-health.kick:
			beat()
		}
	}
	<-done
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := kv.Delete(dctx, key); err != nil {
		log.Warn("external: unable to delete heartbeat", "key", key, logging.Err(err))
	}
}
