package twitch

import (
	"context"
	"crypto/hmac"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

// Webhook request headers (Twitch's EventSub webhook documentation).
const (
	headerMessageID        = "Twitch-Eventsub-Message-Id"
	headerMessageTimestamp = "Twitch-Eventsub-Message-Timestamp"
	headerMessageSignature = "Twitch-Eventsub-Message-Signature"
	headerMessageType      = "Twitch-Eventsub-Message-Type"
)

const (
	// webhookMaxBody bounds a request body; EventSub notifications are a
	// few kilobytes (a chat message is 500 characters at most).
	webhookMaxBody = 1 << 20
	// DefaultWebhookMaxAge is how old (or how far ahead) a message's
	// timestamp may be: Twitch advises refusing messages older than 10
	// minutes against replays.
	DefaultWebhookMaxAge = 10 * time.Minute
)

// WebhookConfig configures the EventSub webhook handler.
type WebhookConfig struct {
	// Secret is the subscriptions' transport secret (10 to 100 characters).
	Secret string
	Intake *Intake
	// OnRevocation hears of a subscription Twitch revoked; may be nil.
	OnRevocation func(ctx context.Context, sub eventsub.Subscription)
	MaxAge       time.Duration // default DefaultWebhookMaxAge
	Now          func() time.Time
	Logger       *slog.Logger
}

type webhook struct {
	cfg WebhookConfig
	log *slog.Logger
}

// NewWebhook returns the handler of EventSub webhook requests (mounted at
// POST /webhooks/twitch). It answers a notification only once the Intake
// took it, so a failed publish gets a 500 and Twitch's retry.
func NewWebhook(cfg WebhookConfig) (http.Handler, error) {
	if len(cfg.Secret) < 10 || len(cfg.Secret) > 100 {
		return nil, errors.New("twitch: the webhook secret must be 10 to 100 characters")
	}
	if cfg.Intake == nil {
		return nil, errors.New("twitch: the webhook needs an intake")
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultWebhookMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = logging.Discard()
	}
	return &webhook{cfg: cfg, log: cfg.Logger}, nil
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, webhookMaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "unable to read body", http.StatusBadRequest)
		return
	}
	id, stamp := r.Header.Get(headerMessageID), r.Header.Get(headerMessageTimestamp)
	signature, messageType := r.Header.Get(headerMessageSignature), r.Header.Get(headerMessageType)
	if id == "" || stamp == "" || signature == "" || messageType == "" {
		http.Error(w, "missing EventSub headers", http.StatusBadRequest)
		return
	}
	// The signature first: nothing of an unsigned request is looked at.
	want := eventsub.Sign(h.cfg.Secret, id, stamp, body)
	if !hmac.Equal([]byte(want), []byte(signature)) {
		h.log.Warn("twitch: webhook request with a bad signature refused", logging.KeyPlatform, schemas.PlatformTwitch,
			logging.KeyID, id)
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	sent, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		http.Error(w, "bad timestamp", http.StatusBadRequest)
		return
	}
	if age := h.cfg.Now().Sub(sent); age > h.cfg.MaxAge || age < -h.cfg.MaxAge {
		// A replay of an old, validly signed message (or a clock far off).
		h.log.Warn("twitch: webhook message outside the accepted age refused", logging.KeyPlatform, schemas.PlatformTwitch,
			logging.KeyID, id, "age", age)
		http.Error(w, "message too old", http.StatusForbidden)
		return
	}
	switch messageType {
	case eventsub.TypeVerification, eventsub.TypeNotification, eventsub.TypeRevocation:
	default:
		http.Error(w, "unknown message type", http.StatusBadRequest)
		return
	}
	msg, err := eventsub.ParseWebhookBody(messageType, body)
	if err != nil {
		h.log.Warn("twitch: malformed webhook body refused", logging.KeyPlatform, schemas.PlatformTwitch,
			logging.KeyID, id, logging.Err(err))
		http.Error(w, "malformed body", http.StatusBadRequest)
		return
	}
	switch messageType {
	case eventsub.TypeVerification:
		h.log.Info("twitch: webhook subscription verified", logging.KeyPlatform, schemas.PlatformTwitch,
			logging.KeyID, msg.Subscription.ID, "type", msg.Subscription.Type)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, msg.Challenge)
	case eventsub.TypeNotification:
		n := eventsub.Notification{MessageID: id, Timestamp: sent, Subscription: msg.Subscription, Event: msg.Event}
		if err := h.cfg.Intake.Deliver(r.Context(), n); err != nil {
			h.log.Error("twitch: webhook notification not published; Twitch will retry", logging.KeyPlatform,
				schemas.PlatformTwitch, logging.KeyID, id, logging.Err(err))
			http.Error(w, "not published", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case eventsub.TypeRevocation:
		h.log.Warn("twitch: subscription revoked", logging.KeyPlatform, schemas.PlatformTwitch,
			logging.KeyID, msg.Subscription.ID, "type", msg.Subscription.Type, logging.KeyReason, msg.Subscription.Status)
		if h.cfg.OnRevocation != nil {
			h.cfg.OnRevocation(r.Context(), msg.Subscription)
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
