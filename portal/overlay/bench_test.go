package overlay

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

// BenchmarkFanOut opens WADDLEBOT_OVERLAY_SOCKETS (default 1,000) overlay
// sockets on one server, spread over 10 communities' alerts sources, and
// each iteration publishes one item per community to WB_OVERLAY and waits
// until every socket has it. It reports the publish → socket latency
// percentiles over every delivery:
//
//	go test ./portal/overlay -run '^$' -bench FanOut -benchtime 50x
func BenchmarkFanOut(b *testing.B) {
	sockets := 1000
	if v := os.Getenv("WADDLEBOT_OVERLAY_SOCKETS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		sockets = n
	}
	const communities = 10
	nt := natstest.Start(b, nil)
	st := storetest.New(b)
	ctx := context.Background()
	type community struct{ id, token string }
	cs := make([]community, communities)
	for i := range cs {
		c, err := st.CreateCommunity(ctx, "bench", store.NewCommunity{Name: "Bench " + strconv.Itoa(i), Prefix: "!", TimeZone: "UTC", Locale: "en"})
		if err != nil {
			b.Fatal(err)
		}
		tok, err := st.RotateOverlayToken(ctx, "bench", c.ID, "alerts", time.Now(), 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		cs[i] = community{c.ID, tok}
	}
	srv, err := New(Config{Store: st, Conn: nt.Connect(b), Logger: logging.Discard()})
	if err != nil {
		b.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(rctx) }()
	hs := httptest.NewServer(srv)
	var wg sync.WaitGroup
	// Cancelling rctx ends the readers' reads, so they are waited for.
	b.Cleanup(func() { stop(); wg.Wait(); <-done; hs.Close() })
	natstest.Eventually(b, wait, "the hub", srv.Ready)

	var mu sync.Mutex
	var lat []time.Duration
	got := make(chan struct{}, sockets*4)
	for i := range sockets {
		c := cs[i%communities]
		dctx, cancel := context.WithTimeout(ctx, wait)
		conn, _, err := websocket.Dial(dctx, wsURL(hs.URL, c.token, 0), nil)
		cancel()
		if err != nil {
			b.Fatalf("socket %d: %v", i, err)
		}
		conn.SetReadLimit(1 << 20)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.CloseNow()
			for {
				_, data, err := conn.Read(rctx)
				if err != nil {
					return
				}
				at := time.Now()
				var f received
				if json.Unmarshal(data, &f) != nil || f.Type != "item" {
					continue
				}
				sent, _ := time.Parse(time.RFC3339Nano, f.Item.Text)
				mu.Lock()
				lat = append(lat, at.Sub(sent))
				mu.Unlock()
				got <- struct{}{}
			}
		}()
	}
	natstest.Eventually(b, wait, "every socket to listen", func() bool { return srv.Listeners() == sockets })

	b.ResetTimer()
	for range b.N {
		for _, c := range cs {
			item := schemas.OverlayItem{Version: schemas.Version, ID: uuid.NewString(), CommunityID: c.id,
				Source: schemas.OverlayAlert, Text: time.Now().Format(time.RFC3339Nano)}
			data, _ := json.Marshal(item)
			if _, err := nt.Conn.JS.Publish(ctx, schemas.OverlaySubject(c.id, schemas.OverlayAlert), data); err != nil {
				b.Fatal(err)
			}
		}
		for range sockets {
			select {
			case <-got:
			case <-time.After(wait):
				b.Fatal("a socket did not get its item")
			}
		}
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(float64(sockets), "sockets")
}
