package natsauth_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/internal/natsauth"
	"github.com/waddlebot/waddlebot/internal/natsauth/natsauthtest"
)

func TestInitKeepsKeys(t *testing.T) {
	dir := t.TempDir()
	a, err := natsauth.Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := natsauth.Parts([]string{"console", "twitch"}, []string{"core", "ai"})
	if err != nil {
		t.Fatal(err)
	}
	files, err := a.WriteAll(parts)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server.conf", "admin.creds", "router.creds", "relay.creds", "portal.creds",
		"collector-console.creds", "collector-twitch.creds", "action-core.creds", "action-ai.creds"} {
		found := false
		for _, f := range files {
			found = found || filepath.Base(f) == want
		}
		if !found {
			t.Errorf("%s not written (got %v)", want, files)
		}
	}
	b, err := natsauth.Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.AccountPub != b.AccountPub || a.SystemPub != b.SystemPub {
		t.Fatal("re-running changed the account keys")
	}
	if _, err := natsauth.Load(t.TempDir()); err == nil {
		t.Fatal("Load of an empty directory succeeded")
	}
	if _, err := natsauth.Parts([]string{"bad.platform"}, nil); err == nil {
		t.Fatal("a platform with a dot was accepted")
	}
	info, err := os.Stat(filepath.Join(dir, "keys", "waddlebot-signing.nk"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("signing key mode: %v %v", info, err)
	}
}

// received reports what a subscriber got before a sentinel published after
// the probe arrived: the connection keeps order, so a refused message that
// did not come before the sentinel never comes.
func collect(t *testing.T, nc *nats.Conn, subject string) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 16)
	if _, err := nc.ChanSubscribe(subject, ch); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

func wait(t *testing.T, ch chan *nats.Msg, what string) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("%s never arrived", what)
		return nil
	}
}

func TestScopes(t *testing.T) {
	env := natsauthtest.Start(t)
	admin := env.Admin.NC

	tests := []struct {
		name     string
		perms    natsauth.Permissions
		pubOK    []string
		pubNo    []string
		subOK    []string
		subNo    []string
		sentinel string // a subject the user may publish, for ordering
	}{
		{
			name:  "external module",
			perms: natsauth.ExternalModulePermissions("weather"),
			pubOK: []string{"wb.result.weather"},
			pubNo: []string{"wb.reply.console.x", "wb.result.other", "wb.cmd.weather", "wb.events.console.x.chat", "$JS.API.STREAM.INFO.WB_COMMANDS"},
			subOK: []string{"wb.ext.weather.invoke"},
			subNo: []string{"wb.cmd.other", "wb.cmd.weather", "wb.ext.other.invoke", "wb.result.other"},
		},
		{
			name:  "built-in action",
			perms: natsauth.ActionPermissions("core"),
			pubOK: []string{"wb.reply.console.x", "wb.control.registry"},
			pubNo: []string{"wb.events.console.x.chat", "wb.cmd.core", "wb.result.core"},
			subOK: []string{"wb.control.registry"},
			subNo: []string{"wb.cmd.core", "wb.events.console.x.chat"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user := env.Mint(t, tc.name, tc.perms).NC
			sentinel := tc.pubOK[0]
			got := collect(t, admin, ">")
			// Drop what the admin's own probe subscriptions see later.
			for _, subj := range tc.pubNo {
				_ = user.Publish(subj, []byte("forbidden"))
				_ = user.Publish(sentinel, []byte("sentinel"))
				if err := user.Flush(); err != nil {
					t.Fatal(err)
				}
				for {
					m := wait(t, got, "sentinel after "+subj)
					if m.Subject == subj && string(m.Data) == "forbidden" {
						t.Fatalf("publish to %s was allowed", subj)
					}
					if m.Subject == sentinel && string(m.Data) == "sentinel" {
						break
					}
				}
			}
			for _, subj := range tc.subOK {
				ch := collect(t, user, subj)
				if err := admin.Publish(subj, []byte("ok")); err != nil {
					t.Fatal(err)
				}
				wait(t, ch, "allowed subscription "+subj)
			}
			okSubject := tc.subOK[0]
			okCh := collect(t, user, okSubject)
			for _, subj := range tc.subNo {
				ch := make(chan *nats.Msg, 4)
				// The refusal is asynchronous; the subscription just never gets anything.
				_, _ = user.ChanSubscribe(subj, ch)
				_ = user.Flush()
				_ = admin.Publish(subj, []byte("forbidden"))
				_ = admin.Publish(okSubject, []byte("sentinel"))
				_ = admin.Flush()
				for {
					m := wait(t, okCh, "sentinel after "+subj)
					if string(m.Data) == "sentinel" {
						break
					}
				}
				select {
				case <-ch:
					t.Fatalf("subscription to %s was allowed", subj)
				default:
				}
			}
		})
	}
}

func TestServerConfigNamesAccounts(t *testing.T) {
	s, err := natsauth.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	conf := s.ServerConfig()
	for _, want := range []string{"operator:", "resolver: MEMORY", s.AccountPub, s.SystemPub} {
		if !strings.Contains(conf, want) {
			t.Errorf("server config lacks %q", want)
		}
	}
}
