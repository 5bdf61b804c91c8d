package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/waddlebot/waddlebot/internal/logging"
)

// Events API paths.
const (
	EventsPath   = "/webhooks/slack/events"
	CommandsPath = "/webhooks/slack/commands"
)

const (
	eventsMaxBody = 1 << 20
	// signatureWindow is how far a request's timestamp may be from our
	// clock: an older request is a replay.
	signatureWindow = 5 * time.Minute
	// DefaultAnswerWithin is how long a request may be handled before it
	// is answered anyway, well within Slack's 3-second deadline.
	DefaultAnswerWithin = 2 * time.Second
)

// EventsConfig configures the Events API endpoints.
type EventsConfig struct {
	SigningSecret string
	Intake        *Intake
	// AnswerWithin bounds the handling of one request (0 means
	// DefaultAnswerWithin): past it an event is answered 500 (Slack
	// retries it) and a slash command with an apology.
	AnswerWithin time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

// Events serves the Events API (events and slash commands over HTTP), the
// alternative to Socket Mode.
type Events struct {
	secret       string
	intake       *Intake
	answerWithin time.Duration
	now          func() time.Time
	log          *slog.Logger
}

// NewEvents makes the Events API endpoints.
func NewEvents(cfg EventsConfig) (*Events, error) {
	if cfg.SigningSecret == "" {
		return nil, errors.New("slack: the Events API needs a signing secret")
	}
	if cfg.Intake == nil {
		return nil, errors.New("slack: the Events API needs an intake")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = logging.Discard()
	}
	if cfg.AnswerWithin <= 0 {
		cfg.AnswerWithin = DefaultAnswerWithin
	}
	return &Events{secret: cfg.SigningSecret, intake: cfg.Intake, answerWithin: cfg.AnswerWithin, now: cfg.Now,
		log: cfg.Logger}, nil
}

// within runs handle with a context that ends after answerWithin and
// returns its error, or a timeout error once answerWithin has passed even
// if handle has not returned (it then finishes on its own; its context is
// cancelled).
func (e *Events) within(parent context.Context, handle func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(parent, e.answerWithin)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- handle(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("slack: not handled within %s: %w", e.answerWithin, ctx.Err())
	}
}

// Mount adds POST EventsPath and POST CommandsPath to mux.
func (e *Events) Mount(mux interface{ Handle(string, http.Handler) }) {
	mux.Handle(EventsPath, http.HandlerFunc(e.serveEvents))
	mux.Handle(CommandsPath, http.HandlerFunc(e.serveCommands))
}

// verified reads the body of a request signed by Slack; on failure it has
// answered already and ok is false.
func (e *Events) verified(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, eventsMaxBody))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return nil, false
		}
		http.Error(w, "unable to read body", http.StatusBadRequest)
		return nil, false
	}
	// Our own replay check, on our clock, before the signature: a signed
	// request captured once must not be accepted later.
	sent, err := strconv.ParseInt(r.Header.Get("X-Slack-Request-Timestamp"), 10, 64)
	if err != nil {
		http.Error(w, "bad timestamp", http.StatusUnauthorized)
		return nil, false
	}
	if age := e.now().Sub(time.Unix(sent, 0)); age > signatureWindow || age < -signatureWindow {
		e.log.Warn("slack: request outside the signature window refused", logging.KeyPlatform, platformName,
			logging.KeyDuration, age)
		http.Error(w, "stale request", http.StatusUnauthorized)
		return nil, false
	}
	sv, err := slack.NewSecretsVerifier(r.Header, e.secret)
	if err == nil {
		_, _ = sv.Write(body)
		err = sv.Ensure()
	}
	if err != nil {
		e.log.Warn("slack: request with a bad signature refused", logging.KeyPlatform, platformName, logging.Err(err))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return nil, false
	}
	return body, true
}

