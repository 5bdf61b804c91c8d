package overlay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

// frame is one message to pages, encoded once and shared by every socket
// of its subject.
type frame struct {
	seq  uint64
	data []byte
}

// listener is one socket's place in the hub. Frames arrive in stream
// order; a listener that falls behind by more than its buffer is dropped
// (gone closes) and its page resumes from what it last showed.
type listener struct {
	subject string
	ch      chan frame
	gone    chan struct{}
	once    sync.Once
}

func (l *listener) drop() { l.once.Do(func() { close(l.gone) }) }

// listenerBuffer is how many items a socket may lag behind before it is
// dropped; WB_OVERLAY keeps 20 per subject, so a page never needs more to
// catch up by replay.
const listenerBuffer = 64

// hub reads WB_OVERLAY with ONE ordered consumer per process and fans each
// item out in memory to the sockets of its community and source, so a
// thousand open overlays cost the server one consumer, not a thousand.
type hub struct {
	js  jetstream.JetStream
	log *slog.Logger

	mu        sync.Mutex
	listeners map[string]map[*listener]struct{}
	ready     chan struct{}
	readyOnce sync.Once
	// stopped: the hub delivers no more, so a socket that arrives while
	// the server shuts down is sent away at once to reconnect elsewhere.
	stopped bool
}

func newHub(js jetstream.JetStream, log *slog.Logger) *hub {
	return &hub{js: js, log: log, listeners: map[string]map[*listener]struct{}{}, ready: make(chan struct{})}
}

// run consumes until ctx ends, retrying when the consumer cannot be made.
func (h *hub) run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := h.consume(ctx)
		if ctx.Err() != nil {
			h.dropAll()
			return nil
		}
		h.log.Warn("overlay: consumer stopped; retrying", logging.Err(err))
		select {
		case <-ctx.Done():
			h.dropAll()
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (h *hub) consume(ctx context.Context) error {
	cons, err := h.js.OrderedConsumer(ctx, schemas.StreamOverlay, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{schemas.SubjectOverlay + ".>"},
		// Pages catch up on what they missed by replay; the hub only
		// carries what comes next.
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("overlay: unable to make the overlay consumer: %w", err)
	}
	cc, err := cons.Consume(h.deliver)
	if err != nil {
		return fmt.Errorf("overlay: unable to consume overlays: %w", err)
	}
	defer cc.Stop()
	h.readyOnce.Do(func() { close(h.ready) })
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-cc.Closed():
		return fmt.Errorf("overlay: the overlay consumer closed")
	}
}

func (h *hub) deliver(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		h.log.Warn("overlay: message without metadata", logging.Err(err))
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ls := h.listeners[msg.Subject()]
	if len(ls) == 0 {
		return
	}
	f := frame{seq: md.Sequence.Stream, data: itemFrame(md.Sequence.Stream, msg.Data())}
	for l := range ls {
		select {
		case l.ch <- f:
		default:
			l.drop()
			delete(ls, l)
		}
	}
}

// itemFrame is what a page receives for an overlay item.
func itemFrame(seq uint64, item []byte) []byte {
	b, _ := json.Marshal(struct {
		Type string          `json:"type"`
		Seq  uint64          `json:"seq"`
		Item json.RawMessage `json:"item"`
	}{"item", seq, json.RawMessage(item)})
	return b
}

func (h *hub) add(subject string) *listener {
	l := &listener{subject: subject, ch: make(chan frame, listenerBuffer), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		l.drop()
		return l
	}
	if h.listeners[subject] == nil {
		h.listeners[subject] = map[*listener]struct{}{}
	}
	h.listeners[subject][l] = struct{}{}
	return l
}

func (h *hub) remove(l *listener) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ls := h.listeners[l.subject]; ls != nil {
		delete(ls, l)
		if len(ls) == 0 {
			delete(h.listeners, l.subject)
		}
	}
}

// count is how many sockets listen (for tests and the bench).
func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, ls := range h.listeners {
		n += len(ls)
	}
	return n
}

func (h *hub) dropAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ls := range h.listeners {
		for l := range ls {
			l.drop()
		}
	}
	h.listeners = map[string]map[*listener]struct{}{}
	h.stopped = true
}
