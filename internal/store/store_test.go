package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

var ctx = context.Background()

func TestResolveChannelCreatesOneProvisionalCommunity(t *testing.T) {
	s := storetest.New(t)
	ch := store.Channel{Platform: "twitch", ChannelID: "123", Name: "waddle"}
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.ResolveChannel(ctx, ch)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = c.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("racing resolutions gave different communities: %v", ids)
		}
	}
	c, err := s.Community(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if !c.Provisional || c.Prefix != "!" || c.TimeZone != "UTC" || c.Locale != "en" || c.Name != "twitch:waddle" {
		t.Fatalf("provisional community = %+v", c)
	}
	var n int
	if err := s.Pool().QueryRow(ctx, "SELECT count(*) FROM communities").Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d communities (err %v), want 1", n, err)
	}
	other, err := s.ResolveChannel(ctx, store.Channel{Platform: "discord", ChannelID: "123"})
	if err != nil || other.ID == c.ID {
		t.Fatalf("another platform's channel shares a community: %v %v", other, err)
	}
}

func TestClaimChannelRemovesEmptyProvisionalCommunity(t *testing.T) {
	s := storetest.New(t)
	ch := store.Channel{Platform: "twitch", ChannelID: "42", Name: "bob"}
	prov, err := s.ResolveChannel(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	owned, err := s.CreateCommunity(ctx, "alice", store.NewCommunity{Name: "Penguins", Prefix: "?"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimChannel(ctx, "alice", owned.ID, ch); err != nil {
		t.Fatal(err)
	}
	got, err := s.ResolveChannel(ctx, ch)
	if err != nil || got.ID != owned.ID || got.Prefix != "?" || got.Provisional {
		t.Fatalf("after claim: %+v, %v", got, err)
	}
	if _, err := s.Community(ctx, prov.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("provisional community still there: %v", err)
	}
	log, err := s.AuditLog(ctx, owned.ID, 10)
	if err != nil || len(log) != 2 || log[0].Action != "channel.claim" || log[1].Action != "community.create" {
		t.Fatalf("audit log = %+v, %v", log, err)
	}
}

func manifest(version string) schemas.Manifest {
	return schemas.Manifest{Name: "core", Version: version, DefaultEnabled: true,
		Commands: []schemas.CommandSpec{{Name: "ping", Permission: "everyone", Usage: "!ping " + version}}}
}

func TestUpsertManifestNewerWins(t *testing.T) {
	s := storetest.New(t)
	steps := []struct {
		version string
		changed bool
		want    string
	}{
		{"1.2.0", true, "1.2.0"},
		{"1.2.0", false, "1.2.0"},
		{"1.1.9", false, "1.2.0"},
		{"1.10.0", true, "1.10.0"},
		{"1.9.0", false, "1.10.0"},
	}
	for _, st := range steps {
		changed, err := s.UpsertManifest(ctx, manifest(st.version), true)
		if err != nil {
			t.Fatal(err)
		}
		cat, err := s.Catalogue(ctx)
		if err != nil || len(cat) != 1 {
			t.Fatalf("catalogue = %v, %v", cat, err)
		}
		if changed != st.changed || cat[0].Manifest.Version != st.want {
			t.Fatalf("upsert %s: changed %v, version %s; want %v, %s", st.version, changed, cat[0].Manifest.Version, st.changed, st.want)
		}
	}
	bad := manifest("1.0")
	if _, err := s.UpsertManifest(ctx, bad, true); !errors.Is(err, schemas.ErrInvalid) {
		t.Fatalf("bad version accepted: %v", err)
	}
}

func TestCommunityChoices(t *testing.T) {
	s := storetest.New(t)
	c, err := s.CreateCommunity(ctx, "owner", store.NewCommunity{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetModule(ctx, "owner", c.ID, "ai", true, json.RawMessage(`{"model":"llama3.2"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetModule(ctx, "owner", c.ID, "ai", false, nil); err != nil {
		t.Fatal(err)
	}
	mods, err := s.CommunityModules(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m := mods["ai"]; m.Enabled || string(m.Settings) != `{"model": "llama3.2"}` {
		t.Fatalf("ai choice = %+v (%s)", m, m.Settings)
	}
	perm, cd := "moderator", int64(5000)
	if err := s.SetCommandOverride(ctx, "owner", c.ID, "ping", store.CommandOverride{Permission: &perm, UserCooldownMS: &cd}); err != nil {
		t.Fatal(err)
	}
	bad := "king"
	if err := s.SetCommandOverride(ctx, "owner", c.ID, "ping", store.CommandOverride{Permission: &bad}); !errors.Is(err, schemas.ErrInvalid) {
		t.Fatalf("unknown permission accepted: %v", err)
	}
	ov, err := s.CommandOverrides(ctx, c.ID)
	if err != nil || *ov["ping"].Permission != "moderator" || *ov["ping"].UserCooldownMS != 5000 || ov["ping"].Enabled != nil {
		t.Fatalf("overrides = %+v, %v", ov, err)
	}
}

func TestRunOnceCommitsOnceAndReplays(t *testing.T) {
	s := storetest.New(t)
	if _, err := s.Pool().Exec(ctx, "CREATE TABLE counter (n int)"); err != nil {
		t.Fatal(err)
	}
	id := schemas.InvocationID(schemas.NewEventID(), "count", "cmd:count")
	runs := 0
	work := func(ctx context.Context, tx pgx.Tx) ([]store.OutMessage, error) {
		runs++
		var n int
		if err := tx.QueryRow(ctx, "INSERT INTO counter VALUES ((SELECT count(*) + 1 FROM counter)) RETURNING n").Scan(&n); err != nil {
			return nil, err
		}
		return []store.OutMessage{{Subject: "wb.reply.console.demo", MsgID: "r1", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}}, nil
	}
	first, replayed, err := s.RunOnce(ctx, id, "count", "", work)
	if err != nil || replayed || len(first) != 1 {
		t.Fatalf("first run: %v %v %v", first, replayed, err)
	}
	second, replayed, err := s.RunOnce(ctx, id, "count", "", work)
	if err != nil || !replayed {
		t.Fatalf("second run: replayed %v, %v", replayed, err)
	}
	if runs != 1 || string(second[0].Data) != string(first[0].Data) || second[0].MsgID != "r1" {
		t.Fatalf("work ran %d times; replay %s vs %s", runs, second[0].Data, first[0].Data)
	}
	unsent, err := s.Unsent(ctx, "count", 0, 10)
	if err != nil || len(unsent) != 1 {
		t.Fatalf("unsent = %v, %v", unsent, err)
	}
	if err := s.MarkSent(ctx, id); err != nil {
		t.Fatal(err)
	}
	if unsent, _ := s.Unsent(ctx, "count", 0, 10); len(unsent) != 0 {
		t.Fatalf("still unsent after MarkSent: %v", unsent)
	}
}

func TestRunOnceRollsBackFailedWork(t *testing.T) {
	s := storetest.New(t)
	if _, err := s.Pool().Exec(ctx, "CREATE TABLE counter (n int)"); err != nil {
		t.Fatal(err)
	}
	id := schemas.InvocationID(schemas.NewEventID(), "count", "cmd:count")
	boom := errors.New("boom")
	_, _, err := s.RunOnce(ctx, id, "count", "", func(ctx context.Context, tx pgx.Tx) ([]store.OutMessage, error) {
		if _, err := tx.Exec(ctx, "INSERT INTO counter VALUES (1)"); err != nil {
			return nil, err
		}
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	var n int
	_ = s.Pool().QueryRow(ctx, "SELECT count(*) FROM counter").Scan(&n)
	if n != 0 {
		t.Fatal("failed work's write was committed")
	}
	_, replayed, err := s.RunOnce(ctx, id, "count", "", func(ctx context.Context, tx pgx.Tx) ([]store.OutMessage, error) { return nil, nil })
	if err != nil || replayed {
		t.Fatalf("retry after failure: replayed %v, %v", replayed, err)
	}
}

func TestRunOnceConcurrentRunsOnce(t *testing.T) {
	s := storetest.New(t)
	id := schemas.InvocationID(schemas.NewEventID(), "slow", "cmd:slow")
	var mu sync.Mutex
	runs := 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := s.RunOnce(ctx, id, "slow", "", func(ctx context.Context, tx pgx.Tx) ([]store.OutMessage, error) {
				mu.Lock()
				runs++
				mu.Unlock()
				time.Sleep(100 * time.Millisecond)
				return []store.OutMessage{{Subject: "s", MsgID: "m", Data: json.RawMessage(`1`)}}, nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if runs != 1 {
		t.Fatalf("work ran %d times", runs)
	}
}

func TestSecretsRoundTripAndBinding(t *testing.T) {
	s := storetest.New(t)
	if err := s.PutSecret(ctx, nil, "global", "twitch_token", []byte("oauth:abc")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Secret(ctx, "global", "twitch_token")
	if err != nil || string(got) != "oauth:abc" {
		t.Fatalf("secret = %q, %v", got, err)
	}
	var raw []byte
	_ = s.Pool().QueryRow(ctx, "SELECT ciphertext FROM secrets").Scan(&raw)
	if string(raw) == "oauth:abc" || len(raw) == 0 {
		t.Fatal("secret stored in the clear")
	}
	// A row moved under another name must not decrypt.
	if _, err := s.Pool().Exec(ctx, "UPDATE secrets SET name = 'other'"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Secret(ctx, "global", "other"); err == nil {
		t.Fatal("a secret decrypted under another name")
	}
	if _, err := s.Secret(ctx, "global", "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing secret: %v", err)
	}
}

func TestParseSecretKey(t *testing.T) {
	key := store.NewSecretKey()
	if b, err := store.ParseSecretKey(key); err != nil || len(b) != 32 {
		t.Fatalf("generated key unreadable: %v", err)
	}
	for _, bad := range []string{"", "short", "0123456789abcdef"} {
		if _, err := store.ParseSecretKey(bad); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}

func TestCreateDatabaseWhenAllowed(t *testing.T) {
	url := storetest.URL(t)
	missing := url[:len(url)-len("?sslmode=disable")]
	missing = missing + "_new"
	if _, err := store.Open(ctx, store.Config{URL: missing, Logger: logging.Discard()}); !errors.Is(err, store.ErrNoDatabase) {
		t.Fatalf("open of a missing database without permission: %v", err)
	}
	s, err := store.Open(ctx, store.Config{URL: missing, CreateDatabase: true, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		admin, err := pgx.Connect(ctx, storetest.ServerURL())
		if err == nil {
			_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{missingName(missing)}.Sanitize()+" WITH (FORCE)")
			admin.Close(ctx)
		}
	})
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
}

func missingName(url string) string {
	cfg, _ := pgx.ParseConfig(url)
	return cfg.Database
}

func TestIsUnavailable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "57P01"}, true},
		{&pgconn.PgError{Code: "23505"}, false},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "42P01"}), false},
		{errors.New("quote not found"), false},
	}
	for _, tt := range tests {
		if got := store.IsUnavailable(tt.err); got != tt.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestHandlersReadingThroughThePoolDoNotStarve: more concurrent module
// transactions than connections, each reading through the pool while it
// holds its own, all finish.
func TestHandlersReadingThroughThePoolDoNotStarve(t *testing.T) {
	s, err := store.Open(ctx, store.Config{URL: storetest.URL(t), MaxConns: 4, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			_, _, err := s.RunOnce(tctx, schemas.NewEventID(), "m", "", func(ctx context.Context, tx pgx.Tx) ([]store.OutMessage, error) {
				time.Sleep(20 * time.Millisecond)
				_, err := s.Catalogue(ctx) // a read through the pool while holding tx
				return nil, err
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestPruneFinishedJobsAndAliasRuns(t *testing.T) {
	s := storetest.New(t)
	c, err := s.CreateCommunity(ctx, "t", store.NewCommunity{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	for i, state := range []string{"pending", "fired", "cancelled", "failed"} {
		id := schemas.JobID("parent", i+1)
		if err := s.ScheduleJob(ctx, s.Pool(), store.Job{ID: id, Module: "m", CommunityID: c.ID, Kind: "k",
			DueAt: time.Now(), Target: schemas.Target{Platform: "console", ChannelID: "x"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Pool().Exec(ctx, `UPDATE scheduled_jobs SET state = $2, created_at = now() - interval '40 days',
			fired_at = CASE WHEN $2 = 'fired' THEN now() - interval '40 days' END WHERE id = $1`, id, state); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneJobs(ctx, "m", 30*24*time.Hour)
	if err != nil || n != 3 {
		t.Fatalf("pruned %d jobs (%v), want the 3 finished ones", n, err)
	}
	var left string
	_ = s.Pool().QueryRow(ctx, `SELECT state FROM scheduled_jobs`).Scan(&left)
	if left != "pending" {
		t.Fatalf("left %q", left)
	}
	if err := s.AddAlias(ctx, s.Pool(), store.Alias{CommunityID: c.ID, Name: "a", Target: "ping", CreatedBy: "t"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.CountAliasRun(ctx, c.ID, "a", schemas.NewEventID()); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = s.Pool().Exec(ctx, `UPDATE alias_runs SET at = now() - interval '2 days' WHERE count = 1`)
	if n, err := s.PruneAliasRuns(ctx, 25*time.Hour); err != nil || n != 1 {
		t.Fatalf("pruned %d alias runs (%v), want 1", n, err)
	}
}

// TestAliasRunCountedOnceUnderRace: one invocation counted from many
// goroutines at once (two router replicas after an AckWait) counts once.
func TestAliasRunCountedOnceUnderRace(t *testing.T) {
	s := storetest.New(t)
	c, err := s.CreateCommunity(ctx, "t", store.NewCommunity{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddAlias(ctx, s.Pool(), store.Alias{CommunityID: c.ID, Name: "a", Target: "ping", CreatedBy: "t"}); err != nil {
		t.Fatal(err)
	}
	inv := schemas.NewEventID()
	var wg sync.WaitGroup
	counts := make([]int64, 8)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := s.CountAliasRun(ctx, c.ID, "a", inv)
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		}()
	}
	wg.Wait()
	for _, n := range counts {
		if n != 1 {
			t.Fatalf("counts %v, want all 1", counts)
		}
	}
}

// TestServerChannelsShareACommunity: channels of one Discord guild or
// Slack workspace land in one provisional community, also when their
// first messages race; another server gets its own.
func TestServerChannelsShareACommunity(t *testing.T) {
	s := storetest.New(t)
	var wg sync.WaitGroup
	ids := make([]string, 6)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.ResolveChannel(ctx, store.Channel{Platform: "discord", ChannelID: fmt.Sprintf("chan-%d", i%3), ServerID: "guild-1"})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = c.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("channels of one guild got communities %v; want one", ids)
		}
	}
	guild, err := s.ResolveChannel(ctx, store.Channel{Platform: "discord", ChannelID: "guild-1", ServerID: "guild-1"})
	if err != nil || guild.ID != ids[0] || !guild.Provisional {
		t.Fatalf("the guild's own record: %+v %v; want provisional community %s", guild, err, ids[0])
	}
	other, err := s.ResolveChannel(ctx, store.Channel{Platform: "discord", ChannelID: "chan-9", ServerID: "guild-2"})
	if err != nil || other.ID == ids[0] {
		t.Fatalf("another guild's channel: %+v %v; want a community of its own", other, err)
	}
}

// A key rotation: parts running with the new key and the previous one read
// both kinds of rows; RotateSecrets rewrites the old ones; afterwards the new
// key alone reads everything, and the old key alone reads nothing.
func TestRotateSecrets(t *testing.T) {
	old := storetest.New(t)
	for _, name := range []string{"a", "b"} {
		if err := old.PutSecret(ctx, nil, "global", name, []byte("value "+name)); err != nil {
			t.Fatal(err)
		}
	}
	url := old.Pool().Config().ConnString()
	newKey := []byte("fedcba9876543210fedcba9876543210")
	open := func(key, previous []byte) *store.Store {
		t.Helper()
		s, err := store.Open(ctx, store.Config{URL: url, SecretKey: key, PreviousSecretKey: previous, Logger: logging.Discard(), MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	if _, err := open(newKey, nil).Secret(ctx, "global", "a"); err == nil || !strings.Contains(err.Error(), "SECRET_KEY_PREVIOUS") {
		t.Fatalf("the new key alone read an old row (or said nothing useful): %v", err)
	}
	both := open(newKey, storetest.TestKey)
	if _, err := open(newKey, nil).RotateSecrets(ctx); err == nil {
		t.Fatal("rotated without a previous key")
	}
	// Written during the rotation, with the new key.
	if err := both.PutSecret(ctx, nil, "global", "c", []byte("value c")); err != nil {
		t.Fatal(err)
	}
	if got, err := both.Secret(ctx, "global", "a"); err != nil || string(got) != "value a" {
		t.Fatalf("old row read with the previous key: %q, %v", got, err)
	}
	n, err := both.RotateSecrets(ctx)
	if err != nil || n != 2 {
		t.Fatalf("rotated %d, %v; want 2", n, err)
	}
	if n, err := both.RotateSecrets(ctx); err != nil || n != 0 {
		t.Fatalf("second rotation rewrote %d, %v", n, err)
	}
	after := open(newKey, nil)
	for _, name := range []string{"a", "b", "c"} {
		if got, err := after.Secret(ctx, "global", name); err != nil || string(got) != "value "+name {
			t.Fatalf("%s after the rotation: %q, %v", name, got, err)
		}
	}
	if _, err := old.Secret(ctx, "global", "a"); err == nil {
		t.Fatal("the old key still reads a rotated row")
	}
}
