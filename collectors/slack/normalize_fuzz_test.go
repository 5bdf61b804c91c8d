package slack

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/slack-go/slack/slackevents"

	"github.com/waddlebot/waddlebot/schemas"
)

// FuzzEventsBody feeds arbitrary Events API bodies through parsing and
// normalization: nothing may panic, and whatever normalization returns must
// be a valid event.
func FuzzEventsBody(f *testing.F) {
	f.Add(callbackBody("Ev1", messageInner(intakeHuman, "<@U0BOT> !ping", "1700000000.000100", `,"thread_ts":"1.2"`)))
	f.Add(callbackBody("Ev2", mentionInner(intakeHuman, "<@U0BOT|bot>: !so <@U0BOB>", "1700000000.000101", "")))
	f.Add(callbackBody("Ev3", `{"type":"message","subtype":"message_changed","channel":"C1","ts":"1.1","message":{"text":"x"}}`))
	f.Add(callbackBody("Ev4", `{"type":"tokens_revoked","tokens":{"bot":["U0BOT"]}}`))
	f.Add(callbackBody("Ev5", `{"type":"app_uninstalled"}`))
	f.Add(callbackBody("Ev6", `null`))
	f.Add(`{"type":"url_verification","challenge":"abc"}`)
	f.Add(`{"type":"app_rate_limited","team_id":"T1"}`)
	f.Add(`{"type":"event_callback","event":{"type":"message","text":"\u00e9","ts":"99999999999999999999.1"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		ev, err := parseEventsBody([]byte(body))
		if err != nil {
			return
		}
		var m message
		switch data := ev.InnerEvent.Data.(type) {
		case *slackevents.MessageEvent:
			m = messageFromEvent(data)
		case *slackevents.AppMentionEvent:
			m = messageFromMention(data)
		default:
			return
		}
		m.team = ev.TeamID
		out, err := normalize(m, intakeBotUser)
		if err != nil {
			return
		}
		out.Version, out.ReceivedAt = schemas.Version, time.Now()
		if out.User.Bot {
			return
		}
		if err := out.Validate(); err != nil {
			t.Fatalf("normalize made an invalid event from %q: %v", body, err)
		}
		if _, err := json.Marshal(out); err != nil {
			t.Fatalf("normalize made an unencodable event from %q: %v", body, err)
		}
		// The whole intake must take it without error (its publisher
		// never fails).
		in, _, _ := newIntakeOnly()
		if err := in.HandleEvent(context.Background(), "", ev); err != nil && !errors.Is(err, schemas.ErrInvalid) {
			t.Fatalf("HandleEvent(%q): %v", body, err)
		}
	})
}
