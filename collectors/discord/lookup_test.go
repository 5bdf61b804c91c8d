package discord_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/collectors/discord"
	"github.com/waddlebot/waddlebot/collectors/discord/discordtest"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

const (
	lkGuild = "210000000000000001"
	lkOther = "210000000000000002"
	lkAda   = "210000000000000011"
	lkBob   = "210000000000000012"
	lkPat1  = "210000000000000013"
	lkPat2  = "210000000000000014"
	lkSam   = "210000000000000015"
	lkSammy = "210000000000000016"
	lkBot   = "210000000000000017"
)

// lkServe serves the API against the fake, with members in lkGuild, and
// returns a function asking wb.api.discord.member.
func lkServe(t *testing.T) (*discordtest.Server, func(args map[string]string) schemas.APIResponse) {
	t.Helper()
	env := newSndEnv(t)
	srv := env.srv
	for _, m := range []discordtest.Member{
		{User: discordtest.User{ID: lkAda, Username: "ada", GlobalName: "Ada Lovelace"}, Nick: "Countess"},
		{User: discordtest.User{ID: lkBob, Username: "bob_builder", GlobalName: "Bob"}},
		{User: discordtest.User{ID: lkPat1, Username: "pat1"}, Nick: "Pat"},
		{User: discordtest.User{ID: lkPat2, Username: "pat2"}, Nick: "Pat"},
		// sam's username is sammy's nickname: the username wins.
		{User: discordtest.User{ID: lkSam, Username: "sam"}},
		{User: discordtest.User{ID: lkSammy, Username: "sammy"}, Nick: "Sam"},
		{User: discordtest.User{ID: lkBot, Username: "botty", Bot: true}},
	} {
		srv.AddMember(lkGuild, m)
	}
	srv.AddMember(lkOther, discordtest.Member{User: discordtest.User{ID: "210000000000000099", Username: "elsewhere"}})

	nenv := natstest.Start(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- discord.ServeAPI(ctx, discord.APIConfig{Conn: nenv.Conn, Platform: env.platform,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeAPI = %v", err)
		}
	})
	client := natstest.Connect(t, nenv.Server)
	subject := schemas.APISubject(schemas.PlatformDiscord, discord.OpMember)
	return srv, func(args map[string]string) schemas.APIResponse {
		t.Helper()
		body, err := json.Marshal(schemas.APIRequest{Version: schemas.Version, ID: "req-1", Operation: discord.OpMember, Args: args})
		if err != nil {
			t.Fatal(err)
		}
		var msg *nats.Msg
		for range 500 {
			msg, err = client.NC.Request(subject, body, 10*time.Second)
			if !errors.Is(err, nats.ErrNoResponders) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("request: %v", err)
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
}

func TestMemberLookup(t *testing.T) {
	_, ask := lkServe(t)
	tests := []struct {
		name      string
		args      map[string]string
		wantData  string
		wantError string
	}{
		{name: "by username", args: map[string]string{"server_id": lkGuild, "name": "ADA"},
			wantData: `{"id":"` + lkAda + `","login":"ada","display_name":"Countess"}`},
		{name: "by @username", args: map[string]string{"server_id": lkGuild, "name": " @bob_builder "},
			wantData: `{"id":"` + lkBob + `","login":"bob_builder","display_name":"Bob"}`},
		{name: "by nickname", args: map[string]string{"server_id": lkGuild, "name": "countess"},
			wantData: `{"id":"` + lkAda + `","login":"ada","display_name":"Countess"}`},
		{name: "by mention", args: map[string]string{"server_id": lkGuild, "name": "<@" + lkBob + ">"},
			wantData: `{"id":"` + lkBob + `","login":"bob_builder","display_name":"Bob"}`},
		{name: "by nickname mention", args: map[string]string{"server_id": lkGuild, "name": "<@!" + lkAda + ">"},
			wantData: `{"id":"` + lkAda + `","login":"ada","display_name":"Countess"}`},
		{name: "by bare id", args: map[string]string{"server_id": lkGuild, "name": lkSam},
			wantData: `{"id":"` + lkSam + `","login":"sam","display_name":"sam"}`},
		{name: "by user_id", args: map[string]string{"server_id": lkGuild, "user_id": lkBob},
			wantData: `{"id":"` + lkBob + `","login":"bob_builder","display_name":"Bob"}`},
		{name: "username wins over a nickname", args: map[string]string{"server_id": lkGuild, "name": "Sam"},
			wantData: `{"id":"` + lkSam + `","login":"sam","display_name":"sam"}`},
		{name: "ambiguous nickname", args: map[string]string{"server_id": lkGuild, "name": "pat"}, wantError: "invalid"},
		{name: "prefix only", args: map[string]string{"server_id": lkGuild, "name": "bo"}, wantError: "not_found"},
		{name: "bots are not members to find", args: map[string]string{"server_id": lkGuild, "name": "botty"}, wantError: "not_found"},
		{name: "unknown name", args: map[string]string{"server_id": lkGuild, "name": "nobody"}, wantError: "not_found"},
		{name: "member of another server", args: map[string]string{"server_id": lkGuild, "name": "elsewhere"}, wantError: "not_found"},
		{name: "mention of a non-member", args: map[string]string{"server_id": lkGuild, "name": "<@210000000000000099>"}, wantError: "not_found"},
		{name: "no server", args: map[string]string{"name": "ada"}, wantError: "invalid"},
		{name: "server id with a path", args: map[string]string{"server_id": lkGuild + "/../x", "name": "ada"}, wantError: "invalid"},
		{name: "no name", args: map[string]string{"server_id": lkGuild}, wantError: "invalid"},
		{name: "bad user_id", args: map[string]string{"server_id": lkGuild, "user_id": "@me"}, wantError: "invalid"},
		{name: "role mention", args: map[string]string{"server_id": lkGuild, "name": "<@&210000000000000001>"}, wantError: "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ask(tt.args)
			if tt.wantError != "" {
				if resp.Error == nil || resp.Error.Code != tt.wantError || resp.Error.Message == "" {
					t.Fatalf("answer = %+v (data %s), want error %s", resp.Error, resp.Data, tt.wantError)
				}
				return
			}
			if resp.Error != nil {
				t.Fatalf("error = %v", resp.Error)
			}
			if string(resp.Data) != tt.wantData {
				t.Fatalf("data = %s, want %s", resp.Data, tt.wantData)
			}
		})
	}
}

func TestMemberLookupAmbiguousSaysMention(t *testing.T) {
	_, ask := lkServe(t)
	resp := ask(map[string]string{"server_id": lkGuild, "name": "Pat"})
	if resp.Error == nil || resp.Error.Code != "invalid" || !strings.Contains(resp.Error.Message, "ambiguous") || !strings.Contains(resp.Error.Message, "mention") {
		t.Fatalf("answer = %+v, want invalid saying ambiguous and to mention", resp.Error)
	}
}

func TestMemberLookupFailures(t *testing.T) {
	tests := []struct {
		name    string
		arrange func(*discordtest.Server)
		args    map[string]string
		want    string
	}{
		{name: "401 by name", arrange: func(s *discordtest.Server) { s.FailNext(1, http.StatusUnauthorized) },
			args: map[string]string{"server_id": lkGuild, "name": "ada"}, want: "unauthorized"},
		{name: "401 by id", arrange: func(s *discordtest.Server) { s.FailNext(1, http.StatusUnauthorized) },
			args: map[string]string{"server_id": lkGuild, "user_id": lkAda}, want: "unauthorized"},
		{name: "403", arrange: func(s *discordtest.Server) { s.FailNext(1, http.StatusForbidden) },
			args: map[string]string{"server_id": lkGuild, "name": "ada"}, want: "unauthorized"},
		{name: "429", arrange: func(s *discordtest.Server) { s.RateLimitNext(1, 5*time.Second, false) },
			args: map[string]string{"server_id": lkGuild, "name": "ada"}, want: "rate_limited"},
		{name: "500", arrange: func(s *discordtest.Server) { s.FailNext(1, http.StatusInternalServerError) },
			args: map[string]string{"server_id": lkGuild, "name": "ada"}, want: "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, ask := lkServe(t)
			// The first request serves as the readiness probe.
			if resp := ask(map[string]string{"server_id": lkGuild}); resp.Error == nil {
				t.Fatal("probe answered data")
			}
			tt.arrange(srv)
			resp := ask(tt.args)
			if resp.Error == nil || resp.Error.Code != tt.want {
				t.Fatalf("answer = %+v (data %s), want %s", resp.Error, resp.Data, tt.want)
			}
		})
	}
}
