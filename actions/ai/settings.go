package ai

import (
	"encoding/json"
	"flag"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/waddlebot/waddlebot/internal/config"
)

// Providers.
const (
	ProviderOllama = "ollama"
	ProviderOpenAI = "openai"
)

// Defaults are the operator's defaults (WADDLEBOT_AI_*): what a community
// without its own settings uses. The API key and bearer token here are sent
// only to the default endpoint, never to one a community chose itself.
type Defaults struct {
	Provider    string
	Host        string
	Port        int
	TLS         bool
	CAFile      string
	Verify      bool
	Model       string
	Temperature float64
	MaxTokens   int
	KeepAlive   time.Duration
	Timeout     time.Duration
	BaseURL     string
	APIKey      string
	BearerToken string
	// PreferredModelHeader names the header an OpenAI-compatible routing
	// proxy reads for the preferred model ("" for none).
	PreferredModelHeader string
	SystemPrompt         string
	Prefix               string
	BotName              string
	// MaxConcurrent caps model calls in flight per replica.
	MaxConcurrent int
	// CustomEndpoints lets communities choose their own host, base URL and
	// TLS settings; off, every community uses the operator's endpoint (a
	// shared deployment that must not let the bot reach internal hosts).
	CustomEndpoints bool
}

// DefaultSystemPrompt is the persona when neither the operator nor the
// community set one.
const DefaultSystemPrompt = "You are WaddleBot, a friendly and concise chat bot in the {channel} channel on {platform}. " +
	"Answer in plain text in at most three short sentences."

// BuiltinDefaults are the defaults without any environment.
func BuiltinDefaults() Defaults {
	return FromConfig(config.Defaults())
}

// FromConfig takes the AI settings out of the configuration table.
func FromConfig(c config.Config) Defaults {
	temp, err := strconv.ParseFloat(c.AITemperature, 64)
	if err != nil {
		temp = 0.7
	}
	return Defaults{
		Provider: c.AIProvider, Host: c.AIHost, Port: c.AIPort, TLS: c.AITLS, CAFile: c.AICAFile, Verify: c.AIVerify,
		Model: c.AIModel, Temperature: temp, MaxTokens: c.AIMaxTokens, KeepAlive: c.AIKeepAlive, Timeout: c.AITimeout,
		BaseURL: c.AIBaseURL, APIKey: c.AIAPIKey, BearerToken: c.AIBearerToken, PreferredModelHeader: c.AIPreferredModelHeader,
		SystemPrompt: c.AISystemPrompt, Prefix: c.AIPrefix, BotName: c.AIBotName, MaxConcurrent: c.AIMaxConcurrent,
		CustomEndpoints: c.AICustomEndpoints,
	}
}

