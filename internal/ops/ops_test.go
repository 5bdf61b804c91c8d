package ops

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/metrics"
)

func TestEndpoints(t *testing.T) {
	s := New(logging.Discard())
	var ready atomic.Bool
	s.AddCheck("router", Ready(ready.Load))
	s.AddCheck("db", func() error { return nil })
	addr, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	metrics.EventsIn.WithLabelValues("console", "chat").Inc()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, `"router":"not ready"`) || !strings.Contains(body, `"db":"ok"`) {
		t.Fatalf("/readyz before ready = %d %s", code, body)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz after ready = %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `waddlebot_events_in_total{kind="chat",platform="console"}`) {
		t.Fatalf("/metrics = %d without the events counter", code)
	}
}

func TestListenFromSkipsTakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s := New(logging.Discard())
	addr, err := s.ListenFrom(taken.Addr().String(), 20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.ln.Close()
	if addr == taken.Addr().String() {
		t.Fatal("bound a taken port")
	}
	if _, err := New(logging.Discard()).ListenFrom(taken.Addr().String(), 1); err == nil {
		t.Fatal("one try on a taken port succeeded")
	}
	var opErr *net.OpError
	if _, err := New(logging.Discard()).Listen(taken.Addr().String()); !errors.As(err, &opErr) {
		t.Fatalf("Listen on a taken port: %v", err)
	}
}

// Profiles are served only when asked for.
func TestServeProfiles(t *testing.T) {
	for _, on := range []bool{false, true} {
		s := New(logging.Discard())
		if on {
			s.ServeProfiles()
		}
		rec := httptest.NewRecorder()
		s.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/heap", nil))
		if got := rec.Code == http.StatusOK; got != on {
			t.Errorf("profiles on %v: GET /debug/pprof/heap = %d", on, rec.Code)
		}
	}
}
