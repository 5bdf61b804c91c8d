package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

func TestLedgerCheck(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name    string
		sent    []string
		unsent  []string
		replies []string
		want    Accounting
		once    bool
	}{
		{"all answered once", []string{"a", "b"}, nil, []string{"b", "a"}, Accounting{Commands: 2, Answered: 2}, true},
		{"one missing", []string{"a", "b"}, nil, []string{"a"}, Accounting{Commands: 2, Answered: 1, Missing: 1}, false},
		{"one duplicated", []string{"a", "b"}, nil, []string{"a", "b", "b"}, Accounting{Commands: 2, Answered: 1, Duplicated: 1}, false},
		{"a stray reply", []string{"a"}, nil, []string{"a", "zzz"}, Accounting{Commands: 1, Answered: 1, Unexpected: 1}, false},
		{"refused publish owes no reply", []string{"a", "b"}, []string{"b"}, []string{"a"}, Accounting{Commands: 1, Answered: 1}, true},
		{"nothing sent", nil, nil, nil, Accounting{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger()
			for _, id := range tt.sent {
				l.sent(id, t0)
			}
			for _, id := range tt.unsent {
				l.unsend(id)
			}
			for _, id := range tt.replies {
				l.message()
				l.reply(id, t0.Add(time.Millisecond))
			}
			tt.want.ReplyMessages = len(tt.replies)
			got := l.check()
			if got != tt.want {
				t.Errorf("check = %+v, want %+v", got, tt.want)
			}
			if got.ExactlyOnce() != tt.once {
				t.Errorf("ExactlyOnce = %v, want %v", got.ExactlyOnce(), tt.once)
			}
		})
	}
}

func TestLedgerLatencyAndReset(t *testing.T) {
	l := newLedger()
	t0 := time.Unix(1000, 0)
	l.sent("a", t0)
	if d, first := l.reply("a", t0.Add(7*time.Millisecond)); !first || d != 7*time.Millisecond {
		t.Errorf("first reply: %v %v", d, first)
	}
	if _, first := l.reply("a", t0.Add(9*time.Millisecond)); first {
		t.Error("second reply counted as first")
	}
	l.reset()
	if a := l.check(); a != (Accounting{}) {
		t.Errorf("after reset: %+v", a)
	}
}

func TestMemoryFlatness(t *testing.T) {
	tests := []struct {
		name    string
		heap    []float64
		flat    bool
		settled bool
		short   bool
	}{
		{"steady", []float64{10, 12, 11, 10, 12, 11}, true, true, false},
		{"sawtooth within 20%", []float64{10, 20, 10, 20, 11, 21}, true, true, false},
		{"leak", []float64{10, 12, 14, 17, 20, 24}, false, false, false},
		{"just over 20%", []float64{10, 10, 10, 10, 12.1, 12.1}, false, false, false},
		{"warm-up, then a plateau", []float64{4, 5, 8, 8, 8.5, 8.5}, false, true, false},
		{"shrinks", []float64{30, 30, 20, 20, 10, 10}, true, true, false},
		{"too few samples", []float64{10, 50}, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := MemoryFlatness("p", tt.heap, tt.heap, tt.heap, 0.2)
			if f.Flat != tt.flat || f.SettledFlat != tt.settled || f.NotEnoughData != tt.short {
				t.Errorf("got %+v", f)
			}
		})
	}
}

