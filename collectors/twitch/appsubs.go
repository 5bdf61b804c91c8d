package twitch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/nicklaw5/helix/v2"

	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

// AppSubscriberConfig configures an AppSubscriber.
type AppSubscriberConfig struct {
	Helix    *Helix
	Tokens   Tokens
	Accounts Accounts
	// Transport is where the subscriptions deliver: method "webhook" with
	// Callback and Secret, or method "conduit" with the conduit id in
	// SessionID, since helix v2.34.0's EventSubTransport has no conduit_id.
	Transport func(ctx context.Context) (helix.EventSubTransport, error)
	Logger    *slog.Logger
}

// AppSubscriber keeps the app-token EventSub subscriptions (webhook or
// conduit) matching the connected accounts.
type AppSubscriber struct {
	helix     *Helix
	tokens    Tokens
	accounts  Accounts
	transport func(ctx context.Context) (helix.EventSubTransport, error)
	log       *slog.Logger
}

// NewAppSubscriber makes an AppSubscriber.
func NewAppSubscriber(cfg AppSubscriberConfig) (*AppSubscriber, error) {
	if cfg.Helix == nil || cfg.Tokens == nil || cfg.Accounts == nil || cfg.Transport == nil {
		return nil, errors.New("twitch: the app subscriber needs Helix, Tokens, Accounts and Transport")
	}
	if cfg.Logger == nil {
		cfg.Logger = logging.Discard()
	}
	return &AppSubscriber{helix: cfg.Helix, tokens: cfg.Tokens, accounts: cfg.Accounts, transport: cfg.Transport, log: cfg.Logger}, nil
}

// Subscription statuses that need nothing done: working, or a webhook
// whose challenge is on its way.
func healthyStatus(status string) bool {
	return status == "enabled" || status == "webhook_callback_verification_pending"
}

// wantedSubscription is one subscription a connected channel should have.
type wantedSubscription struct {
	spec      eventsub.Spec
	condition map[string]string
}

