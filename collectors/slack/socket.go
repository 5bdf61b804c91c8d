package slack

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
)

// SocketLease is the lease whose holder keeps the Socket Mode connection.
// Slack allows up to 10 connections per app but spreads events over them;
// one holder keeps each channel's events in order.
const SocketLease = "slack.socket"

const (
	// socketQueue is how many envelopes may wait for the intake; a slower
	// intake then stops the reading of the next ones.
	socketQueue = 256
	// socketHandleBudget bounds one envelope's handling, so it is
	// acknowledged within Slack's 3 seconds or not at all (and then
	// redelivered).
	socketHandleBudget = 2500 * time.Millisecond
)

// slashApology is the acknowledgement payload of a slash command that could
// not be published: Slack shows it to the invoker only, and does not
// redeliver slash commands.
var slashApology = map[string]string{"response_type": "ephemeral",
	"text": "WaddleBot could not take that command just now. Please try again."}

// SocketConfig configures the Socket Mode connection.
type SocketConfig struct {
	AppToken string // xapp-…
	// APIURL is the Web API base (https://slack.com/api/), where
	// apps.connections.open is asked for the WebSocket URL.
	APIURL string
	Intake *Intake
	Leases *coord.Leases
	Logger *slog.Logger
}

// Socket receives events and slash commands over Socket Mode.
type Socket struct {
	cfg SocketConfig
	log *slog.Logger
}

// NewSocket makes a Socket.
func NewSocket(cfg SocketConfig) (*Socket, error) {
	switch {
	case cfg.AppToken == "":
		return nil, errors.New("slack: Socket Mode needs an app-level token")
	case cfg.Intake == nil:
		return nil, errors.New("slack: Socket Mode needs an intake")
	case cfg.Leases == nil:
		return nil, errors.New("slack: Socket Mode needs leases")
	}
	if cfg.APIURL == "" {
		cfg.APIURL = slack.APIURL
	}
	if !strings.HasSuffix(cfg.APIURL, "/") {
		cfg.APIURL += "/"
	}
	if cfg.Logger == nil {
		cfg.Logger = logging.Discard()
	}
	return &Socket{cfg: cfg, log: cfg.Logger}, nil
}

// Run holds the connection while this replica holds SocketLease, until ctx
// ends. It returns an error when Slack refuses the app token.
func (s *Socket) Run(ctx context.Context) error {
	return collectors.HoldLease(ctx, s.cfg.Leases, SocketLease, s.run)
}

// socketWork is one envelope waiting for the intake, not acknowledged yet.
type socketWork struct {
	envelopeID string
	event      *slackevents.EventsAPIEvent
	slash      *slack.SlashCommand
}

