package openaiapi

import (
	"strings"
	"testing"
)

func TestParseChat(t *testing.T) {
	cases := []struct {
		name, body string
		code       string // "" for accepted
		texts      []string
	}{
		{"string content", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "", []string{"hi"}},
		{"text parts", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`, "", []string{"ab"}},
		{"developer is system", `{"model":"m","messages":[{"role":"developer","content":"x"},{"role":"user","content":"y"}]}`, "", []string{"x", "y"}},
		{"unknown fields tolerated", `{"model":"m","user":"u","top_p":1,"n":1,"tools":[],"messages":[{"role":"user","content":"hi","name":"bob"}]}`, "", []string{"hi"}},
		{"null content", `{"model":"m","messages":[{"role":"user","content":null}]}`, "invalid_content", nil},
		{"number content", `{"model":"m","messages":[{"role":"user","content":5}]}`, "invalid_content", nil},
		{"tool role", `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "invalid_role", nil},
		{"zero max tokens", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, "invalid_max_tokens", nil},
		{"trailing garbage is JSON's error", `{"model":"m"} x`, "invalid_json", nil},
		{"too large", `{"model":"` + strings.Repeat("a", maxBody) + `"}`, "body_too_large", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, msgs, e := parseChat(strings.NewReader(c.body))
			if c.code != "" {
				if e == nil || e.Code != c.code || e.Status != 400 {
					t.Fatalf("got %+v, want %s", e, c.code)
				}
				return
			}
			if e != nil {
				t.Fatal(e)
			}
			if len(msgs) != len(c.texts) {
				t.Fatalf("messages %+v", msgs)
			}
			for i := range msgs {
				if msgs[i].Content != c.texts[i] {
					t.Fatalf("messages %+v", msgs)
				}
			}
		})
	}
}

// FuzzParseChat: any body is either refused with a 400 in OpenAI's shape or
// becomes messages with a known role.
func FuzzParseChat(f *testing.F) {
	f.Add(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	f.Add(`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"stream":true}`)
	f.Add(`{"model":"m","messages":[{"role":"system","content":null}]}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		_, msgs, e := parseChat(strings.NewReader(body))
		if e != nil {
			if e.Status != 400 || e.Type != typeInvalid || e.Code == "" || e.Message == "" {
				t.Fatalf("refusal %+v", e)
			}
			return
		}
		if len(msgs) == 0 {
			t.Fatal("accepted without messages")
		}
		for _, m := range msgs {
			if m.Role != "system" && m.Role != "user" && m.Role != "assistant" {
				t.Fatalf("role %q", m.Role)
			}
		}
	})
}
