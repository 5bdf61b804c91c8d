package ai_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/actions/ai"
	"github.com/waddlebot/waddlebot/actions/ai/aitest"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

// rig is one test's NATS, database and clock; modules built from it are
// replicas sharing the KV buckets.
type rig struct {
	t     *testing.T
	env   *natstest.Env
	store *store.Store
	mu    sync.Mutex
	now   time.Time
	comm  string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	return &rig{t: t, env: natstest.Start(t, nil), store: storetest.New(t), now: time.Now().UTC(),
		comm: actionstest.Invocation(ai.Name, "ai").Community.ID}
}

func (r *rig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = r.now.Add(d)
}

// replica builds one module instance, as one worker replica holds.
func (r *rig) replica(tune ...func(*ai.Config)) actions.Module {
	d := ai.BuiltinDefaults()
	cfg := ai.Config{Store: r.store, Conn: r.env.Connect(r.t), Defaults: &d, Now: r.clock, Logger: logging.Discard()}
	for _, f := range tune {
		f(&cfg)
	}
	return ai.New(cfg)
}

func ollamaSettings(t *testing.T, f *aitest.Ollama, extra map[string]any) json.RawMessage {
	t.Helper()
	u, err := url.Parse(f.URL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	s := map[string]any{"provider": "ollama", "host": u.Hostname(), "port": port, "model": "llama3.2", "prefix": "🤖 "}
	for k, v := range extra {
		s[k] = v
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type who struct {
	id, login string
	role      schemas.Role
}

var (
	alice = who{"u-alice", "alice", ""}
	bob   = who{"u-bob", "bob", ""}
	mod   = who{"u-mod", "mo", schemas.RoleModerator}
)

// command builds `!ai <args>` (or `!ask`) in the rig's community and channel.
func (r *rig) command(settings json.RawMessage, u who, argText string) *schemas.Invocation {
	inv := actionstest.Invocation(ai.Name, "ai", strings.Fields(argText)...)
	inv.ArgText = argText
	inv.Community.ID = r.comm
	inv.Settings = settings
	inv.Event.User = schemas.User{ID: u.id, Login: u.login, DisplayName: u.login}
	if u.role != "" {
		inv.Event.User.Roles = []schemas.Role{u.role}
	}
	return inv
}

// trigger builds an event-trigger invocation of kind.
func (r *rig) trigger(settings json.RawMessage, u who, kind schemas.Kind, text string) *schemas.Invocation {
	inv := r.command(settings, u, "")
	inv.Event.Kind = kind
	inv.Event.Text = text
	inv.Route = schemas.RouteTrigger + string(kind)
	inv.Command, inv.Invoked, inv.Args, inv.ArgText = "", "", nil, ""
	inv.ID = schemas.InvocationID(inv.Event.ID, ai.Name, inv.Route)
	return inv
}

func handle(t *testing.T, m actions.Module, inv *schemas.Invocation) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := m.Handle(ctx, inv, nil)
	if err != nil {
		t.Fatalf("handle %q: %v", inv.Event.Text, err)
	}
	if res == nil || len(res.Replies) == 0 {
		return ""
	}
	if len(res.Replies) != 1 {
		t.Fatalf("%d replies; the module answers in one message", len(res.Replies))
	}
	return res.Replies[0].Text
}

func TestConversationAcrossReplicasAndReset(t *testing.T) {
	r := newRig(t)
	fake := aitest.NewOllama(t, "llama3.2")
	set := ollamaSettings(t, fake, map[string]any{"system_prompt": "You are Pingu on {platform} in {channel}."})
	one, two := r.replica(), r.replica()

	if got := handle(t, one, r.command(set, alice, "what is 2+2")); got != "🤖 You said: alice: what is 2+2" {
		t.Fatalf("first answer %q", got)
	}
	if got := handle(t, two, r.command(set, bob, "and times 3?")); got != "🤖 You said: bob: and times 3?" {
		t.Fatalf("second answer %q", got)
	}
	reqs := fake.Requests()
	second := reqs[1].Messages
	if len(second) != 4 || second[0].Content != "You are Pingu on console in "+actionstest.Channel+"." ||
		second[1].Content != "alice: what is 2+2" || second[2].Role != "assistant" || second[3].Content != "bob: and times 3?" {
		t.Fatalf("the second replica did not continue the conversation: %+v", second)
	}

	if got := handle(t, two, r.command(set, alice, "reset")); got != "Only moderators can reset the conversation." {
		t.Fatalf("reset by a viewer: %q", got)
	}
	if got := handle(t, one, r.command(set, mod, "reset")); !strings.Contains(got, "forgotten") {
		t.Fatalf("reset by a moderator: %q", got)
	}
	handle(t, two, r.command(set, alice, "hello again"))
	reqs = fake.Requests()
	if n := len(reqs[len(reqs)-1].Messages); n != 2 {
		t.Fatalf("after reset the model still got %d messages", n)
	}
}

func TestMemoryLimitsAndTTL(t *testing.T) {
	r := newRig(t)
	fake := aitest.NewOllama(t)
	set := ollamaSettings(t, fake, map[string]any{"memory": map[string]any{"exchanges": 2, "ttl_minutes": 30},
		"limits": map[string]any{"user_requests": 100}})
	m := r.replica()
	for i := range 4 {
		handle(t, m, r.command(set, alice, "question "+strconv.Itoa(i)))
	}
	reqs := fake.Requests()
	if n := len(reqs[3].Messages); n != 1+2*2+1 {
		t.Fatalf("memory kept more than 2 exchanges: %d messages", n)
	}
	r.advance(31 * time.Minute)
	handle(t, m, r.command(set, alice, "still there?"))
	reqs = fake.Requests()
	if n := len(reqs[4].Messages); n != 2 {
		t.Fatalf("memory outlived its TTL: %d messages", n)
	}
}

func TestFailuresAnsweredInChat(t *testing.T) {
	cases := []struct {
		name     string
		setup    func(f *aitest.Ollama)
		model    string
		want     string
		requests int
	}{
		{"missing model", func(*aitest.Ollama) {}, "nosuch", "model not found", 1},
		{"refused token", func(f *aitest.Ollama) { f.FailNext(http.StatusUnauthorized) }, "llama3.2", "refused my key", 1},
		{"timeout", func(f *aitest.Ollama) { f.Hold() }, "llama3.2", "took too long", 1},
		{"transient retried once", func(f *aitest.Ollama) { f.FailNext(http.StatusServiceUnavailable) }, "llama3.2", "You said", 2},
		{"transient twice", func(f *aitest.Ollama) { f.FailNext(503, 503) }, "llama3.2", "isn't answering", 2},
		{"malformed", func(f *aitest.Ollama) { f.Garbage(true) }, "llama3.2", "isn't answering", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			fake := aitest.NewOllama(t, "llama3.2")
			c.setup(fake)
			set := ollamaSettings(t, fake, map[string]any{"model": c.model, "timeout": 1})
			got := handle(t, r.replica(), r.command(set, alice, "hi"))
			if !strings.Contains(got, c.want) {
				t.Fatalf("answer %q, want it to contain %q", got, c.want)
			}
			if n := len(fake.Requests()); n != c.requests {
				t.Fatalf("%d requests, want %d", n, c.requests)
			}
		})
	}
}

func TestOllamaOverTLSWithCA(t *testing.T) {
	r := newRig(t)
	fake, ca := aitest.NewOllamaTLS(t)
	set := ollamaSettings(t, fake, map[string]any{"tls": true, "ca_file": ca, "stream": false})
	if got := handle(t, r.replica(), r.command(set, alice, "secure?")); got != "🤖 You said: alice: secure?" {
		t.Fatalf("answer %q", got)
	}
	noCA := ollamaSettings(t, fake, map[string]any{"tls": true})
	if got := handle(t, r.replica(), r.command(noCA, alice, "secure?")); !strings.Contains(got, "isn't answering") {
		t.Fatalf("an untrusted certificate was accepted: %q", got)
	}
}

func TestOpenAICompatibleWithSecretAndHeaders(t *testing.T) {
	r := newRig(t)
	fake := aitest.NewOpenAI(t, "sk-community", map[string]string{"X-Route": "fast"})
	if err := r.store.PutSecret(context.Background(), nil, r.comm, "openai", []byte("sk-community")); err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(map[string]any{"provider": "openai", "base_url": fake.BaseURL(), "model": "auto",
		"api_key_secret": "openai", "extra_headers": map[string]string{"X-Route": "fast"}})
	m := r.replica()
	if got := handle(t, m, r.command(set, alice, "hi")); got != "You said: alice: hi" {
		t.Fatalf("answer %q", got)
	}
	if err := r.store.PutSecret(context.Background(), nil, r.comm, "openai", []byte("sk-revoked")); err != nil {
		t.Fatal(err)
	}
	if got := handle(t, r.replica(), r.command(set, alice, "hi")); !strings.Contains(got, "refused my key") {
		t.Fatalf("refused key answered %q", got)
	}
	missing, _ := json.Marshal(map[string]any{"provider": "openai", "base_url": fake.BaseURL(), "api_key_secret": "nope"})
	if got := handle(t, m, r.command(missing, alice, "hi")); !strings.Contains(got, "isn't set up") {
		t.Fatalf("missing secret answered %q", got)
	}
}

func TestOperatorKeyStaysWithOperatorEndpoint(t *testing.T) {
	r := newRig(t)
	operator := aitest.NewOpenAI(t, "sk-operator", nil)
	community := aitest.NewOpenAI(t, "", nil)
	withOperator := func(c *ai.Config) {
		d := *c.Defaults
		d.Provider, d.BaseURL, d.APIKey = ai.ProviderOpenAI, operator.BaseURL(), "sk-operator"
		c.Defaults = &d
	}
	m := r.replica(withOperator)
	if got := handle(t, m, r.command(nil, alice, "hi")); got != "You said: alice: hi" {
		t.Fatalf("default endpoint answered %q", got)
	}
	own, _ := json.Marshal(map[string]any{"base_url": community.BaseURL()})
	handle(t, m, r.command(own, alice, "hi"))
	reqs := community.Requests()
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "" {
		t.Fatalf("the operator's key reached a community's endpoint: %+v", reqs)
	}
}

func TestBudgets(t *testing.T) {
	t.Run("user window", func(t *testing.T) {
		r := newRig(t)
		fake := aitest.NewOllama(t)
		set := ollamaSettings(t, fake, map[string]any{"limits": map[string]any{"user_requests": 2, "user_window_seconds": 60}})
		m := r.replica()
		var got []string
		for range 5 {
			got = append(got, handle(t, m, r.command(set, alice, "q")))
		}
		if !strings.HasPrefix(got[0], "🤖") || !strings.HasPrefix(got[1], "🤖") || !strings.Contains(got[2], "faster than I can think") ||
			got[3] != "" || got[4] != "" {
			t.Fatalf("answers %q", got)
		}
		if n := len(fake.Requests()); n != 2 {
			t.Fatalf("%d model calls, want 2", n)
		}
		if got := handle(t, m, r.command(set, bob, "q")); !strings.HasPrefix(got, "🤖") {
			t.Fatalf("another user was limited too: %q", got)
		}
	})
	t.Run("channel window", func(t *testing.T) {
		r := newRig(t)
		fake := aitest.NewOllama(t)
		set := ollamaSettings(t, fake, map[string]any{"limits": map[string]any{"channel_requests": 2}})
		m := r.replica()
		users := []who{alice, bob, mod, {"u-d", "dora", ""}}
		var got []string
		for _, u := range users {
			got = append(got, handle(t, m, r.command(set, u, "q")))
		}
		if !strings.Contains(got[2], "Lots of questions") || got[3] != "" {
			t.Fatalf("answers %q", got)
		}
	})
	t.Run("daily tokens", func(t *testing.T) {
		r := newRig(t)
		fake := aitest.NewOllama(t)
		fake.Tokens(10)
		set := ollamaSettings(t, fake, map[string]any{"limits": map[string]any{"daily_tokens": 25, "user_requests": 100}})
		m := r.replica()
		var got []string
		for range 5 {
			got = append(got, handle(t, m, r.command(set, alice, "q")))
		}
		if !strings.Contains(got[3], "today's AI budget") || got[4] != "" || !strings.HasPrefix(got[2], "🤖") {
			t.Fatalf("answers %q", got)
		}
		var used int
		if err := r.store.Pool().QueryRow(context.Background(), `SELECT sum(tokens) FROM ai_usage WHERE community_id = $1`, r.comm).Scan(&used); err != nil {
			t.Fatal(err)
		}
		if used != 30 {
			t.Fatalf("recorded %d tokens, want 30", used)
		}
		// A redelivered invocation is not counted twice.
		inv := r.command(set, bob, "again")
		r.advance(24 * time.Hour)
		handle(t, m, inv)
		handle(t, m, inv)
		if err := r.store.Pool().QueryRow(context.Background(), `SELECT sum(tokens) FROM ai_usage WHERE community_id = $1`, r.comm).Scan(&used); err != nil {
			t.Fatal(err)
		}
		if used != 40 {
			t.Fatalf("recorded %d tokens after a redelivery, want 40", used)
		}
	})
}

func TestTriggers(t *testing.T) {
	r := newRig(t)
	fake := aitest.NewOllama(t)
	m := r.replica()
	def := ollamaSettings(t, fake, map[string]any{"limits": map[string]any{"user_requests": 100}})
	on := ollamaSettings(t, fake, map[string]any{"limits": map[string]any{"user_requests": 100},
		"triggers": map[string]any{"mention": false, "question": true, "follow": true, "raid": true, "subscription": true, "cheer": true}})
	cases := []struct {
		name     string
		settings json.RawMessage
		inv      *schemas.Invocation
		answered bool
	}{
		{"mention on by default", def, r.trigger(def, alice, schemas.KindChat, "hey @WaddleBot, what's up?"), true},
		{"name as a word", def, r.trigger(def, alice, schemas.KindChat, "waddlebot: tell a joke"), true},
		{"name inside a word", def, r.trigger(def, alice, schemas.KindChat, "waddlebots are cool"), false},
		{"plain chat", def, r.trigger(def, alice, schemas.KindChat, "hello everyone"), false},
		{"question off by default", def, r.trigger(def, alice, schemas.KindChat, "why is the sky blue?"), false},
		{"commands ignored", def, r.trigger(def, alice, schemas.KindChat, "!quote waddlebot"), false},
		{"own messages ignored", def, r.trigger(def, who{"u-bot", "waddlebot", ""}, schemas.KindChat, "@waddlebot hi"), false},
		{"follow greeting off by default", def, r.trigger(def, alice, schemas.KindFollow, ""), false},
		{"mention turned off", on, r.trigger(on, alice, schemas.KindChat, "@waddlebot hi"), false},
		{"question turned on", on, r.trigger(on, alice, schemas.KindChat, "Why is the sky blue?"), true},
		{"not a question", on, r.trigger(on, alice, schemas.KindChat, "the sky is blue?"), false},
		{"follow greeting", on, r.trigger(on, alice, schemas.KindFollow, ""), true},
		{"raid greeting", on, r.trigger(on, alice, schemas.KindRaid, ""), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := handle(t, m, c.inv)
			if (got != "") != c.answered {
				t.Fatalf("answer %q, answered want %v", got, c.answered)
			}
		})
	}
	last := fake.Requests()[len(fake.Requests())-1]
	if !strings.Contains(last.Messages[len(last.Messages)-1].Content, "raided") {
		t.Fatalf("greeting prompt %+v", last.Messages)
	}
}

