package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/consume"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

// PlatformConfig configures the Slack sending side.
type PlatformConfig struct {
	// APIURL is the Web API base; "" means Slack's own.
	APIURL       string
	Workspaces   Workspaces
	Interactions *collectors.Interactions
	// ResponseURLHost is the only host a slash command's response URL may
	// name; "" means DefaultResponseURLHost. A response URL comes from the
	// request that carried the command, so this keeps a forged one from
	// making the sender post elsewhere. For the default host the URL must
	// be https; another host (a test's fake) may be http too. A host without
	// a port matches any port.
	ResponseURLHost string
	HTTPClient      *http.Client
	Logger          *slog.Logger
}

// DefaultResponseURLHost is where Slack's response URLs point.
const DefaultResponseURLHost = "hooks.slack.com"

// Platform sends replies to Slack; it implements collectors.Platform. The
// per-channel budget (about one message a second) is applied by
// collectors.Sender, not here.
type Platform struct {
	apiURL          string
	responseURLHost string
	workspaces      Workspaces
	interactions    *collectors.Interactions
	httpClient      *http.Client
	log             *slog.Logger
}

// NewPlatform checks cfg.
func NewPlatform(cfg PlatformConfig) (*Platform, error) {
	if cfg.Workspaces == nil {
		return nil, errors.New("slack: the sender needs Workspaces")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ResponseURLHost == "" {
		cfg.ResponseURLHost = DefaultResponseURLHost
	}
	return &Platform{apiURL: normalizeAPIURL(cfg.APIURL), responseURLHost: strings.ToLower(cfg.ResponseURLHost), workspaces: cfg.Workspaces, interactions: cfg.Interactions,
		httpClient: cfg.HTTPClient,
		log:        cfg.Logger.With(logging.KeyPart, "sender", logging.KeyPlatform, schemas.PlatformSlack)}, nil
}

// Name is the platform as subjects spell it.
func (p *Platform) Name() string { return schemas.PlatformSlack }

// Send delivers one reply (see collectors.Platform for what its errors
// mean): through the slash command's response URL when the reply answers
// one, else chat.postMessage, or chat.postEphemeral for a private reply.
func (p *Platform) Send(ctx context.Context, r *schemas.Reply) error {
	if r.Action != "" && r.Action != schemas.ActionMessage {
		return consume.Permanent(fmt.Errorf("slack: reply %s asks for action %q, which Slack does not support", r.ID, r.Action))
	}
	if strings.TrimSpace(r.Text) == "" {
		return consume.Permanent(fmt.Errorf("slack: reply %s has no text", r.ID))
	}
	text := neutralizeBroadcasts(r.Text)
	private := r.Visibility == schemas.VisibilityPrivate || r.Visibility == schemas.VisibilityEphemeral

	if p.interactions != nil && r.EventID != "" {
		in, ok, err := p.interactions.Get(ctx, schemas.PlatformSlack, r.EventID)
		if err != nil {
			return fmt.Errorf("slack: unable to look up the interaction of reply %s: %w", r.ID, err)
		}
		if ok && in.ResponseURL != "" {
			err := p.respond(ctx, in.ResponseURL, text, private || in.Ephemeral)
			if !errors.Is(err, errResponseURLSpent) {
				return err
			}
			// Past its five uses (or its 30 minutes): the answer still
			// goes out, as an ordinary message.
			p.log.Debug("slack: response URL spent; posting instead", logging.KeyID, r.ID)
			private = private || in.Ephemeral
		}
	}
	if private {
		if r.Target.UserID == "" {
			// Posting it to the whole channel could show someone else
			// what was meant for one user.
			return consume.Permanent(fmt.Errorf("slack: private reply %s names no user", r.ID))
		}
		return p.postEphemeral(ctx, r, text)
	}
	return p.postMessage(ctx, r, text)
}

// neutralizeBroadcasts keeps module text from pinging a whole channel or
// workspace: Slack reads <!channel>, <!here>, <!everyone> and
// <!subteam^…> from message text as mentions, so every "<!" is sent as
// the escaped "&lt;!", which Slack shows as the plain characters. User
// mentions (<@U…>) and links are left alone.
func neutralizeBroadcasts(text string) string {
	return strings.ReplaceAll(text, "<!", "&lt;!")
}

func (p *Platform) client(ctx context.Context, r *schemas.Reply) (*slack.Client, error) {
	token, err := p.workspaces.BotToken(ctx, r.Target.ServerID)
	if errors.Is(err, ErrNotInstalled) {
		return nil, consume.Permanent(fmt.Errorf("slack: reply %s is for workspace %q, which is not installed (install it through /connect/slack): %w",
			r.ID, r.Target.ServerID, err))
	}
	if err != nil {
		return nil, fmt.Errorf("slack: unable to get the bot token of %s: %w", r.Target.ServerID, err)
	}
	return slack.New(token, slack.OptionAPIURL(p.apiURL), slack.OptionHTTPClient(p.httpClient)), nil
}

func (p *Platform) postMessage(ctx context.Context, r *schemas.Reply, text string) error {
	api, err := p.client(ctx, r)
	if err != nil {
		return err
	}
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if r.Target.ThreadID != "" {
		opts = append(opts, slack.MsgOptionTS(r.Target.ThreadID))
	}
	_, _, err = api.PostMessageContext(ctx, r.Target.ChannelID, opts...)
	return p.sendError(ctx, r, "chat.postMessage", err)
}

func (p *Platform) postEphemeral(ctx context.Context, r *schemas.Reply, text string) error {
	api, err := p.client(ctx, r)
	if err != nil {
		return err
	}
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if r.Target.ThreadID != "" {
		opts = append(opts, slack.MsgOptionTS(r.Target.ThreadID))
	}
	_, err = api.PostEphemeralContext(ctx, r.Target.ChannelID, r.Target.UserID, opts...)
	return p.sendError(ctx, r, "chat.postEphemeral", err)
}

// permanentErrors are Slack error codes a retry cannot fix.
var permanentErrors = map[string]bool{
	"not_in_channel": true, "channel_not_found": true, "is_archived": true, "invalid_auth": true,
	"not_authed": true, "account_inactive": true, "token_revoked": true, "missing_scope": true,
	"msg_too_long": true, "no_text": true, "restricted_action": true, "user_not_in_channel": true,
	"cannot_reply_to_message": true, "ekm_access_denied": true, "team_access_not_granted": true,
}

// sendError maps a Web API result onto the sender's error contract.
func (p *Platform) sendError(ctx context.Context, r *schemas.Reply, method string, err error) error {
	if err == nil {
		return nil
	}
	var limited *slack.RateLimitedError
	if errors.As(err, &limited) {
		return consume.Defer(max(limited.RetryAfter, time.Second), "slack rate limit on "+method)
	}
	var refused slack.SlackErrorResponse
	if errors.As(err, &refused) {
		switch {
		case refused.Err == "ratelimited":
			return consume.Defer(time.Minute, "slack rate limit on "+method)
		case refused.Err == "token_revoked" || refused.Err == "account_inactive":
			// The workspace removed the app (or its bot user): stop using
			// the token; events for it will be dropped until a reinstall.
			if derr := p.workspaces.Disconnect(ctx, r.Target.ServerID, refused.Err); derr != nil {
				p.log.Warn("slack: unable to disconnect a workspace whose token was refused",
					logging.KeyID, r.Target.ServerID, logging.Err(derr))
			}
			return consume.Permanent(fmt.Errorf("slack: %s refused for workspace %s: %w", method, r.Target.ServerID, err))
		case permanentErrors[refused.Err]:
			return consume.Permanent(fmt.Errorf("slack: %s refused in %s: %w", method, r.Target.ChannelID, err))
		}
		return fmt.Errorf("slack: %s failed in %s: %w", method, r.Target.ChannelID, err)
	}
	var status slack.StatusCodeError
	if errors.As(err, &status) {
		switch {
		case status.Code == http.StatusTooManyRequests:
			// A 429 without a usable Retry-After.
			return consume.Defer(time.Minute, "slack rate limit on "+method)
		case status.Code >= 500:
			return fmt.Errorf("slack: %s failed: %w", method, err)
		default:
			return consume.Permanent(fmt.Errorf("slack: %s refused: %w", method, err))
		}
	}
	return fmt.Errorf("slack: %s failed: %w", method, err)
}

// errResponseURLSpent: the response URL no longer takes messages (used
// five times, or older than 30 minutes).
var errResponseURLSpent = errors.New("slack: response URL spent or expired")

// responseMessage is what a slash command's response URL takes.
type responseMessage struct {
	Text         string `json:"text"`
	ResponseType string `json:"response_type"`
	// ReplaceOriginal false: each reply is a new message, never an edit of
	// the previous answer.
	ReplaceOriginal bool `json:"replace_original"`
}

// respond posts to a slash command's response URL. Slack accepts at most
// five posts to one response URL within 30 minutes of the command; beyond
// that it refuses (4xx), which is reported as errResponseURLSpent so the
// caller falls back to chat.postMessage / chat.postEphemeral.
func (p *Platform) respond(ctx context.Context, responseURL, text string, ephemeral bool) error {
	msg := responseMessage{Text: text, ResponseType: "in_channel"}
	if ephemeral {
		msg.ResponseType = "ephemeral"
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return consume.Permanent(fmt.Errorf("slack: unable to encode a response: %w", err))
	}
	target, err := p.checkResponseURL(responseURL)
	if err != nil {
		return consume.Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return consume.Permanent(fmt.Errorf("slack: unusable response URL %s: %w", redactedURL(target), redactURLError(err)))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("slack: unable to post to the response URL: %w", redactURLError(err))
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests:
		wait := time.Minute
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			wait = time.Duration(secs) * time.Second
		}
		return consume.Defer(wait, "slack rate limit on the response URL")
	case resp.StatusCode >= 500:
		return fmt.Errorf("slack: response URL failed: %d %s", resp.StatusCode, strings.TrimSpace(string(detail)))
	default:
		return fmt.Errorf("%w: %d %s", errResponseURLSpent, resp.StatusCode, strings.TrimSpace(string(detail)))
	}
}

