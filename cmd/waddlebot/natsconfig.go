package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/waddlebot/waddlebot/actions/builtin"
	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/natsauth"
	"github.com/waddlebot/waddlebot/schemas"
)

// natsAuthDir is where nats-config keeps the keys unless --dir says otherwise.
func natsAuthDir(p parsed, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return filepath.Join(p.DataDir, "nats-auth")
}

// runNATSConfig writes the operator, the accounts, the server configuration
// snippet and one creds file per part.
func runNATSConfig(_ context.Context, args []string) error {
	fs := partFlags("nats-config")
	dir := fs.String("dir", "", "directory for keys, server.conf and creds/ (default <data-dir>/nats-auth)")
	p, err := parse(fs, args, config.GroupData)
	if err != nil {
		return err
	}
	if len(p.args) != 0 {
		return usageError("nats-config [--dir D]")
	}
	d := natsAuthDir(p, *dir)
	setup, err := natsauth.Init(d)
	if err != nil {
		return err
	}
	parts, err := natsauth.Parts([]string{schemas.PlatformConsole, schemas.PlatformTwitch, schemas.PlatformDiscord, schemas.PlatformSlack},
		builtin.Names())
	if err != nil {
		return err
	}
	files, err := setup.WriteAll(parts)
	if err != nil {
		return err
	}
	for _, f := range files {
		fmt.Println(f)
	}
	fmt.Printf("\nInclude %s from nats-server's configuration (JetStream enabled), then give each part its creds:\n"+
		"  WADDLEBOT_NATS_CREDS=%s waddlebot router\n"+
		"Run `waddlebot streams apply` with the admin creds. Re-running nats-config keeps the keys.\n",
		filepath.Join(d, natsauth.ServerConfigFile), filepath.Join(d, "creds", "router.creds"))
	return nil
}
