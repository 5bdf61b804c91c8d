// Package provider talks to language models for the AI module: Ollama
// through its api package, and any OpenAI-compatible chat-completions
// endpoint (OpenAI, vLLM, the WaddleAI proxy) over plain net/http. Both sit
// behind Provider, so the module neither knows nor cares which one a
// community picked.
package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"` // system, user, assistant
	Content string `json:"content"`
}

// Request is one chat completion.
type Request struct {
	Model       string
	Messages    []Message
	Temperature float64
	MaxTokens   int
}

// Response is the model's answer and what it cost.
type Response struct {
	Content string
	Model   string
	// Tokens is prompt plus completion tokens, as the endpoint counted them
	// (0 when it did not say).
	Tokens int
	// PromptTokens and CompletionTokens split Tokens when the endpoint
	// said how (both 0 otherwise).
	PromptTokens, CompletionTokens int
}

// Provider is a chat model.
type Provider interface {
	Chat(ctx context.Context, req Request) (Response, error)
}

// Kind sorts failures by what the module tells chat and whether a retry may
// help.
type Kind int

const (
	KindOther         Kind = iota
	KindModelNotFound      // the model is not installed or not known to the endpoint
	KindUnauthorized       // the key or token was refused
	KindTimeout            // no answer in time
	KindTransient          // 5xx, 429, connection refused or reset: worth one retry
	KindMalformed          // the endpoint answered something we cannot read
	KindBadRequest         // the endpoint refused the request (4xx other than the above)
)

func (k Kind) String() string {
	switch k {
	case KindModelNotFound:
		return "model_not_found"
	case KindUnauthorized:
		return "unauthorized"
	case KindTimeout:
		return "timeout"
	case KindTransient:
		return "transient"
	case KindMalformed:
		return "malformed"
	case KindBadRequest:
		return "bad_request"
	}
	return "other"
}

// Error is a failed chat call.
type Error struct {
	Kind   Kind
	Status int // HTTP status, when there was one
	Err    error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("provider: %s (HTTP %d): %v", e.Kind, e.Status, e.Err)
	}
	return fmt.Sprintf("provider: %s: %v", e.Kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of a chat error (KindOther for foreign errors).
func KindOf(err error) Kind {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return KindOther
}

// classifyStatus maps an HTTP status to a kind.
func classifyStatus(status int) Kind {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return KindUnauthorized
	case status == http.StatusNotFound:
		return KindModelNotFound
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return KindTimeout
	case status == http.StatusTooManyRequests || status >= 500:
		return KindTransient
	case status >= 400:
		return KindBadRequest
	}
	return KindOther
}

// classifyTransport sorts an error from the HTTP round trip itself.
func classifyTransport(ctx context.Context, err error) *Error {
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || (errors.As(err, &nerr) && nerr.Timeout()):
		return &Error{Kind: KindTimeout, Err: err}
	case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return &Error{Kind: KindTransient, Err: err}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return &Error{Kind: KindTransient, Err: err}
	}
	return &Error{Kind: KindOther, Err: err}
}

// TLSOptions configure a client's TLS.
type TLSOptions struct {
	// CAFile, when set, is a PEM bundle trusted in addition to the system's.
	CAFile string
	// SkipVerify turns certificate checks off; only when explicitly set.
	SkipVerify bool
}

// HTTPClient builds the client a provider uses: TLS per opts, and headers
// (a bearer token, extra headers) added to every request by the transport,
// since the Ollama api package takes only an http.Client.
func HTTPClient(opts TLSOptions, headers http.Header) (*http.Client, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	tcfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("provider: unable to read CA file %s: %w", opts.CAFile, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("provider: CA file %s holds no PEM certificate", opts.CAFile)
		}
		tcfg.RootCAs = pool
	}
	if opts.SkipVerify {
		tcfg.InsecureSkipVerify = true //nolint:gosec // only when a community's settings say so explicitly
	}
	base.TLSClientConfig = tcfg
	var rt http.RoundTripper = base
	if len(headers) > 0 {
		rt = &headerTransport{next: base, headers: headers.Clone()}
	}
	// No client timeout: every call carries its own deadline in ctx.
	return &http.Client{Transport: rt}, nil
}

type headerTransport struct {
	next    http.RoundTripper
	headers http.Header
}

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, vs := range t.headers {
		// A header the client set itself (Ollama's own signing) wins.
		if r.Header.Get(k) != "" {
			continue
		}
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return t.next.RoundTrip(r)
}

// CloseIdle releases a client's idle connections (a replaced provider).
func CloseIdle(c *http.Client) {
	if c != nil {
		c.CloseIdleConnections()
	}
}

// withTimeout bounds one call: the provider's own timeout, or ctx's
// deadline when that is sooner.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
