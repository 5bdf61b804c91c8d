package portal_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// A module setting that names a secret (as the AI module's api_key_secret
// does) is set from the module page: the value goes to the encrypted
// secrets table, the settings keep its name, and the value is never shown
// or audited.
func TestModuleSecrets(t *testing.T) {
	p := newPond(t)
	vault := schemas.Manifest{Name: "vault", Version: "1.0.0", Description: "keeps a token", DefaultEnabled: true,
		Commands: []schemas.CommandSpec{{Name: "vault", Usage: "vault", Description: "d", Permission: schemas.PermissionEveryone}},
		Settings: json.RawMessage(`{"type":"object","properties":{"token_secret":{"type":"string"},"level":{"type":"integer"}}}`)}
	if _, err := p.e.st.UpsertManifest(ctx, vault, true); err != nil {
		t.Fatal(err)
	}
	_, page := p.owner.get(p.base + "/modules/vault")
	if !strings.Contains(page, "token (not set)") || !strings.Contains(page, `type="password"`) {
		t.Fatalf("module page has no secret form:\n%s", page)
	}
	set := func(b *browser, token string, form url.Values) int {
		form.Set("csrf", token)
		status, _ := b.post(p.base+"/modules/vault/secrets/token_secret", form)
		return status
	}
	if status := set(p.mod, p.mt, url.Values{"value": {"s3cr3t-value"}}); status != http.StatusForbidden {
		t.Fatalf("a moderator set a secret: %d", status)
	}
	if status := set(p.owner, "wrong", url.Values{"value": {"s3cr3t-value"}}); status != http.StatusForbidden {
		t.Fatalf("a secret without the CSRF token: %d", status)
	}
	if status := set(p.owner, p.ot, url.Values{"value": {"  "}}); status != http.StatusBadRequest {
		t.Fatalf("an empty secret: %d", status)
	}
	if status := set(p.owner, p.ot, url.Values{"value": {"s3cr3t-value"}}); status != http.StatusOK {
		t.Fatalf("set the secret: %d", status)
	}
	got, err := p.e.st.Secret(ctx, p.id, "vault.token")
	if err != nil || string(got) != "s3cr3t-value" {
		t.Fatalf("stored secret %q, %v", got, err)
	}
	ch, _ := p.e.st.CommunityModules(ctx, p.id)
	if !strings.Contains(strings.ReplaceAll(string(ch["vault"].Settings), " ", ""), `"token_secret":"vault.token"`) {
		t.Fatalf("settings %s do not name the secret", ch["vault"].Settings)
	}
	_, page = p.owner.get(p.base + "/modules/vault")
	if !strings.Contains(page, "token (stored)") || strings.Contains(page, "s3cr3t-value") {
		t.Fatalf("module page after saving:\n%s", page)
	}
	var n int
	if err := p.e.st.Pool().QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE details::text LIKE '%s3cr3t%'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the secret's value is in %d audit entries (%v)", n, err)
	}
	if !contains(p.e.auditActions(p.id), "module.secret.set") {
		t.Fatalf("no audit entry for the secret: %v", p.e.auditActions(p.id))
	}

	if status := set(p.owner, p.ot, url.Values{"remove": {"true"}}); status != http.StatusOK {
		t.Fatalf("remove the secret: %d", status)
	}
	if _, err := p.e.st.Secret(ctx, p.id, "vault.token"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the secret is still there: %v", err)
	}
	ch, _ = p.e.st.CommunityModules(ctx, p.id)
	if strings.Contains(string(ch["vault"].Settings), "token_secret") {
		t.Fatalf("settings %s still name the removed secret", ch["vault"].Settings)
	}
	if status, _ := p.owner.post(p.base+"/modules/vault/secrets/level", url.Values{"csrf": {p.ot}, "value": {"x"}}); status != http.StatusNotFound {
		t.Fatalf("a property that is not a secret: %d", status)
	}
}
