// Package coord coordinates replicas through JetStream KV: cooldowns (a key
// with its own TTL), sliding-window rate limits and send budgets (a log of
// recent timestamps updated with compare-and-swap), and connection leases.
package coord

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Cooldowns are keys created with a per-key TTL whose value is the event id
// that started them.
type Cooldowns struct {
	kv jetstream.KeyValue
}

// NewCooldowns uses a bucket created with LimitMarkerTTL (streams.BucketCooldowns).
func NewCooldowns(kv jetstream.KeyValue) *Cooldowns { return &Cooldowns{kv: kv} }

// Take starts a cooldown of d on key for eventID. It allows when the key was
// free, or when it is already held by this same event (a redelivery); it
// denies when another event holds it. One round trip when allowed.
func (c *Cooldowns) Take(ctx context.Context, key, eventID string, d time.Duration) (bool, error) {
	if d <= 0 {
		return true, nil
	}
	// The server keeps per-key TTLs in whole seconds (at least one): round
	// up, so a cooldown never ends early.
	ttl := (d + time.Second - 1).Truncate(time.Second)
	_, err := c.kv.Create(ctx, key, []byte(eventID), jetstream.KeyTTL(ttl))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, fmt.Errorf("coord: unable to take cooldown %s: %w", key, err)
	}
	e, err := c.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		// Expired between the two calls: try once more.
		_, err = c.kv.Create(ctx, key, []byte(eventID), jetstream.KeyTTL(ttl))
		if err == nil {
			return true, nil
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil
		}
		return false, fmt.Errorf("coord: unable to take cooldown %s: %w", key, err)
	}
	if err != nil {
		return false, fmt.Errorf("coord: unable to read cooldown %s: %w", key, err)
	}
	return string(e.Value()) == eventID, nil
}

// Release gives back a cooldown this event took, when what it guarded did
// not happen after all (a later check refused the command). A cooldown held
// by another event is left alone.
func (c *Cooldowns) Release(ctx context.Context, key, eventID string) error {
	e, err := c.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("coord: unable to read cooldown %s: %w", key, err)
	}
	if string(e.Value()) != eventID {
		return nil
	}
	if err := c.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil && !IsConflict(err) {
		return fmt.Errorf("coord: unable to release cooldown %s: %w", key, err)
	}
	return nil
}

// Windows are sliding-window logs: each key's value is the recent entries
// (a timestamp and a hash of the id that made it) within the window. A new
// entry is added only if fewer than the limit are inside the window, and the
// write is a compare-and-swap on the key's revision, so no window ever holds
// more than the limit whatever the number of replicas.
type Windows struct {
	kv  jetstream.KeyValue
	now func() time.Time

	mu    sync.Mutex
	cache map[string]cached // last value and revision we saw, to save a read
	swept time.Time         // when idle entries were last dropped
}

type cached struct {
	rev     uint64
	entries []entry
	used    time.Time
}

type entry struct {
	at int64  // unix nanoseconds
	id uint64 // FNV-1a of the id, so a redelivery does not count twice
}

const entrySize = 16
const maxCache = 50000

// idleAfter is how long a cached window may go unused before it is dropped:
// the default WINDOWS_TTL, after which the bucket has dropped the key too,
// so forgetting it costs nothing (with a longer TTL, a returning key costs
// one extra read). Without it the cache of a busy router fills with every
// user who ever spoke, up to maxCache.
const idleAfter = 10 * time.Minute

// NewWindows uses a bucket with a TTL longer than any window (streams.BucketWindows).
func NewWindows(kv jetstream.KeyValue) *Windows {
	return &Windows{kv: kv, now: time.Now, cache: map[string]cached{}}
}

// WithClock replaces the clock, for tests.
func (w *Windows) WithClock(now func() time.Time) *Windows {
	w.now = now
	return w
}

// Decision is the outcome of Allow.
type Decision struct {
	Allowed bool
	// RetryAfter is when the oldest entry leaves the window (when denied).
	RetryAfter time.Duration
	// Count is how many entries the window holds after the decision.
	Count int
	// Repeat is true when the id was already inside the window: allowed
	// again without a new entry (a redelivery of something already counted).
	Repeat bool
}

