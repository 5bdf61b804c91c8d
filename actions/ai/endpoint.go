package ai

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/waddlebot/waddlebot/actions/ai/provider"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
)

// Resolver gives callers outside chat (the OpenAI-compatible endpoint) a
// community's model exactly as the module resolves it: community settings
// over the operator's defaults, secrets from the store, one client per
// distinct configuration reused between requests.
type Resolver struct {
	m   *module
	now func() time.Time
}

// NewResolver builds a resolver; now nil is time.Now.
func NewResolver(st *store.Store, d Defaults, now func() time.Time, log *slog.Logger) *Resolver {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Resolver{m: &module{cfg: Config{Store: st, Now: now, Logger: log}, defaults: d, log: log,
		providers: map[string]cachedProvider{}}, now: now}
}

// Model is a community's configured model.
type Model struct {
	Provider provider.Provider
	// Name is the model the community configured ("auto" lets a routing
	// proxy choose).
	Name        string
	Kind        string // ProviderOllama or ProviderOpenAI
	Temperature float64
	MaxTokens   int
	// DailyTokens is the community's daily token budget (0: none).
	DailyTokens      int
	AllowProvisional bool
}

// Community resolves a community's model from its raw module settings.
// Settings that do not decode leave every default, as in chat; the error
// is returned alongside a usable Model only when the provider cannot be
// built.
func (r *Resolver) Community(ctx context.Context, communityID string, raw json.RawMessage) (Model, error) {
	set, derr := resolve(raw, r.m.defaults)
	if derr != nil {
		r.m.log.Warn("ai: community settings do not decode; using defaults", logging.KeyCommunity, communityID, logging.Err(derr))
	}
	mdl := Model{Name: set.Model, Kind: set.Provider, Temperature: set.Temperature, MaxTokens: set.MaxTokens,
		DailyTokens: set.DailyTokens, AllowProvisional: set.AllowProvisional}
	p, err := r.m.provider(ctx, communityID, set)
	if err != nil {
		return mdl, err
	}
	mdl.Provider = p
	return mdl, nil
}

// TokensLeft reports whether a community is still within its daily token
// budget (always, for budget 0): the same sum over ai_usage chat uses.
func (r *Resolver) TokensLeft(ctx context.Context, communityID string, budget int) (bool, error) {
	if budget <= 0 || r.m.cfg.Store == nil {
		return true, nil
	}
	b := &budgets{st: r.m.cfg.Store, now: r.now}
	var used int64
	err := r.m.cfg.Store.Pool().QueryRow(ctx, `SELECT coalesce(sum(tokens), 0) FROM ai_usage WHERE community_id = $1 AND day = $2`,
		communityID, b.day()).Scan(&used)
	if err != nil {
		return false, fmt.Errorf("ai: unable to read token usage: %w", err)
	}
	return used < int64(budget), nil
}

// Record counts what a request cost against the community's daily budget;
// requestID (a UUID) keys it, as an invocation id does in chat.
func (r *Resolver) Record(ctx context.Context, requestID, communityID string, tokens int) error {
	b := &budgets{st: r.m.cfg.Store, now: r.now}
	return b.record(ctx, requestID, communityID, tokens)
}
