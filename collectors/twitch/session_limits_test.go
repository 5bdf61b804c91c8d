package twitch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/internal/logging"
)

func TestCheckSocketLimit(t *testing.T) {
	tests := []struct {
		open    int
		wantErr bool
	}{
		{0, false},
		{maxSocketsPerUser - 1, false},
		{maxSocketsPerUser, true},
		{maxSocketsPerUser + 5, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d open", tt.open), func(t *testing.T) {
			err := checkSocketLimit("1971641", tt.open)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, errSocketLimit)) {
				t.Fatalf("checkSocketLimit(%d) = %v, want errSocketLimit %v", tt.open, err, tt.wantErr)
			}
			if err != nil && (!strings.Contains(err.Error(), "1971641") || !strings.Contains(err.Error(), "allows 3")) {
				t.Errorf("error %q does not name the user and Twitch's limit", err)
			}
		})
	}
}

func TestCheckSubscriptionLimit(t *testing.T) {
	tests := []struct {
		subscriptions int
		wantErr       bool
	}{
		{len(eventsub.Specs()), false},
		{maxSubscriptionsPerSocket, false},
		{maxSubscriptionsPerSocket + 1, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.subscriptions), func(t *testing.T) {
			err := checkSubscriptionLimit(tt.subscriptions)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, errSubscriptionLimit)) {
				t.Fatalf("checkSubscriptionLimit(%d) = %v, want errSubscriptionLimit %v", tt.subscriptions, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "allows 300") {
				t.Errorf("error %q does not name Twitch's limit", err)
			}
		})
	}
}

// dial opens at most maxSocketsPerUser sockets for one user, without
// connecting for a 4th, and counts each user on their own.
func TestSocketLimitRefusesFourthSocketOfUser(t *testing.T) {
	peer := newWSPeer(t)
	s := countingSessions()
	ctx := t.Context()
	const user, other = "1971641", "2914196"
	var open []*socket
	for i := range maxSocketsPerUser {
		sk, err := s.dial(ctx, user, peer.url())
		if err != nil {
			t.Fatalf("socket %d: %v", i+1, err)
		}
		peer.accept(t)
		open = append(open, sk)
	}
	_, err := s.dial(ctx, user, peer.url())
	if !errors.Is(err, errSocketLimit) {
		t.Fatalf("4th socket: dial = %v, want errSocketLimit", err)
	}
	if got := peer.seq.Load(); got != maxSocketsPerUser {
		t.Errorf("%d connections reached Twitch, want %d: the 4th must not be dialled", got, maxSocketsPerUser)
	}
	if n := s.openSockets(user); n != maxSocketsPerUser {
		t.Errorf("%d sockets counted after the refusal, want %d", n, maxSocketsPerUser)
	}
	otherSocket, err := s.dial(ctx, other, peer.url())
	if err != nil {
		t.Fatalf("another user's socket: %v", err)
	}
	peer.accept(t)
	otherSocket.close()

	// A socket closed makes room again.
	open[0].close()
	sk, err := s.dial(ctx, user, peer.url())
	if err != nil {
		t.Fatalf("socket after one closed: %v", err)
	}
	peer.accept(t)
	for _, sk := range append(open[1:], sk) {
		sk.close()
	}
	if n := s.openSockets(user); n != 0 {
		t.Errorf("%d sockets counted after all closed", n)
	}
}

// subscribe refuses more subscriptions than one socket may hold before it
// asks Twitch for any (no Helix is configured: a call would panic).
func TestSubscriptionLimitRefuses301stOnASocket(t *testing.T) {
	s := countingSessions()
	specs := make([]eventsub.Spec, maxSubscriptionsPerSocket+1)
	for i := range specs {
		specs[i] = eventsub.Spec{Type: fmt.Sprintf("type.%d", i), Version: "1"}
	}
	sk := &socket{sessionID: "session-1", keepalive: 10 * time.Second, release: func() {}}
	err := s.subscribe(context.Background(), "1971641", sk, specs, "token", true, logging.Discard())
	if !errors.Is(err, errSubscriptionLimit) {
		t.Fatalf("subscribe of %d = %v, want errSubscriptionLimit", len(specs), err)
	}
}
