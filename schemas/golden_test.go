package schemas_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/schemas/jsonschemas"
)

var update = flag.Bool("update", false, "rewrite golden files")

type validator interface{ Validate() error }

// goldenExamples are the documented wire examples in testdata/golden: each
// must decode strictly, pass Validate and the checked-in JSON Schema, and
// encode back byte for byte.
func goldenExamples() map[string]validator {
	at := time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC)
	ev := schemas.Event{
		Version: 1, ID: schemas.EventID("twitch", "b3a4c6d2-1f7e-4e1a-9c55-0d8e2b1f6a70"),
		Platform: "twitch", PlatformEventID: "b3a4c6d2-1f7e-4e1a-9c55-0d8e2b1f6a70", Kind: schemas.KindChat,
		Channel: schemas.Channel{ID: "123456", Name: "waddlestream"},
		User: schemas.User{ID: "98765", Login: "alice", DisplayName: "Alice",
			Roles: []schemas.Role{schemas.RoleModerator, schemas.RoleSubscriber}},
		Text: "!quote add \"the penguin waddles\"", OccurredAt: at, ReceivedAt: at.Add(40 * time.Millisecond),
	}
	inv := schemas.Invocation{
		Version: 1, ID: schemas.InvocationID(ev.ID, "memories", "cmd:quote"), Event: ev,
		Community: schemas.Community{ID: "3b0a0a8e-5f0e-4f7d-9d0e-1c2b3a4d5e6f", Name: "Waddle Stream",
			Prefix: "!", TimeZone: "Europe/Berlin", Locale: "en"},
		Settings: json.RawMessage(`{"page_size":5}`), Labels: []string{"memories"},
		Module: "memories", Route: "cmd:quote", Command: "quote", Invoked: "quote",
		Args: []string{"add", "the penguin waddles"}, ArgText: "add \"the penguin waddles\"",
		Deadline: at.Add(30 * time.Second),
	}
	res := schemas.Result{Version: 1, InvocationID: inv.ID, Module: "memories",
		Replies: []schemas.ReplyText{{Text: "Quote #42 added.", Visibility: schemas.VisibilityPublic}}}
	rep := schemas.Reply{Version: 1, ID: schemas.ReplyID(inv.ID, 1), InvocationID: inv.ID, EventID: ev.ID,
		Module: "memories", Target: schemas.TargetOf(&ev), Text: "Quote #42 added.", Part: 1, Parts: 1,
		Visibility: schemas.VisibilityPublic, Action: schemas.ActionMessage, CreatedAt: at.Add(45 * time.Millisecond)}
	ov := schemas.OverlayItem{Version: 1, ID: "0c7f1d52-2b6e-4c1a-8f3d-5a6b7c8d9e0f", CommunityID: inv.Community.ID,
		Source: schemas.OverlayTicker, Text: "Welcome to the stream!", DurationMS: 10000, CreatedAt: at}
	dl := schemas.DeadLetter{Version: 1, Stream: schemas.StreamEvents, Consumer: "router",
		Subject: "wb.events.console.demo.chat", Sequence: 17,
		Headers: map[string][]string{"Nats-Msg-Id": {"not-json"}}, Body: []byte("not json"),
		Reason: "undecodable: invalid character 'o' in literal null (expecting 'u')", Failures: 0, FailedAt: at}
	req := schemas.APIRequest{Version: 1, ID: "5e1b7c9d-3a2f-4b6e-8c0d-1f2e3d4c5b6a", Operation: "channel_info",
		Args: map[string]string{"login": "bob"}}
	resp := schemas.APIResponse{Version: 1, ID: req.ID, Data: json.RawMessage(`{"login":"bob","category":"Science & Technology"}`)}
	return map[string]validator{
		"event": &ev, "invocation": &inv, "result": &res, "reply": &rep,
		"overlay_item": &ov, "dead_letter": &dl, "api_request": &req, "api_response": &resp,
	}
}

func TestGoldenExamples(t *testing.T) {
	for name, want := range goldenExamples() {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join("testdata", "golden", name+".json")
			rendered, err := json.MarshalIndent(want, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			rendered = append(rendered, '\n')
			if *update {
				if err := os.WriteFile(file, rendered, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, rendered) {
				t.Fatalf("%s differs from the Go value's encoding (run with -update after a deliberate change)", file)
			}
			got := reflect.New(reflect.TypeOf(want).Elem()).Interface().(validator)
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(got); err != nil {
				t.Fatalf("strict decode: %v", err)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if err := jsonschemas.Validate(name, raw); err != nil {
				t.Fatalf("JSON Schema: %v", err)
			}
		})
	}
}

func TestJSONSchemaRejects(t *testing.T) {
	tests := []struct{ name, doc string }{
		{"event", `{"version":1}`},
		{"event", `{"version":1,"id":"x","platform":"myspace","kind":"chat","channel":{"id":"c"},"user":{},"occurred_at":"2026-01-01T00:00:00Z","received_at":"2026-01-01T00:00:00Z"}`},
		{"result", `{"version":1,"invocation_id":"3b0a0a8e-5f0e-4f7d-9d0e-1c2b3a4d5e6f","replys":[]}`},
		{"result", `not json`},
	}
	for _, tt := range tests {
		if err := jsonschemas.Validate(tt.name, []byte(tt.doc)); err == nil {
			t.Errorf("%s accepted %s", tt.name, tt.doc)
		}
	}
}
