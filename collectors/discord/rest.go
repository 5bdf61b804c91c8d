package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/waddlebot/waddlebot/internal/consume"
)

// Discord JSON error codes the sender tells apart.
const (
	codeUnknownChannel     = 10003
	codeUnknownWebhook     = 10015
	codeMissingAccess      = 50001
	codeMissingPermissions = 50013
	codeCannotMessageUser  = 50007
)

// Bounds on a rate-limit wait read from Discord: a zero or garbled
// retry_after must not turn into a busy loop, nor a huge one into a reply
// parked for days.
const (
	minRateLimitWait = 100 * time.Millisecond
	maxRateLimitWait = time.Hour
)

// rateLimit is what a 429 says.
type rateLimit struct {
	RetryAfter time.Duration
	Global     bool
	Scope      string // user, global or shared
	Bucket     string
}

// apiError is Discord's JSON error body: {"code", "message"} (and, for a
// 429, {"message", "retry_after", "global"}).
type apiError struct {
	Code       int
	Message    string
	RetryAfter time.Duration
	Global     bool
}

// parseAPIError reads an error body; ok is false when it is not Discord's
// JSON (a proxy's HTML page, say).
func parseAPIError(body []byte) (e apiError, ok bool) {
	var raw struct {
		Code       json.Number `json:"code"`
		Message    string      `json:"message"`
		RetryAfter json.Number `json:"retry_after"`
		Global     bool        `json:"global"`
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		return apiError{}, false
	}
	e.Message = raw.Message
	if c, err := raw.Code.Int64(); err == nil && c >= 0 && c <= math.MaxInt32 {
		e.Code = int(c)
	}
	if ra, err := raw.RetryAfter.Float64(); err == nil {
		e.RetryAfter = secondsToDuration(ra)
	}
	e.Global = raw.Global
	return e, true
}

// parseRateLimit reads a 429 answer: the body's retry_after (seconds, with
// a fraction) when there is one, else the Retry-After header (whole
// seconds); global from the body or X-RateLimit-Global.
func parseRateLimit(h http.Header, body []byte) rateLimit {
	rl := rateLimit{
		Global: strings.EqualFold(h.Get("X-RateLimit-Global"), "true"),
		Scope:  h.Get("X-RateLimit-Scope"),
		Bucket: h.Get("X-RateLimit-Bucket"),
	}
	if e, ok := parseAPIError(body); ok {
		rl.RetryAfter = e.RetryAfter
		rl.Global = rl.Global || e.Global
	}
	if rl.RetryAfter <= 0 {
		if s, err := strconv.ParseFloat(strings.TrimSpace(h.Get("Retry-After")), 64); err == nil {
			rl.RetryAfter = secondsToDuration(s)
		}
	}
	if rl.Scope == "global" {
		rl.Global = true
	}
	rl.RetryAfter = clampWait(rl.RetryAfter)
	return rl
}

// secondsToDuration converts seconds, rejecting what is not a finite,
// positive number (it returns 0 then).
func secondsToDuration(s float64) time.Duration {
	if math.IsNaN(s) || math.IsInf(s, 0) || s <= 0 {
		return 0
	}
	if s >= maxRateLimitWait.Seconds() {
		return maxRateLimitWait
	}
	return time.Duration(s * float64(time.Second))
}

func clampWait(d time.Duration) time.Duration {
	return min(max(d, minRateLimitWait), maxRateLimitWait)
}

// observed keeps what the transport saw of a request's 429, which
// discordgo reduces to a duration (it drops the global flag).
type observed struct {
	limited *rateLimit
}

// observer is a RoundTripper that notes a 429 answer, leaving the body
// readable for discordgo.
type observer struct {
	next http.RoundTripper
	into *observed
}

func (o observer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusTooManyRequests {
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		return resp, nil
	}
	rl := parseRateLimit(resp.Header, body)
	o.into.limited = &rl
	return resp, nil
}

// request sends one REST call with our own body through discordgo (its
// buckets keep the X-RateLimit-* accounting), with discordgo's silent
// retry on 429 turned off: a 429 comes back as consume.Defer so the reply
// waits in the stream rather than holding a send slot.
func (p *Platform) request(ctx context.Context, method, url, bucket string, body any) ([]byte, error) {
	var seen observed
	base := p.session.Client
	if base == nil {
		base = http.DefaultClient
	}
	next := base.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	client := *base
	client.Transport = observer{next: next, into: &seen}
	resp, err := p.session.RequestWithBucketID(method, url, body, bucket,
		discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false), discordgo.WithClient(&client))
	if err == nil {
		return resp, nil
	}
	return nil, p.classify(err, seen.limited)
}

