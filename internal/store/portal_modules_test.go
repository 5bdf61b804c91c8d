package store_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

func newCommunity(t *testing.T, s *store.Store) string {
	t.Helper()
	u, err := s.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "9"}, "Nine", false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateOwnedCommunity(ctx, "test", u.ID, store.NewCommunity{Name: "Pond"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func lastAudit(t *testing.T, s *store.Store, id string) store.AuditEntry {
	t.Helper()
	log, err := s.AuditLog(ctx, id, 1)
	if err != nil || len(log) != 1 {
		t.Fatalf("audit %v %v", log, err)
	}
	return log[0]
}

func TestChangeModuleAuditsBeforeAndAfter(t *testing.T) {
	s := storetest.New(t)
	id := newCommunity(t, s)
	if err := s.ChangeModule(ctx, "a", id, "m", false, nil, map[string]any{"ip": "1"}); err != nil {
		t.Fatal(err)
	}
	e := lastAudit(t, s, id)
	if e.Action != "module.set" || e.Details["before"] != nil || e.Details["after"].(map[string]any)["enabled"] != false || e.Details["ip"] != "1" {
		t.Fatalf("first %+v", e)
	}
	if err := s.ChangeModule(ctx, "a", id, "m", true, json.RawMessage(`{"x":1}`), nil); err != nil {
		t.Fatal(err)
	}
	e = lastAudit(t, s, id)
	if e.Details["before"].(map[string]any)["enabled"] != false || e.Details["after"].(map[string]any)["settings"].(map[string]any)["x"] != 1.0 {
		t.Fatalf("second %+v", e)
	}
	// Switching keeps the settings.
	if err := s.ChangeModule(ctx, "a", id, "m", false, nil, nil); err != nil {
		t.Fatal(err)
	}
	ch, _ := s.CommunityModules(ctx, id)
	if ch["m"].Enabled || string(ch["m"].Settings) != `{"x": 1}` {
		t.Fatalf("choice %+v %s", ch["m"], ch["m"].Settings)
	}
	if err := s.ChangeModule(ctx, "a", id, "m", true, json.RawMessage(`{`), nil); !errors.Is(err, schemas.ErrInvalid) {
		t.Fatalf("bad JSON: %v", err)
	}
}

func TestChangeCommandOverrideAndReset(t *testing.T) {
	s := storetest.New(t)
	id := newCommunity(t, s)
	perm, ms := "vip", int64(3000)
	if err := s.ChangeCommandOverride(ctx, "a", id, "quote", &store.CommandOverride{Permission: &perm, UserCooldownMS: &ms}, nil); err != nil {
		t.Fatal(err)
	}
	os, _ := s.CommandOverrides(ctx, id)
	if o := os["quote"]; o.Permission == nil || *o.Permission != "vip" || *o.UserCooldownMS != 3000 || o.Enabled != nil {
		t.Fatalf("override %+v", o)
	}
	bad := "owner"
	if err := s.ChangeCommandOverride(ctx, "a", id, "quote", &store.CommandOverride{Permission: &bad}, nil); !errors.Is(err, schemas.ErrInvalid) {
		t.Fatalf("owner permission: %v", err)
	}
	if err := s.ChangeCommandOverride(ctx, "a", id, "quote", nil, nil); err != nil {
		t.Fatal(err)
	}
	if os, _ := s.CommandOverrides(ctx, id); len(os) != 0 {
		t.Fatalf("after reset %v", os)
	}
	e := lastAudit(t, s, id)
	if e.Action != "command.reset" || e.Details["before"].(map[string]any)["permission"] != "vip" || e.Details["after"] != nil {
		t.Fatalf("reset audit %+v", e)
	}
}

func TestQuotesAndLeaders(t *testing.T) {
	s := storetest.New(t)
	id := newCommunity(t, s)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < 3; i++ {
		if n, err := s.AddQuote(ctx, "a", id, store.Quote{Text: "q", AddedBy: "portal:x", AddedByName: "X", AddedAt: at}, nil); err != nil || n != int64(i+1) {
			t.Fatalf("add %d: %d %v", i, n, err)
		}
	}
	if _, err := s.AddQuote(ctx, "a", id, store.Quote{Text: "", AddedBy: "x", AddedByName: "X", AddedAt: at}, nil); err == nil {
		t.Fatal("an empty quote was stored")
	}
	list, total, err := s.Quotes(ctx, id, 1, 1)
	if err != nil || total != 3 || len(list) != 1 || list[0].Number != 2 || !list[0].AddedAt.Equal(at) {
		t.Fatalf("page %+v %d %v", list, total, err)
	}
	if err := s.DeleteQuote(ctx, "a", id, 2, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteQuote(ctx, "a", id, 2, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}

	for subj, v := range map[string][2]int64{"a": {100, 5}, "b": {300, 0}, "c": {-50, 0}} {
		if _, err := s.Pool().Exec(ctx, `INSERT INTO reputation_scores (community_id, subject, total, pending) VALUES ($1, $2, $3, $4)`, id, subj, v[0], v[1]); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := s.ReputationLeaders(ctx, id, 2)
	if err != nil || len(ls) != 2 || ls[0].Subject != "b" || ls[1].Total != 105 {
		t.Fatalf("leaders %+v %v", ls, err)
	}
}
