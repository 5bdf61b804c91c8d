// Package natsx connects to NATS and runs the embedded JetStream server that
// `waddlebot dev`, the benchmark and the tests use.
package natsx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Conn is a NATS connection with its JetStream context.
type Conn struct {
	NC *nats.Conn
	JS jetstream.JetStream
}

// Close drains the connection: subscriptions finish what they hold and
// pending publishes are flushed.
func (c *Conn) Close() {
	if c == nil || c.NC == nil {
		return
	}
	if err := c.NC.Drain(); err != nil {
		c.NC.Close()
		return
	}
	// Drain returns at once; wait for it so callers may close what comes after.
	deadline := time.Now().Add(10 * time.Second)
	for !c.NC.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c.NC.Close()
}

// ConnectOptions configure a client connection.
type ConnectOptions struct {
	URL   string
	Name  string // shown in the server's connection list
	Creds string // user credentials file; empty for none
	// Logger receives disconnect and reconnect notices.
	Logger *slog.Logger
	// Server connects in-process to an embedded server, skipping the socket.
	Server *server.Server
}

// Connect dials NATS with reconnection forever: a part keeps running through
// a NATS restart and carries on when the server comes back.
func Connect(ctx context.Context, o ConnectOptions) (*Conn, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats: disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats: reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("nats: async error", "subject", subject, "err", err)
		}),
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.Server != nil {
		opts = append(opts, nats.InProcessServer(o.Server))
	}
	url := o.URL
	if o.Server != nil && url == "" {
		url = o.Server.ClientURL()
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("natsx: unable to connect to %s: %w", url, err)
	}
	// Without a timeout an async publish whose ack is lost waits forever, and
	// the message it belongs to with it.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsx: unable to open JetStream: %w", err)
	}
	return &Conn{NC: nc, JS: js}, nil
}

// EmbeddedOptions configure an embedded server.
type EmbeddedOptions struct {
	// StoreDir holds JetStream's file store; empty means memory only.
	StoreDir string
	// Host to listen on; 127.0.0.1 when empty.
	Host string
	// Port to prefer: 0 means 4222, or the next free port above it when
	// 4222 is taken; -1 means any free port.
	Port int
	// DontListen serves in-process connections only.
	DontListen bool
}

// Embedded is a running in-process NATS server with JetStream.
type Embedded struct {
	Server *server.Server
}

// StartEmbedded starts a JetStream-enabled NATS server in this process.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	host := o.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := o.Port
	if port == 0 {
		p, err := freePortFrom(host, 4222)
		if err != nil {
			return nil, err
		}
		port = p
	}
	opts := &server.Options{
		ServerName: "waddlebot-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoLog:      true,
		NoSigs:     true,
		DontListen: o.DontListen,
		// Benchmarks and bursts publish far past the default limits.
		MaxPayload: 8 << 20,
	}
	if o.StoreDir == "" {
		opts.JetStreamMaxStore = -1
		opts.JetStreamMaxMemory = 1 << 30
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsx: unable to create embedded server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("natsx: embedded server did not become ready in 10s")
	}
	return &Embedded{Server: s}, nil
}

// URL is the client URL of the embedded server.
func (e *Embedded) URL() string { return e.Server.ClientURL() }

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.Server.Shutdown()
	e.Server.WaitForShutdown()
}

func freePortFrom(host string, start int) (int, error) {
	for p := start; p < start+100; p++ {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			l.Close()
			return p, nil
		}
	}
	return 0, fmt.Errorf("natsx: no free port in %d..%d on %s", start, start+99, host)
}