// classify turns a failed REST call into the sender's error contract.
func (p *Platform) classify(err error, limited *rateLimit) error {
	var rle *discordgo.RateLimitError
	if limited != nil || errors.As(err, &rle) {
		rl := rateLimit{}
		if limited != nil {
			rl = *limited
		} else if rle.TooManyRequests != nil {
			rl.RetryAfter = clampWait(rle.RetryAfter)
		}
		if rl.RetryAfter <= 0 {
			rl.RetryAfter = clampWait(0)
		}
		if rl.Global {
			p.holdGlobal(rl.RetryAfter)
			return consume.Defer(rl.RetryAfter, "discord global rate limit")
		}
		return consume.Defer(rl.RetryAfter, "discord rate limit")
	}
	var rest *discordgo.RESTError
	if !errors.As(err, &rest) || rest.Response == nil {
		// A network error or a timeout: the message may or may not have
		// gone out; the retry is the lesser harm (the nonce catches it).
		return fmt.Errorf("discord: request failed: %w", redactURL(err))
	}
	status := rest.Response.StatusCode
	e, _ := parseAPIError(rest.ResponseBody)
	detail := fmt.Sprintf("HTTP %d", status)
	if e.Code != 0 || e.Message != "" {
		detail = fmt.Sprintf("HTTP %d, code %d: %s", status, e.Code, e.Message)
	}
	switch {
	case status == http.StatusUnauthorized:
		return consume.Permanent(fmt.Errorf(
			"discord: the bot token was refused (%s): check DISCORD_BOT_TOKEN (Bot tab of the application at discord.com/developers/applications)", detail))
	case status == http.StatusForbidden && (e.Code == codeMissingPermissions || e.Code == codeMissingAccess):
		return consume.Permanent(fmt.Errorf("discord: the bot lacks a permission in this channel (%s): give it View Channel and Send Messages", detail))
	case status == http.StatusNotFound && e.Code == codeUnknownChannel:
		return consume.Permanent(fmt.Errorf("discord: the channel is gone or the bot cannot see it (%s)", detail))
	case status == http.StatusNotFound && e.Code == codeUnknownWebhook:
		return consume.Permanent(fmt.Errorf("discord: the interaction expired (follow-ups are accepted for 15 minutes) (%s)", detail))
	case status >= 500:
		if d := retryAfterHeader(rest.Response.Header); d > 0 {
			return consume.RetryAfter(fmt.Errorf("discord: server error (%s)", detail), d)
		}
		return fmt.Errorf("discord: server error (%s)", detail)
	case status == http.StatusRequestTimeout:
		return fmt.Errorf("discord: request timed out (%s)", detail)
	case status >= 400:
		return consume.Permanent(fmt.Errorf("discord: request refused (%s)", detail))
	default:
		return fmt.Errorf("discord: unexpected answer (%s)", detail)
	}
}

func retryAfterHeader(h http.Header) time.Duration {
	s, err := strconv.ParseFloat(strings.TrimSpace(h.Get("Retry-After")), 64)
	if err != nil {
		return 0
	}
	return secondsToDuration(s)
}

// redactedError is a request error whose URL lost its secrets.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactURL takes the secrets out of the URL a request error names
// (net/http puts the whole URL in it): interaction and webhook URLs hold
// the interaction token, which answers as the bot for 15 minutes, and
// errors end up in logs. The cause (a timeout, a refused connection)
// stays reachable with errors.Is/As.
func redactURL(err error) error {
	var ue *url.Error
	if err == nil || !errors.As(err, &ue) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), ue.URL, redactEndpoint(ue.URL)), err: ue.Err}
}

// redactEndpoint keeps a URL's scheme, host and route, with the token that
// follows /webhooks/{id}/ and /interactions/{id}/ replaced, and no query.
func redactEndpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	parts := strings.Split(u.EscapedPath(), "/")
	for i := 0; i+2 < len(parts); i++ {
		if parts[i] == "webhooks" || parts[i] == "interactions" {
			parts[i+2] = "{token}"
			i += 2
		}
	}
	return u.Scheme + "://" + u.Host + strings.Join(parts, "/")
}
