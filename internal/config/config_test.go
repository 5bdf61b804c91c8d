package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, env map[string]string, files map[string]string, args ...string) (Loaded, []string, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	l := NewLoader(fs, GroupNATS, GroupDatabase, GroupRouter, GroupLog).WithEnv(
		func(k string) string { return env[k] },
		func(p string) ([]byte, error) {
			if v, ok := files[p]; ok {
				return []byte(v), nil
			}
			return nil, os.ErrNotExist
		})
	rest, err := ParseInterspersed(fs, args)
	if err != nil {
		return Loaded{}, nil, err
	}
	c, err := l.Load()
	return c, rest, err
}

func TestPrecedence(t *testing.T) {
	c, _, err := load(t, map[string]string{
		"WADDLEBOT_USER_RATE_LIMIT":    "10",
		"WADDLEBOT_USER_RATE_WINDOW":   "30s",
		"WADDLEBOT_DATABASE_URL_FILE":  "/run/secrets/db",
		"WADDLEBOT_CHANNEL_RATE_LIMIT": "7",
	}, map[string]string{"/run/secrets/db": "postgres://u:p@db:5432/wb\n"}, "--user-rate-limit", "20")
	if err != nil {
		t.Fatal(err)
	}
	if c.UserRateLimit != 20 || c.Sources["USER_RATE_LIMIT"] != FromFlag {
		t.Errorf("flag did not win: %d (%s)", c.UserRateLimit, c.Sources["USER_RATE_LIMIT"])
	}
	if c.UserRateWindow != 30*time.Second || c.Sources["USER_RATE_WINDOW"] != FromEnv {
		t.Errorf("env not applied: %s", c.UserRateWindow)
	}
	if c.DatabaseURL != "postgres://u:p@db:5432/wb" || c.Sources["DATABASE_URL"] != FromFile {
		t.Errorf("_FILE not applied: %q", c.DatabaseURL)
	}
	if c.ChannelRateLimit != 7 || c.CacheTTL != time.Minute || c.Sources["CACHE_TTL"] != FromDefault {
		t.Errorf("defaults/env mixed up: %+v", c.Config)
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"WADDLEBOT_USER_RATE_LIMIT": "zero"}, nil, "WADDLEBOT_USER_RATE_LIMIT"},
		{nil, []string{"--user-rate-window", "-5s"}, "--user-rate-window"},
		{map[string]string{"WADDLEBOT_LOG_LEVEL": "loud"}, nil, "want one of"},
		{map[string]string{"WADDLEBOT_NATS_URL": "http://x"}, nil, "scheme"},
		{map[string]string{"WADDLEBOT_DATABASE_URL": "mysql://root:hunter2@x/db"}, nil, "xxxxx"},
		{map[string]string{"WADDLEBOT_DATABASE_URL_FILE": "/missing"}, nil, "_FILE"},
		{map[string]string{"WADDLEBOT_USER_RATE_WINDOW": "20m"}, nil, "shorter than WADDLEBOT_WINDOWS_TTL"},
	}
	for _, tt := range tests {
		_, _, err := load(t, tt.env, nil, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("env %v args %v: err %v, want mention of %q", tt.env, tt.args, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("secret leaked in error: %v", err)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	fs := flag.NewFlagSet("say", flag.ContinueOnError)
	ch := fs.String("channel", "demo", "")
	rest, err := ParseInterspersed(fs, []string{"!so", "--channel", "main", "@bob", "--", "--not-a-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if *ch != "main" || !reflect.DeepEqual(rest, []string{"!so", "@bob", "--not-a-flag"}) {
		t.Fatalf("channel %q rest %q", *ch, rest)
	}
	if _, err := ParseInterspersed(flag.NewFlagSet("x", flag.ContinueOnError), []string{"--nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}

func TestPrintMasksSecrets(t *testing.T) {
	c, _, err := load(t, map[string]string{"WADDLEBOT_DATABASE_URL": "postgres://wb:hunter2@db/wb"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SecretKey = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="
	var b bytes.Buffer
	Print(&b, c)
	out := b.String()
	if strings.Contains(out, "hunter2") || strings.Contains(out, c.SecretKey) {
		t.Fatalf("secret printed:\n%s", out)
	}
	if !strings.Contains(out, "WADDLEBOT_DATABASE_URL=postgres://wb:xxxxx@db/wb\t(env)") {
		t.Fatalf("masked URL missing:\n%s", out)
	}
	for _, name := range Names() {
		if !strings.Contains(out, EnvPrefix+name+"=") {
			t.Errorf("%s not printed", name)
		}
	}
}

func TestResolveNATSURL(t *testing.T) {
	dir := t.TempDir()
	c := Defaults()
	c.DataDir = dir
	if got := ResolveNATSURL(c); got != DefaultNATSURL {
		t.Fatalf("no file: %s", got)
	}
	if err := os.WriteFile(filepath.Join(dir, NATSURLFile), []byte("nats://127.0.0.1:4223\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := ResolveNATSURL(c); got != "nats://127.0.0.1:4223" {
		t.Fatalf("from file: %s", got)
	}
	c.NATSURL = "nats://elsewhere:4222"
	if got := ResolveNATSURL(c); got != c.NATSURL {
		t.Fatalf("explicit: %s", got)
	}
}

func TestDefaultsValid(t *testing.T) {
	for _, s := range Table() {
		if s.validate != nil {
			if err := s.validate(s.Default); err != nil && !errors.Is(err, nil) {
				t.Errorf("default of %s invalid: %v", s.Name, err)
			}
		}
	}
}
