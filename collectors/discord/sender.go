package discord

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/consume"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

// flagEphemeral is the message flag that shows an interaction response
// or follow-up only to the user who invoked the command.
const flagEphemeral = 1 << 6

// maxNonce is the longest nonce Discord takes.
const maxNonce = 25

// maxDMChannels bounds the cache of DM channel ids.
const maxDMChannels = 10000

// PlatformConfig configures a Platform.
type PlatformConfig struct {
	// Session sends the requests (NewSession).
	Session *discordgo.Session
	// AppID is the application id, for follow-ups whose stored interaction
	// lacks it.
	AppID string
	// Interactions finds the deferred slash command a reply answers; nil
	// sends every reply as a message.
	Interactions *collectors.Interactions
	Logger       *slog.Logger
}

// Platform is Discord's sending side (collectors.Platform).
type Platform struct {
	session      *discordgo.Session
	appID        string
	interactions *collectors.Interactions
	log          *slog.Logger

	// globalUntil (unix nanoseconds) holds every send back after a global
	// 429: Discord bans an IP that keeps hitting limits, so nothing is
	// attempted until it passes.
	globalUntil atomic.Int64

	mu         sync.Mutex
	dmChannels map[string]string // user id → DM channel id
}

// NewPlatform checks cfg.
func NewPlatform(cfg PlatformConfig) (*Platform, error) {
	if cfg.Session == nil {
		return nil, errors.New("discord: the platform needs a session")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Platform{
		session: cfg.Session, appID: cfg.AppID, interactions: cfg.Interactions,
		log:        cfg.Logger.With(logging.KeyPart, "sender"),
		dmChannels: map[string]string{},
	}, nil
}

// Name is "discord".
func (p *Platform) Name() string { return schemas.PlatformDiscord }

// allowedMentions locks what a message may notify. Reply text carries
// what users typed, so "@everyone", "@here" and role mentions in it must
// never notify anyone: with parse limited to users, Discord shows them as
// plain text and notifies nobody for them. That is enforced by Discord, so
// the text itself is left as written (escaping it would garble code blocks
// and quotes). Replying does not ping the author either: the answer sits
// under their message.
type allowedMentions struct {
	Parse       []string `json:"parse"`
	RepliedUser bool     `json:"replied_user"`
}

var userMentionsOnly = allowedMentions{Parse: []string{"users"}}

type messageReference struct {
	MessageID string `json:"message_id"`
	// FailIfNotExists false: the message answered may have been deleted
	// meanwhile; the answer still goes out, just not as a reply.
	FailIfNotExists bool `json:"fail_if_not_exists"`
}

// createMessage is Create Message's body. discordgo's MessageSend has no
// nonce, so the request is ours.
type createMessage struct {
	Content          string            `json:"content"`
	Nonce            string            `json:"nonce,omitempty"`
	EnforceNonce     bool              `json:"enforce_nonce,omitempty"`
	MessageReference *messageReference `json:"message_reference,omitempty"`
	AllowedMentions  allowedMentions   `json:"allowed_mentions"`
}

// webhookMessage is the body of an interaction follow-up or of the edit of
// the deferred response.
type webhookMessage struct {
	Content         string          `json:"content"`
	Flags           int             `json:"flags,omitempty"`
	AllowedMentions allowedMentions `json:"allowed_mentions"`
}

// Nonce is the nonce of a reply's message: the first 25 hex digits (100
// bits, Discord's limit is 25 characters) of the SHA-256 of its id.
// Every part of a reply has its own id and a redelivery carries the same
// one, so Discord's enforce_nonce returns the message it already created
// instead of posting it again. Hashing rather than cutting the id keeps
// the nonce uniformly random whatever the id's layout (a time-ordered
// UUID's first digits are its timestamp).
func Nonce(replyID string) string {
	sum := sha256.Sum256([]byte(replyID))
	return hex.EncodeToString(sum[:])[:maxNonce]
}

// Send delivers one reply (see collectors.Platform for what its errors
// mean): through the deferred slash command it answers, as a DM when it is
// private, else as a message in the channel (or thread).
func (p *Platform) Send(ctx context.Context, r *schemas.Reply) error {
	switch r.Action {
	case "", schemas.ActionMessage:
	default:
		return consume.Permanent(fmt.Errorf("discord: reply %s asks for action %q, which the Discord collector does not perform", r.ID, r.Action))
	}
	if r.Text == "" {
		return consume.Permanent(fmt.Errorf("discord: reply %s has no text", r.ID))
	}
	if until := time.Unix(0, p.globalUntil.Load()); time.Now().Before(until) {
		return consume.Defer(time.Until(until), "discord global rate limit")
	}
	if p.interactions != nil && r.EventID != "" {
		in, ok, err := p.interactions.Get(ctx, schemas.PlatformDiscord, r.EventID)
		if err != nil {
			// Without it the reply cannot tell a slash command from a
			// message; NATS away is not the reply's fault.
			return consume.DeferNATS(fmt.Errorf("discord: reply %s: %w", r.ID, err))
		}
		if ok {
			return p.followUp(ctx, r, in)
		}
	}
	private := r.Visibility == schemas.VisibilityPrivate || r.Visibility == schemas.VisibilityEphemeral
	switch {
	case private && r.Target.UserID != "":
		return p.direct(ctx, r)
	case r.Visibility == schemas.VisibilityPrivate:
		return consume.Permanent(fmt.Errorf("discord: private reply %s names no user to send it to", r.ID))
	}
	// Ephemeral without an interaction or a user: Discord has no way to
	// show a channel message to one member only, so it goes to the channel
	// (as on Twitch).
	channel := r.Target.ChannelID
	if r.Target.ThreadID != "" {
		// A thread is a channel of its own.
		channel = r.Target.ThreadID
	}
	return p.post(ctx, channel, r, r.Target.ReplyToID)
}

// post creates the message of r in a channel.
func (p *Platform) post(ctx context.Context, channelID string, r *schemas.Reply, replyTo string) error {
	body := createMessage{
		Content: r.Text, Nonce: Nonce(r.ID), EnforceNonce: true, AllowedMentions: userMentionsOnly,
	}
	if replyTo != "" {
		body.MessageReference = &messageReference{MessageID: replyTo}
	}
	endpoint := discordgo.EndpointChannelMessages(channelID)
	if _, err := p.request(ctx, "POST", endpoint, endpoint, body); err != nil {
		return fmt.Errorf("discord: unable to send reply %s to channel %s: %w", r.ID, channelID, err)
	}
	return nil
}

// direct sends r to its user's DMs.
func (p *Platform) direct(ctx context.Context, r *schemas.Reply) error {
	channel, err := p.dmChannel(ctx, r.Target.UserID)
	if err != nil {
		return fmt.Errorf("discord: unable to open a DM with user %s for reply %s: %w", r.Target.UserID, r.ID, err)
	}
	return p.post(ctx, channel, r, "")
}

// dmChannel opens (or finds) the DM channel with a user. Discord answers
// the same channel every time; the cache saves the request.
func (p *Platform) dmChannel(ctx context.Context, userID string) (string, error) {
	p.mu.Lock()
	id, ok := p.dmChannels[userID]
	p.mu.Unlock()
	if ok {
		return id, nil
	}
	raw, err := p.request(ctx, "POST", discordgo.EndpointUserChannels("@me"), discordgo.EndpointUserChannels(""),
		map[string]string{"recipient_id": userID})
	if err != nil {
		return "", err
	}
	var ch struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &ch); err != nil || ch.ID == "" {
		return "", fmt.Errorf("discord: unreadable DM channel: %q", truncate(raw, 200))
	}
	p.mu.Lock()
	if len(p.dmChannels) >= maxDMChannels {
		clear(p.dmChannels)
	}
	p.dmChannels[userID] = ch.ID
	p.mu.Unlock()
	return ch.ID, nil
}