func TestProvisionalCommunity(t *testing.T) {
	r := newRig(t)
	fake := aitest.NewOllama(t)
	m := r.replica()
	set := ollamaSettings(t, fake, nil)
	inv := r.command(set, alice, "hi")
	inv.Community.Provisional = true
	if got := handle(t, m, inv); !strings.Contains(got, "off here") {
		t.Fatalf("provisional community answered %q", got)
	}
	chat := r.trigger(set, alice, schemas.KindChat, "@waddlebot hi")
	chat.Community.Provisional = true
	if got := handle(t, m, chat); got != "" {
		t.Fatalf("provisional community answered a mention: %q", got)
	}
	if len(fake.Requests()) != 0 {
		t.Fatal("the model was called for a provisional community")
	}
	allowed := ollamaSettings(t, fake, map[string]any{"allow_provisional": true})
	inv = r.command(allowed, alice, "hi")
	inv.Community.Provisional = true
	if got := handle(t, m, inv); !strings.Contains(got, "You said") {
		t.Fatalf("owner-enabled provisional community answered %q", got)
	}
}

func TestUsageAndUnknownCommand(t *testing.T) {
	r := newRig(t)
	m := r.replica()
	if got := handle(t, m, r.command(nil, alice, "")); got != "Ask me something: !ai <question>" {
		t.Fatalf("usage %q", got)
	}
	inv := r.command(nil, alice, "x")
	inv.Command, inv.Route = "nope", "cmd:nope"
	if _, err := m.Handle(context.Background(), inv, nil); err == nil {
		t.Fatal("an unknown command was accepted")
	}
}

