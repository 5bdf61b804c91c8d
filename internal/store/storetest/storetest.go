// Package storetest gives each test a throw-away PostgreSQL database, copied
// from a template migrated once per migration set, and dropped in Cleanup.
//
// The server comes from WADDLEBOT_TEST_DATABASE_URL, by default the local
// server of a development machine (trust auth, user postgres).
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
)

// DefaultServerURL is the maintenance database tests connect to first.
const DefaultServerURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL is the maintenance database of the test server.
func ServerURL() string {
	if u := os.Getenv("WADDLEBOT_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultServerURL
}

// TestKey is the secret key test stores use.
var TestKey = []byte("0123456789abcdef0123456789abcdef")

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// URL creates a fresh, migrated database for t and returns its URL.
func URL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx) })
	if templateErr != nil {
		t.Fatalf("storetest: %v", templateErr)
	}
	name := "wbtest_" + randomHex(8)
	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		t.Fatalf("storetest: PostgreSQL unreachable at %s: %v (start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)", ServerURL(), err)
	}
	defer admin.Close(ctx)
	for attempt := 0; ; attempt++ {
		_, err = admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, templateName))
		var pgErr *pgconn.PgError
		// 55006: the template is briefly in use by another process copying it.
		if err != nil && errors.As(err, &pgErr) && pgErr.Code == "55006" && attempt < 50 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		break
	}
	if err != nil {
		t.Fatalf("storetest: unable to create %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, ServerURL())
		if err != nil {
			return
		}
		defer admin.Close(ctx)
		_, _ = admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name))
	})
	return withDatabase(ServerURL(), name)
}

// New opens a store on a fresh database for t, closed in Cleanup.
func New(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{URL: URL(t), SecretKey: TestKey, Logger: logging.Discard(), MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// ensureTemplate creates and migrates the template database for the current
// migrations once on this server; concurrent test binaries serialize on an
// advisory lock.
func ensureTemplate(ctx context.Context) (string, error) {
	name := "wbtmpl_" + store.MigrationsHash()
	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return "", fmt.Errorf("PostgreSQL unreachable at %s: %w (start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)", ServerURL(), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(727274)"); err != nil {
		return "", err
	}
	defer admin.Exec(context.Background(), "SELECT pg_advisory_unlock(727274)")
	var ready bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)", name).Scan(&ready); err != nil {
		return "", err
	}
	if ready {
		return name, nil
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	s, err := store.Open(ctx, store.Config{URL: withDatabase(ServerURL(), name), Logger: logging.Discard(), MaxConns: 2})
	if err != nil {
		return "", err
	}
	err = s.Migrate(ctx)
	s.Close()
	if err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s WITH is_template = true ALLOW_CONNECTIONS = false", name)); err != nil {
		return "", err
	}
	// When it was made, so another checkout's tests (other migrations, so
	// another template) do not lose theirs while they run.
	if _, err := admin.Exec(ctx, fmt.Sprintf("COMMENT ON DATABASE %s IS '%d'", name, time.Now().Unix())); err != nil {
		return "", err
	}
	dropStaleTemplates(ctx, admin, name)
	return name, nil
}

// staleTemplateAge is how old another migration set's template must be
// before it is dropped: younger ones may belong to tests running now in
// another checkout.
const staleTemplateAge = 6 * time.Hour

// dropStaleTemplates removes templates of earlier migration sets, so the
// server keeps few cached templates and nothing else from the tests.
func dropStaleTemplates(ctx context.Context, admin *pgx.Conn, keep string) {
	rows, err := admin.Query(ctx, `
		SELECT datname FROM pg_database
		WHERE datname LIKE 'wbtmpl\_%' AND datname <> $1
		  AND COALESCE(NULLIF(regexp_replace(COALESCE(shobj_description(oid, 'pg_database'), ''), '[^0-9]', '', 'g'), ''), '0')::bigint < $2`,
		keep, time.Now().Add(-staleTemplateAge).Unix())
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		_, _ = admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s WITH is_template = false", n))
		_, _ = admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", n))
	}
}

func withDatabase(dsn, db string) string {
	u, err := url.Parse(dsn)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") {
		return dsn + " dbname=" + db
	}
	u.Path = "/" + db
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
