package provider_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions/ai/aitest"
	"github.com/waddlebot/waddlebot/actions/ai/provider"
)

func streamers(t *testing.T) map[string]func(t *testing.T) (provider.Streamer, *aitest.Fake) {
	return map[string]func(t *testing.T) (provider.Streamer, *aitest.Fake){
		"ollama": func(t *testing.T) (provider.Streamer, *aitest.Fake) {
			fake := aitest.NewOllama(t, "llama3.2")
			host, port := hostPort(t, fake.URL())
			// Stream off in the configuration: ChatStream streams anyway.
			p, err := provider.NewOllama(provider.OllamaConfig{Host: host, Port: port, Stream: false, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			return p, fake.Fake
		},
		"openai": func(t *testing.T) (provider.Streamer, *aitest.Fake) {
			fake := aitest.NewOpenAI(t, "sk-good", nil, "llama3.2")
			p, err := provider.NewOpenAI(provider.OpenAIConfig{BaseURL: fake.BaseURL(), APIKey: "sk-good", Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			return p, fake.Fake
		},
	}
}

func TestChatStream(t *testing.T) {
	for name, mk := range streamers(t) {
		t.Run(name, func(t *testing.T) {
			p, fake := mk(t)
			fake.Tokens(12)
			var pieces []string
			resp, err := p.ChatStream(context.Background(), ask("one two three"), func(d string) error {
				pieces = append(pieces, d)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(pieces) < 3 || strings.Join(pieces, "") != "You said: one two three" {
				t.Fatalf("pieces %q", pieces)
			}
			if resp.Content != "You said: one two three" || resp.Tokens != 12 || resp.Model != "llama3.2" {
				t.Fatalf("response %+v", resp)
			}
			if r := fake.Requests(); len(r) != 1 || !r[0].Stream || r[0].MaxTokens != 42 {
				t.Fatalf("requests %+v", r)
			}
		})
	}
}

func TestChatStreamFailures(t *testing.T) {
	cases := []struct {
		name  string
		setup func(f *aitest.Fake)
		model string
		want  provider.Kind
	}{
		{"missing model", func(*aitest.Fake) {}, "nosuch", provider.KindModelNotFound},
		{"refused key", func(f *aitest.Fake) { f.FailNext(http.StatusUnauthorized) }, "llama3.2", provider.KindUnauthorized},
		{"unavailable", func(f *aitest.Fake) { f.FailNext(http.StatusBadGateway) }, "llama3.2", provider.KindTransient},
		{"malformed", func(f *aitest.Fake) { f.Garbage(true) }, "llama3.2", provider.KindMalformed},
		{"timeout", func(f *aitest.Fake) { f.Hold() }, "llama3.2", provider.KindTimeout},
	}
	for name, mk := range streamers(t) {
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				p, fake := mk(t)
				c.setup(fake)
				req := ask("hi")
				req.Model = c.model
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				_, err := p.ChatStream(ctx, req, func(string) error { return nil })
				if got := provider.KindOf(err); got != c.want {
					t.Fatalf("kind %s, want %s (%v)", got, c.want, err)
				}
			})
		}
	}
}

// TestChatStreamConsumerStops: a client that hung up stops the model call.
func TestChatStreamConsumerStops(t *testing.T) {
	gone := errors.New("client gone")
	for name, mk := range streamers(t) {
		t.Run(name, func(t *testing.T) {
			p, _ := mk(t)
			n := 0
			_, err := p.ChatStream(context.Background(), ask("a b c d e"), func(string) error { n++; return gone })
			if err == nil || n != 1 || !errors.Is(err, gone) {
				t.Fatalf("n=%d err=%v", n, err)
			}
		})
	}
}

// TestOpenAIStreamCutShort: a stream without data: [DONE] is malformed.
func TestOpenAIStreamCutShort(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"half\"}}]}\n\n"))
	}))
	t.Cleanup(srv.Close)
	p, err := provider.NewOpenAI(provider.OpenAIConfig{BaseURL: srv.URL + "/v1", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ChatStream(context.Background(), ask("hi"), func(string) error { return nil }); provider.KindOf(err) != provider.KindMalformed {
		t.Fatalf("kind %s (%v)", provider.KindOf(err), err)
	}
}
