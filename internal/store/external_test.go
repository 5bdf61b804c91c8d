package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

func extManifest(name string) schemas.Manifest {
	return schemas.Manifest{Name: name, Version: "1.0.0", External: true,
		Commands: []schemas.CommandSpec{{Name: name, Permission: "everyone"}}}
}

func TestAddExternalModule(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	if _, err := s.UpsertManifest(ctx, schemas.Manifest{Name: "core", Version: "1.0.0",
		Commands: []schemas.CommandSpec{{Name: "ping", Permission: "everyone"}}}, true); err != nil {
		t.Fatal(err)
	}
	on := extManifest("on")
	on.DefaultEnabled = true
	internal := extManifest("inside")
	internal.External = false
	tests := []struct {
		name    string
		m       schemas.Manifest
		kind    string
		url     string
		secret  []byte
		wantErr error
	}{
		{"nats", extManifest("weather"), store.ExternalNATS, "", nil, nil},
		{"webhook", extManifest("hook"), store.ExternalWebhook, "https://example.test/hook", []byte("k"), nil},
		{"webhook without secret", extManifest("hook2"), store.ExternalWebhook, "https://example.test/hook", nil, schemas.ErrInvalid},
		{"webhook without url", extManifest("hook3"), store.ExternalWebhook, "", []byte("k"), schemas.ErrInvalid},
		{"nats with url", extManifest("n2"), store.ExternalNATS, "https://x", nil, schemas.ErrInvalid},
		{"unknown kind", extManifest("n3"), "grpc", "", nil, schemas.ErrInvalid},
		{"on by default", on, store.ExternalNATS, "", nil, schemas.ErrInvalid},
		{"not external", internal, store.ExternalNATS, "", nil, schemas.ErrInvalid},
		{"built-in name", extManifest("core"), store.ExternalNATS, "", nil, store.ErrConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.AddExternalModule(ctx, "tester", tc.m, tc.kind, tc.url, tc.secret, map[string]any{"ip": "192.0.2.7"})
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
	mods, err := s.ExternalModules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != 2 || mods[0].Manifest.Name != "hook" || mods[1].Kind != store.ExternalNATS {
		t.Fatalf("modules %+v", mods)
	}
	if secret, err := s.Secret(ctx, store.SecretOwnerExternal, "hook"); err != nil || string(secret) != "k" {
		t.Fatalf("secret %q %v", secret, err)
	}
	if err := s.RemoveExternalModule(ctx, "tester", "hook", map[string]any{"from": "cli"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Secret(ctx, store.SecretOwnerExternal, "hook"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("secret survived removal: %v", err)
	}
	if err := s.RemoveExternalModule(ctx, "tester", "core", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removing a built-in: %v", err)
	}
	log, _, err := s.SiteAudit(ctx, store.AuditFilter{ActionPrefix: "external.", Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]int{}
	for _, e := range log {
		actions[e.Action]++
		// Where the change came from is kept beside before and after.
		switch e.Action {
		case "external.add":
			if e.Details["ip"] != "192.0.2.7" || e.Details["after"] == nil {
				t.Errorf("add audit details %v, want the ip and the after state", e.Details)
			}
		case "external.remove":
			if e.Details["from"] != "cli" || e.Details["before"] == nil {
				t.Errorf("remove audit details %v, want from cli and the before state", e.Details)
			}
		}
	}
	if actions["external.add"] != 2 || actions["external.remove"] != 1 {
		t.Fatalf("audit %v", actions)
	}
}

func TestAnswerPending(t *testing.T) {
	s := storetest.New(t)
	ctx := context.Background()
	now := time.Now()
	inv := &schemas.Invocation{ID: "0190a0a0-0000-7000-8000-000000000001", Module: "weather",
		Community: schemas.Community{ID: "0190a0a0-0000-7000-8000-0000000000c1"}}
	if err := s.PutPending(ctx, inv, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	ok := func(*schemas.Invocation) error { return nil }
	tests := []struct {
		name, module, id string
		at               time.Time
		fn               func(*schemas.Invocation) error
		wantErr          error
	}{
		{"other module", "other", inv.ID, now, ok, store.ErrRefused},
		{"unknown", "weather", "0190a0a0-0000-7000-8000-000000000002", now, ok, store.ErrRefused},
		{"too late", "weather", inv.ID, now.Add(2 * time.Minute), ok, store.ErrRefused},
		{"publish fails", "weather", inv.ID, now, func(*schemas.Invocation) error { return errors.New("nats down") }, nil},
		{"answered", "weather", inv.ID, now, ok, nil},
		{"twice", "weather", inv.ID, now, ok, store.ErrRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.AnswerPending(ctx, tc.module, tc.id, tc.at, tc.fn)
			switch {
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			case tc.name == "publish fails" && (err == nil || errors.Is(err, store.ErrRefused)):
				t.Fatalf("err %v", err)
			case tc.wantErr == nil && tc.name != "publish fails" && err != nil:
				t.Fatal(err)
			}
		})
	}
	if answered, err := s.PendingAnswered(ctx, inv.ID); err != nil || !answered {
		t.Fatalf("answered %v %v", answered, err)
	}
	if n, err := s.PrunePending(ctx, now); err != nil || n != 0 {
		t.Fatalf("pruned %d %v before expiry", n, err)
	}
	if n, err := s.PrunePending(ctx, now.Add(2*time.Minute)); err != nil || n != 1 {
		t.Fatalf("pruned %d %v after expiry", n, err)
	}
}
