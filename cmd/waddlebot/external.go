package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"github.com/waddlebot/waddlebot/actions/external"
	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/daemon"
	"github.com/waddlebot/waddlebot/internal/natsauth"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/ops"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

const externalUsage = "external add nats <manifest.json> | add webhook <manifest.json> --url U | mint <module> [--dir D] | list | remove <module>"

// cliActor names who made a change from the command line, for the audit log.
func cliActor() string {
	if u := os.Getenv("USER"); u != "" {
		return "cli:" + u
	}
	return "cli"
}

// runExternal registers, lists and removes external modules and mints NATS
// modules' credentials.
func runExternal(ctx context.Context, args []string) error {
	fs := partFlags("external")
	hookURL := fs.String("url", "", "add webhook: the module's HTTPS URL")
	dir := fs.String("dir", "", "mint: the nats-config directory (default <data-dir>/nats-auth)")
	p, err := parse(fs, args, config.GroupNATS, config.GroupDatabase, config.GroupSecrets, config.GroupData)
	if err != nil {
		return err
	}
	if len(p.args) == 0 {
		return usageError(externalUsage)
	}
	st, err := openStore(ctx, p, false)
	if err != nil {
		return err
	}
	defer st.Close()
	switch {
	case p.args[0] == "add" && len(p.args) == 3:
		return externalAdd(ctx, p, st, p.args[1], p.args[2], *hookURL)
	case p.args[0] == "mint" && len(p.args) == 2:
		m, err := st.ExternalModule(ctx, p.args[1])
		if err != nil {
			return err
		}
		if m.Kind != store.ExternalNATS {
			return usageError("module %s is a %s module; only NATS modules get credentials", p.args[1], m.Kind)
		}
		setup, err := natsauth.Load(natsAuthDir(p, *dir))
		if err != nil {
			return err
		}
		creds, err := setup.MintExternalModule(p.args[1])
		if err != nil {
			return err
		}
		if err := st.Audit(ctx, nil, store.AuditEntry{Actor: cliActor(), Action: "external.mint", Target: p.args[1],
			Details: map[string]any{"subscribe": natsauth.ExternalInvokeSubject(p.args[1]), "publish": schemas.ResultSubject(p.args[1])}}); err != nil {
			return err
		}
		_, err = os.Stdout.Write(creds)
		return err
	case p.args[0] == "list" && len(p.args) == 1:
		mods, err := st.ExternalModules(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MODULE\tVERSION\tKIND\tURL\tCOMMANDS\tADDED")
		for _, m := range mods {
			var cmds []string
			for _, c := range m.Manifest.Commands {
				cmds = append(cmds, "#"+c.Name)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", m.Manifest.Name, m.Manifest.Version, m.Kind, m.URL, cmds, m.CreatedAt.Format(time.DateOnly))
		}
		return tw.Flush()
	case p.args[0] == "remove" && len(p.args) == 2:
		if err := st.RemoveExternalModule(ctx, cliActor(), p.args[1], map[string]any{"from": "cli"}); err != nil {
			return err
		}
		announceRegistry(ctx, p, p.args[1])
		fmt.Printf("removed %s\n", p.args[1])
		return nil
	}
	return usageError(externalUsage)
}

func externalAdd(ctx context.Context, p parsed, st *store.Store, kind, path, hookURL string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("external: unable to read the manifest: %w", err)
	}
	var m schemas.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("external: %s is not a manifest: %w", path, err)
	}
	m.External = true
	var secret []byte
	switch kind {
	case store.ExternalNATS:
		if hookURL != "" {
			return usageError("--url is for webhook modules")
		}
	case store.ExternalWebhook:
		u, err := url.Parse(hookURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return usageError("add webhook needs --url https://…")
		}
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("external: unable to make a secret: %w", err)
		}
		secret = []byte(hex.EncodeToString(b))
	default:
		return usageError(externalUsage)
	}
	if err := st.AddExternalModule(ctx, cliActor(), m, kind, hookURL, secret, map[string]any{"from": "cli"}); err != nil {
		return err
	}
	announceRegistry(ctx, p, m.Name)
	fmt.Printf("registered %s module %s %s (off in every community until an owner enables it)\n", kind, m.Name, m.Version)
	switch kind {
	case store.ExternalWebhook:
		fmt.Printf("webhook secret (shown once; verify %s = sha256=HMAC(secret, \"<%s>.<body>\")):\n%s\n",
			external.HeaderSignature, external.HeaderTimestamp, secret)
	case store.ExternalNATS:
		fmt.Printf("credentials: waddlebot external mint %s > %s.creds\n", m.Name, m.Name)
	}
	return nil
}

// announceRegistry tells routers and relays that the catalogue changed;
// without NATS they catch up on their own refresh.
func announceRegistry(ctx context.Context, p parsed, module string) {
	conn, err := connectNATS(ctx, p, "waddlebot external")
	if err != nil {
		p.log.Warn("external: unable to announce the change; parts pick it up on their next refresh", "err", err)
		return
	}
	defer conn.Close()
	if err := conn.NC.Publish(schemas.ControlRegistry, []byte(module)); err == nil {
		_ = conn.NC.Flush()
	}
}

// runRelay runs a relay replica: it serves every registered external module.
func runRelay(ctx context.Context, args []string) error {
	p, err := parse(partFlags("relay"), args, append(partGroups, config.GroupAction)...)
	if err != nil {
		return err
	}
	return runPart(ctx, p, "relay", true, func(d *daemon.Daemon, srv *ops.Server, conn *natsx.Conn, st *store.Store, _ string) error {
		return addRelay(d, srv, p, conn, st)
	})
}
