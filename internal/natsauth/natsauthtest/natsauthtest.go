// Package natsauthtest runs an embedded NATS server in operator mode, loading
// the configuration `waddlebot nats-config` writes, for tests of credentials
// and of parts that run under them.
package natsauthtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsauth"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/streams"
)

// Env is one test's operator-mode server.
type Env struct {
	Setup  *natsauth.Setup
	Server *natsx.Embedded
	// Admin is connected with the admin user; the streams are applied.
	Admin *natsx.Conn
}

// Start writes a fresh configuration, loads it into a JetStream server and
// applies the streams as the admin user.
func Start(t testing.TB) *Env {
	t.Helper()
	dir := t.TempDir()
	setup, err := natsauth.Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup.WriteAll(map[string]natsauth.Permissions{"admin": natsauth.AdminPermissions()}); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, natsauth.ServerConfigFile))
	if err != nil {
		t.Fatalf("load %s: %v", natsauth.ServerConfigFile, err)
	}
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.JetStream, opts.StoreDir = true, t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("operator-mode server not ready")
	}
	emb := &natsx.Embedded{Server: srv}
	t.Cleanup(emb.Shutdown)
	env := &Env{Setup: setup, Server: emb}
	env.Admin = env.ConnectFile(t, filepath.Join(dir, "creds", "admin.creds"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := streams.Default()
	cfg.EventsMaxBytes = 256 << 20
	if err := streams.Apply(ctx, env.Admin.JS, cfg); err != nil {
		t.Fatal(err)
	}
	return env
}

// Mint issues credentials with p and connects with them.
func (e *Env) Mint(t testing.TB, name string, p natsauth.Permissions) *natsx.Conn {
	t.Helper()
	creds, err := e.Setup.MintUser(name, p)
	if err != nil {
		t.Fatal(err)
	}
	return e.Connect(t, creds)
}

// Connect connects with the given creds file content.
func (e *Env) Connect(t testing.TB, creds []byte) *natsx.Conn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return e.ConnectFile(t, path)
}

// ConnectFile connects with a creds file.
func (e *Env) ConnectFile(t testing.TB, path string) *natsx.Conn {
	t.Helper()
	conn, err := natsx.Connect(context.Background(), natsx.ConnectOptions{URL: e.Server.URL(), Name: t.Name(), Creds: path, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.NC.Close() })
	return conn
}
