// Package aitest has fake model servers that speak the wire formats the AI
// module uses: Ollama's /api/chat (streaming NDJSON and single object) and
// the OpenAI-compatible /v1/chat/completions.
package aitest

import (
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Message is a chat turn as both wire formats carry it.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is what a fake received.
type Request struct {
	Model       string
	Messages    []Message
	Stream      bool
	Temperature *float64
	MaxTokens   int
	Header      http.Header
}

// Fake is the behaviour both fakes share.
type Fake struct {
	Server *httptest.Server

	mu       sync.Mutex
	models   map[string]bool
	fail     []int // statuses to answer with, first one first, before answering normally
	hold     chan struct{}
	held     chan struct{}
	answer   func(Request) string
	tokens   int
	requests []Request
	garbage  bool
}

func newFake(models ...string) *Fake {
	f := &Fake{models: map[string]bool{}, tokens: 10,
		answer: func(r Request) string { return "You said: " + r.Messages[len(r.Messages)-1].Content }}
	for _, m := range models {
		f.models[m] = true
	}
	return f
}

// URL is the fake's base URL.
func (f *Fake) URL() string { return f.Server.URL }

// Answer sets how the fake answers.
func (f *Fake) Answer(fn func(Request) string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = fn
}

// Tokens sets how many tokens each answer reports.
func (f *Fake) Tokens(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = n
}

// FailNext answers the next requests with these statuses, in order.
func (f *Fake) FailNext(statuses ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = append(f.fail, statuses...)
}

// Garbage makes every answer undecodable.
func (f *Fake) Garbage(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.garbage = on
}

// Hold makes answers wait until the returned release is called; held
// receives once per request that started waiting.
func (f *Fake) Hold() (held <-chan struct{}, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = make(chan struct{})
	f.held = make(chan struct{}, 100)
	h := f.hold
	var once sync.Once
	return f.held, func() { once.Do(func() { close(h) }) }
}

// Requests returns what the fake received, oldest first.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

// begin records a request and decides: a status to fail with (0: answer),
// and the answer.
func (f *Fake) begin(r *http.Request, req Request) (status int, answer string, tokens int, garbage bool) {
	req.Header = r.Header.Clone()
	f.mu.Lock()
	f.requests = append(f.requests, req)
	hold, held := f.hold, f.held
	if len(f.fail) > 0 {
		status = f.fail[0]
		f.fail = f.fail[1:]
	}
	answerFn, tokens, garbage := f.answer, f.tokens, f.garbage
	knownModel := len(f.models) == 0 || f.models[req.Model]
	f.mu.Unlock()
	if hold != nil {
		held <- struct{}{}
		select {
		case <-hold:
		case <-r.Context().Done():
			return http.StatusGatewayTimeout, "", 0, false
		}
	}
	if status == 0 && !knownModel {
		status = http.StatusNotFound
	}
	if status != 0 {
		return status, "", 0, false
	}
	return 0, answerFn(req), tokens, garbage
}

// Ollama is a fake Ollama server.
type Ollama struct{ *Fake }

// NewOllama starts a fake Ollama over plain HTTP that knows models (any
// model when none are given).
func NewOllama(t testing.TB, models ...string) *Ollama {
	f := &Ollama{newFake(models...)}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Server.Close)
	return f
}

// NewOllamaTLS starts a fake Ollama over TLS and writes its certificate to
// a CA file in a temporary directory, whose path it returns.
func NewOllamaTLS(t testing.TB, models ...string) (*Ollama, string) {
	f := &Ollama{newFake(models...)}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Server.Close)
	return f, writeCA(t, f.Server.TLS)
}

