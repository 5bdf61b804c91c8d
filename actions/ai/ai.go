// Package ai is the AI module: `!ai <question>` (and `!ask`), a mention of
// the bot's name, optional question triggers and optional greetings for
// follows, subscriptions, raids and cheers, answered by the community's own
// model — a local Ollama (plain or TLS) or any OpenAI-compatible endpoint.
//
// The module has no outbox writes (Writes is false): a model call may take
// tens of seconds, and holding a PostgreSQL transaction open that long would
// starve the pool. What it keeps lives elsewhere: the channel's recent
// exchanges in the wb_ai_memory KV bucket (so any replica continues a
// conversation), request windows and over-budget notices in the router's
// KV buckets, and token usage in ai_usage, keyed by invocation id so a
// redelivery counts once.
//
// Timeouts: each model call is bounded by the community's timeout (45 s by
// default, at most 55 s) and by the handler's deadline (HANDLER_TIMEOUT,
// 2 min by default) less a margin kept for the reply, so a transient error
// is retried once only when a second full call still fits. The consume loop
// sends in-progress acks every AckWait/3 while the handler runs, so a slow
// model is never redelivered to another replica. A model that fails, refuses
// or times out gets a short chat reply: the invocation completes.
package ai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/ai/provider"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Name is the module's name: its command subject is wb.cmd.ai.
const Name = "ai"

// Config builds the module.
type Config struct {
	Store *store.Store
	// Conn reaches the KV buckets (memory, windows, notices).
	Conn *natsx.Conn
	// Defaults are the operator's (WADDLEBOT_AI_*); nil reads the
	// environment.
	Defaults *Defaults
	// Now is the clock of memory TTLs and token days; nil is time.Now.
	Now func() time.Time
	// QueueWait is how long a question waits for a free model slot on
	// this replica before "busy" is answered; default 20s.
	QueueWait time.Duration
	// Margin is kept from the handler's deadline to answer after a failed
	// call; default 3s.
	Margin time.Duration
	Logger *slog.Logger
}

// Manifest is the module's entry in the catalogue. Off unless a community
// turns it on: it costs money or GPU time.
func Manifest() schemas.Manifest {
	return schemas.Manifest{
		Name:           Name,
		Version:        "1.0.0",
		Description:    "Answers questions with the community's own model (Ollama or an OpenAI-compatible endpoint), remembering the channel's recent conversation",
		DefaultEnabled: false,
		Commands: []schemas.CommandSpec{
			{Name: "ai", Aliases: []string{"ask"}, Usage: "ai <question> | ai reset",
				Description: "Asks the AI; moderators clear the channel's conversation with `reset`",
				Permission:  schemas.PermissionEveryone},
		},
		Triggers: []schemas.TriggerSpec{
			// Every chat line: the module itself looks for a mention of
			// the bot (or a question) and ignores the rest at once.
			{Kind: schemas.KindChat},
			{Kind: schemas.KindFollow}, {Kind: schemas.KindSubscription},
			{Kind: schemas.KindRaid}, {Kind: schemas.KindCheer},
		},
		Settings: settingsSchema,
	}
}

// New builds the module.
func New(cfg Config) actions.Module {
	d := cfg.Defaults
	if d == nil {
		env := EnvDefaults()
		d = &env
	}
	m := &module{cfg: cfg, defaults: *d, providers: map[string]cachedProvider{}}
	if m.cfg.Now == nil {
		m.cfg.Now = time.Now
	}
	if m.cfg.QueueWait <= 0 {
		m.cfg.QueueWait = 20 * time.Second
	}
	if m.cfg.Margin <= 0 {
		m.cfg.Margin = 3 * time.Second
	}
	if m.cfg.Logger == nil {
		m.cfg.Logger = slog.Default()
	}
	m.log = m.cfg.Logger.With(logging.KeyModule, Name)
	m.slots = make(chan struct{}, max(m.defaults.MaxConcurrent, 1))
	return actions.Module{Manifest: Manifest(), Handle: m.handle}
}

type module struct {
	cfg      Config
	defaults Defaults
	log      *slog.Logger
	slots    chan struct{}

	initMu  sync.Mutex
	mem     *memory
	budgets *budgets

	provMu    sync.Mutex
	providers map[string]cachedProvider
}

type cachedProvider struct {
	p     provider.Provider
	close func()
}

