package alias_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions/alias"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

// TestCheckIsTheModulesValidation checks the exported validation the portal
// uses gives the chat command's answers.
func TestCheckIsTheModulesValidation(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	echo := schemas.Manifest{Name: "echo", Version: "1.0.0", DefaultEnabled: true,
		Commands: []schemas.CommandSpec{{Name: "echo", Permission: schemas.PermissionEveryone}}}
	for _, m := range []schemas.Manifest{alias.Manifest(), echo} {
		if _, err := st.UpsertManifest(ctx, m, true); err != nil {
			t.Fatal(err)
		}
	}
	c, err := st.CreateCommunity(ctx, "test", store.NewCommunity{Name: "Pond", Prefix: "?"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.InTx(ctx, func(tx pgx.Tx) error {
		return st.AddAlias(ctx, tx, store.Alias{CommunityID: c.ID, Name: "e", Target: "echo hi", CreatedBy: "x"})
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, target, want, wantTarget string }{
		{"hi", "?echo {1}", "", "echo {1}"},
		{"!hi", "echo", "", "echo"},
		{"echo", "?echo", "?echo is already a command (module echo)", ""},
		{"e", "?echo", "Alias ?e exists already (?echo hi)", ""},
		{"x", "?nothing", "There is no command or alias ?nothing.", ""},
		{"x", "?alias list", "An alias cannot run ?alias.", ""},
		{"x", "?echo a\nb", "An alias is one line", ""},
		{"x", "", "Usage: ?alias add", ""},
	} {
		var name, target, problem string
		if err := st.InTx(ctx, func(tx pgx.Tx) error {
			var err error
			name, target, problem, err = alias.Check(ctx, st, tx, c.ID, "?", tc.name, tc.target, 0)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if tc.want == "" && (problem != "" || target != tc.wantTarget || name != strings.TrimPrefix(tc.name, "!")) {
			t.Errorf("%q %q: %q %q %q", tc.name, tc.target, name, target, problem)
		}
		if tc.want != "" && !strings.Contains(problem, tc.want) {
			t.Errorf("%q %q: problem %q, want %q", tc.name, tc.target, problem, tc.want)
		}
	}
}