func (e *Events) serveEvents(w http.ResponseWriter, r *http.Request) {
	body, ok := e.verified(w, r)
	if !ok {
		return
	}
	ev, err := parseEventsBody(body)
	if errors.Is(err, errIgnored) {
		// A well-formed callback of a type we do not map: retrying cannot
		// help, so it is accepted.
		skipped("unmapped")
		w.WriteHeader(http.StatusOK)
		return
	}
	if err != nil {
		skipped("malformed")
		e.log.Warn("slack: malformed Events API body", logging.KeyPlatform, platformName, logging.Err(err))
		http.Error(w, "malformed body", http.StatusBadRequest)
		return
	}
	switch ev.Type {
	case slackevents.URLVerification:
		challenge := ev.Data.(*slackevents.EventsAPIURLVerificationEvent).Challenge
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, challenge)
		return
	case slackevents.CallbackEvent:
	default:
		w.WriteHeader(http.StatusOK)
		return
	}
	// The event is published before Slack is answered, not after a 200:
	// a JetStream publish takes milliseconds, and an event answered 200
	// and then not published would be lost (Slack retries only what is
	// not answered 2xx within 3 seconds). The answer is bounded all the
	// same: past answerWithin (2 s) it is a 500, so Slack retries, and the
	// event id dedupe drops the retry if the late publish went through.
	err = e.within(r.Context(), func(ctx context.Context) error { return e.intake.HandleEvent(ctx, ev.TeamID, ev) })
	if err != nil {
		e.log.Error("slack: event not handled; Slack will retry it", logging.KeyPlatform, platformName,
			"retry", r.Header.Get("X-Slack-Retry-Num"), logging.Err(err))
		http.Error(w, "not handled", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// parseEventsBody reads an Events API body: a url_verification or an
// event_callback. A callback of an inner type slack-go does not know is
// errIgnored.
func parseEventsBody(body []byte) (slackevents.EventsAPIEvent, error) {
	var outer struct {
		Type  string `json:"type"`
		Event *struct {
			Type string `json:"type"`
		} `json:"event"`
	}
	if err := json.Unmarshal(body, &outer); err != nil {
		return slackevents.EventsAPIEvent{}, fmt.Errorf("slack: unreadable Events API body: %w", err)
	}
	switch outer.Type {
	case slackevents.URLVerification, slackevents.CallbackEvent:
	case "":
		return slackevents.EventsAPIEvent{}, errors.New("slack: Events API body without a type")
	default:
		return slackevents.EventsAPIEvent{}, errIgnored
	}
	if outer.Type == slackevents.CallbackEvent && outer.Event == nil {
		return slackevents.EventsAPIEvent{}, errors.New("slack: event_callback without an event")
	}
	// The signature already proved the sender, so the legacy verification
	// token is not checked.
	ev, err := slackevents.ParseEvent(body, slackevents.OptionNoVerifyToken())
	if err != nil {
		if outer.Type == slackevents.CallbackEvent && strings.Contains(err.Error(), "does not exist") {
			return slackevents.EventsAPIEvent{}, errIgnored
		}
		return slackevents.EventsAPIEvent{}, fmt.Errorf("slack: unreadable %s: %w", outer.Type, err)
	}
	if ev.Type == slackevents.URLVerification {
		if _, ok := ev.Data.(*slackevents.EventsAPIURLVerificationEvent); !ok {
			return slackevents.EventsAPIEvent{}, errors.New("slack: url_verification without a challenge")
		}
	}
	return ev, nil
}

func (e *Events) serveCommands(w http.ResponseWriter, r *http.Request) {
	body, ok := e.verified(w, r)
	if !ok {
		return
	}
	// SlashCommandParse reads the form from the request body, which the
	// verification consumed.
	form, err := http.NewRequestWithContext(r.Context(), http.MethodPost, r.URL.String(), strings.NewReader(string(body)))
	if err != nil {
		http.Error(w, "malformed body", http.StatusBadRequest)
		return
	}
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	cmd, err := slack.SlashCommandParse(form)
	if err != nil {
		skipped("malformed")
		http.Error(w, "malformed body", http.StatusBadRequest)
		return
	}
	// Slack never redelivers a slash command, so the answer is a 200 within
	// answerWithin whatever happens: empty once the command is published
	// (a few milliseconds), else an apology only the invoker sees.
	err = e.within(r.Context(), func(ctx context.Context) error { return e.intake.HandleSlash(ctx, cmd) })
	if err != nil {
		e.log.Error("slack: slash command not handled", logging.KeyPlatform, platformName,
			logging.KeyCommand, cmd.Command, logging.Err(err))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"response_type":"ephemeral","text":"WaddleBot could not take that command just now. Please try again."}`)
		return
	}
	w.WriteHeader(http.StatusOK)
}
