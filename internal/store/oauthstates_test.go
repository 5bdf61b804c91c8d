package store_test

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

func TestOAuthStates(t *testing.T) {
	const maxAge = 10 * time.Minute
	tests := []struct {
		name string
		// prepare may age the state; take names the platform and state the
		// callback presents.
		prepare  func(t *testing.T, s *store.Store, state string)
		platform string
		state    func(created string) string
		wantKind string
		wantErr  bool
	}{
		{name: "created then taken", platform: "twitch", wantKind: "bot"},
		{name: "unknown state refused", platform: "twitch", state: func(string) string { return "made-up" }, wantErr: true},
		{name: "empty state refused", platform: "twitch", state: func(string) string { return "" }, wantErr: true},
		{name: "wrong platform refused", platform: "slack", wantErr: true},
		{
			name: "expired refused", platform: "twitch", wantErr: true,
			prepare: func(t *testing.T, s *store.Store, state string) {
				if _, err := s.Pool().Exec(ctx, `UPDATE oauth_states SET created_at = now() - interval '11 minutes' WHERE state = $1`,
					state); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	s := storetest.New(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created, err := s.CreateOAuthState(ctx, "twitch", "bot")
			if err != nil {
				t.Fatal(err)
			}
			if raw, err := base64.RawURLEncoding.DecodeString(created); err != nil || len(raw) != 32 {
				t.Fatalf("state %q is not 32 bytes of base64url (%v)", created, err)
			}
			if tt.prepare != nil {
				tt.prepare(t, s, created)
			}
			state := created
			if tt.state != nil {
				state = tt.state(created)
			}
			kind, err := s.TakeOAuthState(ctx, tt.platform, state, maxAge)
			if tt.wantErr {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("TakeOAuthState = %q, %v; want ErrNotFound", kind, err)
				}
				return
			}
			if err != nil || kind != tt.wantKind {
				t.Fatalf("TakeOAuthState = %q, %v; want %q", kind, err, tt.wantKind)
			}
			// Good once.
			if _, err := s.TakeOAuthState(ctx, tt.platform, state, maxAge); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("second take = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestOAuthStatesSweptAfterAnHour(t *testing.T) {
	s := storetest.New(t)
	old, err := s.CreateOAuthState(ctx, "discord", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE oauth_states SET created_at = now() - interval '61 minutes' WHERE state = $1`, old); err != nil {
		t.Fatal(err)
	}
	recent, err := s.CreateOAuthState(ctx, "discord", "")
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	rows, err := s.Pool().Query(ctx, `SELECT state FROM oauth_states`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var st string
		if err := rows.Scan(&st); err != nil {
			t.Fatal(err)
		}
		states = append(states, st)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states[0] != recent {
		t.Fatalf("states after a create = %v, want only %q", states, recent)
	}
}