func TestConcurrencyCapAnswersBusy(t *testing.T) {
	r := newRig(t)
	fake := aitest.NewOllama(t)
	held, release := fake.Hold()
	defer release()
	m := r.replica(func(c *ai.Config) {
		d := *c.Defaults
		d.MaxConcurrent = 1
		c.Defaults = &d
		c.QueueWait = 100 * time.Millisecond
	})
	set := ollamaSettings(t, fake, map[string]any{"limits": map[string]any{"user_requests": 100}})
	first := make(chan string, 1)
	go func() {
		res, err := m.Handle(context.Background(), r.command(set, alice, "slow"), nil)
		if err != nil || res == nil {
			first <- "error"
			return
		}
		first <- res.Replies[0].Text
	}()
	<-held
	if got := handle(t, m, r.command(set, bob, "me too")); !strings.Contains(got, "busy") {
		t.Fatalf("over the cap answered %q", got)
	}
	release()
	if got := <-first; !strings.Contains(got, "You said") {
		t.Fatalf("held answer %q", got)
	}
}

// TestBurstAcrossReplicas: a burst on two replicas at once holds the user's
// limit exactly and gets one polite reply, not one per request.
func TestBurstAcrossReplicas(t *testing.T) {
	r := newRig(t)
	fake := aitest.NewOllama(t)
	set := ollamaSettings(t, fake, map[string]any{"limits": map[string]any{"user_requests": 3, "user_window_seconds": 60}})
	replicas := []actions.Module{r.replica(), r.replica()}
	const burst = 12
	answers := make([]string, burst)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := replicas[i%2].Handle(ctx, r.command(set, alice, "q"+strconv.Itoa(i)), nil)
			if err != nil {
				t.Error(err)
				return
			}
			if res != nil && len(res.Replies) == 1 {
				answers[i] = res.Replies[0].Text
			}
		})
	}
	wg.Wait()
	var answered, polite, silent int
	for _, a := range answers {
		switch {
		case strings.Contains(a, "You said"):
			answered++
		case strings.Contains(a, "faster than I can think"):
			polite++
		case a == "":
			silent++
		default:
			t.Errorf("unexpected answer %q", a)
		}
	}
	if answered != 3 || polite != 1 || silent != burst-4 {
		t.Fatalf("answered %d, polite %d, silent %d", answered, polite, silent)
	}
	if n := len(fake.Requests()); n != 3 {
		t.Fatalf("%d model calls", n)
	}
}
