package collectors_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

const testPlatform = "testplat"

func apiBody(t testing.TB, op string, args map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(schemas.APIRequest{Version: schemas.Version, ID: "req-1", Operation: op, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startAPI runs ServeAPI with ops until the test ends (or stop is called)
// and returns a client connection plus stop, which returns ServeAPI's
// error.
func startAPI(t *testing.T, ops map[string]collectors.APIOp) (*nats.Conn, func() error) {
	t.Helper()
	nenv := natstest.Start(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- collectors.ServeAPI(ctx, collectors.APIServerConfig{Conn: nenv.Conn, Platform: testPlatform, Ops: ops,
			Concurrency: 4, Logger: logging.Discard()})
	}()
	var once sync.Once
	var result error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(10 * time.Second):
				result = errors.New("ServeAPI did not return")
			}
		})
		return result
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("ServeAPI = %v", err)
		}
	})
	client := natstest.Connect(t, nenv.Server)
	natstest.Eventually(t, 10*time.Second, "the API serving", func() bool {
		for op := range ops {
			if _, err := client.NC.Request(schemas.APISubject(testPlatform, op), []byte("x"), time.Second); err != nil {
				return false
			}
		}
		return true
	})
	return client.NC, stop
}

func ask(t *testing.T, nc *nats.Conn, op string, body []byte) schemas.APIResponse {
	t.Helper()
	msg, err := nc.Request(schemas.APISubject(testPlatform, op), body, 5*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", op, err)
	}
	var resp schemas.APIResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		t.Fatalf("undecodable answer %s: %v", msg.Data, err)
	}
	if err := resp.Validate(); err != nil {
		t.Fatalf("invalid answer %s: %v", msg.Data, err)
	}
	return resp
}

func echoOp(_ context.Context, args map[string]string) (any, *schemas.APIError) {
	if args["x"] == "" {
		return nil, &schemas.APIError{Code: "invalid", Message: "echo needs args.x"}
	}
	return map[string]string{"x": args["x"]}, nil
}

func TestServeAPIAnswers(t *testing.T) {
	nc, _ := startAPI(t, map[string]collectors.APIOp{
		"echo":  echoOp,
		"other": echoOp,
		"boom":  func(context.Context, map[string]string) (any, *schemas.APIError) { panic("bug") },
	})
	tests := []struct {
		name, op  string
		body      []byte
		wantData  string
		wantError string
	}{
		{name: "answered", op: "echo", body: apiBody(t, "echo", map[string]string{"x": "hi"}), wantData: `{"x":"hi"}`},
		{name: "op error", op: "echo", body: apiBody(t, "echo", nil), wantError: "invalid"},
		{name: "bad JSON", op: "echo", body: []byte("{not json"), wantError: "invalid"},
		{name: "bad version", op: "echo", body: []byte(`{"version":0,"operation":"echo"}`), wantError: "invalid"},
		{name: "operation differs from subject", op: "echo", body: apiBody(t, "other", map[string]string{"x": "a"}), wantError: "invalid"},
		{name: "panicking op", op: "boom", body: apiBody(t, "boom", nil), wantError: "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ask(t, nc, tt.op, tt.body)
			if tt.wantError != "" {
				if resp.Error == nil || resp.Error.Code != tt.wantError || resp.Error.Message == "" {
					t.Fatalf("answer = %+v (data %s), want error %s", resp.Error, resp.Data, tt.wantError)
				}
				return
			}
			if resp.Error != nil {
				t.Fatalf("error = %v", resp.Error)
			}
			if resp.ID != "req-1" || string(resp.Data) != tt.wantData {
				t.Fatalf("answer id %q data %s, want req-1 %s", resp.ID, resp.Data, tt.wantData)
			}
		})
	}
	// A subject nobody serves (an operation the platform lacks) has no
	// responder rather than a hanging request.
	if _, err := nc.Request(schemas.APISubject(testPlatform, "missing"), apiBody(t, "missing", nil), time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("unknown operation: err = %v, want no responders", err)
	}
}