func writeCA(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	cert := cfg.Certificates[0].Certificate[0]
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (f *Ollama) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/chat" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	var body struct {
		Model    string         `json:"model"`
		Messages []Message      `json:"messages"`
		Stream   *bool          `json:"stream"`
		Options  map[string]any `json:"options"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":%q}`, err.Error())
		return
	}
	req := Request{Model: body.Model, Messages: body.Messages, Stream: body.Stream == nil || *body.Stream}
	if t, ok := body.Options["temperature"].(float64); ok {
		req.Temperature = &t
	}
	if n, ok := body.Options["num_predict"].(float64); ok {
		req.MaxTokens = int(n)
	}
	status, answer, tokens, garbage := f.begin(r, req)
	w.Header().Set("Content-Type", "application/x-ndjson")
	switch {
	case status == http.StatusNotFound:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":"model '%s' not found"}`, body.Model)
		return
	case status != 0:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":%q}`, http.StatusText(status))
		return
	case garbage:
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, `<html>not ollama</html>`)
		return
	}
	final := func(content string) map[string]any {
		return map[string]any{"model": body.Model, "message": map[string]string{"role": "assistant", "content": content},
			"done": true, "done_reason": "stop", "prompt_eval_count": tokens / 2, "eval_count": tokens - tokens/2}
	}
	enc := json.NewEncoder(w)
	if !req.Stream {
		_ = enc.Encode(final(answer))
		return
	}
	// Stream word by word, as Ollama streams tokens.
	words := strings.SplitAfter(answer, " ")
	fl, _ := w.(http.Flusher)
	for _, word := range words {
		_ = enc.Encode(map[string]any{"model": body.Model, "message": map[string]string{"role": "assistant", "content": word}, "done": false})
		if fl != nil {
			fl.Flush()
		}
	}
	_ = enc.Encode(final(""))
}

// OpenAI is a fake OpenAI-compatible endpoint under /v1.
type OpenAI struct {
	*Fake
	key     string
	headers map[string]string
}

// NewOpenAI starts a fake that accepts only the bearer key and requires
// every header in headers (name → value).
func NewOpenAI(t testing.TB, key string, headers map[string]string, models ...string) *OpenAI {
	f := &OpenAI{Fake: newFake(models...), key: key, headers: headers}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Server.Close)
	return f
}

// BaseURL is the API root to configure.
func (f *OpenAI) BaseURL() string { return f.Server.URL + "/v1" }

func (f *OpenAI) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path != "/v1/chat/completions" || r.Method != http.MethodPost {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"message":"no such route"}}`)
		return
	}
	if f.key != "" && r.Header.Get("Authorization") != "Bearer "+f.key {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}}`)
		return
	}
	for k, v := range f.headers {
		if r.Header.Get(k) != v {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":{"message":"header %s missing"}}`, k)
			return
		}
	}
	var body struct {
		Model       string    `json:"model"`
		Messages    []Message `json:"messages"`
		Temperature *float64  `json:"temperature"`
		MaxTokens   int       `json:"max_tokens"`
		Stream      bool      `json:"stream"`
		Options     *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"message":%q}}`, err.Error())
		return
	}
	req := Request{Model: body.Model, Messages: body.Messages, Temperature: body.Temperature, MaxTokens: body.MaxTokens, Stream: body.Stream}
	status, answer, tokens, garbage := f.begin(r, req)
	switch {
	case status == http.StatusNotFound:
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":"The model '%s' does not exist","code":"model_not_found"}}`, body.Model)
		return
	case status != 0:
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":%q}}`, http.StatusText(status))
		return
	case garbage:
		fmt.Fprint(w, `{"choices": [`)
		return
	}
	model := body.Model
	if model == "auto" {
		model = "routed-model"
	}
	if body.Stream {
		f.stream(w, model, answer, tokens, body.Options != nil && body.Options.IncludeUsage)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "model": model,
		"choices": []map[string]any{{"index": 0, "message": map[string]string{"role": "assistant", "content": answer}, "finish_reason": "stop"}},
		"usage":   map[string]int{"prompt_tokens": tokens / 2, "completion_tokens": tokens - tokens/2, "total_tokens": tokens},
	})
}

// stream answers as an OpenAI-compatible server streams: Server-Sent
// Events of chat.completion.chunk word by word, a finish chunk, a usage
// chunk when asked for, then data: [DONE].
func (f *OpenAI) stream(w http.ResponseWriter, model, answer string, tokens int, usage bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
	}
	chunk := func(delta map[string]string, finish any) map[string]any {
		return map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model,
			"choices": []map[string]any{{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	send(chunk(map[string]string{"role": "assistant", "content": ""}, nil))
	// A comment line, as some proxies send to keep the connection open.
	fmt.Fprint(w, ": keep-alive\n\n")
	for _, word := range strings.SplitAfter(answer, " ") {
		send(chunk(map[string]string{"content": word}, nil))
	}
	send(chunk(map[string]string{}, "stop"))
	if usage {
		send(map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model, "choices": []any{},
			"usage": map[string]int{"prompt_tokens": tokens / 2, "completion_tokens": tokens - tokens/2, "total_tokens": tokens}})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}
