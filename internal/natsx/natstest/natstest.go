// Package natstest gives each test its own embedded JetStream server (random
// port, temporary store) with WaddleBot's streams and buckets applied.
package natstest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

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

// Messages returns the messages stored in stream, oldest first; with a
// filter, only those whose subject matches it.
func Messages(t testing.TB, js jetstream.JetStream, stream, filter string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted
		}
		if err != nil {
			t.Fatalf("stream %s message %d: %v", stream, seq, err)
		}
		if filter == "" || server.SubjectMatchesFilter(m.Subject, filter) {
			out = append(out, m)
		}
	}
	return out
}

// Decode returns the messages of stream (matching filter, if any) decoded
// from JSON as T, failing the test on anything undecodable.
func Decode[T any](t testing.TB, js jetstream.JetStream, stream, filter string) []T {
	t.Helper()
	var out []T
	for _, m := range Messages(t, js, stream, filter) {
		var v T
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatalf("%s seq %d on %s: %v", stream, m.Sequence, m.Subject, err)
		}
		out = append(out, v)
	}
	return out
}

// Eventually polls cond every 10 ms until it holds, failing the test with
// what after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
