package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

func TestAPIKeyLifecycle(t *testing.T) {
	st := storetest.New(t)
	u, err := st.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "1"}, "One", false)
	if err != nil {
		t.Fatal(err)
	}
	other, err := st.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "2"}, "Two", false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.CreateOwnedCommunity(ctx, "test", u.ID, store.NewCommunity{Name: "C"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]store.NewAPIKey{
		"no scopes":     {Name: "x", UserID: u.ID, CommunityID: c.ID},
		"unknown scope": {Name: "x", UserID: u.ID, CommunityID: c.ID, Scopes: []string{"root"}},
	} {
		if _, _, err := st.CreateAPIKey(ctx, "test", n, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	secret, k, err := st.CreateAPIKey(ctx, "test", store.NewAPIKey{Name: "dash", UserID: u.ID, CommunityID: c.ID,
		Scopes: []string{store.ScopeCommunitiesRead}}, map[string]any{"ip": "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) < 40 || secret[:4] != store.APIKeyPrefix || k.Hint != secret[:10] {
		t.Fatalf("secret %q hint %q", secret, k.Hint)
	}
	var stored int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM api_keys WHERE position($1 in encode(secret_hash, 'escape')) > 0`, secret).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("secret stored in clear: %d %v", stored, err)
	}
	got, err := st.APIKeyBySecret(ctx, secret)
	if err != nil || got.ID != k.ID || !got.Has(store.ScopeCommunitiesRead) || got.Has(store.ScopeAI) || got.CommunityID != c.ID {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := st.APIKeyBySecret(ctx, secret+"x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("wrong secret: %v", err)
	}

	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for i, at := range []time.Time{now, now.Add(30 * time.Second), now.Add(61 * time.Second)} {
		if err := st.TouchAPIKey(ctx, k.ID, at, time.Minute); err != nil {
			t.Fatal(err)
		}
		got, _ = st.APIKeyBySecret(ctx, secret)
		want := []time.Time{now, now, now.Add(61 * time.Second)}[i]
		if got.LastUsedAt == nil || !got.LastUsedAt.Equal(want) {
			t.Fatalf("touch %d: last used %v, want %v", i, got.LastUsedAt, want)
		}
	}

	if err := st.RevokeAPIKey(ctx, "test", other.ID, k.ID, false, now, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("someone else's revoke: %v", err)
	}
	if err := st.RevokeAPIKey(ctx, "test", u.ID, k.ID, false, now, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeAPIKey(ctx, "test", u.ID, k.ID, false, now, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	got, _ = st.APIKeyBySecret(ctx, secret)
	if got.Live(now) {
		t.Fatal("revoked key is live")
	}
	keys, err := st.APIKeysOf(ctx, u.ID)
	if err != nil || len(keys) != 1 {
		t.Fatalf("%v %v", keys, err)
	}
	past := now.Add(-time.Hour)
	if (store.APIKey{ExpiresAt: &past}).Live(now) {
		t.Fatal("expired key is live")
	}
	log, err := st.AuditLog(ctx, c.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range log {
		actions = append(actions, e.Action)
	}
	if len(actions) < 3 || actions[0] != "apikey.revoke" || actions[1] != "apikey.create" {
		t.Fatalf("audit %v", actions)
	}
}

func TestAuditPage(t *testing.T) {
	st := storetest.New(t)
	u, _ := st.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "1"}, "One", false)
	c, err := st.CreateOwnedCommunity(ctx, "test", u.ID, store.NewCommunity{Name: "C"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if err := st.Audit(ctx, nil, store.AuditEntry{CommunityID: c.ID, Actor: "t", Action: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := st.AuditPage(ctx, c.ID, 0, 3)
	if err != nil || len(first) != 3 {
		t.Fatalf("%v %v", first, err)
	}
	rest, err := st.AuditPage(ctx, c.ID, first[2].ID, 3)
	if err != nil || len(rest) != 2 || rest[0].ID >= first[2].ID {
		t.Fatalf("%v %v", rest, err)
	}
}

func TestDeleteCommandOverrideAudited(t *testing.T) {
	st := storetest.New(t)
	u, _ := st.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "1"}, "One", false)
	c, err := st.CreateOwnedCommunity(ctx, "test", u.ID, store.NewCommunity{Name: "C"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	off := false
	if err := st.SetCommandOverride(ctx, "t", c.ID, "hello", store.CommandOverride{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteCommandOverrideAudited(ctx, "t", c.ID, "hello", nil); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteCommandOverrideAudited(ctx, "t", c.ID, "hello", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	os, _ := st.CommandOverrides(ctx, c.ID)
	if len(os) != 0 {
		t.Fatalf("%v", os)
	}
}
