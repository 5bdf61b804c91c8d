package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/schemas"
)

// The raw chain is the floor WaddleBot is measured against: the same hops
// as the pipeline (events → commands → replies → a sender's consumer), the
// same storage, duplicate windows and message sizes, with no decoding, no
// PostgreSQL and no KV: each hop fetches a batch, publishes what the next
// hop needs, waits for the publish acks and acks the batch.

const (
	rawEvents  = "RAW_EVENTS"
	rawCmds    = "RAW_CMDS"
	rawReplies = "RAW_REPLIES"
	hdrCommand = "Bench-Command"
	hdrEvent   = "Bench-Event"
)

func startRawChain(ctx context.Context, env *natsEnv, l *load) (*target, func(), error) {
	js := env.conn.JS
	base := env.streams.Streams()
	for _, spec := range []struct{ name, subject, from string }{
		{rawEvents, "raw.events.>", schemas.StreamEvents},
		{rawCmds, "raw.cmd.>", schemas.StreamCommands},
		{rawReplies, "raw.reply.>", schemas.StreamReplies},
	} {
		var sc jetstream.StreamConfig
		for _, b := range base {
			if b.Name == spec.from {
				sc = b
			}
		}
		sc.Name, sc.Subjects, sc.Description = spec.name, []string{spec.subject}, "waddlebot bench raw chain"
		_ = js.DeleteStream(ctx, spec.name)
		if _, err := js.CreateStream(ctx, sc); err != nil {
			return nil, nil, fmt.Errorf("bench: unable to create %s: %w", spec.name, err)
		}
	}
	_, invSize := l.sizes()
	invBody := bytes.Repeat([]byte("x"), invSize)

	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var conns []*natsx.Conn
	// Each hop on a connection of its own, as each pipeline part has.
	hop := func(stream, durable string, forward func(m jetstream.Msg) *nats.Msg) error {
		conn, err := natsx.Connect(ctx, natsx.ConnectOptions{URL: env.url, Name: "bench " + durable})
		if err != nil {
			return err
		}
		conns = append(conns, conn)
		c, err := conn.JS.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: durable,
			AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1, MaxAckPending: 20000})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rawHop(rctx, conn.JS, c, forward)
		}()
		return nil
	}
	closeConns := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	err := errors.Join(
		hop(rawEvents, "raw-router", func(m jetstream.Msg) *nats.Msg {
			if m.Headers().Get(hdrCommand) == "" {
				return nil
			}
			ev := m.Headers().Get(hdrEvent)
			return &nats.Msg{Subject: "raw.cmd.core", Data: invBody,
				Header: nats.Header{jetstream.MsgIDHeader: []string{"inv-" + ev}, hdrEvent: []string{ev}}}
		}),
		hop(rawCmds, "raw-core", func(m jetstream.Msg) *nats.Msg {
			ev := m.Headers().Get(hdrEvent)
			body, _ := json.Marshal(map[string]any{"id": "r-" + ev, "event_id": ev, "part": 1, "parts": 1,
				"text": "pong", "target": map[string]string{"platform": "console", "channel_id": "bench"}})
			return &nats.Msg{Subject: "raw.reply.console.bench", Data: body,
				Header: nats.Header{jetstream.MsgIDHeader: []string{"r-" + ev}}}
		}),
		hop(rawReplies, "raw-sender", func(jetstream.Msg) *nats.Msg { return nil }),
	)
	if err != nil {
		cancel()
		wg.Wait()
		closeConns()
		return nil, nil, fmt.Errorf("bench: unable to start the raw chain: %w", err)
	}
	t := &target{name: "raw", js: js, nc: env.conn.NC,
		eventSubject: func(ev *schemas.Event) string { return "raw.events.console." + schemas.EncodeToken(ev.Channel.ID) },
		replyFilter:  "raw.reply.>",
		ackDone:      consumerDone(js, rawEvents, "raw-router"),
		rawHeaders:   true,
	}
	stop := func() {
		cancel()
		wg.Wait()
		closeConns()
		for _, s := range []string{rawEvents, rawCmds, rawReplies} {
			_ = js.DeleteStream(context.Background(), s)
		}
	}
	return t, stop, nil
}

func rawHop(ctx context.Context, js jetstream.JetStream, c jetstream.Consumer, forward func(jetstream.Msg) *nats.Msg) {
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		batch, err := c.Fetch(256, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			continue
		}
		var msgs []jetstream.Msg
		var futures []jetstream.PubAckFuture
		for m := range batch.Messages() {
			msgs = append(msgs, m)
			if out := forward(m); out != nil {
				f, err := js.PublishMsgAsync(out)
				if err == nil {
					futures = append(futures, f)
				}
			}
		}
		cancel()
		for _, f := range futures {
			select {
			case <-f.Ok():
			case <-f.Err():
			case <-ctx.Done():
				return
			}
		}
		for _, m := range msgs {
			_ = m.Ack()
		}
	}
}
