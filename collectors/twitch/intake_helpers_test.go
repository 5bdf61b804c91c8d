package twitch_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/schemas"
)

// intakeAccounts is an Accounts whose answers the test sets.
type intakeAccounts struct {
	mu       sync.Mutex
	accounts []twitch.Account
	err      error
	lookups  int
}

func (a *intakeAccounts) set(err error, accounts ...twitch.Account) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.accounts, a.err = accounts, err
}

func (a *intakeAccounts) Connected(_ context.Context, kind string) ([]twitch.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lookups++
	if a.err != nil {
		return nil, a.err
	}
	var out []twitch.Account
	for _, acc := range a.accounts {
		if acc.Kind == kind && acc.Status == twitch.StatusConnected {
			out = append(out, acc)
		}
	}
	return out, nil
}

func (a *intakeAccounts) Account(_ context.Context, userID string) (twitch.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, acc := range a.accounts {
		if acc.UserID == userID {
			return acc, nil
		}
	}
	return twitch.Account{}, twitch.ErrNotConnected
}

func (a *intakeAccounts) lookupCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lookups
}

// recordingPublisher records what it is asked to publish, failing while fail is set.
type recordingPublisher struct {
	mu     sync.Mutex
	events []*schemas.Event
	fail   error
}

func (p *recordingPublisher) Publish(_ context.Context, ev *schemas.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.events = append(p.events, ev)
	return nil
}

func (p *recordingPublisher) published() []*schemas.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*schemas.Event(nil), p.events...)
}

// intakeClock is a clock the test moves.
type intakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *intakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *intakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func bot(id string) twitch.Account {
	return twitch.Account{UserID: id, Login: "waddlebot", Kind: twitch.KindBot, Status: twitch.StatusConnected}
}

func broadcasterAccount(id string) twitch.Account {
	return twitch.Account{UserID: id, Login: "b" + id, Kind: twitch.KindBroadcaster, Status: twitch.StatusConnected}
}

func httptestBody(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }
