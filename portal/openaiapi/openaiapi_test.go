package openaiapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions/ai"
	"github.com/waddlebot/waddlebot/actions/ai/aitest"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/portal/openaiapi"
	"github.com/waddlebot/waddlebot/portal/restapi"
	"github.com/waddlebot/waddlebot/schemas"
)

var ctx = context.Background()

type env struct {
	t     *testing.T
	st    *store.Store
	url   string
	clock *clock.Fake
	owner store.PortalUser
	com   schemas.Community
}

type opts struct {
	rateLimit int
	nats      bool
}

func newEnv(t *testing.T, o opts) *env {
	t.Helper()
	e := &env{t: t, st: storetest.New(t), clock: clock.NewFake(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))}
	cfg := restapi.Config{Store: e.st, Clock: e.clock, Logger: logging.Discard(), RateLimit: o.rateLimit}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 10000
	}
	if o.nats {
		cfg.Conn = natstest.Start(t, nil).Connect(t)
	}
	api, err := restapi.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := ai.BuiltinDefaults()
	d.CustomEndpoints = true
	srv, err := openaiapi.New(openaiapi.Config{Store: e.st, API: api, Models: ai.NewResolver(e.st, d, e.clock.Now, logging.Discard()),
		Clock: e.clock, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	e.url = hs.URL
	if _, err := e.st.UpsertManifest(ctx, ai.Manifest(), true); err != nil {
		t.Fatal(err)
	}
	e.owner, err = e.st.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "1", Login: "owner"}, "Owner", false)
	if err != nil {
		t.Fatal(err)
	}
	e.com, err = e.st.CreateOwnedCommunity(ctx, "test", e.owner.ID, store.NewCommunity{Name: "Alpha"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// ollama points the community at a fake Ollama.
func (e *env) ollama(extra string) *aitest.Ollama {
	e.t.Helper()
	fake := aitest.NewOllama(e.t, "llama3.2")
	u, _ := url.Parse(fake.URL())
	port, _ := strconv.Atoi(u.Port())
	e.settings(true, fmt.Sprintf(`{"provider":"ollama","host":%q,"port":%d,"model":"llama3.2","timeout":2%s}`, u.Hostname(), port, extra))
	return fake
}

// openai points the community at a fake OpenAI-compatible endpoint whose
// key is the community's secret.
func (e *env) openai(extra string) *aitest.OpenAI {
	e.t.Helper()
	fake := aitest.NewOpenAI(e.t, "sk-community", nil, "gpt-test")
	if err := e.st.PutSecret(ctx, nil, e.com.ID, "openai", []byte("sk-community")); err != nil {
		e.t.Fatal(err)
	}
	e.settings(true, fmt.Sprintf(`{"provider":"openai","base_url":%q,"api_key_secret":"openai","model":"gpt-test","timeout":2%s}`, fake.BaseURL(), extra))
	return fake
}

func (e *env) settings(enabled bool, raw string) {
	e.t.Helper()
	if err := e.st.SetModule(ctx, "test", e.com.ID, ai.Name, enabled, json.RawMessage(raw)); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) key(community string, scopes ...string) string {
	e.t.Helper()
	secret, _ := e.keyWithID(community, scopes...)
	return secret
}

func (e *env) keyWithID(community string, scopes ...string) (string, string) {
	e.t.Helper()
	if len(scopes) == 0 {
		scopes = []string{store.ScopeAI}
	}
	secret, k, err := e.st.CreateAPIKey(ctx, "test", store.NewAPIKey{Name: "k", UserID: e.owner.ID, CommunityID: community, Scopes: scopes}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return secret, k.ID
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r resp) err() (typ, code, msg string) {
	e, _ := r.body["error"].(map[string]any)
	typ, _ = e["type"].(string)
	code, _ = e["code"].(string)
	msg, _ = e["message"].(string)
	return
}

func (e *env) do(key, method, path, body string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer hr.Body.Close()
	raw, _ := io.ReadAll(hr.Body)
	r := resp{status: hr.StatusCode, header: hr.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// sdkBody is what the OpenAI Python SDK sends for
// client.chat.completions.create(...), extra fields included.
func sdkBody(model string, stream bool) string {
	return fmt.Sprintf(`{"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":[{"type":"text","text":"why "},{"type":"text","text":"is the sky blue"}]}],`+
		`"model":%q,"n":1,"temperature":0.2,"top_p":1,"user":"script-42","max_tokens":64,"frequency_penalty":0,"presence_penalty":0,`+
		`"seed":7,"stop":null,"logit_bias":{},"stream":%t}`, model, stream)
}

func TestChatCompletion(t *testing.T) {
	for _, which := range []string{"ollama", "openai"} {
		t.Run(which, func(t *testing.T) {
			e := newEnv(t, opts{})
			model := "llama3.2"
			var fake *aitest.Fake
			if which == "ollama" {
				fake = e.ollama("").Fake
			} else {
				model = "gpt-test"
				fake = e.openai("").Fake
			}
			fake.Tokens(20)
			key := e.key(e.com.ID)
			r := e.do(key, http.MethodPost, "/v1/chat/completions", sdkBody(model, false))
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			var cc struct {
				ID      string `json:"id"`
				Object  string `json:"object"`
				Created int64  `json:"created"`
				Model   string `json:"model"`
				Choices []struct {
					Index   int `json:"index"`
					Message struct {
						Role, Content string
					} `json:"message"`
					FinishReason string `json:"finish_reason"`
				} `json:"choices"`
				Usage struct {
					PromptTokens     int `json:"prompt_tokens"`
					CompletionTokens int `json:"completion_tokens"`
					TotalTokens      int `json:"total_tokens"`
				} `json:"usage"`
			}
			if err := json.Unmarshal([]byte(r.raw), &cc); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(cc.ID, "chatcmpl-") || cc.Object != "chat.completion" || cc.Model != model || cc.Created == 0 ||
				len(cc.Choices) != 1 || cc.Choices[0].Message.Role != "assistant" || cc.Choices[0].Message.Content != "You said: why is the sky blue" ||
				cc.Choices[0].FinishReason != "stop" || cc.Usage.TotalTokens != 20 || cc.Usage.PromptTokens+cc.Usage.CompletionTokens != 20 {
				t.Fatalf("answer %s", r.raw)
			}
			reqs := fake.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			got := reqs[0]
			if got.Model != model || got.Temperature == nil || *got.Temperature != 0.2 || got.MaxTokens != 64 ||
				len(got.Messages) != 2 || got.Messages[0].Role != "system" {
				t.Fatalf("upstream request %+v", got)
			}
			if which == "openai" && got.Header.Get("Authorization") != "Bearer sk-community" {
				t.Fatalf("upstream key %q", got.Header.Get("Authorization"))
			}
			// The key's use is recorded (last used) and the request audited.
			entries, err := e.st.AuditLog(ctx, e.com.ID, 50)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, en := range entries {
				found = found || (en.Action == "api.request" && en.Target == "POST /v1/chat/completions")
			}
			if !found {
				t.Fatalf("no audit entry in %+v", entries)
			}
		})
	}
}

// chunk is an SSE event of a streamed answer.
type chunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		TotalTokens int `json:"total_tokens"`
	} `json:"usage"`
	Error *struct{ Code string } `json:"error"`
}

func readStream(t *testing.T, body io.Reader) (chunks []chunk, done bool) {
	t.Helper()
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("line %q is not an SSE data line", line)
		}
		if done {
			t.Fatalf("data after [DONE]: %q", line)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var c chunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		chunks = append(chunks, c)
	}
	return chunks, done
}

func TestChatCompletionStream(t *testing.T) {
	for _, which := range []string{"ollama", "openai"} {
		for _, includeUsage := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/include_usage=%t", which, includeUsage), func(t *testing.T) {
				e := newEnv(t, opts{})
				model := "llama3.2"
				var fake *aitest.Fake
				if which == "ollama" {
					// Ollama's stream setting off: the endpoint streams anyway.
					fake = e.ollama(`,"stream":false`).Fake
				} else {
					model = "gpt-test"
					fake = e.openai("").Fake
				}
				fake.Tokens(14)
				body := sdkBody(model, true)
				if includeUsage {
					body = strings.TrimSuffix(body, "}") + `,"stream_options":{"include_usage":true}}`
				}
				req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+e.key(e.com.ID))
				hr, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer hr.Body.Close()
				if hr.StatusCode != http.StatusOK || !strings.HasPrefix(hr.Header.Get("Content-Type"), "text/event-stream") {
					raw, _ := io.ReadAll(hr.Body)
					t.Fatalf("status %d %s: %s", hr.StatusCode, hr.Header.Get("Content-Type"), raw)
				}
				chunks, done := readStream(t, hr.Body)
				if !done {
					t.Fatal("no data: [DONE]")
				}
				var text strings.Builder
				pieces, finishes, usage := 0, 0, 0
				for i, c := range chunks {
					if c.Object != "chat.completion.chunk" || c.ID != chunks[0].ID || c.Model != model {
						t.Fatalf("chunk %d %+v", i, c)
					}
					if c.Usage != nil {
						usage++
						if c.Usage.TotalTokens != 14 || i != len(chunks)-1 {
							t.Fatalf("usage chunk %d of %d: %+v", i, len(chunks), c.Usage)
						}
					}
					for _, ch := range c.Choices {
						if ch.Delta.Content != "" {
							pieces++
							text.WriteString(ch.Delta.Content)
						}
						if ch.FinishReason != nil {
							finishes++
						}
					}
				}
				if chunks[0].Choices[0].Delta.Role != "assistant" {
					t.Fatalf("first chunk %+v", chunks[0])
				}
				if text.String() != "You said: why is the sky blue" || pieces < 3 || finishes != 1 || usage != 1 {
					t.Fatalf("text %q in %d pieces, %d finishes, %d usage chunks", text.String(), pieces, finishes, usage)
				}
				if includeUsage && len(chunks[len(chunks)-1].Choices) != 0 {
					t.Fatalf("usage chunk has choices: %+v", chunks[len(chunks)-1])
				}
				if r := fake.Requests(); len(r) != 1 || !r[0].Stream {
					t.Fatalf("upstream %+v", r)
				}
			})
		}
	}
}

