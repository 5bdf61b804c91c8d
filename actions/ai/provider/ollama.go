package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ollama/ollama/api"
)

// OllamaConfig reaches an Ollama server.
type OllamaConfig struct {
	Host string
	Port int
	TLS  bool
	TLSOptions
	// BearerToken is sent as Authorization when the server sits behind an
	// authenticating proxy.
	BearerToken string
	// KeepAlive is how long Ollama keeps the model loaded after a call (0:
	// the server's default).
	KeepAlive time.Duration
	// Timeout bounds one call.
	Timeout time.Duration
	// Stream asks for NDJSON chunks (the default in Ollama) rather than one
	// object; the answer is the same, streaming only keeps a slow proxy from
	// timing the connection out while the model thinks.
	Stream bool
}

// Ollama is a Provider over Ollama's /api/chat.
type Ollama struct {
	cfg    OllamaConfig
	client *api.Client
	http   *http.Client
}

// BaseURL is the server's URL built from host, port and TLS.
func (c OllamaConfig) BaseURL() (*url.URL, error) {
	if c.Host == "" {
		return nil, errors.New("provider: ollama host is empty")
	}
	if c.Port < 1 || c.Port > 65535 {
		return nil, fmt.Errorf("provider: ollama port %d out of range", c.Port)
	}
	scheme := "http"
	if c.TLS {
		scheme = "https"
	}
	host := strings.TrimSuffix(strings.TrimPrefix(c.Host, "["), "]")
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(c.Port))}, nil
}

// NewOllama builds the client; it does not connect.
func NewOllama(cfg OllamaConfig) (*Ollama, error) {
	base, err := cfg.BaseURL()
	if err != nil {
		return nil, err
	}
	var headers http.Header
	if cfg.BearerToken != "" {
		headers = http.Header{"Authorization": {"Bearer " + cfg.BearerToken}}
	}
	hc, err := HTTPClient(cfg.TLSOptions, headers)
	if err != nil {
		return nil, err
	}
	return &Ollama{cfg: cfg, client: api.NewClient(base, hc), http: hc}, nil
}

// Close releases idle connections.
func (o *Ollama) Close() { CloseIdle(o.http) }

// Chat asks the model and gathers the streamed answer.
func (o *Ollama) Chat(ctx context.Context, req Request) (Response, error) {
	return o.chat(ctx, req, o.cfg.Stream, nil)
}

// ChatStream asks the model with Ollama's streaming on, whatever the
// configuration says, and hands each piece of the answer to fn as it comes.
func (o *Ollama) ChatStream(ctx context.Context, req Request, fn func(delta string) error) (Response, error) {
	return o.chat(ctx, req, true, fn)
}

func (o *Ollama) chat(ctx context.Context, req Request, stream bool, fn func(string) error) (Response, error) {
	ctx, cancel := withTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	msgs := make([]api.Message, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = api.Message{Role: m.Role, Content: m.Content}
	}
	creq := &api.ChatRequest{Model: req.Model, Messages: msgs, Stream: &stream, Options: map[string]any{}}
	if req.Temperature >= 0 {
		creq.Options["temperature"] = req.Temperature
	}
	if req.MaxTokens > 0 {
		creq.Options["num_predict"] = req.MaxTokens
	}
	if o.cfg.KeepAlive > 0 {
		creq.KeepAlive = &api.Duration{Duration: o.cfg.KeepAlive}
	}
	var out strings.Builder
	var resp Response
	done := false
	err := o.client.Chat(ctx, creq, func(r api.ChatResponse) error {
		out.WriteString(r.Message.Content)
		if fn != nil && r.Message.Content != "" {
			if err := fn(r.Message.Content); err != nil {
				return &Error{Kind: KindOther, Err: fmt.Errorf("stream consumer: %w", err)}
			}
		}
		if r.Done {
			done = true
			resp.Model = r.Model
			resp.Tokens = r.PromptEvalCount + r.EvalCount
			resp.PromptTokens, resp.CompletionTokens = r.PromptEvalCount, r.EvalCount
		}
		return nil
	})
	if err != nil {
		return Response{}, ollamaError(ctx, err)
	}
	if !done {
		// The body ended before the final line: a proxy cut it, or the
		// server is not Ollama.
		return Response{}, &Error{Kind: KindMalformed, Err: errors.New("ollama answer ended without its final (done) line")}
	}
	resp.Content = out.String()
	return resp, nil
}

func ollamaError(ctx context.Context, err error) error {
	var se api.StatusError
	if errors.As(err, &se) {
		kind := classifyStatus(se.StatusCode)
		if se.StatusCode == http.StatusNotFound && !strings.Contains(strings.ToLower(se.ErrorMessage), "not found") {
			// A 404 that does not name a model: the URL points elsewhere.
			kind = KindBadRequest
		}
		return &Error{Kind: kind, Status: se.StatusCode, Err: err}
	}
	var ae api.AuthorizationError
	if errors.As(err, &ae) {
		return &Error{Kind: KindUnauthorized, Status: ae.StatusCode, Err: err}
	}
	if ctx.Err() != nil {
		return &Error{Kind: KindTimeout, Err: err}
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	// The api package reports an undecodable line as a bare error with
	// the line as its text; transport errors come from net/http.
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return classifyTransport(ctx, err)
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		return classifyTransport(ctx, err)
	}
	// What is left is the api package's own: a line that did not decode,
	// reported with the line as the error's text.
	return &Error{Kind: KindMalformed, Err: err}
}
