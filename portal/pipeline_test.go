package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/alias"
	"github.com/waddlebot/waddlebot/actions/memories"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/ops"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/portal"
)

// TestPortalChangesReachThePipeline proves the portal's changes take effect
// in chat at once: the router caches community configuration for a minute,
// so only the control notice can make these pass.
func TestPortalChangesReachThePipeline(t *testing.T) {
	p := pipelinetest.Start(t, pipelinetest.Options{Modules: []func(*store.Store) actions.Module{
		func(st *store.Store) actions.Module { return memories.New(memories.Config{Store: st}) },
		func(st *store.Store) actions.Module { return alias.New(alias.Config{Store: st}) },
	}})
	const none = "There are no quotes yet"
	if got := p.SayText("alice", "", "!quote"); !strings.Contains(got, none) {
		t.Fatalf("!quote before: %q", got)
	}
	c := p.Community(pipelinetest.DefaultChannel)

	srv := ops.New(logging.Discard())
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	pt, err := portal.New(portal.Config{Store: p.Store, Conn: p.Env.Connect(t), PublicURL: base, DevSignIn: true, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	pt.Mount(srv)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	e := &env{t: t, st: p.Store, url: base}
	b := e.browser()
	_, page := b.get(base + "/portal/signin")
	if status, page := b.post(base+"/portal/signin/dev", url.Values{"csrf": {csrfOf(t, page)}}); status != http.StatusOK {
		t.Fatalf("dev sign-in: %d\n%s", status, page)
	}
	cbase := base + "/portal/c/" + c.ID
	_, page = b.get(cbase + "/modules")
	token := csrfOf(t, page)

	if status, _ := b.post(cbase+"/modules/memories/enabled", url.Values{"csrf": {token}, "enabled": {"false"}}); status != http.StatusOK {
		t.Fatalf("disable: %d", status)
	}
	p.Silent("alice", "", "!quote")
	if status, _ := b.post(cbase+"/modules/memories/enabled", url.Values{"csrf": {token}, "enabled": {"true"}}); status != http.StatusOK {
		t.Fatalf("enable: %d", status)
	}
	if got := p.SayText("alice", "", "!quote"); !strings.Contains(got, none) {
		t.Fatalf("!quote after enabling: %q", got)
	}

	if status, page := b.post(cbase+"/quotes", url.Values{"csrf": {token}, "text": {"Hello pond"}, "author": {"Duck"}}); status != http.StatusOK {
		t.Fatalf("add quote: %d\n%s", status, page)
	}
	if status, page := b.post(cbase+"/aliases", url.Values{"csrf": {token}, "name": {"q"}, "command": {"!quote {1|random}"}}); status != http.StatusOK {
		t.Fatalf("add alias: %d\n%s", status, page)
	}
	if got := p.SayText("alice", "", "!q 1"); !strings.Contains(got, "#1: “Hello pond” — Duck") {
		t.Fatalf("!q 1: %q", got)
	}
}
