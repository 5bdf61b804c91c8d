package main

import (
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

// capture runs the command line and returns its exit code and standard output.
func capture(t *testing.T, args ...string) (int, string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = f
	code := run(args)
	os.Stdout = old
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(f)
	f.Close()
	return code, string(out)
}

func TestExternalCommands(t *testing.T) {
	t.Setenv("WADDLEBOT_DATABASE_URL", storetest.URL(t))
	t.Setenv("WADDLEBOT_SECRET_KEY", base64.StdEncoding.EncodeToString(storetest.TestKey))
	// No NATS: the registry notice is skipped with a warning.
	t.Setenv("WADDLEBOT_NATS_URL", "nats://127.0.0.1:1")
	data := t.TempDir()
	t.Setenv("WADDLEBOT_DATA_DIR", data)
	dir := t.TempDir()
	manifest := filepath.Join(dir, "weather.json")
	if err := os.WriteFile(manifest, []byte(`{"name":"weather","version":"1.0.0","commands":[{"name":"weather","permission":"everyone"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	hook := filepath.Join(dir, "hook.json")
	if err := os.WriteFile(hook, []byte(`{"name":"hook","version":"1.0.0","commands":[{"name":"hook","permission":"everyone"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		args     []string
		wantCode int
		want     string
	}{
		{[]string{"external", "add", "nats", manifest}, 0, "registered nats module weather"},
		{[]string{"external", "add", "webhook", hook}, 2, ""},
		{[]string{"external", "add", "webhook", hook, "--url", "http://insecure.test/"}, 2, ""},
		{[]string{"external", "add", "webhook", hook, "--url", "https://example.test/hook"}, 0, "webhook secret"},
		{[]string{"external", "mint", "weather"}, 1, ""}, // no nats-config yet
		{[]string{"nats-config"}, 0, "server.conf"},
		{[]string{"external", "mint", "weather"}, 0, "-----BEGIN NATS USER JWT-----"},
		{[]string{"external", "mint", "hook"}, 2, ""},
		{[]string{"external", "list"}, 0, "hook"},
		{[]string{"external", "remove", "hook"}, 0, "removed hook"},
		{[]string{"external", "remove", "hook"}, 1, ""},
		{[]string{"external", "frobnicate"}, 2, ""},
	}
	for _, s := range steps {
		code, out := capture(t, s.args...)
		if code != s.wantCode || !strings.Contains(out, s.want) {
			t.Fatalf("%v: exit %d, output %q; want exit %d with %q", s.args, code, out, s.wantCode, s.want)
		}
	}
	if _, out := capture(t, "external", "list"); strings.Contains(out, "hook") || !strings.Contains(out, "weather") {
		t.Fatalf("list after remove: %q", out)
	}
}