// Replies the module gives in chat. Short: they take a chat line.
const (
	msgUsage        = "Ask me something: %sai <question>"
	msgOff          = "AI replies are off here until the community owner turns them on."
	msgResetDenied  = "Only moderators can reset the conversation."
	msgReset        = "Conversation forgotten. Fresh start!"
	msgUserLimit    = "You're asking faster than I can think — try again in a minute."
	msgChannelLimit = "Lots of questions right now — give me a minute to catch up."
	msgTokens       = "I've used up today's AI budget for this community. Back tomorrow!"
	msgBusy         = "I'm busy thinking about other questions — ask again in a moment."
	msgModel        = "I can't reach my model right now (model not found). A moderator should check the AI settings."
	msgAuth         = "My AI provider refused my key. A moderator should check the AI settings."
	msgTimeout      = "My model took too long to answer. Try again in a bit."
	msgUnavailable  = "My model isn't answering right now. Try again in a bit."
	msgConfig       = "AI isn't set up correctly here. A moderator should check the AI settings."
	msgEmpty        = "I have nothing to say to that."
)

func (m *module) init(ctx context.Context) error {
	m.initMu.Lock()
	defer m.initMu.Unlock()
	if m.mem != nil {
		return nil
	}
	if m.cfg.Conn == nil || m.cfg.Conn.JS == nil {
		return errors.New("ai: built without a NATS connection")
	}
	open := func(name string) (jetstream.KeyValue, error) {
		kv, err := m.cfg.Conn.JS.KeyValue(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("ai: unable to open bucket %s: %w", name, err)
		}
		return kv, nil
	}
	memKV, err := open(streams.BucketAIMemory)
	if err != nil {
		return err
	}
	winKV, err := open(streams.BucketWindows)
	if err != nil {
		return err
	}
	coolKV, err := open(streams.BucketCooldowns)
	if err != nil {
		return err
	}
	m.budgets = &budgets{windows: coord.NewWindows(winKV).WithClock(m.cfg.Now), notices: coord.NewCooldowns(coolKV), st: m.cfg.Store, now: m.cfg.Now}
	m.mem = &memory{kv: memKV, now: m.cfg.Now}
	return nil
}

// ask is one question for the model.
type ask struct {
	prompt   string
	greeting bool // an event greeting: no memory, no notices
}