func TestLiveHeap(t *testing.T) {
	tests := []struct {
		m    map[string]float64
		want float64
	}{
		{map[string]float64{metricNextGC: 50, metricGOGC: 400}, 10},
		{map[string]float64{metricNextGC: 50, metricGOGC: 100}, 25},
		{map[string]float64{metricNextGC: 50}, 50}, // no GOGC exposed: the goal itself
		{map[string]float64{}, 0},
	}
	for _, tt := range tests {
		if got := liveHeap(tt.m); got != tt.want {
			t.Errorf("liveHeap(%v) = %v, want %v", tt.m, got, tt.want)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 4.5e+07
go_memstats_heap_inuse_bytes 1.2e+07
waddlebot_replies_sent_total{platform="console"} 600
waddlebot_replies_sent_total{platform="twitch",x="a} b"} 3
waddlebot_replies_sent_totalx 99
broken line
go_memstats_heap_inuse_bytes notanumber
`
	got, err := ParseMetrics(strings.NewReader(text), metricRSS, metricHeapInuse, metricSent, metricPossibleDu)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{metricRSS: 45e6, metricHeapInuse: 12e6, metricSent: 603}
	if len(got) != len(want) {
		t.Errorf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func FuzzParseMetrics(f *testing.F) {
	f.Add("process_resident_memory_bytes 1\n")
	f.Add(`waddlebot_replies_sent_total{platform="console"} 2 1700000000`)
	f.Add("{}}{ \n#\n")
	f.Fuzz(func(t *testing.T, s string) {
		// Outside input: any text parses without a panic.
		_, _ = ParseMetrics(strings.NewReader(s), metricRSS, metricSent)
	})
}

func TestParseMetricsTargets(t *testing.T) {
	tests := []struct {
		in      string
		want    []MetricsTarget
		wantErr bool
	}{
		{"router1=http://127.0.0.1:9000,core1=http://127.0.0.1:9001/metrics",
			[]MetricsTarget{{"router1", "http://127.0.0.1:9000/metrics"}, {"core1", "http://127.0.0.1:9001/metrics"}}, false},
		{"http://a:1", []MetricsTarget{{"a:1", "http://a:1/metrics"}}, false},
		{"", nil, false},
		{"x=ftp://a", nil, true},
		{"x=http://", nil, true},
		{"x=http://a:1,x=http://a:2", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseMetricsTargets(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err %v", tt.in, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%q: got %v, want %v", tt.in, got, tt.want)
		}
	}
}

// soakEnv runs the real pipeline (in process) on an embedded server and a
// fake part's /metrics, and returns a short soak configuration for it.
func soakEnv(t *testing.T) (SoakConfig, *natstest.Env) {
	t.Helper()
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	ctx := context.Background()
	stop, err := startPipeline(ctx, &natsEnv{url: env.Server.URL()}, st, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	var mu sync.Mutex
	heap := 1e6
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		heap += 1e6 // a part that leaks a megabyte per scrape
		fmt.Fprintf(w, "process_resident_memory_bytes 5e7\ngo_memstats_heap_inuse_bytes %g\ngo_memstats_next_gc_bytes %g\ngo_gc_gogc_percent 400\n", heap, 5*heap)
		mu.Unlock()
	}))
	t.Cleanup(metrics.Close)
	cfg := SoakDefaults()
	cfg.NATSURL = env.Server.URL()
	cfg.Channels, cfg.Users = 5, 50
	cfg.CommandShare = 0.3
	cfg.Rate, cfg.For, cfg.Every, cfg.Drain = 100, 2*time.Second, 250*time.Millisecond, 30*time.Second
	cfg.Parts = []MetricsTarget{{"leaky", metrics.URL + "/metrics"}}
	cfg.Logger = logging.Discard()
	return cfg, env
}

// TestSoakExactlyOnce runs a short soak on the real pipeline: every command
// is answered once, intervals carry latencies, pending counts and memory,
// and the leaking fake part is called out.
func TestSoakExactlyOnce(t *testing.T) {
	cfg, _ := soakEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Soak(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := rep.Account
	if !a.ExactlyOnce() || a.Commands == 0 || a.Answered != a.Commands || a.ReplyMessages != a.Commands {
		t.Errorf("accounting: %+v", a)
	}
	if rep.Events != 200 || rep.Overall.P99 <= 0 {
		t.Errorf("events %d, overall %+v", rep.Events, rep.Overall)
	}
	if len(rep.Intervals) < 3 {
		t.Fatalf("%d intervals", len(rep.Intervals))
	}
	iv := rep.Intervals[0]
	if len(iv.Pending) != 3 || iv.Pending[0].Consumer != "WB_EVENTS/router" || iv.Pending[2].Err != "" {
		t.Errorf("pending: %+v", iv.Pending)
	}
	if len(iv.Memory) != 1 || iv.Memory[0].RSS != 5e7 || iv.Memory[0].LiveHeap != iv.Memory[0].HeapInuse {
		t.Errorf("memory: %+v", iv.Memory)
	}
	if len(rep.Memory) != 1 || rep.Memory[0].Flat {
		t.Errorf("a heap growing every scrape was called flat: %+v", rep.Memory)
	}
	var out strings.Builder
	PrintSoak(&out, rep)
	if !strings.Contains(out.String(), "EXACTLY ONCE") || !strings.Contains(out.String(), "GREW") {
		t.Errorf("report:\n%s", out.String())
	}
}

// TestSoakCatchesDuplicates: a second, distinct reply stored for some
// commands (what a module answering a redelivered invocation twice would
// do) fails the exactly-once check.
func TestSoakCatchesDuplicates(t *testing.T) {
	cfg, env := soakEnv(t)
	conn := env.Connect(t)
	var mu sync.Mutex
	doubled := map[string]bool{}
	dupes := 0
	sub, err := conn.NC.Subscribe(schemas.ReplyFilter(schemas.PlatformConsole), func(m *nats.Msg) {
		var r schemas.Reply
		if json.Unmarshal(m.Data, &r) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		// Each command once (its copy comes back here too), the first five
		// after the warm-up.
		if doubled[r.EventID] || dupes >= 5 {
			return
		}
		doubled[r.EventID] = true
		if len(doubled) <= cfg.Channels {
			return // the warm-up's replies
		}
		r.ID = schemas.NewEventID()
		body, _ := json.Marshal(r)
		dupes++
		_, _ = conn.JS.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Data: body,
			Header: nats.Header{jetstream.MsgIDHeader: []string{r.ID}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Soak(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Account.ExactlyOnce() || rep.Account.Duplicated != 5 || rep.Account.Missing != 0 {
		t.Errorf("accounting: %+v", rep.Account)
	}
}
