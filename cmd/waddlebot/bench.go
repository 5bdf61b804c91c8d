package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/tests/bench"
)

func runBench(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "soak" {
		return runSoak(ctx, args[1:])
	}
	d := bench.Defaults()
	fs := partFlags("bench")
	fs.IntVar(&d.Channels, "channels", d.Channels, "channels the chat is spread over")
	fs.IntVar(&d.Users, "users", d.Users, "users who chat")
	fs.Float64Var(&d.CommandShare, "command-share", d.CommandShare, "share of events that are commands (!ping); the rest is plain chat")
	fs.IntVar(&d.SteadyRate, "rate", d.SteadyRate, "events per second in the steady (latency) phase")
	fs.DurationVar(&d.SteadyFor, "steady-for", d.SteadyFor, "length of the steady phase")
	fs.IntVar(&d.MaxEvents, "max-events", d.MaxEvents, "events published at once in the throughput phase")
	fs.BoolVar(&d.SkipRaw, "skip-raw", false, "skip the raw JetStream chain")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	p, err := parse(fs, args, config.GroupDatabase, config.GroupNATS)
	if err != nil {
		return err
	}
	// An embedded server unless one is named: a bench on a server that runs
	// WaddleBot would disturb it (bench.Run refuses one with WaddleBot's streams).
	if p.Sources["NATS_URL"] != config.FromDefault {
		d.NATSURL = p.NATSURL
	}
	d.DatabaseURL = p.DatabaseURL
	d.Progress = os.Stderr
	d.Logger = p.log
	if p.Sources["LOG_LEVEL"] == config.FromDefault {
		d.Logger = quietLogger()
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	rep, err := bench.Run(ctx, d)
	if err != nil {
		return err
	}
	printReport(os.Stdout, rep, time.Since(start))
	return nil
}

func printReport(w io.Writer, r *bench.Report, took time.Duration) {
	c := r.Config
	fmt.Fprintf(w, "\nWaddleBot bench (%s, %d CPUs, %s storage; %d channels, %d users, %.0f%% commands; event %d B, invocation %d B; run took %s)\n\n",
		runtime.Version(), runtime.NumCPU(), r.Storage, c.Channels, c.Users, c.CommandShare*100, r.EventBytes, r.InvBytes, took.Round(time.Second))
	fmt.Fprintf(w, "%-16s %9s %9s %11s %10s %9s %9s %9s %9s\n", "phase", "events", "commands", "events/s", "commands/s", "p50", "p95", "p99", "max")
	for _, ph := range []bench.Phase{r.Steady, r.Max, r.RawSteady, r.RawMax} {
		if ph.Name == "" {
			continue
		}
		fmt.Fprintf(w, "%-16s %9d %9d %11.0f %10.0f %9s %9s %9s %9s\n", ph.Name, ph.Events, ph.Commands, ph.EventsPS, ph.CommandPS,
			ms(ph.P50), ms(ph.P95), ms(ph.P99), ms(ph.Max))
	}
	if r.ThroughputPct > 0 {
		fmt.Fprintf(w, "\npipeline max throughput is %.0f%% of the raw chain's (target: at least 50%%)\n", r.ThroughputPct)
	}
	fmt.Fprintf(w, "command reply p99 at %d events/s: %s (target: under 10 ms)\n", c.SteadyRate, ms(r.Steady.P99))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// runSoak is `waddlebot bench soak`: a long paced run against a deployment
// whose parts run as their own processes (deploy/soak/run.sh sets one up).
func runSoak(ctx context.Context, args []string) error {
	d := bench.SoakDefaults()
	fs := partFlags("bench soak")
	fs.IntVar(&d.Channels, "channels", d.Channels, "channels the chat is spread over")
	fs.IntVar(&d.Users, "users", d.Users, "users who chat")
	fs.Float64Var(&d.CommandShare, "command-share", d.CommandShare, "share of events that are commands (!ping)")
	fs.IntVar(&d.Rate, "rate", d.Rate, "events per second")
	fs.DurationVar(&d.For, "for", d.For, "how long to publish")
	fs.DurationVar(&d.Every, "every", d.Every, "reporting interval")
	fs.DurationVar(&d.Drain, "drain", d.Drain, "how long to wait after the last publish for the backlog to clear")
	fs.Float64Var(&d.Flatness, "flatness", d.Flatness, "heap growth from the first to the last third still called flat (0.2: +20%)")
	modules := fs.String("modules", strings.Join(d.Modules, ","), "modules whose WB_COMMANDS consumers to watch")
	metrics := fs.String("metrics", "", "each part replica's /metrics: name=http://host:port,... (memory per part, deliveries)")
	p, err := parse(fs, args, config.GroupNATS)
	if err != nil {
		return err
	}
	// Never the default URL: a soak is meant for a deployment someone
	// names, not whatever listens on the local default port.
	if p.Sources["NATS_URL"] == config.FromDefault {
		return usageError("bench soak runs against a deployment: set --nats-url or WADDLEBOT_NATS_URL (deploy/soak/run.sh starts one)")
	}
	if d.Parts, err = bench.ParseMetricsTargets(*metrics); err != nil {
		return usageError("%v", err)
	}
	d.Modules = nil
	for _, m := range strings.Split(*modules, ",") {
		if m = strings.TrimSpace(m); m != "" {
			d.Modules = append(d.Modules, m)
		}
	}
	d.NATSURL, d.Creds = p.NATSURL, p.NATSCreds
	d.Progress = os.Stdout
	d.Logger = p.log
	if p.Sources["LOG_LEVEL"] == config.FromDefault {
		d.Logger = quietLogger()
	}
	rep, err := bench.Soak(ctx, d)
	if err != nil {
		return err
	}
	bench.PrintSoak(os.Stdout, rep)
	if !rep.Account.ExactlyOnce() {
		return fmt.Errorf("bench soak: %d commands missing, %d duplicated, %d stray replies",
			rep.Account.Missing, rep.Account.Duplicated, rep.Account.Unexpected)
	}
	return nil
}