func (m *module) handle(ctx context.Context, inv *schemas.Invocation, _ pgx.Tx) (*schemas.Result, error) {
	if err := m.init(ctx); err != nil {
		return nil, err
	}
	set, derr := resolve(inv.Settings, m.defaults)
	log := m.log.With(logging.KeyCommunity, inv.Community.ID, logging.KeyPlatform, inv.Event.Platform,
		logging.KeyChannel, inv.Event.Channel.ID, logging.KeyID, inv.ID)
	if derr != nil {
		log.Warn("ai: community settings do not decode; using defaults", logging.Err(derr))
	}
	isCommand := inv.Command != ""
	if inv.Community.Provisional && !set.AllowProvisional {
		if isCommand {
			return m.reply(inv, msgOff), nil
		}
		return nil, nil
	}
	memKey := memoryKey(inv.Community.ID, inv.Event.Platform, inv.Event.Channel.ID)
	var q ask
	switch {
	case isCommand && inv.Command == "ai":
		word, _ := actions.CutWord(inv.ArgText)
		switch {
		case strings.EqualFold(word, "reset") && strings.TrimSpace(inv.ArgText) == word:
			if !actions.IsModerator(inv) {
				return m.reply(inv, msgResetDenied), nil
			}
			if err := m.mem.reset(ctx, memKey); err != nil {
				return nil, err
			}
			log.Info("ai: conversation reset", "by", actions.UserKey(inv))
			return m.reply(inv, msgReset), nil
		case strings.TrimSpace(inv.ArgText) == "":
			return m.reply(inv, fmt.Sprintf(msgUsage, actions.CommandPrefix(inv))), nil
		}
		q = ask{prompt: strings.TrimSpace(inv.ArgText)}
	case isCommand:
		return nil, fmt.Errorf("%w: ai has no command %q (route %q)", schemas.ErrInvalid, inv.Command, inv.Route)
	case inv.Event.Kind == schemas.KindChat:
		prompt, ok := chatPrompt(inv, set)
		if !ok {
			return nil, nil
		}
		q = ask{prompt: prompt}
	default:
		prompt, ok := greetingPrompt(inv, set)
		if !ok {
			return nil, nil
		}
		q = ask{prompt: prompt, greeting: true}
	}

	if v, err := m.check(ctx, inv, set, q); err != nil {
		return nil, err
	} else if !v.ok {
		log.Info("ai: over budget", logging.KeyReason, v.reason, "notified", v.notify)
		if !v.notify || q.greeting {
			return nil, nil
		}
		return m.reply(inv, overMessage(v.reason)), nil
	}

	// A slot on this replica: a model is slow, and a burst must not open
	// a connection per question.
	wait, cancel := context.WithTimeout(ctx, m.cfg.QueueWait)
	select {
	case m.slots <- struct{}{}:
		cancel()
	case <-wait.Done():
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		log.Warn("ai: every model slot busy", "slots", cap(m.slots), "waited", m.cfg.QueueWait)
		if q.greeting {
			return nil, nil
		}
		return m.reply(inv, msgBusy), nil
	}
	defer func() { <-m.slots }()

	var history []Exchange
	if !q.greeting && set.Exchanges > 0 {
		h, err := m.mem.load(ctx, memKey, set.MemoryTTL)
		if err != nil {
			// Answer without context rather than not at all.
			log.Warn("ai: unable to load memory", logging.Err(err))
		}
		history = h
	}
	req := provider.Request{Model: set.Model, Temperature: set.Temperature, MaxTokens: set.MaxTokens,
		Messages: buildMessages(inv, set, history, q)}
	p, err := m.provider(ctx, inv.Community.ID, set)
	if err != nil {
		log.Error("ai: provider not usable", logging.KeyReason, "config", logging.Err(err))
		return m.failReply(inv, q, msgConfig), nil
	}
	resp, err := m.call(ctx, p, req, log)
	if err != nil {
		return m.failReply(inv, q, failMessage(err)), nil
	}
	if err := m.budgets.record(ctx, inv.ID, inv.Community.ID, resp.Tokens); err != nil {
		log.Warn("ai: unable to record token usage", logging.Err(err))
	}
	limit := min(set.MaxReplyChars, schemas.TextLimit(inv.Event.Platform))
	text := Shape(resp.Content, inv.Event.Platform, set.Prefix, limit)
	if text == "" || text == set.Prefix {
		text = Truncate(set.Prefix+msgEmpty, limit)
	}
	if !q.greeting && set.Exchanges > 0 {
		ex := Exchange{User: inv.Event.User.Name(), Question: q.prompt, Answer: text, At: m.cfg.Now().UTC()}
		if err := m.mem.add(ctx, memKey, ex, set.Exchanges, set.MemoryTTL); err != nil {
			log.Warn("ai: unable to save memory", logging.Err(err))
		}
	}
	log.Info("ai: answered", "model", resp.Model, "tokens", resp.Tokens, "chars", len([]rune(text)))
	return m.reply(inv, text), nil
}

// check applies the request windows and the daily token budget.
func (m *module) check(ctx context.Context, inv *schemas.Invocation, set effective, q ask) (verdict, error) {
	c := inv.Community.ID
	if !q.greeting {
		v, err := m.budgets.request(ctx, "u."+hashKey(c, inv.Event.Platform, inv.Event.User.ID),
			inv.ID, set.UserRequests, set.UserWindow, "user")
		if err != nil || !v.ok {
			return v, err
		}
	}
	v, err := m.budgets.request(ctx, "ch."+hashKey(c, inv.Event.Platform, inv.Event.Channel.ID),
		inv.ID, set.ChannelRequests, set.ChannelWindow, "channel")
	if err != nil || !v.ok {
		return v, err
	}
	return m.budgets.tokens(ctx, c, inv.ID, set.DailyTokens)
}

func overMessage(reason string) string {
	switch reason {
	case "user":
		return msgUserLimit
	case "tokens":
		return msgTokens
	}
	return msgChannelLimit
}

