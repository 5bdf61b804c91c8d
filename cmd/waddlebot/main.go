// Command waddlebot runs every part of WaddleBot: `waddlebot dev` runs them
// all in one process; `router`, `action`, `collector` run one part each for
// production; the rest are operator and client commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"dev", "run everything in one process over an embedded NATS server, with the dev chat page", runDev},
		{"say", `send a console chat message and print the replies: say [--channel demo] [--user alice] [--role moderator] "!ping"`, runSay},
		{"router", "run a router replica", runRouter},
		{"action", "run a module worker replica: action <module>", runAction},
		{"collector", "run a platform collector replica: collector <platform>", runCollector},
		{"portal", "serve the web portal (sign-in, communities, members, audit log) at /portal/", runPortal},
		{"streams", "streams apply | verify: create or check the JetStream streams and KV buckets", runStreams},
		{"migrate", "apply the database migrations", runMigrate},
		{"secrets", "secrets rotate: re-encrypt the stored secrets with a new WADDLEBOT_SECRET_KEY", runSecrets},
		{"dlq", "dlq list [--stream S] | show <seq> | replay <seq>|--all [--keep]: work the dead letters", runDLQ},
		{"bench", "drive chat through the real pipeline and a raw JetStream chain; print throughput and latency; bench soak: steady load against a running deployment", runBench},
		{"config", "print the effective settings, secrets masked", runConfig},
		{"version", "print the version", runVersion},
		{"nats-config", "nats-config [--dir D]: write the NATS operator, accounts, server.conf and one creds file per part", runNATSConfig},
		{"external", externalUsage, runExternal},
		{"relay", "run a relay replica: serves external modules (NATS and webhook)", runRelay},
	}
}

func main() {
	if os.Getenv("GOGC") == "" {
		// Live heaps are small (tens of MB) and every part allocates per
		// message; collecting a quarter as often cuts the pipeline's p99 by
		// about a third (docs/benchmarks.md). GOGC in the environment wins.
		debug.SetGCPercent(400)
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := c.run(ctx, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(os.Stderr, "waddlebot %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(os.Stderr, "waddlebot %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(os.Stderr, "waddlebot: unknown command %q\n\n", args[0])
	usage()
	return 2
}

var errUsage = errors.New("usage")

func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: waddlebot <command> [flags]")
	fmt.Fprintln(os.Stderr)
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr)
	fmt.Fprintln(os.Stderr, "Every setting is an environment variable WADDLEBOT_<NAME> and a flag --<name>; `waddlebot config` lists them.")
}
