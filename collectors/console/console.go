// Package console is the local platform for development: `waddlebot say`
// and the dev chat page post chat messages as any user with any role, and
// the bot's replies are logged and shown on the page.
//
// The console trusts the role its sender claims, so it is for local use
// only: `waddlebot dev` mounts it, other commands only when
// WADDLEBOT_CONSOLE_ENABLED is set (design §5).
package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/schemas"
)

// Config configures a Console.
type Config struct {
	// Publisher publishes what users say; when nil, one is made on Conn.
	Publisher *collectors.Publisher
	Conn      *natsx.Conn
	Logger    *slog.Logger
}

// Console is the console platform: the intake for `say` and the page, and
// the sending side (collectors.Platform) that shows replies on the page.
type Console struct {
	pub *collectors.Publisher
	log *slog.Logger
	hub hub

	// Test hooks: failNext makes that many sends fail transiently; observe
	// sees every reply Send delivered.
	failNext  atomic.Int32
	observe   func(schemas.Reply)
	keepalive time.Duration
}

// New makes a console.
func New(cfg Config) *Console {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	pub := cfg.Publisher
	if pub == nil && cfg.Conn != nil {
		pub = collectors.NewPublisher(cfg.Conn.JS, log)
	}
	return &Console{
		pub:       pub,
		log:       log.With(logging.KeyPlatform, schemas.PlatformConsole),
		hub:       hub{subs: map[string]map[*subscriber]struct{}{}},
		keepalive: 15 * time.Second,
	}
}

// Name is "console".
func (c *Console) Name() string { return schemas.PlatformConsole }

// errSimulated is what a send made to fail by the test hook returns.
var errSimulated = errors.New("console: simulated transient send failure")

// Send shows the reply to the page's listeners on its channel and logs it.
// Nobody listening is no failure: the console has no one to refuse.
func (c *Console) Send(ctx context.Context, r *schemas.Reply) error {
	for n := c.failNext.Load(); n > 0; n = c.failNext.Load() {
		if c.failNext.CompareAndSwap(n, n-1) {
			return errSimulated
		}
	}
	c.log.Info("console: bot says", logging.KeyChannel, r.Target.ChannelID, "text", r.Text,
		"part", r.Part, "parts", r.Parts, logging.KeyEvent, r.EventID)
	c.hub.publish(r.Target.ChannelID, *r)
	if c.observe != nil {
		c.observe(*r)
	}
	return nil
}

// Subscribe returns the replies sent to channel from now on, until cancel is
// called. A listener that falls more than a buffer behind loses replies
// rather than hold up the sender.
func (c *Console) Subscribe(channel string) (<-chan schemas.Reply, func()) {
	return c.hub.subscribe(channel)
}

// Say publishes what a console user says. ErrOwnMessage means nothing was
// published because the message is the bot's own.
func (c *Console) Say(ctx context.Context, m Message) (*schemas.Event, error) {
	ev, err := NewEvent(m, time.Now())
	if err != nil {
		return nil, err
	}
	if c.pub == nil {
		return nil, errors.New("console: no publisher configured")
	}
	if err := c.pub.Publish(ctx, ev); err != nil {
		return nil, fmt.Errorf("console: unable to publish what %s said: %w", m.User, err)
	}
	c.log.Debug("console: user says", logging.KeyChannel, ev.Channel.ID, "user", ev.User.Login, logging.KeyEvent, ev.ID)
	return ev, nil
}

// Message is one chat message typed into the console.
type Message struct {
	Channel string
	User    string
	// Role is the role the user claims: everyone (or empty), member,
	// subscriber, vip, moderator, broadcaster (or owner).
	Role string
	Text string
	// ID is an optional client-made id: a double submit of one message gets
	// one event id and dies in the duplicate window.
	ID string
	// Bot marks the bot's own message, which the console drops like every
	// collector does.
	Bot bool
}

// ErrInvalidMessage wraps every reason NewEvent rejects a message.
var ErrInvalidMessage = errors.New("console: invalid message")