// call asks the model, retrying a transient failure once when a second
// full call still fits in the handler's time.
func (m *module) call(ctx context.Context, p provider.Provider, req provider.Request, log *slog.Logger) (provider.Response, error) {
	cctx, cancel := m.callContext(ctx)
	resp, err := p.Chat(cctx, req)
	cancel()
	if err != nil && provider.KindOf(err) == provider.KindTransient && ctx.Err() == nil {
		log.Warn("ai: model call failed; retrying once", logging.KeyReason, provider.KindOf(err).String(), logging.Err(err))
		cctx, cancel = m.callContext(ctx)
		resp, err = p.Chat(cctx, req)
		cancel()
	}
	if err != nil {
		log.Error("ai: model call failed", logging.KeyReason, provider.KindOf(err).String(), "model", req.Model, logging.Err(err))
	}
	return resp, err
}

// callContext keeps the margin for the reply out of the handler's time.
func (m *module) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, dl.Add(-m.cfg.Margin))
	}
	return context.WithCancel(ctx)
}

func failMessage(err error) string {
	switch provider.KindOf(err) {
	case provider.KindModelNotFound:
		return msgModel
	case provider.KindUnauthorized:
		return msgAuth
	case provider.KindTimeout:
		return msgTimeout
	case provider.KindBadRequest:
		return msgConfig
	}
	return msgUnavailable
}

// failReply answers a failure in chat, except for greetings: nobody asked.
func (m *module) failReply(inv *schemas.Invocation, q ask, text string) *schemas.Result {
	if q.greeting {
		return nil
	}
	return m.reply(inv, text)
}

func (m *module) reply(inv *schemas.Invocation, text string) *schemas.Result {
	return &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: Name,
		Replies: []schemas.ReplyText{{Text: text, Visibility: schemas.VisibilityPublic}}}
}

// provider returns the community's provider, built once per distinct
// configuration (connections are reused between questions).
func (m *module) provider(ctx context.Context, communityID string, set effective) (provider.Provider, error) {
	apiKey, bearer := set.APIKey, set.BearerToken
	if set.APIKeySecret != "" {
		b, err := m.secret(ctx, communityID, set.APIKeySecret)
		if err != nil {
			return nil, err
		}
		apiKey = b
	}
	if set.BearerSecret != "" {
		b, err := m.secret(ctx, communityID, set.BearerSecret)
		if err != nil {
			return nil, err
		}
		bearer = b
	}
	tlsOpts := provider.TLSOptions{CAFile: set.CAFile, SkipVerify: !set.Verify}
	var key []byte
	var err error
	switch set.Provider {
	case ProviderOllama:
		key, err = json.Marshal([]any{set.Provider, set.Host, set.Port, set.TLS, tlsOpts, bearer, set.KeepAlive, set.Timeout, set.Stream})
	case ProviderOpenAI:
		key, err = json.Marshal([]any{set.Provider, set.BaseURL, apiKey, set.Headers, tlsOpts, set.Timeout})
	default:
		return nil, fmt.Errorf("ai: unknown provider %q", set.Provider)
	}
	if err != nil {
		return nil, fmt.Errorf("ai: unable to key provider: %w", err)
	}
	m.provMu.Lock()
	defer m.provMu.Unlock()
	if c, ok := m.providers[string(key)]; ok {
		return c.p, nil
	}
	var c cachedProvider
	switch set.Provider {
	case ProviderOllama:
		o, err := provider.NewOllama(provider.OllamaConfig{Host: set.Host, Port: set.Port, TLS: set.TLS, TLSOptions: tlsOpts,
			BearerToken: bearer, KeepAlive: set.KeepAlive, Timeout: set.Timeout, Stream: set.Stream})
		if err != nil {
			return nil, err
		}
		c = cachedProvider{p: o, close: o.Close}
	case ProviderOpenAI:
		if set.BaseURL == "" {
			return nil, errors.New("ai: provider openai needs base_url")
		}
		o, err := provider.NewOpenAI(provider.OpenAIConfig{BaseURL: set.BaseURL, APIKey: apiKey, Headers: set.Headers,
			TLSOptions: tlsOpts, Timeout: set.Timeout})
		if err != nil {
			return nil, err
		}
		c = cachedProvider{p: o, close: o.Close}
	}
	if len(m.providers) >= 256 {
		// Settings churn: start over rather than keep every old client.
		for k, old := range m.providers {
			old.close()
			delete(m.providers, k)
		}
	}
	m.providers[string(key)] = c
	return c.p, nil
}

