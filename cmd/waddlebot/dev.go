package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/waddlebot/waddlebot/actions/builtin"
	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/daemon"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/ops"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/streams"
)

const secretKeyFile = "secret.key"

// runDev runs every part in one process over an embedded NATS server.
func runDev(ctx context.Context, args []string) error {
	fs := partFlags("dev")
	natsPort := fs.Int("nats-port", 0, "port of the embedded NATS server (0: 4222, or the next free port above it)")
	// No NATS settings: dev runs its own server.
	p, err := parse(fs, args, config.GroupDatabase, config.GroupHTTP, config.GroupSecrets,
		config.GroupStreams, config.GroupData, config.GroupRouter, config.GroupAction, config.GroupCollector, config.GroupTwitch, config.GroupDiscord, config.GroupSlack, config.GroupPortal, config.GroupAI)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.DataDir, 0o700); err != nil {
		return fmt.Errorf("unable to create data dir %s: %w", p.DataDir, err)
	}
	if p.SecretKey == "" {
		key, err := devSecretKey(p.DataDir)
		if err != nil {
			return err
		}
		p.SecretKey = key
	}

	// PostgreSQL first: without it there is nothing to run, and the message
	// should come before anything else starts.
	st, err := openStore(ctx, p, true)
	if err != nil {
		return err
	}
	defer st.Close()

	srvNATS, err := natsx.StartEmbedded(natsx.EmbeddedOptions{StoreDir: filepath.Join(p.DataDir, "jetstream"), Port: *natsPort})
	if err != nil {
		return err
	}
	defer srvNATS.Shutdown()
	urlFile := filepath.Join(p.DataDir, config.NATSURLFile)
	if err := os.WriteFile(urlFile, []byte(srvNATS.URL()+"\n"), 0o600); err != nil {
		return fmt.Errorf("unable to write %s: %w", urlFile, err)
	}
	defer os.Remove(urlFile)

	conn, err := natsx.Connect(ctx, natsx.ConnectOptions{Server: srvNATS.Server, Name: "waddlebot dev", Logger: p.log})
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := streams.Apply(ctx, conn.JS, streamsConfig(p)); err != nil {
		return err
	}

	d := daemon.New(p.log)
	srv := ops.New(p.log)
	rt, err := addRouter(d, srv, p, conn, st)
	if err != nil {
		return err
	}
	for _, name := range builtin.Names() {
		m, err := builtin.Module(moduleDeps(p, st, conn), name)
		if err != nil {
			return err
		}
		if err := addAction(d, srv, p, conn, st, m); err != nil {
			return err
		}
	}
	// External modules answer in dev too, once registered (waddlebot external add).
	if err := addRelay(d, srv, p, conn, st); err != nil {
		return err
	}
	if err := addConsole(d, srv, p, conn); err != nil {
		return err
	}
	addr, err := serve(d, srv, p)
	if err != nil {
		return err
	}
	// The chat page keeps "/"; the portal lives beside it.
	if err := addPortal(srv, p, conn, st, addr, true); err != nil {
		return err
	}
	if err := addOverlay(d, srv, p, conn, st); err != nil {
		return err
	}
	platforms := "console"
	if twitchConfigured(p) {
		if err := addTwitch(d, srv, p, conn, st, addr, true); err != nil {
			return err
		}
		platforms += ", twitch (connect a channel at " + publicURL(p, addr) + "/connect/twitch)"
	}
	if discordConfigured(p) {
		if err := addDiscord(ctx, d, srv, p, conn, st, addr, true); err != nil {
			return err
		}
		platforms += ", discord (add the bot to a server at " + publicURL(p, addr) + "/connect/discord)"
	}
	if slackConfigured(p) {
		if err := addSlack(ctx, d, srv, p, conn, st, addr, true); err != nil {
			return err
		}
		platforms += ", slack"
		if p.SlackClientID != "" {
			platforms += " (install in a workspace at " + publicURL(p, addr) + "/connect/slack)"
		}
	}
	// "Up" means a !ping right now is answered: every part consumes and the
	// router knows every module (a command to a module the router has not
	// seen yet would be ignored as unknown).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	if err := waitUp(ctx, done, func() bool { return srv.Ready() && rt.Serves(ctx, builtin.Names()...) }); err != nil {
		return err
	}
	page := "http://" + addr + "/"
	fmt.Fprintf(os.Stderr, "\nWaddleBot dev is up.\n  NATS       %s (also in %s)\n  chat page  %s\n  portal     %s\n  modules    %s\n  platforms  %s\n  try        waddlebot say \"!ping\"\n\n",
		srvNATS.URL(), urlFile, page, publicURL(p, addr)+"/portal/", strings.Join(builtin.Names(), ", "), platforms)
	p.log.Info("waddlebot: dev running", logging.KeyURL, srvNATS.URL(), logging.KeyAddr, addr)
	return <-done
}

// devUpWithin bounds the wait for dev's parts; past it dev says it is up
// anyway and /readyz tells what is not.
const devUpWithin = 30 * time.Second

// waitUp waits until up reports true, the parts stopped (their error), or
// devUpWithin passed.
func waitUp(ctx context.Context, done chan error, up func() bool) error {
	deadline := time.Now().Add(devUpWithin)
	for !up() && time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err // for the caller's final receive
			if err != nil {
				return err
			}
			return nil
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// devSecretKey reads the data dir's key, making one on first start, so
// secrets stored by one dev run open in the next.
func devSecretKey(dir string) (string, error) {
	path := filepath.Join(dir, secretKeyFile)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	key := store.NewSecretKey()
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("unable to write %s: %w", path, err)
	}
	return key, nil
}
