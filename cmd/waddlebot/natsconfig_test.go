package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/waddlebot/waddlebot/internal/natsauth"
)

func TestNATSConfigWritesPartsAndKeepsKeys(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("WADDLEBOT_DATA_DIR", t.TempDir())
	if code := run([]string{"nats-config", "--dir", dir}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	first, err := natsauth.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"server.conf", "creds/admin.creds", "creds/router.creds", "creds/relay.creds",
		"creds/collector-twitch.creds", "creds/action-core.creds", "creds/portal.creds"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if code := run([]string{"nats-config", "--dir", dir}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	second, err := natsauth.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if first.AccountPub != second.AccountPub {
		t.Fatal("re-running replaced the account key")
	}
	if code := run([]string{"nats-config", "extra"}); code == 0 {
		t.Fatal("a stray argument was accepted")
	}
}