// followUp answers a slash command that was deferred: the first part
// replaces the "thinking…" of the deferred response, later parts are
// follow-ups. A private reply to a public deferral is sent as ephemeral
// follow-ups only, so that it never shows in the channel.
func (p *Platform) followUp(ctx context.Context, r *schemas.Reply, in collectors.Interaction) error {
	appID := in.AppID
	if appID == "" {
		appID = p.appID
	}
	if appID == "" || in.Token == "" {
		return consume.Permanent(fmt.Errorf("discord: the interaction of reply %s lacks its application id or token", r.ID))
	}
	private := r.Visibility == schemas.VisibilityPrivate || r.Visibility == schemas.VisibilityEphemeral
	body := webhookMessage{Content: r.Text, AllowedMentions: userMentionsOnly}
	// Each interaction token is its own webhook, with its own rate-limit
	// bucket: the endpoint (app id and token) is the bucket's key.
	original := discordgo.EndpointWebhookMessage(appID, in.Token, "@original")
	// Only the first reply to the command answers the deferred response;
	// a module's later replies are follow-ups rather than overwriting it.
	owns := false
	if r.Part == 1 {
		var err error
		if owns, err = p.interactions.ClaimOriginal(ctx, schemas.PlatformDiscord, r.EventID, r.ID); err != nil {
			return consume.DeferNATS(err)
		}
	}
	if owns && (in.Ephemeral || !private) {
		// Editing is idempotent: a redelivery writes the same text again.
		if _, err := p.request(ctx, "PATCH", original, original, body); err != nil {
			return fmt.Errorf("discord: unable to answer the slash command with reply %s: %w", r.ID, err)
		}
		return nil
	}
	if in.Ephemeral || private {
		body.Flags = flagEphemeral
	}
	endpoint := discordgo.EndpointWebhookToken(appID, in.Token)
	if _, err := p.request(ctx, "POST", endpoint, endpoint, body); err != nil {
		return fmt.Errorf("discord: unable to send follow-up reply %s: %w", r.ID, err)
	}
	if owns && !in.Ephemeral {
		// The public deferral still shows "thinking…" in the channel, and
		// this answer went privately: the deferral goes.
		_, err := p.session.RequestWithBucketID("DELETE", original, nil, original,
			discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false))
		if err != nil && !isUnknownMessage(err) {
			// The follow-up went out; retrying would send it again.
			p.log.Warn("discord: unable to delete the deferred response of a private reply", "reply_id", r.ID, logging.Err(redactURL(err)))
		}
	}
	return nil
}

// codeUnknownMessage is Discord's error for a message that is gone (the
// deferred response deleted by an earlier delivery).
const codeUnknownMessage = 10008

func isUnknownMessage(err error) bool {
	var rest *discordgo.RESTError
	if !errors.As(err, &rest) || rest.Response == nil || rest.Response.StatusCode != http.StatusNotFound {
		return false
	}
	e, _ := parseAPIError(rest.ResponseBody)
	return e.Code == codeUnknownMessage
}

// holdGlobal holds every send for d after a global 429.
func (p *Platform) holdGlobal(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := p.globalUntil.Load()
		if cur >= until || p.globalUntil.CompareAndSwap(cur, until) {
			break
		}
	}
	p.log.Warn("discord: global rate limit hit; holding every send", "retry_in", d)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