// Requests beyond one are answered concurrently, up to the concurrency
// bound.
func TestServeAPIConcurrent(t *testing.T) {
	var running, peak atomic.Int32
	release := make(chan struct{})
	nc, _ := startAPI(t, map[string]collectors.APIOp{
		"slow": func(ctx context.Context, args map[string]string) (any, *schemas.APIError) {
			if args["x"] == "" { // the readiness probe
				return nil, &schemas.APIError{Code: "invalid", Message: "probe"}
			}
			n := running.Add(1)
			defer running.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return map[string]string{"x": args["x"]}, nil
		},
	})
	const requests = 8
	var wg sync.WaitGroup
	answered := make(chan schemas.APIResponse, requests)
	for range requests {
		wg.Go(func() {
			msg, err := nc.Request(schemas.APISubject(testPlatform, "slow"), apiBody(t, "slow", map[string]string{"x": "y"}), 10*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			var resp schemas.APIResponse
			_ = json.Unmarshal(msg.Data, &resp)
			answered <- resp
		})
	}
	natstest.Eventually(t, 10*time.Second, "four lookups in flight", func() bool { return running.Load() == 4 })
	close(release)
	wg.Wait()
	close(answered)
	n := 0
	for resp := range answered {
		if resp.Error != nil || string(resp.Data) != `{"x":"y"}` {
			t.Errorf("answer = %+v %s", resp.Error, resp.Data)
		}
		n++
	}
	if n != requests {
		t.Fatalf("%d answers, want %d", n, requests)
	}
	if p := peak.Load(); p > 4 {
		t.Fatalf("%d lookups at once, want at most 4", p)
	}
}

// Cancelling ctx stops serving: ServeAPI returns once the lookups in
// flight end, and later requests find no responder.
func TestServeAPIStopsOnCancel(t *testing.T) {
	var started atomic.Int32
	nc, stop := startAPI(t, map[string]collectors.APIOp{
		"wait": func(ctx context.Context, args map[string]string) (any, *schemas.APIError) {
			if args["x"] == "" {
				return nil, &schemas.APIError{Code: "invalid", Message: "probe"}
			}
			started.Add(1)
			<-ctx.Done()
			return nil, &schemas.APIError{Code: "unavailable", Message: ctx.Err().Error()}
		},
	})
	if err := nc.PublishRequest(schemas.APISubject(testPlatform, "wait"), nats.NewInbox(), apiBody(t, "wait", map[string]string{"x": "1"})); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 10*time.Second, "the lookup running", func() bool { return started.Load() == 1 })
	if err := stop(); err != nil {
		t.Fatalf("ServeAPI = %v", err)
	}
	// The unsubscription reaches the server asynchronously.
	natstest.Eventually(t, 10*time.Second, "no responders after stop", func() bool {
		_, err := nc.Request(schemas.APISubject(testPlatform, "wait"), apiBody(t, "wait", map[string]string{"x": "1"}), 200*time.Millisecond)
		return errors.Is(err, nats.ErrNoResponders)
	})
}

func TestServeAPINeedsConfig(t *testing.T) {
	if err := collectors.ServeAPI(t.Context(), collectors.APIServerConfig{Platform: testPlatform}); err == nil {
		t.Fatal("ServeAPI without a connection or operations = nil")
	}
}

func FuzzDecodeAPIRequest(f *testing.F) {
	f.Add("wb.api.twitch.channel_info", []byte(`{"version":1,"id":"x","operation":"channel_info","args":{"login":"bob"}}`))
	f.Add("wb.api.twitch.user_by_login", []byte(`{"version":1,"operation":"user_by_login"}`))
	f.Add("wb.api.twitch.user_by_login", []byte(`{"version":0}`))
	f.Add("wb.api.discord.member", []byte(`{"version":1,"operation":"member","args":{"server_id":"1","name":"<@2>"}}`))
	f.Fuzz(func(t *testing.T, subject string, body []byte) {
		req, apiErr := collectors.DecodeAPIRequest(schemas.PlatformTwitch, subject, body)
		if apiErr != nil {
			if apiErr.Code != "invalid" || apiErr.Message == "" {
				t.Fatalf("error %+v, want a described invalid", apiErr)
			}
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted an invalid request: %v", err)
		}
		if subject != "wb.api.twitch."+req.Operation {
			t.Fatalf("accepted operation %q on %s", req.Operation, subject)
		}
	})
}