func (m *module) secret(ctx context.Context, communityID, name string) (string, error) {
	if m.cfg.Store == nil {
		return "", errors.New("ai: built without a store for secrets")
	}
	b, err := m.cfg.Store.Secret(ctx, communityID, name)
	if err != nil {
		return "", fmt.Errorf("ai: unable to read secret %q: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// buildMessages is the conversation sent to the model: the persona, the
// channel's recent exchanges, and the question.
func buildMessages(inv *schemas.Invocation, set effective, history []Exchange, q ask) []provider.Message {
	channel := inv.Event.Channel.Name
	if channel == "" {
		channel = inv.Event.Channel.ID
	}
	system := strings.NewReplacer("{platform}", inv.Event.Platform, "{channel}", channel).Replace(set.SystemPrompt)
	msgs := []provider.Message{{Role: "system", Content: system}}
	for _, e := range history {
		msgs = append(msgs, provider.Message{Role: "user", Content: e.User + ": " + e.Question},
			provider.Message{Role: "assistant", Content: e.Answer})
	}
	content := q.prompt
	if !q.greeting {
		content = inv.Event.User.Name() + ": " + q.prompt
	}
	return append(msgs, provider.Message{Role: "user", Content: content})
}

// chatPrompt finds a question in a chat line: a mention of the bot's name,
// or (when on) a line that reads as a question.
func chatPrompt(inv *schemas.Invocation, set effective) (string, bool) {
	text := strings.TrimSpace(inv.Event.Text)
	if text == "" || strings.HasPrefix(text, actions.CommandPrefix(inv)) || strings.HasPrefix(text, "#") {
		// Commands have their own routes.
		return "", false
	}
	name := strings.ToLower(set.BotName)
	if strings.EqualFold(inv.Event.User.Login, name) {
		return "", false // never answer ourselves
	}
	if set.Mention {
		if rest, ok := stripMention(text, name); ok {
			return rest, rest != ""
		}
	}
	if set.Question && strings.HasSuffix(text, "?") {
		first, _ := actions.CutWord(strings.ToLower(text))
		first = strings.TrimRight(first, ",:")
		for _, p := range set.QuestionPrefixes {
			if first == p {
				return text, true
			}
		}
	}
	return "", false
}

// stripMention reports whether text mentions name (as @name, or name as a
// whole word, in any case) and returns the text without it. It compares
// windows of the original bytes: lower-casing the whole line first can
// change its length (İ, invalid UTF-8) and misplace every offset.
func stripMention(text, name string) (string, bool) {
	for _, form := range []string{"@" + name, name} {
		for start := 0; start+len(form) <= len(text); start++ {
			end := start + len(form)
			if !strings.EqualFold(text[start:end], form) || !wordEdge(text, start-1) || !wordEdge(text, end) {
				continue
			}
			before := strings.TrimSpace(text[:start])
			after := strings.TrimSpace(strings.TrimLeft(text[end:], ",:;!- "))
			return strings.TrimSpace(before + " " + after), true
		}
	}
	return "", false
}

func wordEdge(s string, i int) bool {
	if i < 0 || i >= len(s) {
		return true
	}
	c := s[i]
	return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '@' || c >= 0x80)
}

// greetingPrompt asks the model to greet an event, when the community
// turned that greeting on.
func greetingPrompt(inv *schemas.Invocation, set effective) (string, bool) {
	who := inv.Event.User.Name()
	d := inv.Event.Data
	switch inv.Event.Kind {
	case schemas.KindFollow:
		if set.Follow {
			return fmt.Sprintf("%s just followed the channel. Welcome them in one short, warm sentence.", who), true
		}
	case schemas.KindSubscription:
		if set.Subscription {
			months := ""
			if d != nil && d.Months > 1 {
				months = fmt.Sprintf(" (%d months)", d.Months)
			}
			return fmt.Sprintf("%s just subscribed%s. Thank them in one short, warm sentence.", who, months), true
		}
	case schemas.KindRaid:
		if set.Raid {
			viewers := ""
			if d != nil && d.Viewers > 0 {
				viewers = fmt.Sprintf(" with %d viewers", d.Viewers)
			}
			return fmt.Sprintf("%s just raided the channel%s. Welcome the raiders in one short, warm sentence.", who, viewers), true
		}
	case schemas.KindCheer:
		if set.Cheer {
			bits := ""
			if d != nil && d.Bits > 0 {
				bits = fmt.Sprintf(" %d bits", d.Bits)
			}
			return fmt.Sprintf("%s just cheered%s. Thank them in one short, warm sentence.", who, bits), true
		}
	}
	return "", false
}
