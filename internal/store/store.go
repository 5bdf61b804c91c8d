// Package store is WaddleBot's PostgreSQL system of record: the pool, the
// embedded migrations, and the tables every part shares (communities and
// channels, the module catalogue and per-community choices, the outbox,
// encrypted secrets, the audit log).
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Config opens a store.
type Config struct {
	URL string
	// ReadURL, when set, serves read-only queries (a read replica).
	ReadURL string
	// CreateDatabase creates the database named in URL when it is missing.
	CreateDatabase bool
	// SecretKey is the AES-256 key for secrets; nil disables secrets.
	SecretKey []byte
	// PreviousSecretKey, during a key rotation, still decrypts the rows
	// written with the old key until RotateSecrets re-encrypts them.
	PreviousSecretKey []byte
	MaxConns          int32
	Logger            *slog.Logger
}

// Store is the pool and what lives on it.
type Store struct {
	pool     *pgxpool.Pool
	read     *pgxpool.Pool
	cipher   *cipher
	previous *cipher // the key being rotated away from, if any
	log      *slog.Logger
	// workTx holds a token per module transaction (RunOnce, FireNextDue)
	// that may be open at once: half the pool. A handler holds its
	// transaction's connection while it may read through the pool too;
	// were every connection held by such a transaction, those reads would
	// wait forever. Capping the held half keeps the other half for them.
	workTx chan struct{}
}

// Querier is what both a pool and a transaction can do.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrNoDatabase means the server answered but the database does not exist
// and creating it was not allowed.
var ErrNoDatabase = errors.New("store: database does not exist")

// Open connects, creating the database first when missing and allowed. It
// does not migrate: call Migrate.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	pool, err := newPool(ctx, cfg.URL, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
			if !cfg.CreateDatabase {
				return nil, fmt.Errorf("%w: %s (set WADDLEBOT_CREATE_DATABASE=true or create it)", ErrNoDatabase, dbName(cfg.URL))
			}
			if err := CreateDatabase(ctx, cfg.URL); err != nil {
				return nil, err
			}
			log.Info("store: created database", "database", dbName(cfg.URL))
			cfg.CreateDatabase = false
			cfg.Logger = log
			return Open(ctx, cfg)
		}
		return nil, fmt.Errorf("store: unable to reach PostgreSQL at %s: %w", redact(cfg.URL), err)
	}
	s := &Store{pool: pool, read: pool, log: log,
		workTx: make(chan struct{}, max(1, int(pool.Config().MaxConns)/2))}
	if cfg.ReadURL != "" {
		read, err := newPool(ctx, cfg.ReadURL, cfg.MaxConns)
		if err != nil {
			pool.Close()
			return nil, err
		}
		s.read = read
	}
	if len(cfg.SecretKey) > 0 {
		c, err := newCipher(cfg.SecretKey)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.cipher = c
	}
	if len(cfg.PreviousSecretKey) > 0 {
		c, err := newCipher(cfg.PreviousSecretKey)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("store: previous secret key: %w", err)
		}
		s.previous = c
	}
	return s, nil
}

func newPool(ctx context.Context, dsn string, maxConns int32) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: unable to parse database URL: %w", err)
	}
	if maxConns > 0 {
		pc.MaxConns = maxConns
	} else if pc.MaxConns < 16 {
		pc.MaxConns = 16
	}
	pc.ConnConfig.ConnectTimeout = 5 * time.Second
	pc.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("store: unable to open pool: %w", err)
	}
	return pool, nil
}

// CreateDatabase creates the database named in dsn, through the server's
// maintenance database. An existing database is not an error.
func CreateDatabase(ctx context.Context, dsn string) error {
	name := dbName(dsn)
	if name == "" {
		return errors.New("store: the database URL names no database")
	}
	admin, err := pgx.Connect(ctx, withDatabase(dsn, "postgres"))
	if err != nil {
		return fmt.Errorf("store: unable to connect to create %s: %w", name, err)
	}
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") { // duplicate_database
		return fmt.Errorf("store: unable to create database %s: %w", name, err)
	}
	return nil
}

func dbName(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return ""
	}
	return cfg.Database
}

// withDatabase returns dsn pointing at another database on the same server.
func withDatabase(dsn, db string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + db
		return u.String()
	}
	return dsn + " dbname=" + db
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}

// Migrate applies the embedded migrations. Replicas starting at once take
// turns through an advisory lock.
func (s *Store) Migrate(ctx context.Context) error {
	return Migrate(ctx, s.pool)
}

// Migrate applies the embedded migrations to the database behind pool.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return migrateDB(ctx, db)
}

func migrateDB(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("store: unable to read migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("store: unable to make migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("store: unable to load migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: unable to migrate: %w", err)
	}
	return nil
}

// MigrationsHash identifies the migration set, so test templates built from
// an older set are never reused.
func MigrationsHash() string {
	entries, _ := fs.ReadDir(migrations, "migrations")
	h := fnv.New64a()
	for _, e := range entries {
		b, _ := migrations.ReadFile("migrations/" + e.Name())
		h.Write([]byte(e.Name()))
		h.Write(b)
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// beginWork takes a module-transaction token and begins the transaction;
// done returns the token.
func (s *Store) beginWork(ctx context.Context) (pgx.Tx, func(), error) {
	select {
	case s.workTx <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("store: waiting for a free connection: %w", ctx.Err())
	}
	release := func() { <-s.workTx }
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("store: unable to begin: %w", err)
	}
	return tx, release, nil
}

// Pool is the read-write pool, for modules' own queries.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Reader is the pool for read-only queries (the replica when configured).
func (s *Store) Reader() *pgxpool.Pool { return s.read }

// Ping checks that PostgreSQL answers: the probe of a paused consumer.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, "SELECT 1")
	return err
}

// Close closes the pools.
func (s *Store) Close() {
	if s.read != nil && s.read != s.pool {
		s.read.Close()
	}
	s.pool.Close()
}

// IsUnavailable tells a PostgreSQL that is down or unreachable (worth
// pausing for) from an error in the query or the data (worth counting).
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutting down, cannot connect now
			return true
		case pgErr.Code == "53300": // too many connections
			return true
		}
		return false
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "connection refused") ||
		strings.Contains(msg, "unexpected EOF") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "connection reset")
}
