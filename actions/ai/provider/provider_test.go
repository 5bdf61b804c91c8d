package provider_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions/ai/aitest"
	"github.com/waddlebot/waddlebot/actions/ai/provider"
)

func hostPort(t *testing.T, raw string) (string, int) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname(), port
}

func ask(text string) provider.Request {
	return provider.Request{Model: "llama3.2", Temperature: 0.3, MaxTokens: 42,
		Messages: []provider.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: text}}}
}

func TestOllamaWire(t *testing.T) {
	for _, stream := range []bool{true, false} {
		t.Run("stream="+strconv.FormatBool(stream), func(t *testing.T) {
			fake := aitest.NewOllama(t, "llama3.2")
			fake.Tokens(17)
			host, port := hostPort(t, fake.URL())
			p, err := provider.NewOllama(provider.OllamaConfig{Host: host, Port: port, Stream: stream, Timeout: 5 * time.Second,
				KeepAlive: 3 * time.Minute, BearerToken: "tok"})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := p.Chat(context.Background(), ask("why is the sky blue"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Content != "You said: why is the sky blue" || resp.Tokens != 17 || resp.Model != "llama3.2" {
				t.Fatalf("response %+v", resp)
			}
			reqs := fake.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			r := reqs[0]
			if r.Stream != stream || r.Model != "llama3.2" || r.Temperature == nil || *r.Temperature != 0.3 || r.MaxTokens != 42 ||
				len(r.Messages) != 2 || r.Messages[0].Role != "system" {
				t.Fatalf("request %+v", r)
			}
			if got := r.Header.Get("Authorization"); got != "Bearer tok" {
				t.Fatalf("authorization %q", got)
			}
		})
	}
}

func TestOllamaTLS(t *testing.T) {
	fake, caFile := aitest.NewOllamaTLS(t)
	host, port := hostPort(t, fake.URL())
	cases := []struct {
		name    string
		opts    provider.TLSOptions
		wantErr bool
	}{
		{"custom CA", provider.TLSOptions{CAFile: caFile}, false},
		{"system CAs only", provider.TLSOptions{}, true},
		{"skip verify when set", provider.TLSOptions{SkipVerify: true}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := provider.NewOllama(provider.OllamaConfig{Host: host, Port: port, TLS: true, TLSOptions: c.opts, Stream: true, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := p.Chat(context.Background(), ask("hello"))
			if c.wantErr {
				if err == nil {
					t.Fatal("an untrusted certificate was accepted")
				}
				if k := provider.KindOf(err); k == provider.KindTransient {
					t.Fatalf("a certificate error must not be retried: %v", err)
				}
				return
			}
			if err != nil || resp.Content != "You said: hello" {
				t.Fatalf("%+v, %v", resp, err)
			}
		})
	}
	if _, err := provider.NewOllama(provider.OllamaConfig{Host: host, Port: port, TLS: true, TLSOptions: provider.TLSOptions{CAFile: "/nonexistent/ca.pem"}}); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
}

func TestOllamaFailures(t *testing.T) {
	cases := []struct {
		name  string
		setup func(f *aitest.Ollama)
		model string
		want  provider.Kind
	}{
		{"missing model", func(*aitest.Ollama) {}, "nosuchmodel", provider.KindModelNotFound},
		{"refused token", func(f *aitest.Ollama) { f.FailNext(http.StatusUnauthorized) }, "llama3.2", provider.KindUnauthorized},
		{"unavailable", func(f *aitest.Ollama) { f.FailNext(http.StatusServiceUnavailable) }, "llama3.2", provider.KindTransient},
		{"malformed", func(f *aitest.Ollama) { f.Garbage(true) }, "llama3.2", provider.KindMalformed},
		{"timeout", func(f *aitest.Ollama) { f.Hold() }, "llama3.2", provider.KindTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fake := aitest.NewOllama(t, "llama3.2")
			c.setup(fake)
			host, port := hostPort(t, fake.URL())
			p, err := provider.NewOllama(provider.OllamaConfig{Host: host, Port: port, Stream: true, Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			req := ask("hi")
			req.Model = c.model
			_, err = p.Chat(context.Background(), req)
			if got := provider.KindOf(err); got != c.want {
				t.Fatalf("kind %s, want %s (%v)", got, c.want, err)
			}
		})
	}
}

func TestOllamaConnectionRefusedIsTransient(t *testing.T) {
	fake := aitest.NewOllama(t)
	host, port := hostPort(t, fake.URL())
	fake.Server.Close()
	p, err := provider.NewOllama(provider.OllamaConfig{Host: host, Port: port, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Chat(context.Background(), ask("hi")); provider.KindOf(err) != provider.KindTransient {
		t.Fatalf("kind %s (%v)", provider.KindOf(err), err)
	}
}

func TestOpenAIWire(t *testing.T) {
	fake := aitest.NewOpenAI(t, "sk-good", map[string]string{"X-Preferred-Model": "gpt-small"})
	fake.Tokens(30)
	cases := []struct {
		name    string
		key     string
		headers map[string]string
		model   string
		want    provider.Kind
		content string
	}{
		{"ok with auto", "sk-good", map[string]string{"X-Preferred-Model": "gpt-small"}, "auto", provider.KindOther, "You said: hi"},
		{"refused key", "sk-bad", map[string]string{"X-Preferred-Model": "gpt-small"}, "auto", provider.KindUnauthorized, ""},
		{"missing extra header", "sk-good", nil, "auto", provider.KindBadRequest, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := provider.NewOpenAI(provider.OpenAIConfig{BaseURL: fake.BaseURL(), APIKey: c.key, Headers: c.headers, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			req := ask("hi")
			req.Model = c.model
			resp, err := p.Chat(context.Background(), req)
			if c.content != "" {
				if err != nil || resp.Content != c.content || resp.Tokens != 30 || resp.Model != "routed-model" {
					t.Fatalf("%+v, %v", resp, err)
				}
				return
			}
			if got := provider.KindOf(err); got != c.want {
				t.Fatalf("kind %s, want %s (%v)", got, c.want, err)
			}
		})
	}
	last := fake.Requests()[0]
	if last.Model != "auto" || last.Temperature == nil || *last.Temperature != 0.3 || last.MaxTokens != 42 || last.Stream {
		t.Fatalf("request %+v", last)
	}
}

func TestOpenAIFailures(t *testing.T) {
	cases := []struct {
		name  string
		setup func(f *aitest.OpenAI)
		model string
		want  provider.Kind
	}{
		{"missing model", func(*aitest.OpenAI) {}, "nosuch", provider.KindModelNotFound},
		{"unavailable", func(f *aitest.OpenAI) { f.FailNext(http.StatusBadGateway) }, "gpt", provider.KindTransient},
		{"rate limited", func(f *aitest.OpenAI) { f.FailNext(http.StatusTooManyRequests) }, "gpt", provider.KindTransient},
		{"malformed", func(f *aitest.OpenAI) { f.Garbage(true) }, "gpt", provider.KindMalformed},
		{"timeout", func(f *aitest.OpenAI) { f.Hold() }, "gpt", provider.KindTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fake := aitest.NewOpenAI(t, "", nil, "gpt")
			c.setup(fake)
			p, err := provider.NewOpenAI(provider.OpenAIConfig{BaseURL: fake.BaseURL(), Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			req := ask("hi")
			req.Model = c.model
			_, err = p.Chat(context.Background(), req)
			if got := provider.KindOf(err); got != c.want {
				t.Fatalf("kind %s, want %s (%v)", got, c.want, err)
			}
			if err != nil && strings.Contains(err.Error(), "sk-") {
				t.Fatalf("error leaks a key: %v", err)
			}
		})
	}
}

func TestOpenAIBaseURL(t *testing.T) {
	for _, bad := range []string{"", "ftp://x", "not a url", "http://"} {
		if _, err := provider.NewOpenAI(provider.OpenAIConfig{BaseURL: bad}); err == nil {
			t.Errorf("base URL %q accepted", bad)
		}
	}
}

// TestOllamaStreamCutShort: a stream that ends without its done line (a
// proxy cut it) is malformed, not an answer.
func TestOllamaStreamCutShort(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = w.Write([]byte(`{"message":{"role":"assistant","content":"half an ans"},"done":false}` + "\n"))
	}))
	t.Cleanup(srv.Close)
	host, port := hostPort(t, srv.URL)
	p, err := provider.NewOllama(provider.OllamaConfig{Host: host, Port: port, Stream: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Chat(context.Background(), ask("hi")); provider.KindOf(err) != provider.KindMalformed {
		t.Fatalf("kind %s (%v)", provider.KindOf(err), err)
	}
}

func TestOllamaConfigChecks(t *testing.T) {
	for _, c := range []provider.OllamaConfig{{Host: "", Port: 11434}, {Host: "x", Port: 0}, {Host: "x", Port: 70000}} {
		if _, err := provider.NewOllama(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	u, err := provider.OllamaConfig{Host: "::1", Port: 443, TLS: true}.BaseURL()
	if err != nil || u.String() != "https://[::1]:443" {
		t.Fatalf("%v, %v", u, err)
	}
}