// Allow records id in key's window of the given length if fewer than limit
// entries are inside it. An id already inside the window is allowed again
// without a new entry (a redelivered event, a re-sent reply).
func (w *Windows) Allow(ctx context.Context, key, id string, limit int, window time.Duration) (Decision, error) {
	if limit <= 0 {
		return Decision{Allowed: true}, nil
	}
	h := hashID(id)
	for attempt := 0; attempt < 20; attempt++ {
		entries, rev, known := w.load(key)
		now := w.now()
		kept := prune(entries, now.Add(-window).UnixNano())
		for _, e := range kept {
			if e.id == h {
				return Decision{Allowed: true, Count: len(kept), Repeat: true}, nil
			}
		}
		if len(kept) >= limit {
			wait := time.Duration(kept[len(kept)-limit].at+window.Nanoseconds()-now.UnixNano()) + time.Millisecond
			return Decision{Allowed: false, RetryAfter: max(wait, time.Millisecond), Count: len(kept)}, nil
		}
		kept = append(kept, entry{at: now.UnixNano(), id: h})
		val := encode(kept)
		var newRev uint64
		var err error
		if known {
			newRev, err = w.kv.Update(ctx, key, val, rev)
		} else {
			newRev, err = w.kv.Create(ctx, key, val)
		}
		if err == nil {
			w.remember(key, newRev, kept)
			return Decision{Allowed: true, Count: len(kept)}, nil
		}
		if !IsConflict(err) {
			return Decision{}, fmt.Errorf("coord: unable to write window %s: %w", key, err)
		}
		// Someone else wrote first: read the truth and try again.
		w.forget(key)
		if err := w.refresh(ctx, key); err != nil {
			return Decision{}, err
		}
	}
	return Decision{}, fmt.Errorf("coord: window %s too contended", key)
}

// IsConflict reports whether a KV write lost a compare-and-swap: the key
// existed (Create) or moved on (Update, Delete with a revision). A
// replicated bucket (R>1) reports the conflict with another error code
// (10164) than a single server (10071); both mean "read again and retry".
func IsConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// load returns the cached value and revision when we have one (the common
// case for a single writer: one round trip per Allow). Without one it
// assumes the key is absent, which a window key is after its bucket TTL of
// idleness: the Create that follows then costs one round trip, and if the key
// does exist the Create conflicts, Allow reads the truth and tries again.
func (w *Windows) load(key string) ([]entry, uint64, bool) {
	w.mu.Lock()
	c, ok := w.cache[key]
	w.mu.Unlock()
	if ok {
		return c.entries, c.rev, true
	}
	return nil, 0, false
}

func (w *Windows) refresh(ctx context.Context, key string) error {
	e, err := w.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		// A deleted key has a revision of its own; Create handles it.
		w.forget(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("coord: unable to read window %s: %w", key, err)
	}
	w.remember(key, e.Revision(), decode(e.Value()))
	return nil
}

func (w *Windows) remember(key string, rev uint64, entries []entry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	if now.Sub(w.swept) >= time.Minute {
		w.swept = now
		for k, c := range w.cache {
			if now.Sub(c.used) > idleAfter {
				delete(w.cache, k)
			}
		}
	}
	if len(w.cache) >= maxCache {
		// Drop the least recently used tenth rather than track exact LRU order.
		cutoff := w.now().Add(-time.Minute)
		for k, c := range w.cache {
			if c.used.Before(cutoff) || len(w.cache) >= maxCache {
				delete(w.cache, k)
			}
			if len(w.cache) < maxCache*9/10 {
				break
			}
		}
	}
	w.cache[key] = cached{rev: rev, entries: entries, used: now}
}

func (w *Windows) forget(key string) {
	w.mu.Lock()
	delete(w.cache, key)
	w.mu.Unlock()
}

func prune(entries []entry, since int64) []entry {
	out := make([]entry, 0, len(entries)+1)
	for _, e := range entries {
		if e.at > since {
			out = append(out, e)
		}
	}
	return out
}

func encode(entries []entry) []byte {
	b := make([]byte, len(entries)*entrySize)
	for i, e := range entries {
		binary.BigEndian.PutUint64(b[i*entrySize:], uint64(e.at))
		binary.BigEndian.PutUint64(b[i*entrySize+8:], e.id)
	}
	return b
}

func decode(b []byte) []entry {
	out := make([]entry, 0, len(b)/entrySize)
	for i := 0; i+entrySize <= len(b); i += entrySize {
		out = append(out, entry{
			at: int64(binary.BigEndian.Uint64(b[i:])),
			id: binary.BigEndian.Uint64(b[i+8:]),
		})
	}
	return out
}

func hashID(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}
