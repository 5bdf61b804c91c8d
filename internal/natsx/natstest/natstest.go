// Package natstest gives each test its own embedded JetStream server (random
// port, temporary store) with WaddleBot's streams and buckets applied.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/streams"
)

// Env is one test's NATS.
type Env struct {
	Server *natsx.Embedded
	Conn   *natsx.Conn
	// Streams is the configuration the streams were applied with.
	Streams streams.Config
}

// Start runs a server for t, applies the streams (tune adjusts their
// configuration first, may be nil) and connects. Everything stops in Cleanup.
func Start(t testing.TB, tune func(*streams.Config)) *Env {
	t.Helper()
	srv, err := natsx.StartEmbedded(natsx.EmbeddedOptions{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	conn := Connect(t, srv)
	cfg := streams.Default()
	cfg.EventsMaxBytes = 256 << 20
	if tune != nil {
		tune(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := streams.Apply(ctx, conn.JS, cfg); err != nil {
		t.Fatal(err)
	}
	return &Env{Server: srv, Conn: conn, Streams: cfg}
}

// Connect opens another client connection to the server, closed in Cleanup.
func Connect(t testing.TB, srv *natsx.Embedded) *natsx.Conn {
	t.Helper()
	conn, err := natsx.Connect(context.Background(), natsx.ConnectOptions{URL: srv.URL(), Name: t.Name(), Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.NC.Close() })
	return conn
}

// Connect opens another client connection to this test's server.
func (e *Env) Connect(t testing.TB) *natsx.Conn { return Connect(t, e.Server) }