// EnvDefaults reads the defaults from the environment, for a binary whose
// wiring does not hand them over (builtin.Deps without AI). A bad value
// keeps its default: the configuration check of the command reports it.
func EnvDefaults() Defaults {
	fs := flag.NewFlagSet("ai", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	loaded, _ := config.NewLoader(fs).Load()
	return FromConfig(loaded.Config)
}

// Settings are one community's settings (community_modules.settings),
// validated by settingsSchema; a missing field takes the default.
type Settings struct {
	Provider    string            `json:"provider,omitempty"`
	Host        string            `json:"host,omitempty"`
	Port        int               `json:"port,omitempty"`
	TLS         *bool             `json:"tls,omitempty"`
	CAFile      string            `json:"ca_file,omitempty"`
	Verify      *bool             `json:"verify,omitempty"`
	Model       string            `json:"model,omitempty"`
	Temperature *float64          `json:"temperature,omitempty"`
	MaxTokens   int               `json:"max_tokens,omitempty"`
	KeepAlive   string            `json:"keep_alive,omitempty"`
	Timeout     int               `json:"timeout,omitempty"` // seconds
	Stream      *bool             `json:"stream,omitempty"`
	BaseURL     string            `json:"base_url,omitempty"`
	ExtraHeader map[string]string `json:"extra_headers,omitempty"`
	// PreferredModel goes in the operator's preferred-model header.
	PreferredModel    string `json:"preferred_model,omitempty"`
	APIKeySecret      string `json:"api_key_secret,omitempty"`
	BearerTokenSecret string `json:"bearer_token_secret,omitempty"`

	SystemPrompt  string  `json:"system_prompt,omitempty"`
	Prefix        *string `json:"prefix,omitempty"`
	BotName       string  `json:"bot_name,omitempty"`
	MaxReplyChars int     `json:"max_reply_chars,omitempty"`

	Triggers struct {
		Mention          *bool    `json:"mention,omitempty"`
		Question         bool     `json:"question,omitempty"`
		QuestionPrefixes []string `json:"question_prefixes,omitempty"`
		Follow           bool     `json:"follow,omitempty"`
		Subscription     bool     `json:"subscription,omitempty"`
		Raid             bool     `json:"raid,omitempty"`
		Cheer            bool     `json:"cheer,omitempty"`
	} `json:"triggers"`

	Memory struct {
		Exchanges  *int `json:"exchanges,omitempty"`
		TTLMinutes int  `json:"ttl_minutes,omitempty"`
	} `json:"memory"`

	Limits struct {
		UserRequests         int `json:"user_requests,omitempty"`
		UserWindowSeconds    int `json:"user_window_seconds,omitempty"`
		ChannelRequests      int `json:"channel_requests,omitempty"`
		ChannelWindowSeconds int `json:"channel_window_seconds,omitempty"`
		DailyTokens          int `json:"daily_tokens,omitempty"`
	} `json:"limits"`

	// AllowProvisional lets a provisional community (not yet confirmed by
	// its owner) use the module.
	AllowProvisional bool `json:"allow_provisional,omitempty"`
}

// Defaults of the per-community behaviour.
const (
	DefaultExchanges      = 10
	DefaultMemoryTTL      = 30 * time.Minute
	DefaultMaxReplyChars  = 400
	DefaultUserRequests   = 5
	DefaultUserWindow     = time.Minute
	DefaultChannelRequest = 20
	DefaultChannelWindow  = time.Minute
	MaxExchanges          = 50
)

// DefaultQuestionPrefixes start the messages the question trigger answers.
var DefaultQuestionPrefixes = []string{"what", "why", "how", "who", "when", "where", "which", "can", "is", "does"}

// effective is Settings resolved over Defaults.
type effective struct {
	Provider, Host, CAFile, Model, BaseURL, APIKeySecret, BearerSecret string
	Port                                                               int
	TLS, Verify, Stream                                                bool
	Temperature                                                        float64
	MaxTokens                                                          int
	KeepAlive, Timeout                                                 time.Duration
	Headers                                                            map[string]string
	// APIKey, BearerToken: the operator's, set only while the endpoint is
	// the operator's default one.
	APIKey, BearerToken string

	SystemPrompt, Prefix, BotName string
	MaxReplyChars                 int

	Mention, Question                 bool
	QuestionPrefixes                  []string
	Follow, Subscription, Raid, Cheer bool

	Exchanges int
	MemoryTTL time.Duration

	UserRequests, ChannelRequests int
	UserWindow, ChannelWindow     time.Duration
	DailyTokens                   int

	AllowProvisional bool
}

// resolve reads raw settings over d. Settings that do not decode (they were
// validated when saved, so this is a schema drift) leave every default.
func resolve(raw json.RawMessage, d Defaults) (effective, error) {
	var s Settings
	var derr error
	if len(raw) > 0 && string(raw) != "null" {
		derr = json.Unmarshal(raw, &s)
		if derr != nil {
			s = Settings{}
		}
	}
	e := effective{
		Provider: d.Provider, Host: d.Host, Port: d.Port, TLS: d.TLS, CAFile: d.CAFile, Verify: d.Verify,
		Model: d.Model, Temperature: d.Temperature, MaxTokens: d.MaxTokens, KeepAlive: d.KeepAlive,
		Timeout: d.Timeout, BaseURL: d.BaseURL, Stream: true,
		SystemPrompt: d.SystemPrompt, Prefix: d.Prefix, BotName: d.BotName, MaxReplyChars: DefaultMaxReplyChars,
		Mention: true, QuestionPrefixes: DefaultQuestionPrefixes,
		Exchanges: DefaultExchanges, MemoryTTL: DefaultMemoryTTL,
		UserRequests: DefaultUserRequests, UserWindow: DefaultUserWindow,
		ChannelRequests: DefaultChannelRequest, ChannelWindow: DefaultChannelWindow,
		Headers: map[string]string{},
	}
	if e.Provider == "" {
		e.Provider = ProviderOllama
	}
	if s.Provider != "" {
		e.Provider = s.Provider
	}
	endpointChanged := false
	if !d.CustomEndpoints {
		s.Provider, s.Host, s.Port, s.TLS, s.BaseURL, s.CAFile, s.Verify = "", "", 0, nil, "", "", nil
		s.ExtraHeader, s.APIKeySecret, s.BearerTokenSecret = nil, "", ""
		e.Provider = d.Provider
		if e.Provider == "" {
			e.Provider = ProviderOllama
		}
	}
	if s.Host != "" && s.Host != e.Host {
		e.Host, endpointChanged = s.Host, true
	}
	if s.Port != 0 && s.Port != e.Port {
		e.Port, endpointChanged = s.Port, true
	}
	if s.TLS != nil && *s.TLS != e.TLS {
		e.TLS, endpointChanged = *s.TLS, true
	}
	if s.BaseURL != "" && s.BaseURL != e.BaseURL {
		e.BaseURL, endpointChanged = s.BaseURL, true
	}
	if s.CAFile != "" {
		e.CAFile = s.CAFile
	}
	if s.Verify != nil {
		e.Verify = *s.Verify
	}
	if s.Model != "" {
		e.Model = s.Model
	}
	if e.Model == "" {
		if e.Provider == ProviderOpenAI {
			e.Model = "auto"
		} else {
			e.Model = "llama3.2"
		}
	}
	if s.Temperature != nil {
		e.Temperature = *s.Temperature
	}
	if s.MaxTokens > 0 {
		e.MaxTokens = s.MaxTokens
	}
	if s.KeepAlive != "" {
		if ka, err := time.ParseDuration(s.KeepAlive); err == nil && ka >= 0 {
			e.KeepAlive = ka
		}
	}
	if s.Timeout > 0 {
		e.Timeout = time.Duration(s.Timeout) * time.Second
	}
	if e.Timeout <= 0 {
		e.Timeout = 45 * time.Second
	}
	if s.Stream != nil {
		e.Stream = *s.Stream
	}
	for k, v := range s.ExtraHeader {
		e.Headers[k] = v
	}
	if s.PreferredModel != "" && d.PreferredModelHeader != "" {
		e.Headers[d.PreferredModelHeader] = s.PreferredModel
	}
	e.APIKeySecret, e.BearerSecret = s.APIKeySecret, s.BearerTokenSecret
	if !endpointChanged {
		// The operator's credentials go to the operator's endpoint only: a
		// community pointing the bot at its own server must not receive them.
		e.APIKey, e.BearerToken = d.APIKey, d.BearerToken
	}
	if s.SystemPrompt != "" {
		e.SystemPrompt = s.SystemPrompt
	}
	if e.SystemPrompt == "" {
		e.SystemPrompt = DefaultSystemPrompt
	}
	if s.Prefix != nil {
		e.Prefix = *s.Prefix
	}
	if s.BotName != "" {
		e.BotName = s.BotName
	}
	if e.BotName == "" {
		e.BotName = "waddlebot"
	}
	if s.MaxReplyChars > 0 {
		e.MaxReplyChars = s.MaxReplyChars
	}
	t := s.Triggers
	if t.Mention != nil {
		e.Mention = *t.Mention
	}
	e.Question, e.Follow, e.Subscription, e.Raid, e.Cheer = t.Question, t.Follow, t.Subscription, t.Raid, t.Cheer
	if len(t.QuestionPrefixes) > 0 {
		e.QuestionPrefixes = nil
		for _, p := range t.QuestionPrefixes {
			if p = strings.ToLower(strings.TrimSpace(p)); p != "" {
				e.QuestionPrefixes = append(e.QuestionPrefixes, p)
			}
		}
	}
	if s.Memory.Exchanges != nil {
		e.Exchanges = min(max(*s.Memory.Exchanges, 0), MaxExchanges)
	}
	if s.Memory.TTLMinutes > 0 {
		e.MemoryTTL = time.Duration(s.Memory.TTLMinutes) * time.Minute
	}
	l := s.Limits
	if l.UserRequests > 0 {
		e.UserRequests = l.UserRequests
	}
	if l.UserWindowSeconds > 0 {
		e.UserWindow = time.Duration(l.UserWindowSeconds) * time.Second
	}
	if l.ChannelRequests > 0 {
		e.ChannelRequests = l.ChannelRequests
	}
	if l.ChannelWindowSeconds > 0 {
		e.ChannelWindow = time.Duration(l.ChannelWindowSeconds) * time.Second
	}
	e.DailyTokens = max(l.DailyTokens, 0)
	e.AllowProvisional = s.AllowProvisional
	return e, derr
}

// settingsSchema is the JSON Schema of the module's settings, for the
// portal's form and for validation when they are saved.
var settingsSchema = json.RawMessage(`{
  "type": "object",
  "title": "AI replies",
  "properties": {
    "provider":     {"type": "string", "enum": ["ollama", "openai"], "default": "ollama", "description": "ollama, or openai for any OpenAI-compatible endpoint"},
    "host":         {"type": "string", "minLength": 1, "maxLength": 253, "pattern": "^[A-Za-z0-9.:\\[\\]-]+$", "description": "Ollama host"},
    "port":         {"type": "integer", "minimum": 1, "maximum": 65535, "default": 11434},
    "tls":          {"type": "boolean", "default": false, "description": "reach Ollama over HTTPS"},
    "ca_file":      {"type": "string", "maxLength": 1024, "description": "PEM file of an extra CA to trust"},
    "verify":       {"type": "boolean", "default": true, "description": "check the server's certificate (turn off only for testing)"},
    "model":        {"type": "string", "minLength": 1, "maxLength": 200, "default": "llama3.2", "description": "model name; auto lets a routing proxy choose"},
    "temperature":  {"type": "number", "minimum": 0, "maximum": 2, "default": 0.7},
    "max_tokens":   {"type": "integer", "minimum": 1, "maximum": 8192, "default": 500},
    "keep_alive":   {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$", "description": "how long Ollama keeps the model loaded, e.g. 5m"},
    "timeout":      {"type": "integer", "minimum": 1, "maximum": 55, "default": 45, "description": "seconds per model call (one retry on a transient error)"},
    "stream":       {"type": "boolean", "default": true, "description": "stream Ollama's answer (NDJSON)"},
    "base_url":     {"type": "string", "pattern": "^https?://", "maxLength": 2048, "description": "OpenAI-compatible API root, e.g. https://api.openai.com/v1"},
    "extra_headers": {"type": "object", "maxProperties": 16, "propertyNames": {"pattern": "^[A-Za-z0-9-]{1,64}$"}, "additionalProperties": {"type": "string", "maxLength": 1024}},
    "preferred_model": {"type": "string", "maxLength": 200, "description": "sent in the operator's preferred-model header"},
    "api_key_secret":      {"type": "string", "pattern": "^[a-z0-9_.-]{1,64}$", "description": "name of the community secret holding the API key"},
    "bearer_token_secret": {"type": "string", "pattern": "^[a-z0-9_.-]{1,64}$", "description": "name of the community secret holding Ollama's bearer token"},
    "system_prompt": {"type": "string", "maxLength": 4000, "description": "persona; {platform} and {channel} are filled in"},
    "prefix":        {"type": "string", "maxLength": 20, "description": "put before every answer, e.g. 🤖 "},
    "bot_name":      {"type": "string", "minLength": 1, "maxLength": 64, "description": "a mention of this name asks the bot"},
    "max_reply_chars": {"type": "integer", "minimum": 20, "maximum": 4000, "default": 400},
    "triggers": {"type": "object", "additionalProperties": false, "properties": {
      "mention":      {"type": "boolean", "default": true},
      "question":     {"type": "boolean", "default": false},
      "question_prefixes": {"type": "array", "maxItems": 32, "items": {"type": "string", "minLength": 1, "maxLength": 32}},
      "follow":       {"type": "boolean", "default": false},
      "subscription": {"type": "boolean", "default": false},
      "raid":         {"type": "boolean", "default": false},
      "cheer":        {"type": "boolean", "default": false}
    }},
    "memory": {"type": "object", "additionalProperties": false, "properties": {
      "exchanges":   {"type": "integer", "minimum": 0, "maximum": 50, "default": 10},
      "ttl_minutes": {"type": "integer", "minimum": 1, "maximum": 1440, "default": 30}
    }},
    "limits": {"type": "object", "additionalProperties": false, "properties": {
      "user_requests":          {"type": "integer", "minimum": 1, "maximum": 1000, "default": 5},
      "user_window_seconds":    {"type": "integer", "minimum": 1, "maximum": 540, "default": 60},
      "channel_requests":       {"type": "integer", "minimum": 1, "maximum": 10000, "default": 20},
      "channel_window_seconds": {"type": "integer", "minimum": 1, "maximum": 540, "default": 60},
      "daily_tokens":           {"type": "integer", "minimum": 0, "description": "tokens per day for the community; 0: no budget"}
    }},
    "allow_provisional": {"type": "boolean", "default": false, "description": "answer before the owner confirmed the community"}
  },
  "additionalProperties": false
}`)
