// Package ops is the HTTP server every process runs: /healthz, /readyz and
// Prometheus /metrics, plus whatever pages the process mounts (the dev chat
// page, later the portal).
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/metrics"
)

// Check reports whether one part is ready.
type Check func() error

// Server is the process's HTTP server.
type Server struct {
	mux    *http.ServeMux
	log    *slog.Logger
	mu     sync.Mutex
	checks map[string]Check
	srv    *http.Server
	ln     net.Listener
}

// New makes a server with the operational endpoints mounted.
func New(log *slog.Logger) *Server {
	s := &Server{mux: http.NewServeMux(), log: log, checks: map[string]Check{}}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	s.mux.Handle("GET /metrics", metrics.Handler())
	return s
}

// Handle mounts a handler.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeProfiles adds Go's profiles at /debug/pprof/ (a part's heap or CPU
// profile while it runs); off unless the operator asks, since they show
// the process's insides.
func (s *Server) ServeProfiles() {
	s.mux.HandleFunc("/debug/pprof/", pprof.Index)
	s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// AddCheck makes /readyz depend on a part.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	s.checks[name] = c
	s.mu.Unlock()
}

// Ready turns a part's Ready method into a check.
func Ready(ready func() bool) Check {
	return func() error {
		if !ready() {
			return errors.New("not ready")
		}
		return nil
	}
}

// Ready reports whether every check passes.
func (s *Server) Ready() bool {
	ok, _ := s.status()
	return ok
}

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	ok, out := s.status()
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, out)
}

// status runs every check.
func (s *Server) status() (bool, map[string]string) {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	s.mu.Unlock()
	sort.Strings(names)
	ok := true
	out := map[string]string{}
	for _, n := range names {
		s.mu.Lock()
		c := s.checks[n]
		s.mu.Unlock()
		if err := c(); err != nil {
			ok = false
			out[n] = err.Error()
		} else {
			out[n] = "ok"
		}
	}
	return ok, out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Listen binds addr (port 0 picks a free port) and returns the address.
func (s *Server) Listen(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("ops: unable to listen on %s: %w", addr, err)
	}
	s.ln = ln
	return ln.Addr().String(), nil
}

// ListenFrom binds addr, or when its port is taken, the next free port above
// it (up to tries ports): for `dev`, whose default port may be in use.
func (s *Server) ListenFrom(addr string, tries int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("ops: bad address %q: %w", addr, err)
	}
	first, err := strconv.Atoi(port)
	if err != nil || first == 0 {
		return s.Listen(addr)
	}
	var lastErr error
	for p := first; p < first+tries; p++ {
		got, err := s.Listen(net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return got, nil
		}
		lastErr = err
	}
	return "", lastErr
}

// Run serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		return errors.New("ops: Run before Listen")
	}
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("ops: server failed: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(shutdown); err != nil {
		// Streams (the chat page's SSE) do not end by themselves.
		s.log.Debug("ops: forcing close", logging.Err(err))
		_ = s.srv.Close()
	}
	return nil
}
