package twitch

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
)

// The socket loop's own tests drive an EventSub peer by hand: the fake
// Twitch (twitchtest) imports this package, so it cannot be used here.

// wsPeer is a bare EventSub server: each connection gets a session_welcome
// and is then handed to the test, which writes what Twitch would.
type wsPeer struct {
	srv   *httptest.Server
	conns chan *websocket.Conn
	seq   atomic.Int64
}

func newWSPeer(t *testing.T) *wsPeer {
	t.Helper()
	p := &wsPeer{conns: make(chan *websocket.Conn, 64)}
	upgrader := websocket.Upgrader{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		id := fmt.Sprintf("session-%d", p.seq.Add(1))
		if err := ws.WriteJSON(peerMessage(eventsub.TypeSessionWelcome, map[string]any{"session": map[string]any{
			"id": id, "status": "connected", "keepalive_timeout_seconds": 10,
			"connected_at": time.Now().UTC().Format(time.RFC3339Nano),
		}})); err != nil {
			return
		}
		p.conns <- ws
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *wsPeer) url() string { return "ws" + strings.TrimPrefix(p.srv.URL, "http") }

// accept returns the server side of the next connection.
func (p *wsPeer) accept(t *testing.T) *websocket.Conn {
	t.Helper()
	select {
	case ws := <-p.conns:
		return ws
	case <-time.After(10 * time.Second):
		t.Fatal("no connection to the EventSub peer")
		return nil
	}
}

var peerSeq atomic.Int64

func peerMessage(kind string, payload map[string]any) map[string]any {
	return map[string]any{
		"metadata": map[string]any{"message_id": fmt.Sprintf("peer-%d", peerSeq.Add(1)), "message_type": kind,
			"message_timestamp": time.Now().UTC().Format(time.RFC3339Nano)},
		"payload": payload,
	}
}

func peerNotification(messageID string) map[string]any {
	m := peerMessage(eventsub.TypeNotification, map[string]any{
		"subscription": map[string]any{"id": "sub-1", "type": "stream.online", "version": "1", "status": "enabled",
			"condition": map[string]any{"broadcaster_user_id": "1971641"},
			"transport": map[string]any{"method": "websocket", "session_id": "session-1"}},
		"event": map[string]any{"id": "9001", "broadcaster_user_id": "1971641", "type": "live"},
	})
	meta := m["metadata"].(map[string]any)
	meta["message_id"], meta["subscription_type"], meta["subscription_version"] = messageID, "stream.online", "1"
	return m
}

func countingSessions() *Sessions {
	return &Sessions{dialer: websocket.DefaultDialer, log: logging.Discard(),
		running: map[string]*broadcasterRun{}, sockets: map[string]int{}}
}

func (s *Sessions) openSockets(userID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sockets[userID]
}

// A socket whose dial for a session_reconnect completes just as the loop
// ends must be closed and leave Twitch's per-user count, or after a few of
// them no socket can be opened for the user any more. The hand-over races
// the loop's end, so it is tried many times.
func TestSocketLoopReleasesSocketDialledAsItEnds(t *testing.T) {
	peer := newWSPeer(t)
	s := countingSessions()
	const user = "1971641"
	for i := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		first, err := s.dial(ctx, user, peer.url())
		if err != nil {
			t.Fatal(err)
		}
		server := peer.accept(t)
		entered, proceed, dialled := make(chan struct{}), make(chan struct{}), make(chan struct{})
		loop := &socketLoop{deliver: &deliverer{queue: make(chan eventsub.Notification, 1)}, log: logging.Discard(),
			dial: func(context.Context, string) (*socket, error) {
				close(entered)
				<-proceed
				defer close(dialled)
				// The dial went through although the loop is over by now.
				return s.dial(context.Background(), user, peer.url())
			}}
		done := make(chan error, 1)
		go func() { done <- loop.run(ctx, first) }()
		if err := server.WriteJSON(peerMessage(eventsub.TypeSessionReconnect, map[string]any{"session": map[string]any{
			"id": "session-x", "status": "reconnecting", "reconnect_url": peer.url()}})); err != nil {
			t.Fatal(err)
		}
		<-entered
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run = %v", err)
		}
		close(proceed)
		<-dialled
		peer.accept(t)
		natstest.Eventually(t, 5*time.Second, fmt.Sprintf("round %d: every socket released", i), func() bool {
			return s.openSockets(user) == 0
		})
	}
}

// Notifications the readers already took from Twitch when the loop ends
// (shutdown, lease lost) still reach the deliverer: Twitch does not send
// them again.
func TestSocketLoopDeliversWhatWasReadAtShutdown(t *testing.T) {
	peer := newWSPeer(t)
	s := countingSessions()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, err := s.dial(ctx, "1971641", peer.url())
	if err != nil {
		t.Fatal(err)
	}
	server := peer.accept(t)
	// Unbuffered: the test is the Intake, and takes nothing for a while.
	d := &deliverer{queue: make(chan eventsub.Notification)}
	frames := make(chan frame, 8)
	loop := &socketLoop{deliver: d, log: logging.Discard(), frames: frames,
		dial: func(context.Context, string) (*socket, error) { return nil, fmt.Errorf("no reconnect in this test") }}
	done := make(chan error, 1)
	go func() { done <- loop.run(ctx, first) }()

	const sent = 30
	for i := range sent {
		if err := server.WriteJSON(peerNotification(fmt.Sprintf("n-%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	got := []string{(<-d.queue).MessageID}
	// The loop now holds the next one, waiting for the queue, while the
	// reader runs ahead until frames is full.
	natstest.Eventually(t, 10*time.Second, "the reader ahead of the loop", func() bool { return len(frames) == cap(frames) })
	cancel()
collect:
	for {
		select {
		case n := <-d.queue:
			got = append(got, n.MessageID)
		case err := <-done:
			if err != nil {
				t.Fatalf("run = %v", err)
			}
			break collect
		}
	}
	// At least: the first, the one the loop held, and a full frames.
	if len(got) < 2+cap(frames) {
		t.Fatalf("delivered %v after the shutdown, want at least %d", got, 2+cap(frames))
	}
	for i, id := range got {
		if want := fmt.Sprintf("n-%02d", i); id != want {
			t.Fatalf("delivered %v: #%d is %s, want %s (in the order read, none lost)", got, i, id, want)
		}
	}
	if n := s.openSockets("1971641"); n != 0 {
		t.Errorf("%d sockets still counted after the loop ended", n)
	}
}
