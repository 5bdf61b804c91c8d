package coord_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/streams"
)

var ctx = context.Background()

func bucket(t *testing.T, env *natstest.Env, name string) jetstream.KeyValue {
	t.Helper()
	kv, err := env.Conn.JS.KeyValue(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestCooldown(t *testing.T) {
	env := natstest.Start(t, nil)
	c := coord.NewCooldowns(bucket(t, env, streams.BucketCooldowns))
	steps := []struct {
		event string
		want  bool
	}{
		{"e1", true},  // free
		{"e1", true},  // redelivery of the same event
		{"e2", false}, // another event while cooling down
	}
	for _, s := range steps {
		got, err := c.Take(ctx, "u.c.ping.alice", s.event, time.Second)
		if err != nil || got != s.want {
			t.Fatalf("Take(%s) = %v, %v; want %v", s.event, got, err, s.want)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := c.Take(ctx, "u.c.ping.alice", "e3", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cooldown never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ok, _ := c.Take(ctx, "other", "e9", 0); !ok {
		t.Fatal("a zero cooldown denied")
	}
}

func TestWindowNeverHoldsMoreThanLimitAcrossReplicas(t *testing.T) {
	env := natstest.Start(t, nil)
	kv := bucket(t, env, streams.BucketWindows)
	// Two replicas, each with its own cache, on separate connections.
	a := coord.NewWindows(kv)
	b := coord.NewWindows(bucket(t, &natstest.Env{Conn: env.Connect(t)}, streams.BucketWindows))
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range 100 {
		w := a
		if i%2 == 1 {
			w = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := w.Allow(ctx, "send.twitch.123", fmt.Sprintf("reply-%d", i), 20, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				allowed.Add(1)
			} else if d.RetryAfter <= 0 || d.RetryAfter > time.Minute+time.Millisecond {
				t.Errorf("denied with RetryAfter %s", d.RetryAfter)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 20 {
		t.Fatalf("%d of 100 allowed in one window, want exactly 20", allowed.Load())
	}
	// A resend of an id already in the window passes without a new entry.
	d, err := a.Allow(ctx, "send.twitch.123", "reply-0", 20, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if d.Count != 20 {
		t.Fatalf("window holds %d after a resend, want 20", d.Count)
	}
}

// TestWindowSlides drives one window with a fake clock through random
// arrivals and checks the sliding property exactly: no 30 s span ever holds
// more than 20 allowed entries, and a denial is lifted when it says.
func TestWindowSlides(t *testing.T) {
	env := natstest.Start(t, nil)
	now := time.Unix(1_800_000_000, 0)
	w := coord.NewWindows(bucket(t, env, streams.BucketWindows)).WithClock(func() time.Time { return now })
	const limit, window = 20, 30 * time.Second
	var allowedAt []time.Time
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
		d, err := w.Allow(ctx, "k", fmt.Sprint(i), limit, window)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			allowedAt = append(allowedAt, now)
			continue
		}
		// Denied: at now+RetryAfter the same request must pass.
		now = now.Add(d.RetryAfter)
		d2, err := w.Allow(ctx, "k", fmt.Sprint(i), limit, window)
		if err != nil || !d2.Allowed {
			t.Fatalf("still denied at the RetryAfter it gave (%v)", err)
		}
		allowedAt = append(allowedAt, now)
	}
	for i := range allowedAt {
		n := 0
		for j := i; j < len(allowedAt) && allowedAt[j].Sub(allowedAt[i]) < window; j++ {
			n++
		}
		if n > limit {
			t.Fatalf("%d entries within %s starting at %d", n, window, i)
		}
	}
	if len(allowedAt) < 100 {
		t.Fatalf("only %d allowed; the window is not sliding", len(allowedAt))
	}
}

func TestLeaseIsExclusiveAndReleases(t *testing.T) {
	env := natstest.Start(t, func(c *streams.Config) { c.LeaseTTL = 3 * time.Second })
	kv := bucket(t, env, streams.BucketLeases)
	one := leases(t, kv, "replica-1")
	two := leases(t, kv, "replica-2")
	l1, err := one.TryAcquire(ctx, "twitch.eventsub.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := two.TryAcquire(ctx, "twitch.eventsub.0"); !errors.Is(err, coord.ErrHeld) {
		t.Fatalf("second holder: %v", err)
	}
	// Held past its TTL through renewals.
	time.Sleep(4 * time.Second)
	if _, err := two.TryAcquire(ctx, "twitch.eventsub.0"); !errors.Is(err, coord.ErrHeld) {
		t.Fatalf("lease lapsed while renewed: %v", err)
	}
	select {
	case <-l1.Lost:
		t.Fatal("renewed lease reported lost")
	default:
	}
	l1.Release()
	l2, err := two.TryAcquire(ctx, "twitch.eventsub.0")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
}

// TestLeaseFencing cuts the holder off from NATS: it must give the
// connection up (Lost) before another replica can take the key.
func TestLeaseFencing(t *testing.T) {
	env := natstest.Start(t, func(c *streams.Config) { c.LeaseTTL = 3 * time.Second })
	holderConn := env.Connect(t)
	holderKV := bucket(t, &natstest.Env{Conn: holderConn}, streams.BucketLeases)
	one := leases(t, holderKV, "replica-1")
	two := leases(t, bucket(t, env, streams.BucketLeases), "replica-2")
	l1, err := one.TryAcquire(ctx, "discord.shard.0")
	if err != nil {
		t.Fatal(err)
	}
	holderConn.NC.Close()
	lostAt := make(chan time.Time, 1)
	go func() { <-l1.Lost; lostAt <- time.Now() }()
	l2, err := two.Acquire(ctx, "discord.shard.0")
	if err != nil {
		t.Fatal(err)
	}
	takenAt := time.Now()
	defer l2.Release()
	select {
	case at := <-lostAt:
		if !at.Before(takenAt) {
			t.Fatalf("old holder lost at %v, new holder took it at %v: two holders at once", at, takenAt)
		}
	case <-time.After(time.Second):
		t.Fatal("old holder never gave the lease up")
	}
}

func leases(t *testing.T, kv jetstream.KeyValue, holder string) *coord.Leases {
	t.Helper()
	l, err := coord.NewLeases(ctx, kv, holder, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A lost compare-and-swap is a conflict whichever way the server or client
// reports it: a single server says 10071, a replicated bucket 10164, and
// nats.go wraps Update's as ErrKeyRevisionMismatch. Anything else is not.
func TestIsConflict(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"key exists", jetstream.ErrKeyExists, true},
		{"revision mismatch", fmt.Errorf("update: %w", jetstream.ErrKeyRevisionMismatch), true},
		{"10071", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}, true},
		{"10164 (replicated)", fmt.Errorf("cas: %w", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}), true},
		{"other API error", &jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeJetStreamNotEnabled}, false},
		{"timeout", context.DeadlineExceeded, false},
		{"nil", nil, false},
	} {
		if got := coord.IsConflict(c.err); got != c.want {
			t.Errorf("%s: IsConflict = %v, want %v", c.name, got, c.want)
		}
	}
}

// Windows nobody used for longer than the bucket keeps them are dropped
// from memory, so a router's cache holds the users who spoke lately, not
// every user who ever did; a dropped window still counts right when its
// user comes back.
func TestIdleWindowsLeaveTheCache(t *testing.T) {
	env := natstest.Start(t, nil)
	now := time.Now()
	w := coord.NewWindows(bucket(t, env, streams.BucketWindows)).WithClock(func() time.Time { return now })
	for i := range 100 {
		if _, err := w.Allow(ctx, fmt.Sprintf("ur.c.user%d", i), "e1", 5, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.CachedWindows(); n != 100 {
		t.Fatalf("%d windows cached, want 100", n)
	}
	now = now.Add(11 * time.Minute)
	if _, err := w.Allow(ctx, "ur.c.newcomer", "e2", 5, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := w.CachedWindows(); n != 1 {
		t.Fatalf("%d windows cached after 11 idle minutes, want 1 (the newcomer's)", n)
	}
	// user0 comes back: its key is still in the bucket (the test's clock
	// ran ahead of the bucket's TTL), so the write conflicts, the window is
	// read again, and the old entry is outside the window.
	d, err := w.Allow(ctx, "ur.c.user0", "e3", 5, time.Minute)
	if err != nil || !d.Allowed || d.Count != 1 {
		t.Fatalf("returning user: %+v, %v; want allowed with 1 entry", d, err)
	}
}
