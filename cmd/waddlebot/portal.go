package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/daemon"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/ops"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/portal"
	"github.com/waddlebot/waddlebot/portal/overlay"
)

// runPortal serves the web portal.
func runPortal(ctx context.Context, args []string) error {
	p, err := parse(partFlags("portal"), args, append(partGroups,
		config.GroupTwitch, config.GroupDiscord, config.GroupSlack, config.GroupPortal)...)
	if err != nil {
		return err
	}
	return runPart(ctx, p, "portal", true, func(d *daemon.Daemon, srv *ops.Server, conn *natsx.Conn, st *store.Store, addr string) error {
		if err := addPortal(srv, p, conn, st, addr, false); err != nil {
			return err
		}
		if err := addOverlay(d, srv, p, conn, st); err != nil {
			return err
		}
		// The portal is this server's only page.
		srv.Handle("GET /{$}", http.RedirectHandler(portal.Base+"/", http.StatusFound))
		return nil
	})
}

// addPortal mounts the portal at /portal/; dev offers the local developer
// sign-in to loopback visitors.
func addPortal(srv *ops.Server, p parsed, conn *natsx.Conn, st *store.Store, addr string, dev bool) error {
	public, err := partPublicURL(p, addr, dev)
	if err != nil {
		return err
	}
	pt, err := portal.New(portal.Config{Store: st, Conn: conn, PublicURL: public,
		Providers: portalProviders(p), SuperAdmins: splitList(p.SuperAdmins), DevSignIn: dev,
		SessionIdle: p.PortalSessionIdle, SessionMax: p.PortalSessionMax, Logger: p.log,
		NATSAuthDir: natsAuthDir(p, p.NATSAuthDir)})
	if err != nil {
		return err
	}
	pt.Mount(srv)
	return nil
}

// portalProviders reuses the platforms' OAuth applications; one without
// both its id and its secret is not offered.
func portalProviders(p parsed) portal.Providers {
	var out portal.Providers
	if p.TwitchClientID != "" && p.TwitchClientSecret != "" {
		auth := strings.TrimRight(p.TwitchAuthURL, "/")
		out.Twitch = portal.Provider{ClientID: p.TwitchClientID, ClientSecret: p.TwitchClientSecret,
			AuthorizeURL: auth + "/authorize", TokenURL: auth + "/token",
			UserInfoURL: strings.TrimRight(p.TwitchAPIURL, "/") + "/users"}
	}
	if p.DiscordAppID != "" && p.DiscordClientSecret != "" {
		api := strings.TrimRight(p.DiscordAPIURL, "/")
		authorize := ""
		// Discord's consent page lives on the site, not under the API path.
		if u, err := url.Parse(api); err == nil {
			authorize = u.Scheme + "://" + u.Host + "/oauth2/authorize"
		}
		out.Discord = portal.Provider{ClientID: p.DiscordAppID, ClientSecret: p.DiscordClientSecret,
			AuthorizeURL: authorize, TokenURL: api + "/oauth2/token", UserInfoURL: api + "/users/@me"}
	}
	if p.SlackClientID != "" && p.SlackClientSecret != "" {
		api := strings.TrimRight(p.SlackAPIURL, "/") + "/"
		out.Slack = portal.Provider{ClientID: p.SlackClientID, ClientSecret: p.SlackClientSecret,
			AuthorizeURL: p.PortalSlackAuthorizeURL, TokenURL: api + "openid.connect.token", UserInfoURL: api + "openid.connect.userInfo"}
	}
	return out
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// addOverlay serves the browser sources at /overlay/ beside the portal,
// with the one WB_OVERLAY consumer that feeds every socket of the process.
func addOverlay(d *daemon.Daemon, srv *ops.Server, p parsed, conn *natsx.Conn, st *store.Store) error {
	ov, err := overlay.New(overlay.Config{Store: st, Conn: conn, Logger: p.log})
	if err != nil {
		return err
	}
	ov.Mount(srv)
	srv.AddCheck("overlay", ops.Ready(ov.Ready))
	d.Add(daemon.StageIntake, "overlay", ov.Run)
	return nil
}