// ErrOwnMessage means the message is the bot's own and makes no event.
var ErrOwnMessage = errors.New("console: the bot's own message is not an event")

var nameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// maxIDLength bounds client-made message ids; they are only hashed, but an
// unbounded id is a way to make every event bigger.
const maxIDLength = 128

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidMessage, fmt.Sprintf(format, args...))
}

// NewEvent builds the normalized chat event for m as it happened at now.
func NewEvent(m Message, now time.Time) (*schemas.Event, error) {
	if m.Bot {
		return nil, ErrOwnMessage
	}
	if !nameRe.MatchString(m.Channel) {
		return nil, invalidf("channel %q must be 1 to 32 letters, digits, '_' or '-'", m.Channel)
	}
	if !nameRe.MatchString(m.User) {
		return nil, invalidf("user name %q must be 1 to 32 letters, digits, '_' or '-'", m.User)
	}
	roles, err := parseRole(m.Role)
	if err != nil {
		return nil, err
	}
	switch {
	case !utf8.ValidString(m.Text):
		return nil, invalidf("text is not valid UTF-8")
	case strings.TrimSpace(m.Text) == "":
		return nil, invalidf("text is empty")
	case len(m.Text) > schemas.MaxEventText:
		return nil, invalidf("text is %d bytes, more than %d", len(m.Text), schemas.MaxEventText)
	case len(m.ID) > maxIDLength:
		return nil, invalidf("message id is %d bytes, more than %d", len(m.ID), maxIDLength)
	case !utf8.ValidString(m.ID):
		return nil, invalidf("message id is not valid UTF-8")
	}
	id := schemas.NewEventID()
	if m.ID != "" {
		id = schemas.EventID(schemas.PlatformConsole, m.ID)
	}
	at := now.UTC()
	return &schemas.Event{
		Version:         schemas.Version,
		ID:              id,
		Platform:        schemas.PlatformConsole,
		PlatformEventID: m.ID,
		Kind:            schemas.KindChat,
		Channel:         schemas.Channel{ID: m.Channel, Name: m.Channel},
		User:            schemas.User{ID: m.User, Login: m.User, DisplayName: m.User, Roles: roles},
		Text:            m.Text,
		OccurredAt:      at,
		ReceivedAt:      at,
	}, nil
}

// Roles a console user may claim, as the page offers them.
var Roles = []string{schemas.PermissionEveryone, string(schemas.RoleMember), string(schemas.RoleSubscriber),
	string(schemas.RoleVIP), string(schemas.RoleModerator), string(schemas.RoleBroadcaster)}

func parseRole(role string) ([]schemas.Role, error) {
	switch r := strings.ToLower(strings.TrimSpace(role)); r {
	case "", schemas.PermissionEveryone:
		return nil, nil
	case "owner", string(schemas.RoleBroadcaster):
		return []schemas.Role{schemas.RoleBroadcaster}, nil
	case string(schemas.RoleModerator), string(schemas.RoleVIP), string(schemas.RoleSubscriber), string(schemas.RoleMember):
		return []schemas.Role{schemas.Role(r)}, nil
	}
	return nil, invalidf("role %q is not one of %s", role, strings.Join(Roles, ", "))
}

// hub fans replies out to the page's listeners, per channel.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[*subscriber]struct{}
}

type subscriber struct {
	ch chan schemas.Reply
}

// listenerBuffer is how many replies a slow page may fall behind.
const listenerBuffer = 256

func (h *hub) subscribe(channel string) (<-chan schemas.Reply, func()) {
	s := &subscriber{ch: make(chan schemas.Reply, listenerBuffer)}
	h.mu.Lock()
	if h.subs[channel] == nil {
		h.subs[channel] = map[*subscriber]struct{}{}
	}
	h.subs[channel][s] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs[channel], s)
			if len(h.subs[channel]) == 0 {
				delete(h.subs, channel)
			}
			close(s.ch)
			h.mu.Unlock()
		})
	}
}

func (h *hub) publish(channel string, r schemas.Reply) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[channel] {
		select {
		case s.ch <- r:
		default:
		}
	}
}
