package router

import (
	"context"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// cache keeps the catalogue and community views the hot path reads. Entries
// live for a TTL and are dropped at once by wb.control notices, so a change
// in the portal reaches every router replica without a restart.
type cache struct {
	store Store
	ttl   time.Duration
	now   func() time.Time

	mu          sync.RWMutex
	reg         *registry
	regExpires  time.Time
	channels    map[string]channelEntry // platform + "\x00" + channel id → community id
	communities map[string]viewEntry    // community id → view
	persons     map[string]personEntry  // platform + "\x00" + user id → person id ("" for none)
	generation  uint64                  // bumped on every invalidation, so a slow load cannot store stale data

	flight singleflight.Group
}

type channelEntry struct {
	communityID string
	expires     time.Time
}

type personEntry struct {
	id      string
	expires time.Time
}

type viewEntry struct {
	view    *communityView
	expires time.Time
}

func newCache(s Store, ttl time.Duration) *cache {
	return &cache{store: s, ttl: ttl, now: time.Now,
		channels: map[string]channelEntry{}, communities: map[string]viewEntry{}, persons: map[string]personEntry{}}
}

// person returns the person the event's user is linked to, or "". Accounts
// with no person are remembered too: most users never link, and asking
// PostgreSQL on each of their commands would cost a query per invocation.
// wb.control.identity drops every entry, so a link counts from the next
// command on every replica.
func (c *cache) person(ctx context.Context, ev *schemas.Event) (string, error) {
	id := ev.User.ID
	if id == "" {
		id = ev.User.Login
	}
	if id == "" {
		return "", nil
	}
	key := ev.Platform + "\x00" + id
	c.mu.RLock()
	e, ok := c.persons[key]
	gen := c.generation
	c.mu.RUnlock()
	if ok && c.now().Before(e.expires) {
		return e.id, nil
	}
	person, err := c.store.PersonOf(ctx, ev.Platform, id)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.generation == gen {
		if len(c.persons) >= maxPersons {
			// A bound on memory, not an eviction policy: refilling costs one
			// query per active user.
			c.persons = map[string]personEntry{}
		}
		c.persons[key] = personEntry{id: person, expires: c.now().Add(c.ttl)}
	}
	c.mu.Unlock()
	return person, nil
}

// maxPersons bounds the person cache of one router replica.
const maxPersons = 100_000

// registry returns the current catalogue snapshot, loading it when stale.
func (c *cache) registry(ctx context.Context) (*registry, error) {
	c.mu.RLock()
	reg, fresh := c.reg, c.now().Before(c.regExpires)
	gen := c.generation
	c.mu.RUnlock()
	if reg != nil && fresh {
		return reg, nil
	}
	v, err, _ := c.flight.Do("registry", func() (any, error) {
		entries, err := c.store.Catalogue(ctx)
		if err != nil {
			return nil, err
		}
		reg := buildRegistry(entries)
		c.mu.Lock()
		if c.generation == gen {
			c.reg, c.regExpires = reg, c.now().Add(c.ttl)
		}
		c.mu.Unlock()
		return reg, nil
	})
	if err != nil {
		if reg != nil {
			// A stale catalogue beats none while PostgreSQL hiccups.
			return reg, nil
		}
		return nil, err
	}
	return v.(*registry), nil
}

// view returns the community of a channel with its choices, creating a
// provisional community for a channel seen the first time.
func (c *cache) view(ctx context.Context, ev *schemas.Event) (*communityView, error) {
	key := ev.Platform + "\x00" + ev.Channel.ID
	now := c.now()
	c.mu.RLock()
	ch, okCh := c.channels[key]
	var ve viewEntry
	okView := false
	if okCh && now.Before(ch.expires) {
		ve, okView = c.communities[ch.communityID]
		okView = okView && now.Before(ve.expires)
	}
	gen := c.generation
	c.mu.RUnlock()
	if okView {
		return ve.view, nil
	}
	v, err, _ := c.flight.Do("view:"+key, func() (any, error) {
		community, err := c.store.ResolveChannel(ctx, store.Channel{Platform: ev.Platform, ChannelID: ev.Channel.ID,
			ServerID: ev.Channel.ServerID, Name: ev.Channel.Name})
		if err != nil {
			return nil, err
		}
		choices, err := c.store.CommunityModules(ctx, community.ID)
		if err != nil {
			return nil, err
		}
		overrides, err := c.store.CommandOverrides(ctx, community.ID)
		if err != nil {
			return nil, err
		}
		aliases, err := c.store.Aliases(ctx, community.ID)
		if err != nil {
			return nil, err
		}
		view := &communityView{community: community, choices: choices, overrides: overrides, aliases: aliases}
		c.mu.Lock()
		if c.generation == gen {
			exp := c.now().Add(c.ttl)
			c.channels[key] = channelEntry{communityID: community.ID, expires: exp}
			c.communities[community.ID] = viewEntry{view: view, expires: exp}
		}
		c.mu.Unlock()
		return view, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*communityView), nil
}

// invalidate handles a wb.control notice.
func (c *cache) invalidate(subject string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation++
	switch {
	case subject == schemas.ControlRegistry:
		c.regExpires = time.Time{}
	case subject == schemas.ControlIdentity:
		// Views cache users' labels, which now come from other accounts
		// too: they are rebuilt along with the persons.
		c.persons = map[string]personEntry{}
		c.communities = map[string]viewEntry{}
	case strings.HasPrefix(subject, schemas.SubjectControl+".community."):
		id, err := schemas.DecodeToken(strings.TrimPrefix(subject, schemas.SubjectControl+".community."))
		if err != nil {
			return
		}
		delete(c.communities, id)
		// Channels may have moved in or out of the community: forget them all
		// (they are one cheap query each to relearn).
		for k, ch := range c.channels {
			if ch.communityID == id {
				delete(c.channels, k)
			}
		}
	default:
		// An unknown notice: drop everything rather than serve stale data.
		c.regExpires = time.Time{}
		c.channels = map[string]channelEntry{}
		c.communities = map[string]viewEntry{}
		c.persons = map[string]personEntry{}
	}
}
