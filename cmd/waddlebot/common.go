package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/streams"
)

// parsed is a command's configuration and positional arguments.
type parsed struct {
	config.Loaded
	args []string
	log  *slog.Logger
}

// parse binds the settings of groups (and any extra flags the command
// registered on fs) and reads args, env and files.
func parse(fs *flag.FlagSet, args []string, groups ...config.Group) (parsed, error) {
	loader := config.NewLoader(fs, append(groups, config.GroupLog)...)
	fs.SetOutput(os.Stderr)
	rest, err := config.ParseInterspersed(fs, args)
	if err != nil {
		return parsed{}, err
	}
	loaded, err := loader.Load()
	if err != nil {
		return parsed{}, usageError("%v", err)
	}
	log := logging.New(os.Stderr, logging.Options{Level: loaded.LogLevel, Format: loaded.LogFormat})
	slog.SetDefault(log)
	return parsed{Loaded: loaded, args: rest, log: log}, nil
}

func connectNATS(ctx context.Context, p parsed, name string) (*natsx.Conn, error) {
	url := config.ResolveNATSURL(p.Config)
	conn, err := natsx.Connect(ctx, natsx.ConnectOptions{URL: url, Name: name, Creds: p.NATSCreds, Logger: p.log})
	if err != nil {
		return nil, fmt.Errorf("%w\n  (is NATS running there? `waddlebot dev` prints its URL and writes it to %s/%s; or set WADDLEBOT_NATS_URL)",
			err, p.DataDir, config.NATSURLFile)
	}
	return conn, nil
}

// openStore connects to PostgreSQL, creates the database when allowed, and
// applies the migrations.
func openStore(ctx context.Context, p parsed, create bool) (*store.Store, error) {
	var key []byte
	if p.SecretKey != "" {
		k, err := store.ParseSecretKey(p.SecretKey)
		if err != nil {
			return nil, usageError("WADDLEBOT_SECRET_KEY: %v", err)
		}
		key = k
	}
	var previous []byte
	if p.SecretKeyPrevious != "" {
		k, err := store.ParseSecretKey(p.SecretKeyPrevious)
		if err != nil {
			return nil, usageError("WADDLEBOT_SECRET_KEY_PREVIOUS: %v", err)
		}
		previous = k
	}
	st, err := store.Open(ctx, store.Config{URL: p.DatabaseURL, ReadURL: p.DatabaseReadURL,
		CreateDatabase: create || p.CreateDatabase, SecretKey: key, PreviousSecretKey: previous, Logger: p.log})
	if err != nil {
		if errors.Is(err, store.ErrNoDatabase) {
			return nil, err
		}
		return nil, fmt.Errorf("%w\n\n%s", err, postgresHelp(p.DatabaseURL))
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

func postgresHelp(url string) string {
	return strings.Join([]string{
		"WaddleBot needs PostgreSQL. It tried " + config.Mask(url) + ".",
		"  Start the local server:   pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
		"  or point at another one:  WADDLEBOT_DATABASE_URL=postgres://user:pass@host:5432/waddlebot",
	}, "\n")
}

func streamsConfig(p parsed) streams.Config { return streams.FromSettings(p.Config) }

// quietLogger keeps a benchmark's output to its report: warnings and errors only.
func quietLogger() *slog.Logger {
	return logging.New(os.Stderr, logging.Options{Level: "warn"})
}

// withStreamHint explains a missing stream, the usual sign of talking to a
// NATS server that is not WaddleBot's.
func withStreamHint(err error, p parsed) error {
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	return fmt.Errorf("%w\n  (the NATS server at %s has no WaddleBot streams: is `waddlebot dev` running from this directory? Against another server, run `waddlebot streams apply` first)",
		err, config.ResolveNATSURL(p.Config))
}
