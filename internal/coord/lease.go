package coord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/logging"
)

// Leases hands out exclusive, expiring claims on named connections (an
// EventSub WebSocket, a Discord shard, a Slack socket), so that at most one
// replica holds each. The bucket's TTL (streams.BucketLeases) is the lease
// lifetime: a holder renews at a third of it, and gives the connection up
// itself when it has not renewed for two thirds (fencing), before anyone
// else can take the key.
type Leases struct {
	kv     jetstream.KeyValue
	ttl    time.Duration
	holder string
	log    *slog.Logger
}

// NewLeases uses kv on behalf of holder (a replica id). The lease lifetime
// is the bucket's TTL, read from the bucket so the two cannot disagree.
func NewLeases(ctx context.Context, kv jetstream.KeyValue, holder string, log *slog.Logger) (*Leases, error) {
	if log == nil {
		log = slog.Default()
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("coord: unable to read the lease bucket: %w", err)
	}
	if st.TTL() <= 0 {
		return nil, fmt.Errorf("coord: lease bucket %s has no TTL: leases would never expire", st.Bucket())
	}
	return &Leases{kv: kv, ttl: st.TTL(), holder: holder, log: log}, nil
}

// Lease is a held claim. Lost is closed when the holder must stop using the
// connection: renewal failed for long enough, someone else holds the key,
// or Release was called.
type Lease struct {
	Key  string
	Lost <-chan struct{}

	cancel context.CancelFunc
	done   chan struct{}
}

// ErrHeld means another replica holds the lease.
var ErrHeld = errors.New("coord: lease held by another replica")

// TryAcquire takes key if free and keeps renewing it until Release or loss.
func (l *Leases) TryAcquire(ctx context.Context, key string) (*Lease, error) {
	rev, err := l.kv.Create(ctx, key, []byte(l.holder))
	if errors.Is(err, jetstream.ErrKeyExists) {
		e, gerr := l.kv.Get(ctx, key)
		if gerr == nil && string(e.Value()) == l.holder {
			// Ours from before a restart of this replica: take it back.
			rev, err = l.kv.Update(ctx, key, []byte(l.holder), e.Revision())
		} else {
			return nil, ErrHeld
		}
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, ErrHeld
		}
		return nil, fmt.Errorf("coord: unable to take lease %s: %w", key, err)
	}
	lost := make(chan struct{})
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	lease := &Lease{Key: key, Lost: lost, cancel: cancel, done: make(chan struct{})}
	go l.renew(rctx, lease, rev, lost)
	return lease, nil
}

// Acquire waits until key is free and takes it.
func (l *Leases) Acquire(ctx context.Context, key string) (*Lease, error) {
	wait := l.ttl / 5
	for {
		lease, err := l.TryAcquire(ctx, key)
		if err == nil {
			return lease, nil
		}
		if !errors.Is(err, ErrHeld) {
			l.log.Warn("coord: lease attempt failed", logging.KeyID, key, logging.KeyError, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (l *Leases) renew(ctx context.Context, lease *Lease, rev uint64, lost chan struct{}) {
	defer close(lease.done)
	defer close(lost)
	every := l.ttl / 3
	fence := l.ttl * 2 / 3
	lastOK := time.Now()
	t := time.NewTicker(every / 2)
	defer t.Stop()
	nextRenew := time.Now().Add(every)
	for {
		select {
		case <-ctx.Done():
			// Released: free the key for the next holder at once.
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if e, err := l.kv.Get(dctx, lease.Key); err == nil && e.Revision() == rev {
				_ = l.kv.Delete(dctx, lease.Key, jetstream.LastRevision(rev))
			}
			cancel()
			return
		case now := <-t.C:
			if time.Since(lastOK) >= fence {
				l.log.Warn("coord: lease not renewed in time; giving the connection up", logging.KeyID, lease.Key)
				return
			}
			if now.Before(nextRenew) {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, every)
			newRev, err := l.kv.Update(rctx, lease.Key, []byte(l.holder), rev)
			cancel()
			switch {
			case err == nil:
				rev, lastOK, nextRenew = newRev, time.Now(), time.Now().Add(every)
			case IsConflict(err) || errors.Is(err, jetstream.ErrKeyNotFound):
				l.log.Warn("coord: lease taken by another replica", logging.KeyID, lease.Key)
				return
			default:
				l.log.Warn("coord: lease renewal failed; will retry", logging.KeyID, lease.Key, logging.KeyError, err)
				nextRenew = time.Now().Add(every / 4)
			}
		}
	}
}

// Release gives the lease up and frees the key.
func (lease *Lease) Release() {
	lease.cancel()
	<-lease.done
}
