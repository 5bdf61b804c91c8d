package twitch_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nicklaw5/helix/v2"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Every app-token call survives Twitch refusing the cached app token: the
// token is dropped, a new one fetched, and the call made once more.
func TestRefusedAppTokenIsReplaced(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, env *senderEnv) error
	}{
		{name: "user lookup", run: func(t *testing.T, env *senderEnv) error {
			resp := serveAPIOn(t, env)(twitch.OpUserByLogin, apiRequest(t, twitch.OpUserByLogin, map[string]string{"login": "friend"}))
			if resp.Error != nil {
				return errors.New(resp.Error.Code + ": " + resp.Error.Message)
			}
			return nil
		}},
		{name: "channel info", run: func(t *testing.T, env *senderEnv) error {
			resp := serveAPIOn(t, env)(twitch.OpChannelInfo, apiRequest(t, twitch.OpChannelInfo, map[string]string{"broadcaster_id": fixFriend}))
			if resp.Error != nil {
				return errors.New(resp.Error.Code + ": " + resp.Error.Message)
			}
			return nil
		}},
		{name: "shoutout to a login", run: func(t *testing.T, env *senderEnv) error {
			r := chatReply("")
			r.Action, r.ActionData = schemas.ActionShoutout, &schemas.PlatformAction{Action: schemas.ActionShoutout, TargetLogin: "friend"}
			return env.platform.Send(context.Background(), r)
		}},
		{name: "webhook subscriptions", run: func(t *testing.T, env *senderEnv) error {
			sub, err := twitch.NewAppSubscriber(twitch.AppSubscriberConfig{Helix: env.helix, Tokens: env.tokens, Accounts: env.accounts,
				Transport: func(context.Context) (helix.EventSubTransport, error) {
					return helix.EventSubTransport{Method: "webhook", Callback: "https://bot.example/webhooks/twitch", Secret: "0123456789abcdef"}, nil
				}, Logger: logging.Discard()})
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Reconcile(context.Background()); err != nil {
				return err
			}
			if len(env.srv.Subscriptions()) == 0 {
				return errors.New("no subscription made")
			}
			return nil
		}},
		{name: "conduit setup", run: func(t *testing.T, env *senderEnv) error {
			nenv := natstest.Start(t, nil)
			kv, err := nenv.Conn.JS.KeyValue(context.Background(), streams.BucketLeases)
			if err != nil {
				t.Fatal(err)
			}
			leases, err := coord.NewLeases(context.Background(), kv, "replica-a", logging.Discard())
			if err != nil {
				t.Fatal(err)
			}
			cd, err := twitch.NewConduit(twitch.ConduitConfig{Endpoints: env.srv.Endpoints(), Helix: env.helix, Tokens: env.tokens,
				Intake: twitch.NewIntake(twitch.IntakeConfig{Accounts: env.accounts}), Leases: leases, Shards: 1, Logger: logging.Discard()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = cd.ID(context.Background())
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSenderEnv(t)
			refused, _ := env.tokens.AppToken(context.Background())
			env.srv.Expire(refused)
			if err := tt.run(t, env); err != nil {
				t.Fatalf("with a refused app token: %v", err)
			}
			if n := env.tokens.appTokens(); n != 1 {
				t.Fatalf("%d new app tokens, want 1", n)
			}
		})
	}
}

// A token Twitch keeps refusing is not asked for again and again.
func TestAppTokenRefusedTwiceGivesUp(t *testing.T) {
	env := newSenderEnv(t)
	env.tokens.refuseApp = env.srv.Expire
	refused, _ := env.tokens.AppToken(context.Background())
	env.srv.Expire(refused)
	ask := serveAPIOn(t, env)
	resp := ask(twitch.OpUserByLogin, apiRequest(t, twitch.OpUserByLogin, map[string]string{"login": "friend"}))
	if resp.Error == nil || resp.Error.Code != "unauthorized" {
		t.Fatalf("answer = %+v, want unauthorized", resp.Error)
	}
	if n := env.tokens.appTokens(); n != 1 {
		t.Fatalf("%d new app tokens, want 1", n)
	}
}

// heldTransport holds every Helix request until the request's context ends,
// counting those started and those still running.
type heldTransport struct {
	started, running atomic.Int32
}

func (h *heldTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h.started.Add(1)
	defer h.running.Add(-1)
	h.running.Add(1)
	<-req.Context().Done()
	return nil, req.Context().Err()
}

// Shutting down with every lookup slot busy and more requests waiting
// waits for the lookups running and starts no new one.
func TestServeAPIShutdownUnderLoad(t *testing.T) {
	env := newSenderEnv(t)
	held := &heldTransport{}
	h, err := twitch.NewHelix(env.srv.ClientID, env.srv.ClientSecret, "", env.srv.Endpoints(), &http.Client{Transport: held})
	if err != nil {
		t.Fatal(err)
	}
	nenv := natstest.Start(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- twitch.ServeAPI(ctx, twitch.APIConfig{Conn: nenv.Conn, Helix: h, Tokens: env.tokens,
			Logger: slog.New(slog.NewTextHandler(env.logs, nil))})
	}()
	client := natstest.Connect(t, nenv.Server)
	subject := schemas.APISubject(schemas.PlatformTwitch, twitch.OpUserByLogin)
	inbox := nats.NewInbox()
	body := apiRequest(t, twitch.OpUserByLogin, map[string]string{"login": "friend"})
	var sent sync.WaitGroup
	natstest.Eventually(t, 10*time.Second, "the API serving", func() bool {
		_, err := client.NC.Request(subject, []byte("not JSON"), time.Second)
		return err == nil
	})
	const requests = 64
	for range requests {
		sent.Go(func() {
			if err := client.NC.PublishRequest(subject, inbox, body); err != nil {
				t.Error(err)
			}
		})
	}
	sent.Wait()
	natstest.Eventually(t, 10*time.Second, "every lookup slot busy", func() bool { return held.running.Load() == 16 })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeAPI = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeAPI did not return")
	}
	if n := held.running.Load(); n != 0 {
		t.Fatalf("%d lookups still running after ServeAPI returned", n)
	}
	if n := held.started.Load(); n != 16 {
		t.Fatalf("%d lookups started, want the 16 running at shutdown and none after", n)
	}
}