func (s *Socket) run(ctx context.Context) error {
	api := slack.New(s.cfg.AppToken, slack.OptionAPIURL(s.cfg.APIURL))
	client := socketmode.New(api,
		socketmode.OptionLog(slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan socketWork, socketQueue)
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		s.handle(ctx, client, work)
	}()
	received := make(chan struct{})
	go func() {
		defer close(received)
		s.receive(ctx, client, work)
	}()

	err := client.RunContext(ctx)
	cancel()
	<-received
	<-handled
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// receive queues events and slash commands for the intake, which
// acknowledges each once it is published; what WaddleBot does not use is
// acknowledged at once.
func (s *Socket) receive(ctx context.Context, client *socketmode.Client, work chan<- socketWork) {
	defer close(work)
	for {
		var evt socketmode.Event
		select {
		case <-ctx.Done():
			return
		case evt = <-client.Events:
		}
		var item socketWork
		switch evt.Type {
		case socketmode.EventTypeConnecting:
			s.log.Debug("slack: Socket Mode connecting", logging.KeyPlatform, platformName)
		case socketmode.EventTypeConnected:
			s.log.Info("slack: Socket Mode connected", logging.KeyPlatform, platformName)
		case socketmode.EventTypeConnectionError, socketmode.EventTypeIncomingError:
			s.log.Warn("slack: Socket Mode connection trouble", logging.KeyPlatform, platformName, "data", evt.Data)
		case socketmode.EventTypeInvalidAuth:
			s.log.Error("slack: Socket Mode refused the app token", logging.KeyPlatform, platformName)
		case socketmode.EventTypeErrorBadMessage:
			s.ackBadMessage(ctx, client, evt)
		case socketmode.EventTypeEventsAPI:
			if ev, ok := evt.Data.(slackevents.EventsAPIEvent); ok && evt.Request != nil {
				item.event = &ev
			} else {
				s.ack(ctx, client, evt)
			}
		case socketmode.EventTypeSlashCommand:
			if cmd, ok := evt.Data.(slack.SlashCommand); ok && evt.Request != nil {
				item.slash = &cmd
			} else {
				s.ack(ctx, client, evt)
			}
		case socketmode.EventTypeInteractive:
			s.ack(ctx, client, evt) // WaddleBot posts no buttons or modals
		}
		if item.event == nil && item.slash == nil {
			continue
		}
		item.envelopeID = evt.Request.EnvelopeID
		select {
		case work <- item:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Socket) ack(ctx context.Context, client *socketmode.Client, evt socketmode.Event) {
	if evt.Request == nil {
		return
	}
	s.ackEnvelope(ctx, client, evt.Request.EnvelopeID, nil)
}

func (s *Socket) ackEnvelope(ctx context.Context, client *socketmode.Client, envelopeID string, payload any) {
	if envelopeID == "" {
		return
	}
	if err := client.AckCtx(ctx, envelopeID, payload); err != nil && ctx.Err() == nil {
		s.log.Warn("slack: unable to acknowledge an envelope", logging.KeyPlatform, platformName,
			logging.KeyID, envelopeID, logging.Err(err))
	}
}

// ackBadMessage acknowledges an envelope slack-go could not parse (an event
// type it does not know): redelivering it cannot help.
func (s *Socket) ackBadMessage(ctx context.Context, client *socketmode.Client, evt socketmode.Event) {
	bad, ok := evt.Data.(*socketmode.ErrorBadMessage)
	if !ok {
		return
	}
	var envelope struct {
		EnvelopeID string `json:"envelope_id"`
	}
	if json.Unmarshal(bad.Message, &envelope) != nil || envelope.EnvelopeID == "" {
		s.log.Warn("slack: unreadable Socket Mode message", logging.KeyPlatform, platformName, logging.Err(bad.Cause))
		return
	}
	skipped("unmapped")
	s.log.Debug("slack: Socket Mode envelope not understood; acknowledged and dropped", logging.KeyPlatform, platformName,
		logging.KeyID, envelope.EnvelopeID, logging.Err(bad.Cause))
	s.ack(ctx, client, socketmode.Event{Request: &socketmode.Request{EnvelopeID: envelope.EnvelopeID}})
}

// handle passes envelopes to the intake in arrival order and acknowledges
// each once it is published: publishing takes milliseconds, well within
// Slack's 3 seconds, and an envelope acknowledged first would be lost if
// publishing then failed (Slack never redelivers an acknowledged
// envelope). An event that could not be published is left unacknowledged,
// so Slack redelivers it (with retry_attempt); the intake's event id
// dedupe drops a redelivery of one that was published after all.
func (s *Socket) handle(ctx context.Context, client *socketmode.Client, work <-chan socketWork) {
	for item := range work {
		if ctx.Err() != nil {
			// Lease lost or shutting down: what is queued is left to
			// Slack's redelivery to the next holder.
			continue
		}
		itemCtx, cancel := context.WithTimeout(ctx, socketHandleBudget)
		var err error
		switch {
		case item.event != nil:
			err = s.cfg.Intake.HandleEvent(itemCtx, item.event.TeamID, *item.event)
		case item.slash != nil:
			err = s.cfg.Intake.HandleSlash(itemCtx, *item.slash)
		}
		cancel()
		switch {
		case err == nil:
			s.ackEnvelope(ctx, client, item.envelopeID, nil)
		case item.slash != nil:
			// Slack does not redeliver slash commands: the invoker is told
			// to try again instead.
			s.log.Error("slack: slash command not handled", logging.KeyPlatform, platformName,
				logging.KeyID, item.envelopeID, logging.KeyCommand, item.slash.Command, logging.Err(err))
			s.ackEnvelope(ctx, client, item.envelopeID, slashApology)
		case ctx.Err() == nil:
			s.log.Warn("slack: event not handled; left unacknowledged so Slack redelivers it", logging.KeyPlatform, platformName,
				logging.KeyID, item.envelopeID, logging.Err(err))
		}
	}
}