func TestModels(t *testing.T) {
	e := newEnv(t, opts{})
	e.openai("")
	r := e.do(e.key(e.com.ID), http.MethodGet, "/v1/models", "")
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	data, _ := r.body["data"].([]any)
	if r.body["object"] != "list" || len(data) != 1 {
		t.Fatalf("list %s", r.raw)
	}
	m, _ := data[0].(map[string]any)
	if m["id"] != "gpt-test" || m["object"] != "model" || m["owned_by"] != "waddlebot:openai" {
		t.Fatalf("model %v", m)
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, opts{})
	fake := e.ollama("")
	good := e.key(e.com.ID)
	noScope := e.key(e.com.ID, store.ScopeCommunitiesRead)
	siteWide := e.key("")
	revoked, revokedID := e.keyWithID(e.com.ID)
	if err := e.st.RevokeAPIKey(ctx, "test", e.owner.ID, revokedID, false, e.clock.Now(), nil); err != nil {
		t.Fatal(err)
	}
	ok := sdkBody("llama3.2", false)
	cases := []struct {
		name, key, method, path, body string
		status                        int
		typ, code                     string
	}{
		{"no key", "", "POST", "/v1/chat/completions", ok, 401, "authentication_error", "invalid_api_key"},
		{"wrong key", "wbk_nottherightone", "POST", "/v1/chat/completions", ok, 401, "authentication_error", "invalid_api_key"},
		{"not a wbk key", "sk-abc", "GET", "/v1/models", "", 401, "authentication_error", "invalid_api_key"},
		{"revoked key", revoked, "POST", "/v1/chat/completions", ok, 401, "authentication_error", "invalid_api_key"},
		{"missing scope", noScope, "POST", "/v1/chat/completions", ok, 403, "permission_error", "insufficient_scope"},
		{"missing scope models", noScope, "GET", "/v1/models", "", 403, "permission_error", "insufficient_scope"},
		{"site-wide key", siteWide, "POST", "/v1/chat/completions", ok, 403, "permission_error", "community_key_required"},
		{"not json", good, "POST", "/v1/chat/completions", "{", 400, "invalid_request_error", "invalid_json"},
		{"no messages", good, "POST", "/v1/chat/completions", `{"model":"llama3.2","messages":[]}`, 400, "invalid_request_error", "missing_messages"},
		{"no model", good, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error", "missing_model"},
		{"bad role", good, "POST", "/v1/chat/completions", `{"model":"llama3.2","messages":[{"role":"wizard","content":"hi"}]}`, 400, "invalid_request_error", "invalid_role"},
		{"image part", good, "POST", "/v1/chat/completions", `{"model":"llama3.2","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "invalid_request_error", "invalid_content"},
		{"n of 2", good, "POST", "/v1/chat/completions", `{"model":"llama3.2","n":2,"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error", "unsupported_n"},
		{"hot temperature", good, "POST", "/v1/chat/completions", `{"model":"llama3.2","temperature":3,"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error", "invalid_temperature"},
		{"other model", good, "POST", "/v1/chat/completions", sdkBody("gpt-4o", false), 404, "invalid_request_error", "model_not_found"},
		{"unknown path", good, "GET", "/v1/embeddings", "", 404, "invalid_request_error", "unknown_url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.key, c.method, c.path, c.body)
			typ, code, msg := r.err()
			if r.status != c.status || typ != c.typ || code != c.code || msg == "" {
				t.Fatalf("%d %s/%s %q, want %d %s/%s: %s", r.status, typ, code, msg, c.status, c.typ, c.code, r.raw)
			}
		})
	}
	if n := len(fake.Requests()); n != 0 {
		t.Fatalf("refused requests reached the model %d times", n)
	}
}

func TestAIDisabledOrProvisional(t *testing.T) {
	e := newEnv(t, opts{})
	key := e.key(e.com.ID)
	expect := func(status int, code string) {
		t.Helper()
		r := e.do(key, http.MethodGet, "/v1/models", "")
		if _, got, _ := r.err(); r.status != status || got != code {
			t.Fatalf("%d %s, want %d %s", r.status, r.raw, status, code)
		}
	}
	// Never chosen: the manifest's default, off.
	expect(http.StatusForbidden, "ai_disabled")
	e.settings(false, `{"model":"llama3.2"}`)
	expect(http.StatusForbidden, "ai_disabled")
	e.settings(true, `{"model":"llama3.2"}`)
	expect(http.StatusOK, "")
	if _, err := e.st.Pool().Exec(ctx, `UPDATE communities SET provisional = true WHERE id = $1`, e.com.ID); err != nil {
		t.Fatal(err)
	}
	expect(http.StatusForbidden, "ai_disabled")
	e.settings(true, `{"model":"llama3.2","allow_provisional":true}`)
	expect(http.StatusOK, "")
}

func TestBudgets(t *testing.T) {
	t.Run("daily tokens", func(t *testing.T) {
		e := newEnv(t, opts{})
		fake := e.ollama(`,"limits":{"daily_tokens":25}`)
		fake.Tokens(20)
		key := e.key(e.com.ID)
		body := sdkBody("llama3.2", false)
		for i, want := range []int{200, 200, 429, 429} {
			r := e.do(key, http.MethodPost, "/v1/chat/completions", body)
			if r.status != want {
				t.Fatalf("request %d: %d, want %d: %s", i, r.status, want, r.raw)
			}
			if want == 429 {
				typ, code, _ := r.err()
				if typ != "insufficient_quota" || code != "insufficient_quota" || r.header.Get("Retry-After") != strconv.Itoa(12*3600) {
					t.Fatalf("429 %s %s retry %q", typ, code, r.header.Get("Retry-After"))
				}
			}
		}
		if n := len(fake.Requests()); n != 2 {
			t.Fatalf("model called %d times", n)
		}
		// A new day renews the budget.
		e.clock.Advance(12 * time.Hour)
		if r := e.do(key, http.MethodPost, "/v1/chat/completions", body); r.status != http.StatusOK {
			t.Fatalf("next day: %d %s", r.status, r.raw)
		}
	})
	t.Run("per-key window", func(t *testing.T) {
		e := newEnv(t, opts{rateLimit: 2, nats: true})
		fake := e.ollama("")
		key, other := e.key(e.com.ID), e.key(e.com.ID)
		for i, want := range []int{200, 200, 429} {
			r := e.do(key, http.MethodPost, "/v1/chat/completions", sdkBody("llama3.2", false))
			if r.status != want {
				t.Fatalf("request %d: %d, want %d: %s", i, r.status, want, r.raw)
			}
			if want == 429 {
				typ, code, _ := r.err()
				if typ != "rate_limit_error" || code != "rate_limit_exceeded" || r.header.Get("Retry-After") == "" {
					t.Fatalf("429 %s %s retry %q", typ, code, r.header.Get("Retry-After"))
				}
			}
		}
		// The window is the key's, not the community's.
		if r := e.do(other, http.MethodGet, "/v1/models", ""); r.status != http.StatusOK {
			t.Fatalf("other key: %d %s", r.status, r.raw)
		}
		if n := len(fake.Requests()); n != 2 {
			t.Fatalf("model called %d times", n)
		}
	})
}

func TestProviderFailures(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(e *env) *aitest.Fake
		stream bool
		status int
		code   string
	}{
		{"model missing upstream", func(e *env) *aitest.Fake {
			f := e.openai("")
			e.settings(true, fmt.Sprintf(`{"provider":"openai","base_url":%q,"api_key_secret":"openai","model":"gone"}`, f.BaseURL()))
			return f.Fake
		}, false, 404, "model_not_found"},
		{"refused upstream key", func(e *env) *aitest.Fake {
			f := e.openai("")
			if err := e.st.PutSecret(ctx, nil, e.com.ID, "openai", []byte("sk-revoked")); err != nil {
				e.t.Fatal(err)
			}
			return f.Fake
		}, false, 502, "upstream_unauthorized"},
		{"refused upstream key, streaming", func(e *env) *aitest.Fake {
			f := e.ollama("")
			f.FailNext(http.StatusUnauthorized)
			return f.Fake
		}, true, 502, "upstream_unauthorized"},
		{"timeout", func(e *env) *aitest.Fake {
			f := e.ollama(`,"timeout":1`)
			f.Hold()
			return f.Fake
		}, false, 504, "upstream_timeout"},
		{"timeout, streaming", func(e *env) *aitest.Fake {
			f := e.openai(`,"timeout":1`)
			f.Hold()
			return f.Fake
		}, true, 504, "upstream_timeout"},
		{"garbage", func(e *env) *aitest.Fake {
			f := e.ollama("")
			f.Garbage(true)
			return f.Fake
		}, false, 502, "upstream_malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, opts{})
			c.setup(e)
			mods, _ := e.st.CommunityModules(ctx, e.com.ID)
			var s struct{ Model string }
			_ = json.Unmarshal(mods[ai.Name].Settings, &s)
			r := e.do(e.key(e.com.ID), http.MethodPost, "/v1/chat/completions", sdkBody(s.Model, c.stream))
			typ, code, msg := r.err()
			if r.status != c.status || code != c.code || typ == "" || msg == "" {
				t.Fatalf("%d %s/%s, want %d %s: %s", r.status, typ, code, c.status, c.code, r.raw)
			}
			if strings.Contains(r.raw, "sk-") {
				t.Fatalf("answer leaks a key: %s", r.raw)
			}
		})
	}
}

// TestStreamCutMidway: a model that fails after its first piece already
// went out is told in the stream as an error event, without [DONE], so a
// client does not take half an answer for a whole one.
func TestStreamCutMidway(t *testing.T) {
	e := newEnv(t, opts{})
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = w.Write([]byte(`{"model":"llama3.2","message":{"role":"assistant","content":"half an ans"},"done":false}` + "\n"))
	}))
	t.Cleanup(cut.Close)
	u, _ := url.Parse(cut.URL)
	port, _ := strconv.Atoi(u.Port())
	e.settings(true, fmt.Sprintf(`{"provider":"ollama","host":%q,"port":%d,"model":"llama3.2"}`, u.Hostname(), port))
	req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/chat/completions", strings.NewReader(sdkBody("llama3.2", true)))
	req.Header.Set("Authorization", "Bearer "+e.key(e.com.ID))
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Body.Close()
	if hr.StatusCode != http.StatusOK {
		t.Fatalf("status %d", hr.StatusCode)
	}
	chunks, done := readStream(t, hr.Body)
	if done || len(chunks) < 2 {
		t.Fatalf("done=%t chunks %+v", done, chunks)
	}
	last := chunks[len(chunks)-1]
	if last.Error == nil || last.Error.Code != "upstream_malformed" {
		t.Fatalf("last event %+v", last)
	}
	if chunks[1].Choices[0].Delta.Content != "half an ans" {
		t.Fatalf("piece %+v", chunks[1])
	}
}
