package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

// TestDevAndSayFromSameDirectory is the README's first promise: `waddlebot
// dev` in a directory, then `waddlebot say "!ping"` from that directory with
// nothing configured prints the pong.
func TestDevAndSayFromSameDirectory(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	d := s.startDev([]string{"WADDLEBOT_DATABASE_URL=" + storetest.URL(t)})

	urlFile := filepath.Join(s.dir, ".waddlebot", "nats.url")
	b, err := os.ReadFile(urlFile)
	if err != nil {
		t.Fatalf("dev is up but its NATS URL file is not: %v", err)
	}
	if got := strings.TrimSpace(string(b)); got != d.natsURL {
		t.Fatalf("%s holds %q; dev printed %q", urlFile, got, d.natsURL)
	}
	if !strings.HasPrefix(d.natsURL, "nats://127.0.0.1:") {
		t.Errorf("dev's NATS URL %q is not on 127.0.0.1", d.natsURL)
	}

	// No WADDLEBOT_* variable at all: say finds dev through the URL file.
	r := s.run(30*time.Second, nil, "say", "!ping")
	if r.code != 0 || r.stdout != "pong\n" {
		t.Fatalf("want exit 0 and stdout exactly \"pong\\n\"; got %q\n%s", r.stdout, r)
	}

	r = s.run(30*time.Second, nil, "say", "!nosuchcommand", "--wait", "1s")
	if r.code == 0 || r.timedOut {
		t.Errorf("an unknown command: want a non-zero exit within the wait\n%s", r)
	}
	if !strings.Contains(r.stderr, "no reply") {
		t.Errorf("an unknown command: want stderr to say there was no reply\n%s", r)
	}
	if r.stdout != "" {
		t.Errorf("an unknown command printed %q on stdout", r.stdout)
	}
	if r.elapsed > 15*time.Second {
		t.Errorf("say --wait 1s took %s", r.elapsed)
	}

	r = s.run(30*time.Second, nil, "say", "--no-wait", "!ping")
	if r.code != 0 || r.stdout != "" {
		t.Errorf("say --no-wait: want exit 0 and no output\n%s", r)
	}

	// The operational endpoints.
	base := "http://" + d.addr
	if code, body, err := httpGet(base + "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("GET /healthz: %d %s %v", code, body, err)
	}
	eventually(t, 10*time.Second, "GET /readyz answers 200", func() (bool, string) {
		code, body, err := httpGet(base + "/readyz")
		return err == nil && code == http.StatusOK, strconv.Itoa(code) + " " + body
	})
	// An event through dev's own console collector (the chat page's API).
	resp, err := httpClient.Post(base+"/api/say", "application/json",
		bytes.NewBufferString(`{"channel":"demo","user":"bob","text":"!ping"}`))
	if err != nil {
		t.Fatalf("POST /api/say: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /api/say: %d, want 202", resp.StatusCode)
	}
	eventually(t, 10*time.Second, "/metrics counts events in and invocations out", func() (bool, string) {
		code, body, err := httpGet(base + "/metrics")
		if err != nil || code != http.StatusOK {
			return false, strconv.Itoa(code) + " " + tail(body, 500)
		}
		in, okIn := metricSum(body, "waddlebot_events_in_total")
		published, okPub := metricSum(body, "waddlebot_events_published_total")
		out, okOut := metricSum(body, "waddlebot_invocations_out_total")
		// Two pings reached the router (say's and the page API's); dev's
		// own collector published one of them.
		return okIn && okPub && okOut && in >= 2 && published >= 1 && out >= 2,
			"events_in " + strconv.FormatFloat(in, 'f', -1, 64) + ", events_published " + strconv.FormatFloat(published, 'f', -1, 64) +
				", invocations_out " + strconv.FormatFloat(out, 'f', -1, 64)
	})

	// SIGTERM: a clean exit, and the URL file goes with dev.
	code, graceful := d.stop(10 * time.Second)
	if !graceful {
		t.Fatalf("dev did not exit within 10 s of SIGTERM\n%s", d.output())
	}
	if code != 0 {
		t.Fatalf("dev exited with code %d on SIGTERM, want 0\n%s", code, d.output())
	}
	if _, err := os.Stat(urlFile); !os.IsNotExist(err) {
		t.Errorf("%s still there after dev stopped (stat: %v); a later say would dial a dead server", urlFile, err)
	}
}

