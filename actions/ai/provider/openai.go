package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// OpenAIConfig reaches an OpenAI-compatible chat-completions endpoint.
type OpenAIConfig struct {
	// BaseURL is the API root, such as https://api.openai.com/v1; the
	// request goes to <BaseURL>/chat/completions.
	BaseURL string
	APIKey  string
	// Headers are sent with every request (a routing proxy's
	// preferred-model header, an organization id).
	Headers map[string]string
	TLSOptions
	Timeout time.Duration
}

// OpenAI is a Provider over /v1/chat/completions.
type OpenAI struct {
	cfg      OpenAIConfig
	endpoint string
	http     *http.Client
}

// maxAnswer bounds what we read of an answer: far more than any chat reply.
const maxAnswer = 4 << 20

// NewOpenAI builds the client; it does not connect.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("provider: base URL %q must be an http(s) URL", cfg.BaseURL)
	}
	headers := http.Header{}
	for k, v := range cfg.Headers {
		headers.Set(k, v)
	}
	if cfg.APIKey != "" {
		headers.Set("Authorization", "Bearer "+cfg.APIKey)
	}
	hc, err := HTTPClient(cfg.TLSOptions, headers)
	if err != nil {
		return nil, err
	}
	return &OpenAI{cfg: cfg, endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/chat/completions", http: hc}, nil
}

// Close releases idle connections.
func (o *OpenAI) Close() { CloseIdle(o.http) }

type chatRequest struct {
	Model       string    `json:"model"`
	Messages    []Message `json:"messages"`
	Temperature *float64  `json:"temperature,omitempty"`
	MaxTokens   int       `json:"max_tokens,omitempty"`
	Stream      bool      `json:"stream"`
	// StreamOptions asks a streaming endpoint for usage in its last chunk.
	StreamOptions *streamOptions `json:"stream_options,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

type errorBody struct {
	Error struct {
		Message string `json:"message"`
		Code    any    `json:"code"`
	} `json:"error"`
}

// statusError reads an endpoint's error answer.
func statusError(status int, raw []byte) *Error {
	var eb errorBody
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &eb) == nil && eb.Error.Message != "" {
		msg = eb.Error.Message
	}
	kind := classifyStatus(status)
	if kind == KindBadRequest && (strings.Contains(strings.ToLower(msg), "model") && strings.Contains(strings.ToLower(msg), "not")) {
		// OpenAI answers an unknown model with 404 and vLLM with 400.
		kind = KindModelNotFound
	}
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return &Error{Kind: kind, Status: status, Err: errors.New(msg)}
}

// post sends a completion request, streaming or not; a transport failure
// comes back classified.
func (o *OpenAI) post(ctx context.Context, req Request, stream bool) (*http.Response, error) {
	body := chatRequest{Model: req.Model, Messages: req.Messages, MaxTokens: req.MaxTokens}
	accept := "application/json"
	if stream {
		body.Stream, body.StreamOptions = true, &streamOptions{IncludeUsage: true}
		accept = "text/event-stream"
	}
	if req.Temperature >= 0 {
		t := req.Temperature
		body.Temperature = &t
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, &Error{Kind: KindOther, Err: err}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, o.endpoint, bytes.NewReader(data))
	if err != nil {
		return nil, &Error{Kind: KindOther, Err: err}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", accept)
	hresp, err := o.http.Do(hreq)
	if err != nil {
		return nil, classifyTransport(ctx, err)
	}
	return hresp, nil
}

// Chat sends one non-streaming completion request.
func (o *OpenAI) Chat(ctx context.Context, req Request) (Response, error) {
	ctx, cancel := withTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	hresp, err := o.post(ctx, req, false)
	if err != nil {
		return Response{}, err
	}
	defer hresp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, maxAnswer))
	if err != nil {
		return Response{}, classifyTransport(ctx, err)
	}
	if hresp.StatusCode >= 400 {
		return Response{}, statusError(hresp.StatusCode, raw)
	}
	var cr chatResponse
	if err := json.Unmarshal(raw, &cr); err != nil {
		return Response{}, &Error{Kind: KindMalformed, Status: hresp.StatusCode, Err: fmt.Errorf("undecodable answer: %w", err)}
	}
	if len(cr.Choices) == 0 {
		return Response{}, &Error{Kind: KindMalformed, Status: hresp.StatusCode, Err: errors.New("answer has no choices")}
	}
	tokens := cr.Usage.TotalTokens
	if tokens == 0 {
		tokens = cr.Usage.PromptTokens + cr.Usage.CompletionTokens
	}
	return Response{Content: cr.Choices[0].Message.Content, Model: cr.Model, Tokens: tokens,
		PromptTokens: cr.Usage.PromptTokens, CompletionTokens: cr.Usage.CompletionTokens}, nil
}
