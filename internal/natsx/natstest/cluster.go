package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/streams"
)

// clusterWait bounds the waits of cluster formation and leader elections,
// generous because a 2-core machine running the race detector elects slowly.
const clusterWait = 60 * time.Second

// Cluster is a JetStream cluster of embedded servers on loopback, each with
// its own store, for tests that kill and restart nodes.
type Cluster struct {
	t     testing.TB
	name  string
	mu    sync.Mutex
	nodes []*clusterNode
	// Streams is the configuration the streams were applied with.
	Streams streams.Config
}

type clusterNode struct {
	name       string
	storeDir   string
	clientPort int
	routePort  int
	srv        *server.Server // nil while killed
}

// StartCluster runs n clustered JetStream servers, waits for a meta leader,
// and applies the streams with Replicas: n (tune may change the
// configuration first). Everything stops in Cleanup.
func StartCluster(t testing.TB, n int, tune func(*streams.Config)) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: a cluster needs at least one node, got %d", n)
	}
	c := &Cluster{t: t, name: "wbtest"}
	// Route ports are fixed before any node starts, since each node names
	// the others in its routes; client ports likewise, so a restarted node
	// comes back where its clients look for it.
	for i := range n {
		c.nodes = append(c.nodes, &clusterNode{
			name: fmt.Sprintf("n%d", i), storeDir: t.TempDir(),
			clientPort: freePort(t), routePort: freePort(t),
		})
	}
	t.Cleanup(c.shutdown)
	for i := range c.nodes {
		c.start(i)
	}
	Eventually(t, clusterWait, "a JetStream meta leader", func() bool {
		for _, nd := range c.running() {
			if nd.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	cfg := streams.Default()
	cfg.Replicas = n
	cfg.EventsMaxBytes = 256 << 20
	if tune != nil {
		tune(&cfg)
	}
	c.Streams = cfg
	conn := c.Connect(t, "natstest apply")
	// A fresh meta group can refuse the first stream creations while peers
	// still join; retry until Apply goes through.
	deadline := time.Now().Add(clusterWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := streams.Apply(ctx, conn.JS, cfg)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: applying the streams to the cluster: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return c
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	var routes []*url.URL
	for j, other := range c.nodes {
		if j != i {
			routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", other.routePort)})
		}
	}
	opts := &server.Options{
		ServerName: nd.name, Host: "127.0.0.1", Port: nd.clientPort,
		JetStream: true, StoreDir: nd.storeDir, NoLog: true, NoSigs: true,
		MaxPayload: 8 << 20,
		Cluster:    server.ClusterOpts{Name: c.name, Host: "127.0.0.1", Port: nd.routePort},
		Routes:     routes,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		c.t.Fatalf("natstest: node %s: %v", nd.name, err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(clusterWait) {
		srv.Shutdown()
		c.t.Fatalf("natstest: node %s not ready within %s", nd.name, clusterWait)
	}
	c.mu.Lock()
	nd.srv = srv
	c.mu.Unlock()
}

func (c *Cluster) running() []*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*server.Server
	for _, nd := range c.nodes {
		if nd.srv != nil {
			out = append(out, nd.srv)
		}
	}
	return out
}

func (c *Cluster) shutdown() {
	for i := range c.nodes {
		c.Kill(i)
	}
}

// Size is the number of nodes, running or not.
func (c *Cluster) Size() int { return len(c.nodes) }

// URLs is every node's client URL, comma-separated, as a part of a cluster
// deployment has in WADDLEBOT_NATS_URL.
func (c *Cluster) URLs() string {
	var out []string
	for _, nd := range c.nodes {
		out = append(out, fmt.Sprintf("nats://127.0.0.1:%d", nd.clientPort))
	}
	return strings.Join(out, ",")
}

// Connect opens a client connection that knows every node, closed in
// Cleanup.
func (c *Cluster) Connect(t testing.TB, name string) *natsx.Conn {
	t.Helper()
	conn, err := natsx.Connect(context.Background(), natsx.ConnectOptions{URL: c.URLs(), Name: name, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.NC.Close() })
	return conn
}

// Kill stops node i at once (its clients reconnect elsewhere). Killing a
// stopped node does nothing.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	srv := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Shutdown()
	srv.WaitForShutdown()
}

// Restart starts a killed node again on its ports and store, and waits until
// its JetStream has caught up with the cluster.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.start(i)
	srv := c.Server(i)
	Eventually(c.t, clusterWait, "node "+c.nodes[i].name+" to catch up", srv.JetStreamIsCurrent)
}

// Server is node i's server, nil while killed.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// StreamLeader returns the index of the node leading stream, or -1 when no
// running node leads it (an election in progress).
func (c *Cluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, nd := range c.nodes {
		if nd.srv != nil && nd.srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// WaitStreamLeader waits until a running node leads stream and returns it.
func (c *Cluster) WaitStreamLeader(stream string) int {
	c.t.Helper()
	leader := -1
	Eventually(c.t, clusterWait, "a leader of "+stream, func() bool {
		leader = c.StreamLeader(stream)
		return leader >= 0
	})
	return leader
}
