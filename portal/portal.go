// Package portal is WaddleBot's web portal: sign-in with Twitch, Discord
// or Slack, server-side sessions, and the pages that manage communities,
// their members, channels and audit log. Pages are server-rendered
// html/template with no JavaScript; every form carries a CSRF token.
package portal

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/ops"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/portal/openaiapi"
	"github.com/waddlebot/waddlebot/portal/restapi"
)

// Base is where the portal's pages live.
const Base = "/portal"

// callbackBase is where the providers send browsers back. It sits under
// /connect/ because the state cookie helpers scope their cookie to it.
const callbackBase = "/connect/portal"

// Default session lifetimes: a week without a visit signs out, and a month
// after sign-in signs out regardless, so a stolen cookie does not live
// forever on an active session either.
const (
	DefaultSessionIdle = 7 * 24 * time.Hour
	DefaultSessionMax  = 30 * 24 * time.Hour
)

// Provider is one sign-in platform's OAuth application. A provider
// without a client id is not offered. Empty URLs take the platform's.
type Provider struct {
	ClientID     string
	ClientSecret string
	AuthorizeURL string // the consent page
	TokenURL     string // the code exchange
	UserInfoURL  string // who the token belongs to
}

// Providers are the sign-in platforms.
type Providers struct {
	Twitch  Provider
	Discord Provider
	Slack   Provider
}

// Config configures the portal.
type Config struct {
	Store *store.Store
	// Conn announces changes on wb.control.community.<id>; nil announces
	// nothing (routers then see changes when their cache expires).
	Conn *natsx.Conn
	// PublicURL is where browsers reach the server; the provider callbacks
	// are PublicURL + "/connect/portal/<platform>/callback".
	PublicURL string
	Providers Providers
	// SuperAdmins are platform accounts ("twitch:<user id>",
	// "discord:<user id>", "slack:<user id>") made super-admins when they
	// sign in: the bootstrap of a fresh deployment.
	SuperAdmins []string
	// DevSignIn offers loopback visitors a "sign in as the local developer"
	// button (waddlebot dev only).
	DevSignIn   bool
	SessionIdle time.Duration // default DefaultSessionIdle
	SessionMax  time.Duration // default DefaultSessionMax
	HTTPClient  *http.Client  // for the providers; default with a 10 s timeout
	Clock       clock.Clock   // default the real one
	Logger      *slog.Logger
	// APIRateLimit requests per APIRateWindow are each API key's budget at
	// /api/v1 (restapi's defaults when zero).
	APIRateLimit  int
	APIRateWindow time.Duration
	// NATSAuthDir is the directory of `waddlebot nats-config` (its keys):
	// with it super-admins can mint external NATS modules' credentials;
	// without it the portal refuses and points to the CLI.
	NATSAuthDir string
}