// checkResponseURL parses a response URL and refuses one that does not
// point at Slack's response host. Its errors never include the URL's path:
// the path is the credential.
func (p *Platform) checkResponseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("slack: the response URL is not a URL")
	}
	host := strings.ToLower(u.Host)
	if !strings.Contains(p.responseURLHost, ":") {
		host = strings.ToLower(u.Hostname())
	}
	schemes := "https"
	if p.responseURLHost != DefaultResponseURLHost {
		schemes = "http or https"
	}
	schemeOK := u.Scheme == "https" || (u.Scheme == "http" && p.responseURLHost != DefaultResponseURLHost)
	if host != p.responseURLHost || !schemeOK || u.User != nil {
		return nil, fmt.Errorf("slack: refused to post to response URL %s: response URLs must be %s on %s",
			redactedURL(u), schemes, p.responseURLHost)
	}
	return u, nil
}

// redactedURL is u without what makes it a credential: its path, query and
// user info.
func redactedURL(u *url.URL) string {
	return u.Scheme + "://" + u.Host + "/…"
}

// redactURLError strips the URL net/http puts in its errors (a *url.Error
// names the whole response URL), keeping what went wrong: a timeout, a
// refused connection.
func redactURLError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		shown := "URL"
		if u, perr := url.Parse(urlErr.URL); perr == nil {
			shown = redactedURL(u)
		}
		return fmt.Errorf("%s %s: %w", urlErr.Op, shown, urlErr.Err)
	}
	return err
}
