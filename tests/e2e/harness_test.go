package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The binary under test, built once in TestMain, and the module it came from.
var (
	binPath    string
	moduleRoot string
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	root, err := findModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	moduleRoot = root
	dir, err := os.MkdirTemp("", "waddlebot-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "waddlebot")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	build := exec.Command(gobin, "build", "-o", binPath, "./cmd/waddlebot")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/waddlebot in %s: %v\n%s", root, err, out)
		return 1
	}
	return m.Run()
}

// findModuleRoot asks the go command for the module's go.mod, falling back
// to walking up from the working directory.
func findModuleRoot() (string, error) {
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// cleanEnv is this process's environment without any WADDLEBOT_* variable,
// plus vars: a child sees only the settings its test means it to see.
func cleanEnv(vars ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "WADDLEBOT_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, vars...)
}

// logBuffer collects a process's output; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tail keeps the end of long output readable in a failure message.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// sandbox is one test's working directory; every process of the test runs
// in it.
type sandbox struct {
	t   *testing.T
	dir string
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	return &sandbox{t: t, dir: t.TempDir()}
}

// result is how a one-shot command ended.
type result struct {
	args     []string
	code     int // -1: did not finish in time (killed)
	stdout   string
	stderr   string
	elapsed  time.Duration
	timedOut bool
}

func (r result) String() string {
	state := fmt.Sprintf("exit %d", r.code)
	if r.timedOut {
		state = "did not finish in time, killed"
	}
	return fmt.Sprintf("waddlebot %s: %s after %s\n--- stdout:\n%s\n--- stderr:\n%s",
		strings.Join(r.args, " "), state, r.elapsed.Round(time.Millisecond), tail(r.stdout, 8000), tail(r.stderr, 8000))
}

// run runs the binary to completion in the sandbox with the clean
// environment plus env. It never calls t, so goroutines may use it.
func (s *sandbox) run(timeout time.Duration, env []string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr logBuffer
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = s.dir
	cmd.Env = cleanEnv(env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := result{args: args, code: exitCode(cmd, err), stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		r.code, r.timedOut = -1, true
	}
	if err != nil && cmd.ProcessState == nil {
		r.code, r.stderr = -1, r.stderr+"\n(could not start: "+err.Error()+")"
	}
	return r
}

func exitCode(cmd *exec.Cmd, err error) int {
	if cmd.ProcessState != nil {
		return cmd.ProcessState.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// proc is a long-running process of a test. It is stopped in Cleanup
// (SIGTERM, then SIGKILL), and the test fails if it exits on its own, exits
// non-zero on SIGTERM, or needs the SIGKILL.
type proc struct {
	name   string
	args   []string
	cmd    *exec.Cmd
	stdout logBuffer
	stderr logBuffer
	done   chan struct{}
	code   int // set before done closes

	stopping  atomic.Bool
	exitEarly atomic.Bool // exited before anyone asked it to
}

// stopGrace is how long a process may take to exit after SIGTERM.
const stopGrace = 10 * time.Second

func (s *sandbox) start(name string, env []string, args ...string) *proc {
	t := s.t
	t.Helper()
	p := &proc{name: name, args: args, done: make(chan struct{})}
	p.cmd = exec.Command(binPath, args...)
	p.cmd.Dir = s.dir
	p.cmd.Env = cleanEnv(env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: unable to start: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = exitCode(p.cmd, err)
		if !p.stopping.Load() {
			p.exitEarly.Store(true)
		}
		close(p.done)
	}()
	t.Cleanup(func() { p.cleanup(t) })
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace, then kills. It reports the exit
// code and whether the process exited by itself within grace.
func (p *proc) stop(grace time.Duration) (code int, graceful bool) {
	p.stopping.Store(true)
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
		return p.code, true
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return p.code, false
	}
}

func (p *proc) cleanup(t *testing.T) {
	switch {
	case p.exitEarly.Load():
		<-p.done
		t.Errorf("%s exited on its own with code %d while the test still needed it", p.name, p.code)
	case p.stopping.Load() && p.exited():
		// The test stopped it and checked how it ended.
	default:
		code, graceful := p.stop(stopGrace)
		switch {
		case !graceful:
			t.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, stopGrace)
		case code != 0:
			t.Errorf("%s exited with code %d on SIGTERM, want 0", p.name, code)
		}
	}
	if t.Failed() {
		t.Logf("%s (waddlebot %s):\n--- stdout:\n%s\n--- stderr:\n%s", p.name, strings.Join(p.args, " "),
			tail(p.stdout.String(), 6000), tail(p.stderr.String(), 12000))
	}
}

func (p *proc) output() string {
	return fmt.Sprintf("--- stdout:\n%s\n--- stderr:\n%s", tail(p.stdout.String(), 6000), tail(p.stderr.String(), 12000))
}

// waitStderr waits until re matches the process's stderr and returns the
// submatches; it fails the test at once if the process exits first.
func (p *proc) waitStderr(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(p.stderr.String()); m != nil {
			return m
		}
		if p.exited() {
			t.Fatalf("%s exited with code %d before printing %q\n%s", p.name, p.code, re, p.output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %q within %s\n%s", p.name, re, timeout, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReady polls http://addr/readyz until it answers 200.
func (p *proc) waitReady(t *testing.T, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		code, body, err := httpGet("http://" + addr + "/readyz")
		if err == nil && code == http.StatusOK {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", code, body)
		}
		if p.exited() {
			t.Fatalf("%s exited with code %d before it was ready\n%s", p.name, p.code, p.output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /readyz on %s not 200 within %s (last: %s)\n%s", p.name, addr, timeout, last, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func httpGet(url string) (int, string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// freePort picks a port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(freePort(t))
}

// eventually polls cond until it holds; on timeout it fails with the last
// detail cond gave.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricSum adds up every series of one metric in a Prometheus text
// exposition, and reports whether the metric has any series.
func metricSum(exposition, name string) (float64, bool) {
	var sum float64
	found := false
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if !strings.HasPrefix(rest, "{") && !strings.HasPrefix(rest, " ") {
			continue // a longer name with this prefix
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

// dev is a running `waddlebot dev`.
type dev struct {
	*proc
	page    string // the chat page, http://127.0.0.1:PORT/
	addr    string // its host:port
	natsURL string
}

var (
	devUpRe = regexp.MustCompile(`WaddleBot dev is up\.\s+NATS\s+(nats://\S+)[^\n]*\n\s+chat page\s+(http://(\S+?)/)\s`)
)

// startDev runs `waddlebot dev --http-addr 127.0.0.1:0 args...` in the
// sandbox with env and waits for its banner.
func (s *sandbox) startDev(env []string, args ...string) *dev {
	s.t.Helper()
	// A random NATS port: parallel devs scanning up from 4222 would race
	// for the same first free port.
	p := s.start("waddlebot dev", env, append([]string{"dev", "--http-addr", "127.0.0.1:0",
		"--nats-port", strconv.Itoa(freePort(s.t))}, args...)...)
	m := p.waitStderr(s.t, devUpRe, 60*time.Second)
	return &dev{proc: p, natsURL: m[1], page: m[2], addr: m[3]}
}
