package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

func TestPortalSignInIsOneUserPerAccount(t *testing.T) {
	s := storetest.New(t)
	id := store.Identity{Platform: "twitch", PlatformUserID: "42", Login: "waddle"}
	u1, err := s.SignInPortalUser(ctx, id, "Waddle", false)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := s.SignInPortalUser(ctx, id, "Waddle2", true)
	if err != nil {
		t.Fatal(err)
	}
	if u1.ID != u2.ID || u2.DisplayName != "Waddle2" || !u2.SuperAdmin {
		t.Fatalf("second sign-in: %+v, first %+v", u2, u1)
	}
	// Super-admin is never taken away by a sign-in.
	u3, err := s.SignInPortalUser(ctx, id, "", false)
	if err != nil || !u3.SuperAdmin || u3.DisplayName != "Waddle2" {
		t.Fatalf("third sign-in: %+v %v", u3, err)
	}
	pre, err := s.EnsurePortalUser(ctx, store.Identity{Platform: "discord", PlatformUserID: "7"})
	if err != nil {
		t.Fatal(err)
	}
	later, err := s.SignInPortalUser(ctx, store.Identity{Platform: "discord", PlatformUserID: "7", Login: "seven"}, "Seven", false)
	if err != nil || later.ID != pre.ID || later.DisplayName != "Seven" {
		t.Fatalf("sign-in of a pre-added account: %+v %v (pre %+v)", later, err, pre)
	}
}

func TestPortalSessionsExpire(t *testing.T) {
	s := storetest.New(t)
	u, err := s.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "1"}, "one", false)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tok, csrf, err := s.CreatePortalSession(ctx, store.NewPortalSession{UserID: u.ID, Now: now, ExpiresAt: now.Add(3 * time.Hour), IP: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	var hash []byte
	if err := s.Pool().QueryRow(ctx, `SELECT token_hash FROM portal_sessions`).Scan(&hash); err != nil || string(hash) == tok {
		t.Fatalf("stored hash %x, %v", hash, err)
	}
	idle := time.Hour
	for _, at := range []time.Duration{50 * time.Minute, 100 * time.Minute, 150 * time.Minute} {
		ps, err := s.TouchPortalSession(ctx, tok, now.Add(at), idle)
		if err != nil || ps.User.ID != u.ID || ps.CSRFToken != csrf {
			t.Fatalf("at +%s: %+v %v", at, ps, err)
		}
	}
	// Seen again within the minute: no row write; later: written.
	lastSeen := func() time.Time {
		var at time.Time
		if err := s.Pool().QueryRow(ctx, `SELECT last_seen FROM portal_sessions`).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at.UTC()
	}
	if _, err := s.TouchPortalSession(ctx, tok, now.Add(150*time.Minute+30*time.Second), idle); err != nil {
		t.Fatal(err)
	}
	if got := lastSeen(); !got.Equal(now.Add(150 * time.Minute)) {
		t.Fatalf("last_seen %s after a touch within the minute, want it unchanged", got)
	}
	if _, err := s.TouchPortalSession(ctx, tok, now.Add(152*time.Minute), idle); err != nil {
		t.Fatal(err)
	}
	if got := lastSeen(); !got.Equal(now.Add(152 * time.Minute)) {
		t.Fatalf("last_seen %s, want the touch two minutes later", got)
	}
	// Past the absolute limit although never idle.
	if _, err := s.TouchPortalSession(ctx, tok, now.Add(181*time.Minute), idle); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("past the limit: %v", err)
	}
	tok2, _, err := s.CreatePortalSession(ctx, store.NewPortalSession{UserID: u.ID, Now: now, ExpiresAt: now.Add(3 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TouchPortalSession(ctx, tok2, now.Add(61*time.Minute), idle); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("idle: %v", err)
	}
	if _, err := s.TouchPortalSession(ctx, "nope", now, idle); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
}

func TestPortalMembersAndCommunities(t *testing.T) {
	s := storetest.New(t)
	owner, _ := s.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "1", Login: "own"}, "Own", false)
	mod, _ := s.EnsurePortalUser(ctx, store.Identity{Platform: "slack", PlatformUserID: "U2"})
	c, err := s.CreateOwnedCommunity(ctx, "portal:"+owner.ID, owner.ID, store.NewCommunity{Name: "Pond", TimeZone: "Europe/Paris"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if role, _ := s.MemberRole(ctx, c.ID, owner.ID); role != store.RoleOwner {
		t.Fatalf("owner role %q", role)
	}
	if err := s.SetMember(ctx, "x", c.ID, mod.ID, store.RoleModerator, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMember(ctx, "x", c.ID, mod.ID, store.RoleAdmin, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMember(ctx, "x", c.ID, mod.ID, "king", nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("bad role: %v", err)
	}
	ms, err := s.Members(ctx, c.ID)
	if err != nil || len(ms) != 2 || ms[0].Role != store.RoleOwner || ms[1].Role != store.RoleAdmin || len(ms[1].Identities) != 1 {
		t.Fatalf("members %+v %v", ms, err)
	}
	mine, _ := s.CommunitiesOf(ctx, mod.ID, false)
	other, _ := s.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "3"}, "Other", false)
	none, _ := s.CommunitiesOf(ctx, other.ID, false)
	all, _ := s.CommunitiesOf(ctx, other.ID, true)
	if len(mine) != 1 || mine[0].Role != store.RoleAdmin || len(none) != 0 || len(all) != 1 {
		t.Fatalf("mine %v none %v all %v", mine, none, all)
	}
	if err := s.RemoveMember(ctx, "x", c.ID, mod.ID, nil); err != nil {
		t.Fatal(err)
	}
	c.Name = "Lake"
	if err := s.ChangeCommunity(ctx, "x", c, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCommunity(ctx, "x", c.ID, nil); err != nil {
		t.Fatal(err)
	}
	log, err := s.AuditLog(ctx, c.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range log {
		actions = append(actions, e.Action)
	}
	want := []string{"community.delete", "community.update", "member.remove", "member.role", "member.add", "community.create"}
	if len(actions) != len(want) {
		t.Fatalf("audit %v, want %v", actions, want)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Fatalf("audit %v, want %v", actions, want)
		}
	}
	if b := log[1].Details["before"].(map[string]any)["name"]; b != "Pond" {
		t.Fatalf("update before: %v", log[1].Details)
	}
}

func TestPortalConcurrentFirstSignInIsOneUser(t *testing.T) {
	s := storetest.New(t)
	id := store.Identity{Platform: "discord", PlatformUserID: "99", Login: "racer"}
	ids := make(chan string, 6)
	errs := make(chan error, 6)
	for range 6 {
		go func() {
			u, err := s.SignInPortalUser(ctx, id, "Racer", false)
			errs <- err
			ids <- u.ID
		}()
	}
	first := ""
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		got := <-ids
		if first == "" {
			first = got
		}
		if got != first {
			t.Fatalf("two users for one account: %s and %s", first, got)
		}
	}
}
