package ai

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/waddlebot/waddlebot/schemas"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(settingsSchema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("https://waddlebot.invalid/ai.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("https://waddlebot.invalid/ai.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSettingsSchema(t *testing.T) {
	s := compileSchema(t)
	cases := []struct {
		doc   string
		valid bool
	}{
		{`{}`, true},
		{`{"provider":"ollama","host":"gpu.lan","port":11434,"tls":true,"ca_file":"/etc/ca.pem","verify":true,"model":"llama3.2","temperature":0.7,"max_tokens":500,"keep_alive":"5m","timeout":45}`, true},
		{`{"provider":"openai","base_url":"https://api.openai.com/v1","model":"auto","api_key_secret":"openai","extra_headers":{"X-Preferred-Model":"gpt-4o-mini"}}`, true},
		{`{"prefix":"🤖 ","system_prompt":"Be {platform} friendly in {channel}","triggers":{"mention":true,"question":true,"follow":true},"memory":{"exchanges":5,"ttl_minutes":10},"limits":{"user_requests":3,"daily_tokens":10000}}`, true},
		{`{"provider":"gemini"}`, false},
		{`{"port":0}`, false},
		{`{"temperature":3}`, false},
		{`{"base_url":"ftp://x"}`, false},
		{`{"keep_alive":"forever"}`, false},
		{`{"timeout":600}`, false},
		{`{"api_key":"sk-plaintext"}`, false},
		{`{"api_key_secret":"Has Spaces"}`, false},
		{`{"extra_headers":{"Bad Header":"x"}}`, false},
		{`{"triggers":{"everything":true}}`, false},
		{`{"limits":{"user_window_seconds":3600}}`, false},
	}
	for _, c := range cases {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(c.doc)))
		if err != nil {
			t.Fatal(err)
		}
		err = s.Validate(v)
		if (err == nil) != c.valid {
			t.Errorf("%s: valid=%v, err %v", c.doc, c.valid, err)
		}
	}
	m := Manifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestResolve(t *testing.T) {
	d := BuiltinDefaults()
	d.APIKey, d.BearerToken, d.PreferredModelHeader = "sk-op", "tok-op", "X-Preferred-Model"
	cases := []struct {
		name  string
		raw   string
		check func(t *testing.T, e effective)
	}{
		{"defaults", ``, func(t *testing.T, e effective) {
			if e.Provider != "ollama" || e.Host != "localhost" || e.Port != 11434 || e.Model != "llama3.2" || e.Temperature != 0.7 ||
				e.MaxTokens != 500 || !e.Verify || e.TLS || e.Exchanges != 10 || e.MemoryTTL != 30*time.Minute || !e.Mention ||
				e.Question || e.Follow || e.Raid || e.Cheer || e.Subscription || e.MaxReplyChars != 400 || e.AllowProvisional {
				t.Fatalf("%+v", e)
			}
			if e.BearerToken != "tok-op" || e.APIKey != "sk-op" {
				t.Fatal("the operator's endpoint lost the operator's credentials")
			}
		}},
		{"own host drops operator credentials", `{"host":"evil.example"}`, func(t *testing.T, e effective) {
			if e.BearerToken != "" || e.APIKey != "" {
				t.Fatal("operator credentials would go to a community's host")
			}
		}},
		{"own base URL drops operator credentials", `{"provider":"openai","base_url":"https://evil.example/v1"}`, func(t *testing.T, e effective) {
			if e.APIKey != "" || e.Model != "llama3.2" {
				t.Fatalf("%+v", e)
			}
		}},
		{"zero temperature kept", `{"temperature":0}`, func(t *testing.T, e effective) {
			if e.Temperature != 0 {
				t.Fatal(e.Temperature)
			}
		}},
		{"memory off", `{"memory":{"exchanges":0}}`, func(t *testing.T, e effective) {
			if e.Exchanges != 0 {
				t.Fatal(e.Exchanges)
			}
		}},
		{"preferred model header", `{"preferred_model":"gpt-4o"}`, func(t *testing.T, e effective) {
			if e.Headers["X-Preferred-Model"] != "gpt-4o" {
				t.Fatal(e.Headers)
			}
		}},
		{"empty prefix kept", `{"prefix":""}`, func(t *testing.T, e effective) {
			if e.Prefix != "" {
				t.Fatal(e.Prefix)
			}
		}},
		{"undecodable keeps defaults", `{"port":"x"}`, func(t *testing.T, e effective) {
			if e.Port != 11434 {
				t.Fatal(e.Port)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, _ := resolve(json.RawMessage(c.raw), d)
			c.check(t, e)
		})
	}
}

func TestStripMention(t *testing.T) {
	cases := []struct {
		text, rest string
		ok         bool
	}{
		{"@waddlebot hi there", "hi there", true},
		{"hey @WaddleBot: what's up", "hey what's up", true},
		{"waddlebot, tell me a joke", "tell me a joke", true},
		{"ask waddlebot", "ask", true},
		{"waddlebots unite", "", false},
		{"mywaddlebot", "", false},
		{"email@waddlebot.com", "", false},
	}
	for _, c := range cases {
		rest, ok := stripMention(c.text, "waddlebot")
		if ok != c.ok || rest != c.rest {
			t.Errorf("stripMention(%q) = %q, %v; want %q, %v", c.text, rest, ok, c.rest, c.ok)
		}
	}
}

func TestBuildMessagesFillsPrompt(t *testing.T) {
	inv := &schemas.Invocation{Event: schemas.Event{Platform: schemas.PlatformTwitch,
		Channel: schemas.Channel{ID: "123", Name: "pinguin"}, User: schemas.User{Login: "al", DisplayName: "Al"}}}
	e, _ := resolve(json.RawMessage(`{"system_prompt":"On {platform} in {channel}; {platform}!"}`), BuiltinDefaults())
	msgs := buildMessages(inv, e, []Exchange{{User: "Bo", Question: "q1", Answer: "a1"}}, ask{prompt: "q2"})
	want := []string{"On twitch in pinguin; twitch!", "Bo: q1", "a1", "Al: q2"}
	if len(msgs) != len(want) {
		t.Fatalf("%+v", msgs)
	}
	for i, w := range want {
		if msgs[i].Content != w {
			t.Errorf("message %d = %q, want %q", i, msgs[i].Content, w)
		}
	}
}

func TestEnvDefaults(t *testing.T) {
	t.Setenv("WADDLEBOT_AI_PROVIDER", "openai")
	t.Setenv("WADDLEBOT_AI_BASE_URL", "https://proxy.example/v1")
	t.Setenv("WADDLEBOT_AI_MODEL", "auto")
	t.Setenv("WADDLEBOT_AI_TEMPERATURE", "0.2")
	t.Setenv("WADDLEBOT_AI_MAX_CONCURRENT", "3")
	d := EnvDefaults()
	if d.Provider != "openai" || d.BaseURL != "https://proxy.example/v1" || d.Model != "auto" || d.Temperature != 0.2 ||
		d.MaxConcurrent != 3 || d.Port != 11434 || !d.Verify || d.Timeout != 45*time.Second {
		t.Fatalf("%+v", d)
	}
}

func TestResolveWithoutCustomEndpoints(t *testing.T) {
	d := BuiltinDefaults()
	d.CustomEndpoints, d.BearerToken = false, "tok-op"
	e, _ := resolve(json.RawMessage(`{"provider":"openai","host":"169.254.169.254","port":80,"base_url":"http://10.0.0.1/v1",
		"ca_file":"/etc/shadow","verify":false,"bearer_token_secret":"x","model":"mistral","prefix":"> "}`), d)
	if e.Provider != "ollama" || e.Host != "localhost" || e.Port != 11434 || e.BaseURL != "" || e.CAFile != "" || !e.Verify ||
		e.BearerSecret != "" || e.BearerToken != "tok-op" {
		t.Fatalf("a community reached past the operator's endpoint: %+v", e)
	}
	if e.Model != "mistral" || e.Prefix != "> " {
		t.Fatalf("other settings lost: %+v", e)
	}
}
