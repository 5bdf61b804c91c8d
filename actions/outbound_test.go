package actions

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

func decodeReply(t *testing.T, m store.OutMessage) schemas.Reply {
	t.Helper()
	var r schemas.Reply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatalf("reply %s: %v", m.MsgID, err)
	}
	return r
}

func TestOutboundNumbersPartsActionsAndOverlays(t *testing.T) {
	inv := actionstest.Invocation("quotes", "quote")
	inv.Event.Platform = schemas.PlatformTwitch
	inv.Event.Channel = schemas.Channel{ID: "12345", Name: "streamer"}
	long := strings.TrimSpace(strings.Repeat("a quote that goes on and on ", 40)) // 1,119 characters: 3 parts on Twitch
	res := &schemas.Result{
		Replies: []schemas.ReplyText{
			{Text: long},
			{Text: "psst", Visibility: schemas.VisibilityPrivate},
		},
		Actions:  []schemas.PlatformAction{{Action: schemas.ActionShoutout, TargetLogin: "bob"}},
		Overlays: []schemas.OverlayItem{{Source: schemas.OverlayTicker, Text: "hello", ID: "module-chosen", CommunityID: uuid.NewString()}},
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	msgs, err := Outbound(inv, res, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 6 {
		t.Fatalf("%d messages, want 3 parts + 1 reply + 1 action + 1 overlay", len(msgs))
	}
	replySubject := schemas.ReplySubject(schemas.PlatformTwitch, "12345")
	var rejoined []string
	for i, m := range msgs[:5] {
		r := decodeReply(t, m)
		if m.Subject != replySubject || m.MsgID != schemas.ReplyID(inv.ID, i+1) || r.ID != m.MsgID {
			t.Errorf("message %d: subject %s id %s, want %s id %s", i, m.Subject, m.MsgID, replySubject, schemas.ReplyID(inv.ID, i+1))
		}
		if r.InvocationID != inv.ID || r.EventID != inv.Event.ID || r.Module != "quotes" || !r.CreatedAt.Equal(now) {
			t.Errorf("message %d: %+v", i, r)
		}
		if r.Target != schemas.TargetOf(&inv.Event) {
			t.Errorf("message %d: target %+v", i, r.Target)
		}
		if i < 3 {
			if r.Part != i+1 || r.Parts != 3 || r.Visibility != schemas.VisibilityPublic || r.Action != schemas.ActionMessage {
				t.Errorf("part %d: part %d/%d visibility %q action %q", i, r.Part, r.Parts, r.Visibility, r.Action)
			}
			if n := utf8.RuneCountInString(r.Text); n > 500 {
				t.Errorf("part %d has %d characters", i, n)
			}
			rejoined = append(rejoined, r.Text)
		}
	}
	if strings.Join(rejoined, " ") != long {
		t.Errorf("the parts do not rejoin to the text")
	}
	if r := decodeReply(t, msgs[3]); r.Text != "psst" || r.Part != 1 || r.Parts != 1 || r.Visibility != schemas.VisibilityPrivate {
		t.Errorf("second reply: %+v", r)
	}
	if r := decodeReply(t, msgs[4]); r.Action != schemas.ActionShoutout || r.ActionData == nil || r.ActionData.TargetLogin != "bob" || r.Part != 1 || r.Parts != 1 {
		t.Errorf("action: %+v", r)
	}
	var item schemas.OverlayItem
	if err := json.Unmarshal(msgs[5].Data, &item); err != nil {
		t.Fatal(err)
	}
	if item.ID != schemas.OverlayID(inv.ID, 1) || msgs[5].MsgID != item.ID || item.CommunityID != inv.Community.ID ||
		msgs[5].Subject != schemas.OverlaySubject(inv.Community.ID, schemas.OverlayTicker) || !item.CreatedAt.Equal(now) || item.Version != schemas.Version {
		t.Errorf("overlay: %+v on %s: the runtime sets its id, community and time", item, msgs[5].Subject)
	}
}

func TestOutboundIsDeterministic(t *testing.T) {
	inv := actionstest.Invocation("core", "help")
	res := &schemas.Result{Replies: []schemas.ReplyText{{Text: strings.Repeat("word ", 1000)}, {Text: "two"}}}
	now := time.Now()
	first, err := Outbound(inv, res, now)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Outbound(inv, res, now)
	if err != nil {
		t.Fatal(err)
	}
	later, err := Outbound(inv, res, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 4 || len(again) != len(first) || len(later) != len(first) {
		t.Fatalf("%d, %d and %d messages, want 4 each", len(first), len(again), len(later))
	}
	seen := map[string]bool{}
	for i := range first {
		if first[i].MsgID != again[i].MsgID || string(first[i].Data) != string(again[i].Data) || first[i].Subject != again[i].Subject {
			t.Errorf("message %d differs between two identical calls", i)
		}
		if later[i].MsgID != first[i].MsgID {
			t.Errorf("message %d: id depends on the time", i)
		}
		if seen[first[i].MsgID] {
			t.Errorf("message %d repeats id %s", i, first[i].MsgID)
		}
		seen[first[i].MsgID] = true
	}
	other := actionstest.Invocation("core", "help")
	msgs, err := Outbound(other, res, now)
	if err != nil {
		t.Fatal(err)
	}
	if msgs[0].MsgID == first[0].MsgID {
		t.Errorf("two invocations share reply id %s", msgs[0].MsgID)
	}
}

func TestOutboundEmptyResults(t *testing.T) {
	inv := actionstest.Invocation("core", "ping")
	for name, res := range map[string]*schemas.Result{"nil": nil, "empty": {}, "only ids": {Version: 1, InvocationID: inv.ID}} {
		msgs, err := Outbound(inv, res, time.Now())
		if err != nil || len(msgs) != 0 {
			t.Errorf("%s result: %d messages, error %v; want none", name, len(msgs), err)
		}
	}
}

func TestOutboundRefusesJunk(t *testing.T) {
	inv := actionstest.Invocation("core", "ping")
	tests := []struct {
		name string
		res  schemas.Result
		want string
	}{
		{"empty text", schemas.Result{Replies: []schemas.ReplyText{{Text: ""}}}, "empty"},
		{"blank text", schemas.Result{Replies: []schemas.ReplyText{{Text: " \n "}}}, "empty"},
		{"invalid UTF-8", schemas.Result{Replies: []schemas.ReplyText{{Text: "ok \xff"}}}, "UTF-8"},
		{"too long", schemas.Result{Replies: []schemas.ReplyText{{Text: strings.Repeat("x", schemas.MaxResultText+1)}}}, "more than"},
		{"unknown visibility", schemas.Result{Replies: []schemas.ReplyText{{Text: "hi", Visibility: "shouted"}}}, "visibility"},
		{"action without a name", schemas.Result{Actions: []schemas.PlatformAction{{TargetLogin: "bob"}}}, "platform action"},
		{"message as an action", schemas.Result{Actions: []schemas.PlatformAction{{Action: schemas.ActionMessage}}}, "platform action"},
		{"unknown action", schemas.Result{Actions: []schemas.PlatformAction{{Action: "dance"}}}, "platform action"},
		{"unknown overlay source", schemas.Result{Overlays: []schemas.OverlayItem{{Source: "billboard"}}}, "source"},
		{"overlay too big", schemas.Result{Overlays: []schemas.OverlayItem{{Source: schemas.OverlayGeneral, Text: strings.Repeat("x", maxMessageBytes)}}}, "bytes, more than"},
		{"overlay data not JSON", schemas.Result{Overlays: []schemas.OverlayItem{{Source: schemas.OverlayAlert, Data: []byte("{")}}}, "JSON"},
		{"someone else's invocation", schemas.Result{InvocationID: uuid.NewString(), Replies: []schemas.ReplyText{{Text: "hi"}}}, "not " + inv.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, err := Outbound(inv, &tt.res, time.Now())
			if !errors.Is(err, schemas.ErrInvalid) {
				t.Fatalf("error %v (%d messages), want one wrapping ErrInvalid", err, len(msgs))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}
