package main

import (
	"context"
	"fmt"
	"os"

	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/version"
	"github.com/waddlebot/waddlebot/streams"
)

func runStreams(ctx context.Context, args []string) error {
	p, err := parse(partFlags("streams"), args, config.GroupNATS, config.GroupStreams, config.GroupData)
	if err != nil {
		return err
	}
	if len(p.args) != 1 || (p.args[0] != "apply" && p.args[0] != "verify") {
		return usageError("streams apply | verify")
	}
	conn, err := connectNATS(ctx, p, "waddlebot streams")
	if err != nil {
		return err
	}
	defer conn.Close()
	if p.args[0] == "verify" {
		if err := streams.Verify(ctx, conn.JS); err != nil {
			return err
		}
		fmt.Println("streams and buckets are in place")
		return nil
	}
	cfg := streamsConfig(p)
	if err := streams.Apply(ctx, conn.JS, cfg); err != nil {
		return err
	}
	for _, s := range cfg.Streams() {
		fmt.Printf("stream %-12s %-14s max age %-8s duplicates %s, replicas %d\n", s.Name, s.Subjects[0], s.MaxAge, s.Duplicates, s.Replicas)
	}
	for _, b := range cfg.Buckets() {
		fmt.Printf("bucket %-14s ttl %s\n", b.Bucket, b.TTL)
	}
	return nil
}

func runMigrate(ctx context.Context, args []string) error {
	p, err := parse(partFlags("migrate"), args, config.GroupDatabase, config.GroupSecrets)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, p, false)
	if err != nil {
		return err
	}
	st.Close()
	fmt.Println("database migrated")
	return nil
}

// runSecrets works on the encrypted secrets: `secrets rotate` re-encrypts
// with WADDLEBOT_SECRET_KEY every secret still under
// WADDLEBOT_SECRET_KEY_PREVIOUS (docs/operations.md: rotating the key).
func runSecrets(ctx context.Context, args []string) error {
	p, err := parse(partFlags("secrets"), args, config.GroupDatabase, config.GroupSecrets)
	if err != nil {
		return err
	}
	if len(p.args) != 1 || p.args[0] != "rotate" {
		return usageError("secrets rotate (with WADDLEBOT_SECRET_KEY the new key and WADDLEBOT_SECRET_KEY_PREVIOUS the old one)")
	}
	st, err := openStore(ctx, p, false)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := st.RotateSecrets(ctx)
	if err != nil {
		return fmt.Errorf("secrets: rotated %d before failing: %w", n, err)
	}
	fmt.Printf("re-encrypted %d secrets with the new key\n", n)
	return nil
}

func runConfig(_ context.Context, args []string) error {
	fs := partFlags("config")
	p, err := parse(fs, args, config.GroupNATS, config.GroupDatabase, config.GroupHTTP, config.GroupSecrets,
		config.GroupStreams, config.GroupData, config.GroupRouter, config.GroupAction, config.GroupCollector)
	if err != nil {
		return err
	}
	config.Print(os.Stdout, p.Loaded)
	fmt.Printf("# NATS URL in effect: %s\n", config.ResolveNATSURL(p.Config))
	return nil
}

func runVersion(context.Context, []string) error {
	fmt.Println("waddlebot", version.Version)
	return nil
}
