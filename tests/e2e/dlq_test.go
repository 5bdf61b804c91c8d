package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

// dlqRow is one row of `waddlebot dlq list`.
type dlqRow struct {
	seq      uint64
	stream   string
	consumer string
	subject  string
	reason   string
}

// dlqList runs `waddlebot dlq list` in the sandbox with no settings.
func dlqList(s *sandbox) ([]dlqRow, result, error) {
	r := s.run(30*time.Second, nil, "dlq", "list")
	if r.code != 0 {
		return nil, r, fmt.Errorf("dlq list failed")
	}
	out := strings.TrimSpace(r.stdout)
	if out == "no dead letters" {
		return nil, r, nil
	}
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "SEQ") {
		return nil, r, fmt.Errorf("dlq list: no header line")
	}
	var rows []dlqRow
	for _, l := range lines[1:] {
		// SEQ, FAILED AT (date and time), STREAM, CONSUMER, SUBJECT, FAILURES, REASON...
		f := strings.Fields(l)
		if len(f) < 8 {
			return nil, r, fmt.Errorf("dlq list: row %q has too few columns", l)
		}
		seq, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return nil, r, fmt.Errorf("dlq list: row %q: %w", l, err)
		}
		rows = append(rows, dlqRow{seq: seq, stream: f[3], consumer: f[4], subject: f[5], reason: strings.Join(f[7:], " ")})
	}
	return rows, r, nil
}

// TestDeadLetterAndReplayCLI: a malformed event is dead-lettered at once
// while the pipeline keeps serving; `waddlebot dlq` lists, shows and replays
// it, and the replay really goes back through the router.
func TestDeadLetterAndReplayCLI(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.startDev([]string{"WADDLEBOT_DATABASE_URL=" + storetest.URL(t)}, "--nats-port", strconv.Itoa(freePort(t)))

	b, err := os.ReadFile(filepath.Join(s.dir, ".waddlebot", "nats.url"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(strings.TrimSpace(string(b)), nats.Name(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const subject = "wb.events.console.demo.chat"
	if _, err := js.Publish(ctx, subject, []byte("not json")); err != nil {
		t.Fatalf("publish the malformed event: %v", err)
	}

	// The pipeline keeps serving.
	if r := s.run(30*time.Second, nil, "say", "--wait", "20s", "!ping"); r.code != 0 || r.stdout != "pong\n" {
		t.Fatalf("!ping after a malformed event: want pong\n%s", r)
	}

	var first dlqRow
	eventually(t, 15*time.Second, "dlq list shows the malformed event", func() (bool, string) {
		rows, r, err := dlqList(s)
		if err != nil {
			t.Fatalf("%v\n%s", err, r)
		}
		if len(rows) != 1 {
			return false, r.stdout
		}
		first = rows[0]
		return true, ""
	})
	if first.stream != "WB_EVENTS" || first.consumer != "router" || first.subject != subject || !strings.Contains(first.reason, "undecodable") {
		t.Fatalf("dead letter row %+v: want stream WB_EVENTS, consumer router, subject %s, a reason saying undecodable", first, subject)
	}

	seq := strconv.FormatUint(first.seq, 10)
	r := s.run(30*time.Second, nil, "dlq", "show", seq)
	if r.code != 0 {
		t.Fatalf("dlq show %s\n%s", seq, r)
	}
	var shown struct {
		Seq      uint64 `json:"seq"`
		Stream   string `json:"stream"`
		Consumer string `json:"consumer"`
		Subject  string `json:"subject"`
		Reason   string `json:"reason"`
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("dlq show %s does not print JSON: %v\n%s", seq, err, r)
	}
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil {
		t.Fatal(err)
	}
	var bodyText string
	if bt, ok := raw["body_text"]; !ok || json.Unmarshal(bt, &bodyText) != nil || bodyText != "not json" {
		t.Errorf("dlq show: body_text %s, want \"not json\"\n%s", raw["body_text"], r.stdout)
	}
	if shown.Seq != first.seq || shown.Stream != "WB_EVENTS" || shown.Consumer != "router" || shown.Subject != subject ||
		!strings.Contains(shown.Reason, "undecodable") {
		t.Errorf("dlq show: %+v does not match the listed dead letter %+v\n%s", shown, first, r.stdout)
	}

	r = s.run(30*time.Second, nil, "dlq", "replay", seq)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "replayed "+seq) {
		t.Fatalf("dlq replay %s: want \"replayed %s ...\"\n%s", seq, seq, r)
	}

	// The replay reaches the router again, which dead-letters it again: a
	// new row, while the replayed one is gone.
	var again dlqRow
	eventually(t, 15*time.Second, "the replayed event is dead-lettered again", func() (bool, string) {
		rows, r, err := dlqList(s)
		if err != nil {
			t.Fatalf("%v\n%s", err, r)
		}
		if len(rows) != 1 || rows[0].seq == first.seq {
			return false, r.stdout
		}
		again = rows[0]
		return true, ""
	})
	if again.seq <= first.seq || again.stream != "WB_EVENTS" || again.consumer != "router" || again.subject != subject ||
		!strings.Contains(again.reason, "undecodable") {
		t.Errorf("the second dead letter %+v: want a higher seq than %d, WB_EVENTS, router, %s, undecodable", again, first.seq, subject)
	}
	if r := s.run(30*time.Second, nil, "dlq", "show", seq); r.code == 0 {
		t.Errorf("dlq show %s after replaying it: want non-zero (replay removes it)\n%s", seq, r)
	}
	r = s.run(30*time.Second, nil, "dlq", "show", "99999")
	if r.code == 0 || !strings.Contains(r.stderr, "99999") {
		t.Errorf("dlq show 99999: want non-zero and a message naming it\n%s", r)
	}

	// Still serving after all that.
	if r := s.run(30*time.Second, nil, "say", "--wait", "20s", "!ping"); r.code != 0 || r.stdout != "pong\n" {
		t.Fatalf("!ping after the replay: want pong\n%s", r)
	}
}
