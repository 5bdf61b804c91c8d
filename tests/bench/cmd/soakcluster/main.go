// Command soakcluster runs one node of a JetStream cluster on loopback, for
// the soak (deploy/soak/run.sh starts three): an embedded nats-server, so the
// soak needs no server binary on the machine.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	name := flag.String("name", "n0", "server name")
	port := flag.Int("port", 4222, "client port")
	clusterPort := flag.Int("cluster-port", 6222, "route port")
	routes := flag.String("routes", "", "the other nodes' route URLs, comma-separated (nats://127.0.0.1:6223,...)")
	store := flag.String("store", "", "JetStream store directory")
	flag.Parse()
	if err := run(*name, *port, *clusterPort, *routes, *store); err != nil {
		fmt.Fprintf(os.Stderr, "soakcluster: %v\n", err)
		os.Exit(1)
	}
}

func run(name string, port, clusterPort int, routes, store string) error {
	if store == "" {
		return fmt.Errorf("--store is required")
	}
	var rs []*url.URL
	for _, r := range strings.Split(routes, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		u, err := url.Parse(r)
		if err != nil {
			return fmt.Errorf("route %q: %w", r, err)
		}
		rs = append(rs, u)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: name, Host: "127.0.0.1", Port: port,
		JetStream: true, StoreDir: store, NoSigs: true, MaxPayload: 8 << 20,
		Cluster: server.ClusterOpts{Name: "wbsoak", Host: "127.0.0.1", Port: clusterPort},
		Routes:  rs,
	})
	if err != nil {
		return fmt.Errorf("node %s: %w", name, err)
	}
	srv.ConfigureLogger()
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("node %s not ready in 30s", name)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	srv.Shutdown()
	srv.WaitForShutdown()
	return nil
}
