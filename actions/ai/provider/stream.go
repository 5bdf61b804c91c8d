package provider

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Streamer is a Provider that can hand out its answer as it is written:
// the OpenAI-compatible endpoint of our own passes the pieces on to its
// client as Server-Sent Events.
type Streamer interface {
	Provider
	// ChatStream calls fn with each piece of the answer, in order, and
	// returns the whole answer (Content is every piece joined) once the
	// model is done. An error from fn stops the call.
	ChatStream(ctx context.Context, req Request, fn func(delta string) error) (Response, error)
}

var (
	_ Streamer = (*Ollama)(nil)
	_ Streamer = (*OpenAI)(nil)
)

// maxSSELine bounds one event line of an upstream stream.
const maxSSELine = 1 << 20

type streamChunk struct {
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// ChatStream sends a streaming completion request and reads the endpoint's
// Server-Sent Events until data: [DONE].
func (o *OpenAI) ChatStream(ctx context.Context, req Request, fn func(delta string) error) (Response, error) {
	ctx, cancel := withTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	hresp, err := o.post(ctx, req, true)
	if err != nil {
		return Response{}, err
	}
	defer hresp.Body.Close()
	if hresp.StatusCode >= 400 {
		raw, err := io.ReadAll(io.LimitReader(hresp.Body, maxAnswer))
		if err != nil {
			return Response{}, classifyTransport(ctx, err)
		}
		return Response{}, statusError(hresp.StatusCode, raw)
	}
	sc := bufio.NewScanner(hresp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	var out strings.Builder
	var resp Response
	done := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			// Blank separators, comments (": keep-alive") and event names.
			continue
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			done = true
			break
		}
		var ch streamChunk
		if err := json.Unmarshal([]byte(data), &ch); err != nil {
			return Response{}, &Error{Kind: KindMalformed, Status: hresp.StatusCode, Err: fmt.Errorf("undecodable stream chunk: %w", err)}
		}
		if ch.Model != "" {
			resp.Model = ch.Model
		}
		if ch.Usage != nil {
			resp.Tokens = ch.Usage.TotalTokens
			resp.PromptTokens, resp.CompletionTokens = ch.Usage.PromptTokens, ch.Usage.CompletionTokens
			if resp.Tokens == 0 {
				resp.Tokens = ch.Usage.PromptTokens + ch.Usage.CompletionTokens
			}
		}
		for _, c := range ch.Choices {
			if c.Delta.Content == "" {
				continue
			}
			out.WriteString(c.Delta.Content)
			if err := fn(c.Delta.Content); err != nil {
				return Response{}, &Error{Kind: KindOther, Err: fmt.Errorf("stream consumer: %w", err)}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Response{}, classifyTransport(ctx, err)
	}
	if !done {
		return Response{}, &Error{Kind: KindMalformed, Status: hresp.StatusCode, Err: errors.New("stream ended without data: [DONE]")}
	}
	resp.Content = out.String()
	return resp, nil
}