// TestDevWithoutPostgres: no PostgreSQL → a quick non-zero exit that says
// how to start one, and nothing else started.
func TestDevWithoutPostgres(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	dbURL := "postgres://wb:s3cretpw@127.0.0.1:" + strconv.Itoa(freePort(t)) + "/wb?sslmode=disable&connect_timeout=5"
	r := s.run(30*time.Second, []string{"WADDLEBOT_DATABASE_URL=" + dbURL},
		"dev", "--http-addr", "127.0.0.1:0", "--nats-port", strconv.Itoa(freePort(t)))
	if r.code == 0 || r.timedOut {
		t.Fatalf("want a non-zero exit\n%s", r)
	}
	if r.elapsed > 10*time.Second {
		t.Errorf("took %s to give up on a closed port", r.elapsed)
	}
	if !strings.Contains(r.stderr, "pg_ctlcluster") {
		t.Errorf("stderr does not say how to start PostgreSQL (pg_ctlcluster)\n%s", r)
	}
	if strings.Contains(r.stdout+r.stderr, "s3cretpw") {
		t.Errorf("the database password is printed\n%s", r)
	}
	if strings.Contains(r.stderr, "WaddleBot dev is up") {
		t.Errorf("dev claims to be up without PostgreSQL\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(s.dir, ".waddlebot", "nats.url")); !os.IsNotExist(err) {
		t.Errorf("dev left a NATS URL file behind (stat: %v)", err)
	}
}

// TestConfigMasksSecrets: `waddlebot config` shows the effective settings
// without their secrets, and rejects a bad value with a usage exit.
func TestConfigMasksSecrets(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	const secretURL = "postgres://wb:hunter2@db:5432/wb"

	r := s.run(30*time.Second, []string{"WADDLEBOT_DATABASE_URL=" + secretURL}, "config")
	if r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	if strings.Contains(r.stdout+r.stderr, "hunter2") {
		t.Fatalf("the password is printed\n%s", r)
	}
	line := settingLine(r.stdout, "WADDLEBOT_DATABASE_URL")
	if !strings.Contains(line, "postgres://wb:") || !strings.Contains(line, "@db:5432/wb") || !strings.Contains(line, "(env)") {
		t.Errorf("WADDLEBOT_DATABASE_URL line %q: want the URL's shape, password masked, source env\n%s", line, r)
	}

	// A flag is masked the same way, and so is the secret key.
	r = s.run(30*time.Second, []string{"WADDLEBOT_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="},
		"config", "--database-url", secretURL)
	if r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	if strings.Contains(r.stdout+r.stderr, "hunter2") || strings.Contains(r.stdout, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY") {
		t.Fatalf("a secret is printed\n%s", r)
	}
	if line := settingLine(r.stdout, "WADDLEBOT_DATABASE_URL"); !strings.Contains(line, "(flag)") {
		t.Errorf("WADDLEBOT_DATABASE_URL line %q: want source flag", line)
	}

	r = s.run(30*time.Second, nil, "config", "--user-rate-limit", "nope")
	if r.code != 2 {
		t.Errorf("--user-rate-limit nope: want exit 2\n%s", r)
	}
	if !strings.Contains(r.stderr, "user-rate-limit") {
		t.Errorf("--user-rate-limit nope: want stderr to name the setting\n%s", r)
	}
}

// settingLine is the line of `waddlebot config` output for one variable.
func settingLine(out, env string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, env+"=") {
			return l
		}
	}
	return ""
}
