package collectors

import (
	"container/list"
	"sync"
)

// RecentIDs remembers the last ids it was given, up to a bound, forgetting
// the least recently seen first. Collectors use it to drop a platform's
// redelivery before publishing; the stream's duplicate window stays the
// guarantee, this only saves the round trip. (A bounded LRU is a few lines
// over container/list; no library needed.)
type RecentIDs struct {
	mu    sync.Mutex
	max   int
	order *list.List
	items map[string]*list.Element
}

// NewRecentIDs remembers up to max ids.
func NewRecentIDs(max int) *RecentIDs {
	return &RecentIDs{max: max, order: list.New(), items: map[string]*list.Element{}}
}

// Has reports whether id was added and not yet forgotten.
func (r *RecentIDs) Has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.items[id]
	if ok {
		r.order.MoveToFront(e)
	}
	return ok
}

// Add remembers id.
func (r *RecentIDs) Add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.items[id]; ok {
		r.order.MoveToFront(e)
		return
	}
	r.items[id] = r.order.PushFront(id)
	for r.order.Len() > r.max {
		oldest := r.order.Back()
		r.order.Remove(oldest)
		delete(r.items, oldest.Value.(string))
	}
}
