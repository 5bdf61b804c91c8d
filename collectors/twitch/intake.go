package twitch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/metrics"
	"github.com/waddlebot/waddlebot/schemas"
)

// How long Intake trusts what it learned about the bot account, and how
// many published event ids it remembers.
const (
	botIDTTL          = time.Minute
	botIDRetryAfter   = 5 * time.Second // after a failed lookup, so a down database is not asked per message
	botIDLookupBudget = 5 * time.Second
	recentEventIDs    = 50000
)

// IntakeConfig configures an Intake.
type IntakeConfig struct {
	Publisher Publisher
	Accounts  Accounts
	Logger    *slog.Logger
	Now       func() time.Time
}

// Intake is where every EventSub transport (WebSocket, webhook, conduit)
// hands its notifications: it normalizes them, drops the bot's own chat
// messages and recent duplicates, and publishes.
type Intake struct {
	pub      Publisher
	accounts Accounts
	log      *slog.Logger
	now      func() time.Time

	botMu      sync.Mutex
	botIDs     map[string]bool
	botCheckAt time.Time // when to look the bot up again; zero: now

	recent *collectors.RecentIDs
}

// NewIntake makes an Intake.
func NewIntake(cfg IntakeConfig) *Intake {
	if cfg.Logger == nil {
		cfg.Logger = logging.Discard()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Intake{pub: cfg.Publisher, accounts: cfg.Accounts, log: cfg.Logger, now: cfg.Now,
		recent: collectors.NewRecentIDs(recentEventIDs)}
}

// Deliver normalizes, drops the bot's own chat messages (chatter id = the
// connected bot account's id, cached about a minute and until Forget), drops
// an event it published recently, and publishes. It returns an error only
// when the event could not be published, so the caller must not acknowledge
// it (the webhook answers 500 and Twitch retries); unmapped and malformed
// events return nil, since retrying cannot help them.
func (in *Intake) Deliver(ctx context.Context, n eventsub.Notification) error {
	ev, err := eventsub.Normalize(n)
	if errors.Is(err, eventsub.ErrIgnored) {
		skipped("unmapped")
		in.log.Debug("twitch: notification of an unmapped type dropped", logging.KeyPlatform, schemas.PlatformTwitch,
			logging.KeyID, n.MessageID, "type", n.Subscription.Type, "version", n.Subscription.Version)
		return nil
	}
	if err != nil {
		skipped("malformed")
		in.log.Warn("twitch: malformed notification dropped", logging.KeyPlatform, schemas.PlatformTwitch,
			logging.KeyID, n.MessageID, logging.Err(err))
		return nil
	}
	if ev.Kind == schemas.KindChat && in.isBot(ctx, ev.User.ID) {
		// The bot reads the chat it writes to; its own messages must not
		// trigger commands (or answer themselves).
		skipped("own_message")
		in.log.Debug("twitch: the bot's own chat message dropped", logging.KeyPlatform, schemas.PlatformTwitch,
			logging.KeyChannel, ev.Channel.ID, logging.KeyEvent, ev.ID)
		return nil
	}
	if in.recent.Has(ev.ID) {
		skipped("duplicate")
		in.log.Debug("twitch: duplicate notification dropped", logging.KeyPlatform, schemas.PlatformTwitch,
			logging.KeyChannel, ev.Channel.ID, logging.KeyEvent, ev.ID)
		return nil
	}
	if err := in.pub.Publish(ctx, ev); err != nil {
		if errors.Is(err, schemas.ErrInvalid) {
			// It will never be valid: redelivering it cannot help.
			skipped("invalid")
			in.log.Warn("twitch: invalid event dropped", logging.KeyPlatform, schemas.PlatformTwitch,
				logging.KeyEvent, ev.ID, logging.Err(err))
			return nil
		}
		return fmt.Errorf("twitch: unable to publish %s notification %s: %w", n.Subscription.Type, n.MessageID, err)
	}
	// Remembered only once published, so a failed publish is retried.
	in.recent.Add(ev.ID)
	return nil
}

// Forget drops what Intake knows of the bot account, for when an account
// changes (a ControlSubject notice).
func (in *Intake) Forget() {
	in.botMu.Lock()
	in.botCheckAt = time.Time{}
	in.botMu.Unlock()
}

// isBot reports whether userID is the bot account. A failed lookup keeps
// what was known before (nothing, at first) and is retried a few seconds
// later: messages flow on rather than wait for the database.
func (in *Intake) isBot(ctx context.Context, userID string) bool {
	in.botMu.Lock()
	defer in.botMu.Unlock()
	now := in.now()
	if in.botCheckAt.IsZero() || !now.Before(in.botCheckAt) {
		lookupCtx, cancel := context.WithTimeout(ctx, botIDLookupBudget)
		bots, err := in.accounts.Connected(lookupCtx, KindBot)
		cancel()
		if err != nil {
			in.log.Warn("twitch: unable to look up the bot account; its own messages pass until it is known",
				logging.KeyPlatform, schemas.PlatformTwitch, logging.Err(err))
			in.botCheckAt = now.Add(botIDRetryAfter)
		} else {
			in.botIDs = make(map[string]bool, len(bots))
			for _, b := range bots {
				in.botIDs[b.UserID] = true
			}
			in.botCheckAt = now.Add(botIDTTL)
		}
	}
	return userID != "" && in.botIDs[userID]
}

func skipped(reason string) {
	metrics.EventsSkipped.WithLabelValues(schemas.PlatformTwitch, reason).Inc()
}
