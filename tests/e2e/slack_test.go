package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack/slacktest"

	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

// TestSlackInDev: `waddlebot dev` with a Slack workspace's bot token and
// signing secret takes Events API posts and answers !ping with
// chat.postMessage in the thread the message was in.
func TestSlackInDev(t *testing.T) {
	t.Parallel()
	const token, secret = "xoxb-e2e-token", "e2e-signing-secret"
	var mu sync.Mutex
	var posted []map[string]string
	api := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/auth.test", func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "team_id": "T0E2E", "team": "E2E", "user_id": "U0BOT", "user": "waddlebot"})
		})
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			mu.Lock()
			posted = append(posted, map[string]string{"channel": r.PostForm.Get("channel"), "text": r.PostForm.Get("text"),
				"thread_ts": r.PostForm.Get("thread_ts"), "token": r.PostForm.Get("token") + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")})
			mu.Unlock()
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": r.PostForm.Get("channel"), "ts": "1700000001.000200"})
		})
	})
	api.Start()
	t.Cleanup(api.Stop)

	s := newSandbox(t)
	d := s.startDev([]string{
		"WADDLEBOT_DATABASE_URL=" + storetest.URL(t),
		"WADDLEBOT_SLACK_BOT_TOKEN=" + token,
		"WADDLEBOT_SLACK_SIGNING_SECRET=" + secret,
		"WADDLEBOT_SLACK_TRANSPORT=events",
		"WADDLEBOT_SLACK_API_URL=" + api.GetAPIURL(),
	})
	inner := `{"type":"message","channel":"C0GENERAL","user":"U0ALICE","text":"!ping","ts":"1700000000.000300",` +
		`"thread_ts":"1700000000.000100","event_ts":"1700000000.000300","channel_type":"channel"}`
	body := `{"token":"legacy","team_id":"T0E2E","api_app_id":"A0APP","type":"event_callback","event_id":"Ev0E2E1",` +
		`"event_time":1700000000,"event":` + inner + `}`
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:%s", ts, body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+d.addr+"/webhooks/slack/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Events API post → %d\n%s", resp.StatusCode, tail(d.output(), 2000))
	}
	eventually(t, 30*time.Second, "pong posted in the thread", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range posted {
			if p["text"] == "pong" && p["channel"] == "C0GENERAL" && p["thread_ts"] == "1700000000.000100" &&
				p["token"] == token {
				return true, ""
			}
		}
		return false, fmt.Sprint(posted) + "\n" + tail(d.output(), 2000)
	})
	if code, graceful := d.stop(15 * time.Second); !graceful || code != 0 {
		t.Fatalf("dev exit %d (graceful %v) on SIGTERM\n%s", code, graceful, tail(d.output(), 3000))
	}
}
