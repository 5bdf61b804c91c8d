package slack

import "sync"

// flights runs at most one lookup per key at a time: concurrent callers
// share the running one instead of each asking the database or Slack, and
// a lookup of one team never waits for another's.
type flights struct {
	mu      sync.Mutex
	running map[string]chan struct{}
}

// start runs lookup for key in a goroutine of its own unless one is
// running already, and returns a channel closed when the running lookup
// ends. lookup stores its own result: callers read it once the channel
// closes, or go on without it when they cannot wait.
func (f *flights) start(key string, lookup func()) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if done, ok := f.running[key]; ok {
		return done
	}
	if f.running == nil {
		f.running = map[string]chan struct{}{}
	}
	done := make(chan struct{})
	f.running[key] = done
	go func() {
		defer func() {
			f.mu.Lock()
			delete(f.running, key)
			f.mu.Unlock()
			close(done)
		}()
		lookup()
	}()
	return done
}