// Portal serves the pages.
type Portal struct {
	cfg       Config
	st        *store.Store
	publicURL string
	origin    string // scheme://host of PublicURL
	secure    bool
	providers []*provider
	supers    map[string]bool
	pages     map[string]*template.Template
	mux       *http.ServeMux
	log       *slog.Logger
	api       *restapi.Server   // /api/v1
	openai    *openaiapi.Server // /v1, on the same API keys
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New checks cfg and builds the portal.
func New(cfg Config) (*Portal, error) {
	if cfg.Store == nil {
		return nil, errors.New("portal: needs a Store")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || cfg.PublicURL == "" || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("portal: PublicURL %q must be an http(s) URL", cfg.PublicURL)
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = DefaultSessionIdle
	}
	if cfg.SessionMax <= 0 {
		cfg.SessionMax = DefaultSessionMax
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Portal{cfg: cfg, st: cfg.Store, publicURL: strings.TrimRight(cfg.PublicURL, "/"),
		origin: u.Scheme + "://" + u.Host, secure: u.Scheme == "https", supers: map[string]bool{},
		log: cfg.Logger.With(logging.KeyPart, "portal")}
	for _, s := range cfg.SuperAdmins {
		s = strings.TrimSpace(s)
		platform, id, ok := strings.Cut(s, ":")
		if !ok || platform == "" || id == "" {
			return nil, fmt.Errorf("portal: super-admin %q is not platform:<user id>", s)
		}
		p.supers[s] = true
	}
	p.providers = buildProviders(cfg.Providers)
	if p.pages, err = parsePages(); err != nil {
		return nil, err
	}
	p.routes()
	if p.api, err = p.newAPI(); err != nil {
		return nil, err
	}
	if p.openai, err = p.newOpenAI(); err != nil {
		return nil, err
	}
	return p, nil
}

func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(template.FuncMap{
		"roleAtLeast": func(role, need string) bool { return store.RoleRank(role) >= store.RoleRank(need) },
		"when":        func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	}).ParseFS(templateFS, "templates/layout.html", "templates/_*.html")
	if err != nil {
		return nil, fmt.Errorf("portal: unable to parse the layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("portal: unable to list templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" || strings.HasPrefix(name, "_") {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("portal: unable to parse %s: %w", n, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// Mount adds the portal's routes to srv.
func (p *Portal) Mount(srv *ops.Server) {
	srv.Handle(Base+"/", p)
	srv.Handle(callbackBase+"/", p)
	p.mountAPI(srv)
	p.mountOpenAI(srv)
}

// ServeHTTP serves every portal route, with the headers every page gets.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	p.mux.ServeHTTP(w, r)
}

func (p *Portal) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET "+Base+"/static/", http.StripPrefix(Base+"/static/", http.FileServerFS(static)))
	m.HandleFunc("GET "+Base+"/{$}", p.signedIn(p.communities))
	m.HandleFunc("GET "+Base+"/signin", p.signInPage)
	m.HandleFunc("POST "+Base+"/signin/dev", p.devSignIn)
	m.HandleFunc("GET "+Base+"/signin/{provider}", p.startSignIn)
	m.HandleFunc("GET "+callbackBase+"/{provider}/callback", p.callback)
	m.HandleFunc("POST "+Base+"/signout", p.signedIn(p.signOut))
	m.HandleFunc("GET "+Base+"/communities/new", p.signedIn(p.newCommunityPage))
	m.HandleFunc("POST "+Base+"/communities", p.signedIn(p.createCommunity))
	m.HandleFunc("GET "+Base+"/c/{id}", p.signedIn(p.communityPage))
	m.HandleFunc("POST "+Base+"/c/{id}/settings", p.signedIn(p.updateCommunity))
	m.HandleFunc("GET "+Base+"/c/{id}/delete", p.signedIn(p.deletePage))
	m.HandleFunc("POST "+Base+"/c/{id}/delete", p.signedIn(p.deleteCommunity))
	m.HandleFunc("GET "+Base+"/c/{id}/members", p.signedIn(p.membersPage))
	m.HandleFunc("POST "+Base+"/c/{id}/members", p.signedIn(p.addMember))
	m.HandleFunc("POST "+Base+"/c/{id}/members/{user}/role", p.signedIn(p.changeRole))
	m.HandleFunc("POST "+Base+"/c/{id}/members/{user}/remove", p.signedIn(p.removeMember))
	m.HandleFunc("GET "+Base+"/c/{id}/channels", p.signedIn(p.channelsPage))
	m.HandleFunc("GET "+Base+"/c/{id}/audit", p.signedIn(p.auditPage))
	m.HandleFunc("GET "+Base+"/c/{id}/channels/attach", p.signedIn(p.attachPage))
	m.HandleFunc("POST "+Base+"/c/{id}/channels/attach", p.signedIn(p.attach))
	m.HandleFunc("POST "+Base+"/c/{id}/channels/detach", p.signedIn(p.detach))
	m.HandleFunc("GET "+Base+"/claim", p.signedIn(p.claimPage))
	m.HandleFunc("POST "+Base+"/claim/{id}", p.signedIn(p.claim))
	m.HandleFunc("GET "+Base+"/admin/users", p.superAdminOnly(p.usersPage))
	m.HandleFunc("POST "+Base+"/admin/users/{user}/super", p.superAdminOnly(p.setSuperAdmin))
	m.HandleFunc("POST "+Base+"/admin/users/{user}/disabled", p.superAdminOnly(p.setDisabled))
	m.HandleFunc("GET "+Base+"/admin/audit", p.superAdminOnly(p.siteAuditPage))
	m.HandleFunc("GET "+Base+"/c/{id}/modules", p.signedIn(p.modulesPage))
	m.HandleFunc("GET "+Base+"/c/{id}/modules/{module}", p.signedIn(p.modulePage))
	m.HandleFunc("POST "+Base+"/c/{id}/modules/{module}/enabled", p.signedIn(p.setModuleEnabled))
	m.HandleFunc("POST "+Base+"/c/{id}/modules/{module}/settings", p.signedIn(p.saveModuleSettings))
	m.HandleFunc("POST "+Base+"/c/{id}/modules/{module}/secrets/{property}", p.signedIn(p.setModuleSecret))
	m.HandleFunc("GET "+Base+"/c/{id}/commands", p.signedIn(p.commandsPage))
	m.HandleFunc("POST "+Base+"/c/{id}/commands/{command}", p.signedIn(p.setCommand))
	m.HandleFunc("POST "+Base+"/c/{id}/commands/{command}/reset", p.signedIn(p.resetCommand))
	m.HandleFunc("GET "+Base+"/c/{id}/aliases", p.signedIn(p.aliasesPage))
	m.HandleFunc("POST "+Base+"/c/{id}/aliases", p.signedIn(p.addAlias))
	m.HandleFunc("POST "+Base+"/c/{id}/aliases/{name}/remove", p.signedIn(p.removeAlias))
	m.HandleFunc("GET "+Base+"/c/{id}/quotes", p.signedIn(p.quotesPage))
	m.HandleFunc("POST "+Base+"/c/{id}/quotes", p.signedIn(p.addQuote))
	m.HandleFunc("POST "+Base+"/c/{id}/quotes/{number}/delete", p.signedIn(p.deleteQuote))
	m.HandleFunc("GET "+Base+"/c/{id}/reputation", p.signedIn(p.reputationPage))
	m.HandleFunc(Base+"/", func(w http.ResponseWriter, r *http.Request) {
		p.errorPage(w, r, nil, http.StatusNotFound, "Not found", "There is no such page in the portal.")
	})
	p.mux = m
	m.HandleFunc("GET "+Base+"/apikeys", p.signedIn(p.apiKeysPage))
	m.HandleFunc("POST "+Base+"/apikeys", p.signedIn(p.createAPIKey))
	m.HandleFunc("POST "+Base+"/apikeys/{key}/revoke", p.signedIn(p.revokeAPIKey))
	m.HandleFunc("GET "+Base+"/c/{id}/browser-sources", p.signedIn(p.browserSourcesPage))
	m.HandleFunc("POST "+Base+"/c/{id}/browser-sources/{source}/rotate", p.signedIn(p.rotateBrowserSource))
	m.HandleFunc("POST "+Base+"/c/{id}/browser-sources/{source}/look", p.signedIn(p.setBrowserSourceLook))
	m.HandleFunc("GET "+Base+"/admin/external", p.superAdminOnly(p.externalPage))
	m.HandleFunc("POST "+Base+"/admin/external", p.limitForm(maxExternalForm, p.superAdminOnly(p.addExternal)))
	m.HandleFunc("POST "+Base+"/admin/external/{module}/creds", p.superAdminOnly(p.mintExternal))
	m.HandleFunc("POST "+Base+"/admin/external/{module}/remove", p.superAdminOnly(p.removeExternal))
	m.HandleFunc("GET "+Base+"/c/{id}/spotify", p.signedIn(p.spotifyPage))
	m.HandleFunc("POST "+Base+"/c/{id}/spotify/connect", p.signedIn(p.connectSpotify))
	m.HandleFunc("POST "+Base+"/c/{id}/spotify/disconnect", p.signedIn(p.disconnectSpotify))
	m.HandleFunc("GET "+spotifyCallbackPath, p.signedIn(p.spotifyCallback))
}

// remoteIP is where a request came from, as the audit log records it.
// The connecting address: a proxy's X-Forwarded-For could be forged by
// anyone who reaches the server directly.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// loopback reports whether r comes from this machine, not through a proxy.
func loopback(r *http.Request) bool {
	ip := net.ParseIP(remoteIP(r))
	return ip != nil && ip.IsLoopback() && r.Header.Get("X-Forwarded-For") == "" && r.Header.Get("Forwarded") == ""
}
