package discordtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/waddlebot/waddlebot/collectors/discord/discordtest"
)

// restList sends a GET with the bot token and decodes a JSON array.
func restList(t *testing.T, srv *discordtest.Server, path string) (int, []map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.APIURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bot "+srv.BotToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out []map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func TestSearchGuildMembers(t *testing.T) {
	srv := discordtest.New(t)
	srv.AddMember("1", discordtest.Member{User: discordtest.User{ID: "11", Username: "ada", GlobalName: "Ada"}, Nick: "Countess"})
	srv.AddMember("1", discordtest.Member{User: discordtest.User{ID: "12", Username: "adam"}})
	srv.AddMember("1", discordtest.Member{User: discordtest.User{ID: "13", Username: "zed"}, Nick: "Adele"})
	srv.AddMember("2", discordtest.Member{User: discordtest.User{ID: "21", Username: "adrian", GlobalName: "Zoe"}})

	status, got := restList(t, srv, "/guilds/1/members/search?query=AD&limit=10")
	if status != http.StatusOK || len(got) != 3 {
		t.Fatalf("search = %d %v, want the three members of guild 1 whose username or nick starts with ad", status, got)
	}
	user, _ := got[0]["user"].(map[string]any)
	if user["id"] != "11" || user["username"] != "ada" || user["global_name"] != "Ada" || got[0]["nick"] != "Countess" {
		t.Fatalf("first member = %v, want a guild member object with its nested user", got[0])
	}
	if _, got := restList(t, srv, "/guilds/1/members/search?query=ad"); len(got) != 1 {
		t.Fatalf("without limit: %d members, want Discord's default of 1", len(got))
	}
	if _, got := restList(t, srv, "/guilds/1/members/search?query=countess&limit=10"); len(got) != 1 {
		t.Fatalf("by nick: %v", got)
	}
	if _, got := restList(t, srv, "/guilds/2/members/search?query=ad&limit=10"); len(got) != 1 {
		t.Fatalf("guild 2: %v, want only its own member adrian", got)
	}
	// Global names are not searched (Discord documents username and nick).
	if _, got := restList(t, srv, "/guilds/2/members/search?query=zoe&limit=10"); len(got) != 0 {
		t.Fatalf("by global name: %v, want none", got)
	}
	for _, path := range []string{"/guilds/1/members/search?limit=10", "/guilds/1/members/search?query=a&limit=0",
		"/guilds/1/members/search?query=a&limit=1001"} {
		if status, _ := restList(t, srv, path); status != http.StatusBadRequest {
			t.Errorf("%s = %d, want 400", path, status)
		}
	}
	// The member route still answers one member.
	if status, _ := restList(t, srv, "/guilds/1/members/11"); status != http.StatusOK {
		t.Fatalf("get member = %d", status)
	}
}
