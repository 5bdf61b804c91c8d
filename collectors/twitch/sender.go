package twitch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/waddlebot/waddlebot/internal/consume"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/metrics"
	"github.com/waddlebot/waddlebot/schemas"
)

// SenderConfig configures the Twitch sending side.
type SenderConfig struct {
	Helix    *Helix
	Tokens   Tokens
	Accounts Accounts
	Logger   *slog.Logger
}

// Platform sends replies and platform actions to Twitch through Helix; it
// implements collectors.Platform.
type Platform struct {
	helix    *Helix
	tokens   Tokens
	accounts Accounts
	log      *slog.Logger

	mu       sync.Mutex
	bot      Account
	botAt    time.Time
	botKnown bool
}

// botCacheTTL bounds how long a connected bot account is reused before
// asking Accounts again: short, so a newly connected bot is picked up soon.
const botCacheTTL = 30 * time.Second

// defaultTimeout is how long a timeout action lasts when the module gave no
// duration (Twitch's own /timeout default).
const defaultTimeout = 600

// NewPlatform checks cfg.
func NewPlatform(cfg SenderConfig) (*Platform, error) {
	if cfg.Helix == nil || cfg.Tokens == nil || cfg.Accounts == nil {
		return nil, errors.New("twitch: the sender needs Helix, Tokens and Accounts")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Platform{helix: cfg.Helix, tokens: cfg.Tokens, accounts: cfg.Accounts,
		log: cfg.Logger.With(logging.KeyPart, "sender", logging.KeyPlatform, schemas.PlatformTwitch)}, nil
}

// Name is the platform as subjects spell it.
func (p *Platform) Name() string { return schemas.PlatformTwitch }

// BudgetFor gives each reply its channel's send budget: moderator where the
// bot moderates the channel, normal elsewhere, and normal when that cannot be
// read (going over the smaller limit gets the bot ignored for 30 minutes).
func (p *Platform) BudgetFor(normal, moderator int) func(ctx context.Context, r *schemas.Reply) int {
	return func(ctx context.Context, r *schemas.Reply) int {
		a, err := p.accounts.Account(ctx, r.Target.ChannelID)
		if err != nil || !a.BotIsModerator {
			return normal
		}
		return moderator
	}
}

// Send delivers one reply or platform action (see collectors.Platform for
// what its errors mean).
func (p *Platform) Send(ctx context.Context, r *schemas.Reply) error {
	switch r.Action {
	case "", schemas.ActionMessage:
		if r.Text == "" {
			return consume.Permanent(fmt.Errorf("twitch: reply %s has no text", r.ID))
		}
		if (r.Visibility == schemas.VisibilityPrivate || r.Visibility == schemas.VisibilityEphemeral) && r.Target.UserID != "" {
			return p.whisper(ctx, r)
		}
		return p.chat(ctx, r)
	case schemas.ActionShoutout:
		return p.shoutout(ctx, r)
	case schemas.ActionTimeout:
		return p.timeout(ctx, r)
	case schemas.ActionDelete:
		return p.deleteMessage(ctx, r)
	default:
		return consume.Permanent(fmt.Errorf("twitch: reply %s asks for unknown action %q", r.ID, r.Action))
	}
}

// Forget drops the cached bot account (a bot connected or went).
func (p *Platform) Forget() {
	p.mu.Lock()
	p.botKnown = false
	p.mu.Unlock()
}

// botAccount returns the first connected bot account, cached briefly.
func (p *Platform) botAccount(ctx context.Context) (Account, error) {
	p.mu.Lock()
	if p.botKnown && time.Since(p.botAt) < botCacheTTL {
		bot := p.bot
		p.mu.Unlock()
		return bot, nil
	}
	p.mu.Unlock()
	bots, err := p.accounts.Connected(ctx, KindBot)
	if err != nil {
		return Account{}, fmt.Errorf("twitch: unable to read the bot account: %w", err)
	}
	if len(bots) == 0 {
		return Account{}, consume.Permanent(errors.New(
			"twitch: no bot account is connected; open /connect/twitch/bot and sign in as the bot to connect one"))
	}
	p.mu.Lock()
	p.bot, p.botAt, p.botKnown = bots[0], time.Now(), true
	p.mu.Unlock()
	return bots[0], nil
}

func (p *Platform) chat(ctx context.Context, r *schemas.Reply) error {
	var res *helixResult
	for attempt := 0; ; attempt++ {
		bot, err := p.botAccount(ctx)
		if err != nil {
			return err
		}
		body := map[string]string{"broadcaster_id": r.Target.ChannelID, "sender_id": bot.UserID, "message": r.Text}
		if r.Target.ReplyToID != "" {
			body["reply_parent_message_id"] = r.Target.ReplyToID
		}
		res, err = p.asUser(ctx, bot.UserID, "send chat message", func(token string) (*helixResult, error) {
			return p.helix.call(ctx, http.MethodPost, "/chat/messages", nil, body, token)
		})
		if errors.Is(err, ErrNotConnected) && attempt == 0 {
			// The cached bot was replaced or disconnected since: ask again
			// rather than dead-letter a reply another bot can send.
			p.Forget()
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	sent, err := parseChatSent(res.body)
	if err != nil {
		// Twitch said 200: the message went out as far as we can tell, and a
		// retry could post it twice.
		p.log.Warn("twitch: undecodable Send Chat Message response", logging.KeyID, r.ID, logging.KeyError, err)
		return nil
	}
	if !sent.IsSent {
		// Twitch decided (AutoMod, a banned phrase, followers-only): sending
		// again gets the same answer.
		metrics.PlatformDropped.WithLabelValues(schemas.PlatformTwitch, sent.DropCode).Inc()
		p.log.Warn("twitch: chat message dropped by Twitch", logging.KeyID, r.ID,
			logging.KeyChannel, r.Target.ChannelID, logging.KeyReason, sent.DropCode, "drop_message", sent.DropMessage)
	}
	return nil
}

// chatSent is what Send Chat Message answered.
type chatSent struct {
	MessageID             string
	IsSent                bool
	DropCode, DropMessage string
}

// parseChatSent reads a Send Chat Message response body.
func parseChatSent(body []byte) (chatSent, error) {
	var out struct {
		Data []struct {
			MessageID  string `json:"message_id"`
			IsSent     bool   `json:"is_sent"`
			DropReason *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"drop_reason"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return chatSent{}, fmt.Errorf("twitch: undecodable Send Chat Message response: %w", err)
	}
	if len(out.Data) == 0 {
		return chatSent{}, errors.New("twitch: Send Chat Message response has no data")
	}
	d := out.Data[0]
	sent := chatSent{MessageID: d.MessageID, IsSent: d.IsSent}
	if !d.IsSent {
		sent.DropCode = "unknown"
		if d.DropReason != nil {
			sent.DropMessage = d.DropReason.Message
			if d.DropReason.Code != "" {
				sent.DropCode = d.DropReason.Code
			}
		}
	}
	return sent, nil
}

func (p *Platform) whisper(ctx context.Context, r *schemas.Reply) error {
	bot, err := p.botAccount(ctx)
	if err != nil {
		return err
	}
	q := url.Values{"from_user_id": {bot.UserID}, "to_user_id": {r.Target.UserID}}
	_, err = p.asUser(ctx, bot.UserID, "send whisper", func(token string) (*helixResult, error) {
		return p.helix.call(ctx, http.MethodPost, "/whispers", q, map[string]string{"message": r.Text}, token)
	})
	return err
}

// moderators lists who may act as moderator in a channel, in the order to
// try: the bot when it moderates there, then the broadcaster.
func (p *Platform) moderators(ctx context.Context, broadcasterID string) []string {
	var ids []string
	if a, err := p.accounts.Account(ctx, broadcasterID); err == nil && a.BotIsModerator {
		if bot, err := p.botAccount(ctx); err == nil {
			ids = append(ids, bot.UserID)
		}
	}
	return append(ids, broadcasterID)
}

// asModerator runs a moderator call as each candidate in turn, moving on
// when one is refused for good (a bot that lost its moderator role or a
// scope since the last validation).
func (p *Platform) asModerator(ctx context.Context, broadcasterID, what string, call func(moderatorID, token string) (*helixResult, error)) error {
	var err error
	for _, mod := range p.moderators(ctx, broadcasterID) {
		var res *helixResult
		res, err = p.asUser(ctx, mod, what, func(token string) (*helixResult, error) { return call(mod, token) })
		refused := errors.Is(err, ErrNotConnected) ||
			res != nil && res.status >= 400 && res.status < 500 && res.status != http.StatusTooManyRequests
		if err == nil || !refused {
			return err
		}
		p.log.Debug("twitch: moderator call refused; trying the next moderator", logging.KeyChannel, broadcasterID, logging.KeyError, err)
	}
	return err
}

func (p *Platform) actionData(r *schemas.Reply) (*schemas.PlatformAction, error) {
	if r.ActionData == nil {
		return nil, consume.Permanent(fmt.Errorf("twitch: %s reply %s has no action data", r.Action, r.ID))
	}
	return r.ActionData, nil
}

// targetUser returns the action's target user id, looking the login up
// when only that was given.
func (p *Platform) targetUser(ctx context.Context, r *schemas.Reply, a *schemas.PlatformAction) (string, error) {
	if a.TargetUserID != "" {
		return a.TargetUserID, nil
	}
	if a.TargetLogin == "" {
		return "", consume.Permanent(fmt.Errorf("twitch: %s reply %s names no target user", r.Action, r.ID))
	}
	user, res, err := getUser(ctx, p.helix, p.tokens, url.Values{"login": {a.TargetLogin}})
	if err != nil {
		return "", err
	}
	if err := res.sendError("get users"); err != nil {
		return "", err
	}
	if user == nil {
		return "", consume.Permanent(fmt.Errorf("twitch: no Twitch user is called %q", a.TargetLogin))
	}
	return user.ID, nil
}

func (p *Platform) shoutout(ctx context.Context, r *schemas.Reply) error {
	a, err := p.actionData(r)
	if err != nil {
		return err
	}
	to, err := p.targetUser(ctx, r, a)
	if err != nil {
		return err
	}
	from := r.Target.ChannelID
	return p.asModerator(ctx, from, "send shoutout", func(mod, token string) (*helixResult, error) {
		q := url.Values{"from_broadcaster_id": {from}, "to_broadcaster_id": {to}, "moderator_id": {mod}}
		return p.helix.call(ctx, http.MethodPost, "/chat/shoutouts", q, nil, token)
	})
}

func (p *Platform) timeout(ctx context.Context, r *schemas.Reply) error {
	a, err := p.actionData(r)
	if err != nil {
		return err
	}
	user, err := p.targetUser(ctx, r, a)
	if err != nil {
		return err
	}
	duration := a.DurationSeconds
	if duration <= 0 {
		duration = defaultTimeout
	}
	broadcaster := r.Target.ChannelID
	body := map[string]any{"data": map[string]any{"user_id": user, "duration": duration, "reason": a.Reason}}
	return p.asModerator(ctx, broadcaster, "time out user", func(mod, token string) (*helixResult, error) {
		q := url.Values{"broadcaster_id": {broadcaster}, "moderator_id": {mod}}
		return p.helix.call(ctx, http.MethodPost, "/moderation/bans", q, body, token)
	})
}

func (p *Platform) deleteMessage(ctx context.Context, r *schemas.Reply) error {
	a, err := p.actionData(r)
	if err != nil {
		return err
	}
	if a.MessageID == "" {
		// Without a message id Delete Chat Messages clears the whole chat:
		// never do that by accident.
		return consume.Permanent(fmt.Errorf("twitch: delete reply %s names no message", r.ID))
	}
	broadcaster := r.Target.ChannelID
	return p.asModerator(ctx, broadcaster, "delete chat message", func(mod, token string) (*helixResult, error) {
		q := url.Values{"broadcaster_id": {broadcaster}, "moderator_id": {mod}, "message_id": {a.MessageID}}
		return p.helix.call(ctx, http.MethodDelete, "/moderation/chat", q, nil, token)
	})
}

// asUser calls Helix with userID's token; a 401 refreshes the token once
// and tries once more. The result's status is turned into the sender's
// error contract.
func (p *Platform) asUser(ctx context.Context, userID, what string, call func(token string) (*helixResult, error)) (*helixResult, error) {
	token, err := p.tokens.UserToken(ctx, userID)
	if err != nil {
		return nil, tokenError(userID, err)
	}
	res, err := call(token)
	if err != nil {
		return nil, fmt.Errorf("twitch: unable to %s: %w", what, err)
	}
	if res.status == http.StatusUnauthorized {
		token, err = p.tokens.Refresh(ctx, userID, token)
		if err != nil {
			return nil, tokenError(userID, err)
		}
		if res, err = call(token); err != nil {
			return nil, fmt.Errorf("twitch: unable to %s: %w", what, err)
		}
	}
	return res, res.sendError(what)
}

func tokenError(userID string, err error) error {
	if errors.Is(err, ErrNotConnected) {
		return consume.Permanent(fmt.Errorf("twitch: account %s is not connected (reconnect it through /connect/twitch): %w", userID, err))
	}
	return fmt.Errorf("twitch: unable to get a token for %s: %w", userID, err)
}

// rateLimitWait is how long to wait after a 429: until Ratelimit-Reset
// (epoch seconds), at least a second, a minute when Twitch did not say.
func (r *helixResult) rateLimitWait() time.Duration {
	if reset, err := strconv.ParseInt(r.header.Get("Ratelimit-Reset"), 10, 64); err == nil {
		return max(time.Until(time.Unix(reset, 0)), time.Second)
	}
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	return time.Minute
}

// sendError maps a Helix status onto the sender's error contract.
func (r *helixResult) sendError(what string) error {
	switch {
	case r.status >= 200 && r.status < 300:
		return nil
	case r.status == http.StatusTooManyRequests:
		return consume.Defer(r.rateLimitWait(), "twitch rate limit on "+what)
	case r.status >= 500:
		err := fmt.Errorf("twitch: unable to %s: %d %s", what, r.status, r.message())
		if secs, perr := strconv.Atoi(r.header.Get("Retry-After")); perr == nil && secs > 0 {
			return consume.RetryAfter(err, time.Duration(secs)*time.Second)
		}
		return err
	default:
		// 400 (too long, bad ids), 401 after a fresh token (missing scope),
		// 403 (banned, not a moderator), 404: the same request fails again.
		return consume.Permanent(fmt.Errorf("twitch: %s refused: %d %s", what, r.status, r.message()))
	}
}

// helixUser is one Get Users entry.
type helixUser struct {
	ID          string `json:"id"`
	Login       string `json:"login"`
	DisplayName string `json:"display_name"`
}

// getUser runs Get Users with query (login= or id=) and the app token,
// and returns the first user, nil when there is none. res is Twitch's
// answer, for the caller to map a refusal onto its own error contract; it
// is nil when err is set.
func getUser(ctx context.Context, h *Helix, tokens Tokens, query url.Values) (user *helixUser, res *helixResult, err error) {
	res, err = withAppToken(ctx, tokens, func(token string) (*helixResult, error) {
		return h.call(ctx, http.MethodGet, "/users", query, nil, token)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("twitch: unable to get users: %w", err)
	}
	if !res.ok() {
		return nil, res, nil
	}
	var out struct {
		Data []helixUser `json:"data"`
	}
	if err := json.Unmarshal(res.body, &out); err != nil {
		return nil, nil, fmt.Errorf("twitch: undecodable Get Users response: %w", err)
	}
	if len(out.Data) == 0 {
		return nil, res, nil
	}
	return &out.Data[0], res, nil
}