// Reconcile makes Twitch's subscription list match: every connected
// broadcaster has every Spec with this transport (AppCondition), the
// subscriptions of disconnected broadcasters (or of a former bot) are
// deleted, and those in a failed or revoked state are deleted and made
// again. Only subscriptions of our types on this very transport are
// touched: another deployment sharing the client id keeps its own. It goes
// through everything and returns every failure joined.
func (a *AppSubscriber) Reconcile(ctx context.Context) error {
	t, err := a.transport(ctx)
	if err != nil {
		return fmt.Errorf("twitch: unable to reconcile subscriptions, no transport: %w", err)
	}
	transport := wireTransport(t)
	broadcasters, err := a.accounts.Connected(ctx, KindBroadcaster)
	if err != nil {
		return fmt.Errorf("twitch: unable to reconcile subscriptions: %w", err)
	}
	bots, err := a.accounts.Connected(ctx, KindBot)
	if err != nil {
		return fmt.Errorf("twitch: unable to reconcile subscriptions: %w", err)
	}
	botID := ""
	if len(bots) > 0 {
		botID = bots[0].UserID
	}

	wanted := map[string]wantedSubscription{}
	ourTypes := map[string]bool{}
	for _, spec := range eventsub.Specs() {
		ourTypes[spec.Type] = true
	}
	for _, b := range broadcasters {
		for _, spec := range eventsub.Specs() {
			if spec.Type == eventsub.ChatMessage && botID == "" {
				// With the app token chat is read as the bot: no bot, no chat.
				continue
			}
			cond := eventsub.AppCondition(spec, b.UserID, botID)
			wanted[subscriptionKey(spec.Type, spec.Version, cond)] = wantedSubscription{spec: spec, condition: cond}
		}
	}
	if botID == "" && len(broadcasters) > 0 {
		a.log.Warn("twitch: no bot account connected; chat is not subscribed", logging.KeyPlatform, schemas.PlatformTwitch)
	}

	existing, err := a.list(ctx)
	if err != nil {
		return err
	}
	var errs []error
	have := map[string]bool{}
	for _, s := range existing {
		if !ourTypes[s.Type] || !sameTransport(s.Transport, transport) {
			continue
		}
		key := subscriptionKey(s.Type, s.Version, s.Condition)
		if _, ok := wanted[key]; ok && healthyStatus(s.Status) && !have[key] {
			have[key] = true
			continue
		}
		// Not wanted any more, failed, or a second copy of one we have.
		a.log.Info("twitch: deleting subscription", logging.KeyPlatform, schemas.PlatformTwitch, logging.KeyID, s.ID,
			"type", s.Type, "status", s.Status)
		if err := a.remove(ctx, s.ID); err != nil {
			errs = append(errs, err)
		}
	}
	keys := make([]string, 0, len(wanted))
	for key := range wanted {
		if !have[key] {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	for _, key := range keys {
		w := wanted[key]
		if err := a.create(ctx, w.spec, w.condition, transport); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// wireTransport reads the agreed helix type into Twitch's wire shape.
func wireTransport(t helix.EventSubTransport) eventsub.Transport {
	switch t.Method {
	case eventsub.MethodConduit:
		return eventsub.Transport{Method: t.Method, ConduitID: t.SessionID}
	case eventsub.MethodWebSocket:
		return eventsub.Transport{Method: t.Method, SessionID: t.SessionID}
	}
	return eventsub.Transport{Method: t.Method, Callback: t.Callback, Secret: t.Secret}
}

// sameTransport compares what Twitch reports of a transport (never the
// secret).
func sameTransport(got, want eventsub.Transport) bool {
	if got.Method != want.Method {
		return false
	}
	switch want.Method {
	case eventsub.MethodConduit:
		return got.ConduitID == want.ConduitID
	case eventsub.MethodWebSocket:
		return got.SessionID == want.SessionID
	}
	return got.Callback == want.Callback
}

// subscriptionKey identifies a subscription by type, version and condition.
// Empty condition values are left out: Twitch lists every field of a
// type's condition, set or not (a raid's from_broadcaster_user_id "").
func subscriptionKey(typ, version string, condition map[string]string) string {
	parts := make([]string, 0, len(condition))
	for k, v := range condition {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	sort.Strings(parts)
	return typ + "@" + version + "?" + strings.Join(parts, "&")
}

// call sends one Helix request with the app token (see Helix.call for why
// not through helix).
func (a *AppSubscriber) call(ctx context.Context, method, path string, query url.Values, body any) (*helixResult, error) {
	return withAppToken(ctx, a.tokens, func(token string) (*helixResult, error) {
		return a.helix.call(ctx, method, path, query, body, token)
	})
}

// list reads every subscription the app has (Get EventSub Subscriptions,
// followed page by page).
func (a *AppSubscriber) list(ctx context.Context) ([]eventsub.Subscription, error) {
	var all []eventsub.Subscription
	cursor := ""
	for page := 0; ; page++ {
		if page > 1000 {
			return nil, errors.New("twitch: unable to list subscriptions: the pages do not end")
		}
		query := url.Values{}
		if cursor != "" {
			query.Set("after", cursor)
		}
		res, err := a.call(ctx, http.MethodGet, "/eventsub/subscriptions", query, nil)
		if err != nil {
			return nil, fmt.Errorf("twitch: unable to list subscriptions: %w", err)
		}
		if res.status != http.StatusOK {
			return nil, fmt.Errorf("twitch: unable to list subscriptions: %d %s", res.status, res.message())
		}
		var body struct {
			Data       []eventsub.Subscription `json:"data"`
			Pagination struct {
				Cursor string `json:"cursor"`
			} `json:"pagination"`
		}
		if err := json.Unmarshal(res.body, &body); err != nil {
			return nil, fmt.Errorf("twitch: unable to read subscriptions: %w", err)
		}
		all = append(all, body.Data...)
		if body.Pagination.Cursor == "" || len(body.Data) == 0 {
			return all, nil
		}
		cursor = body.Pagination.Cursor
	}
}

func (a *AppSubscriber) create(ctx context.Context, spec eventsub.Spec, condition map[string]string, transport eventsub.Transport) error {
	request := struct {
		Type      string             `json:"type"`
		Version   string             `json:"version"`
		Condition map[string]string  `json:"condition"`
		Transport eventsub.Transport `json:"transport"`
	}{spec.Type, spec.Version, condition, transport}
	res, err := a.call(ctx, http.MethodPost, "/eventsub/subscriptions", nil, request)
	if err != nil {
		return fmt.Errorf("twitch: unable to create subscription %s: %w", spec.Type, err)
	}
	switch res.status {
	case http.StatusAccepted, http.StatusOK:
		a.log.Info("twitch: subscription created", logging.KeyPlatform, schemas.PlatformTwitch, "type", spec.Type,
			logging.KeyChannel, firstNonEmpty(condition["broadcaster_user_id"], condition["to_broadcaster_user_id"]))
		return nil
	case http.StatusConflict:
		// Made meanwhile (another replica, or a listing a moment old).
		return nil
	}
	return fmt.Errorf("twitch: unable to create subscription %s for %v: %d %s", spec.Type, condition, res.status, res.message())
}

func (a *AppSubscriber) remove(ctx context.Context, id string) error {
	res, err := a.call(ctx, http.MethodDelete, "/eventsub/subscriptions", url.Values{"id": {id}}, nil)
	if err != nil {
		return fmt.Errorf("twitch: unable to delete subscription %s: %w", id, err)
	}
	switch res.status {
	case http.StatusNoContent, http.StatusOK, http.StatusNotFound:
		return nil
	}
	return fmt.Errorf("twitch: unable to delete subscription %s: %d %s", id, res.status, res.message())
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
