package restapi

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"crypto/rand"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions/builtin"
	"github.com/waddlebot/waddlebot/actions/external"
	"github.com/waddlebot/waddlebot/actions/memories"
	"github.com/waddlebot/waddlebot/actions/reputation"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsauth"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// The portal's other abilities (issue 7: "the same abilities as the UI"):
// each endpoint applies the rule its page applies, and the store records
// the change as it does for the page. The page handlers live in package
// portal, which imports this one, so their small rules are mirrored here.

// overlayGrace mirrors portal.OverlayGrace: a rotated-out browser-source
// URL keeps working this long, time to paste the new one into OBS.
const overlayGrace = 5 * time.Minute

// maxLeaders is the most standings the leaderboard returns, as the page.
const maxLeaders = 50

// maxSecretBytes mirrors the portal's bound on a pasted secret.
const maxSecretBytes = 4096

func (s *Server) moreRoutes() []route {
	const c = "/communities/{id}"
	read := store.ScopeCommunitiesRead
	mod, adm := store.RoleModerator, store.RoleAdmin
	return []route{
		{Method: "POST", Path: c + "/channels", Summary: "Attach a channel of the key's owner (or of a community they administer)", Scope: store.ScopeChannelsWrite, Role: adm, Body: AttachInput{}, Out: AttachOut{}, h: s.attachChannel},
		{Method: "DELETE", Path: c + "/channels/{platform}/{channel}", Summary: "Detach a channel", Scope: store.ScopeChannelsWrite, Role: adm, h: s.detachChannel},
		{Method: "POST", Path: c + "/claim", Summary: "Claim a provisional community holding one of the key owner's channels", Scope: store.ScopeChannelsWrite, Out: Community{}, h: s.claimCommunity},
		{Method: "GET", Path: c + "/quotes", Summary: "List quotes, newest first", Scope: read, Role: mod, List: true, Out: Quote{}, h: s.listQuotes},
		{Method: "POST", Path: c + "/quotes", Summary: "Add a quote", Scope: store.ScopeContentWrite, Role: mod, Body: QuoteInput{}, Out: Quote{}, h: s.addQuote},
		{Method: "DELETE", Path: c + "/quotes/{number}", Summary: "Delete a quote", Scope: store.ScopeContentWrite, Role: mod, h: s.deleteQuote},
		{Method: "GET", Path: c + "/reputation", Summary: "The reputation leaderboard (?n= up to 50)", Scope: read, Role: mod, Out: Leaders{}, h: s.leaderboard},
		{Method: "GET", Path: c + "/browser-sources", Summary: "List browser sources (never their tokens)", Scope: read, Role: mod, List: true, Out: BrowserSource{}, h: s.listBrowserSources},
		{Method: "POST", Path: c + "/browser-sources/{source}/rotate", Summary: "Make a new browser-source URL (returned once)", Scope: store.ScopeOverlaysWrite, Role: adm, Out: RotatedSource{}, h: s.rotateBrowserSource},
		{Method: "PUT", Path: c + "/browser-sources/{source}/look", Summary: "Set a browser source's theme, font size and size", Scope: store.ScopeOverlaysWrite, Role: adm, Body: store.OverlayLook{}, Out: BrowserSource{}, h: s.setBrowserSourceLook},
		{Method: "PUT", Path: c + "/modules/{module}/secrets/{property}", Summary: "Store a module's secret (never returned)", Scope: store.ScopeModulesWrite, Role: adm, Body: SecretInput{}, h: s.putModuleSecret},
		{Method: "DELETE", Path: c + "/modules/{module}/secrets/{property}", Summary: "Remove a module's secret", Scope: store.ScopeModulesWrite, Role: adm, h: s.deleteModuleSecret},
		{Method: "GET", Path: "/admin/users", Summary: "List portal users (super-admin, site-wide key)", Scope: store.ScopeUsersAdmin, List: true, Out: User{}, h: s.site(s.listUsers)},
		{Method: "PUT", Path: "/admin/users/{user}/super-admin", Summary: "Make or unmake a super-admin (super-admin)", Scope: store.ScopeUsersAdmin, Body: SwitchInput{}, Out: User{}, h: s.site(s.setSuperAdmin)},
		{Method: "PUT", Path: "/admin/users/{user}/disabled", Summary: "Disable or enable a user (super-admin)", Scope: store.ScopeUsersAdmin, Body: SwitchInput{}, Out: User{}, h: s.site(s.setDisabled)},
		{Method: "GET", Path: "/admin/audit", Summary: "The site-wide audit log, newest first (?action= prefix, ?actor=; super-admin)", Scope: store.ScopeAuditRead, List: true, Out: SiteAuditEntry{}, h: s.site(s.siteAudit)},
		{Method: "GET", Path: "/admin/external", Summary: "List external modules (super-admin)", Scope: store.ScopeExternalAdmin, List: true, Out: ExternalModule{}, h: s.site(s.listExternal)},
		{Method: "POST", Path: "/admin/external", Summary: "Register an external module (a webhook's secret is returned once; super-admin)", Scope: store.ScopeExternalAdmin, Body: ExternalInput{}, Out: ExternalModule{}, h: s.site(s.addExternal)},
		{Method: "DELETE", Path: "/admin/external/{module}", Summary: "Remove an external module (super-admin)", Scope: store.ScopeExternalAdmin, h: s.site(s.removeExternal)},
		{Method: "POST", Path: "/admin/external/{module}/creds", Summary: "Mint NATS credentials for an external module (super-admin)", Scope: store.ScopeExternalAdmin, Out: Creds{}, h: s.site(s.mintCreds)},
	}
}

// Wire types.

// AttachInput names a channel to attach.
type AttachInput struct {
	Platform  string `json:"platform" jsonschema:"required"`
	ChannelID string `json:"channel_id" jsonschema:"required"`
}

// AttachOut says what an attach did.
type AttachOut struct {
	Channel Channel  `json:"channel"`
	From    string   `json:"from,omitempty" jsonschema:"description=the community it left"`
	Moved   []string `json:"moved"`
}

// Quote is one of the memories module's quotes.
type Quote struct {
	Number      int64     `json:"number"`
	Text        string    `json:"text"`
	Author      string    `json:"author,omitempty"`
	AddedBy     string    `json:"added_by"`
	AddedByName string    `json:"added_by_name"`
	AddedAt     time.Time `json:"added_at"`
}

func toQuote(q store.Quote) Quote {
	return Quote{Number: q.Number, Text: q.Text, Author: q.Author, AddedBy: q.AddedBy, AddedByName: q.AddedByName, AddedAt: q.AddedAt}
}

// QuoteInput adds a quote.
type QuoteInput struct {
	Text   string `json:"text" jsonschema:"required"`
	Author string `json:"author,omitempty"`
}

// Leader is one standing of the leaderboard.
type Leader struct {
	Rank  int    `json:"rank"`
	Name  string `json:"name"`
	Score int    `json:"score"`
	Tier  string `json:"tier"`
}

// Leaders is the leaderboard.
type Leaders struct {
	Items []Leader `json:"items"`
}

// BrowserSource is a browser source without its token.
type BrowserSource struct {
	Source        string            `json:"source"`
	Look          store.OverlayLook `json:"look"`
	HasURL        bool              `json:"has_url"`
	RotatedAt     *time.Time        `json:"rotated_at,omitempty"`
	OldValidUntil *time.Time        `json:"old_valid_until,omitempty"`
}

func toBrowserSource(o store.OverlaySource) BrowserSource {
	b := BrowserSource{Source: o.Source, Look: o.Look, HasURL: o.HasToken}
	if !o.RotatedAt.IsZero() {
		t := o.RotatedAt
		b.RotatedAt = &t
	}
	if !o.OldValidUntil.IsZero() {
		t := o.OldValidUntil
		b.OldValidUntil = &t
	}
	return b
}

// RotatedSource is a new browser-source URL, shown this once.
type RotatedSource struct {
	Source        string     `json:"source"`
	URL           string     `json:"url"`
	OldValidUntil *time.Time `json:"old_valid_until,omitempty" jsonschema:"description=until when the previous URL still works"`
}

// SecretInput is a secret's value.
type SecretInput struct {
	Value string `json:"value" jsonschema:"required"`
}

// User is a portal user as a super-admin sees it.
type User struct {
	ID          string     `json:"id"`
	DisplayName string     `json:"display_name"`
	SuperAdmin  bool       `json:"super_admin"`
	Disabled    bool       `json:"disabled"`
	Accounts    []Identity `json:"accounts"`
	LastSignIn  *time.Time `json:"last_sign_in,omitempty"`
	Sessions    int        `json:"sessions"`
}

func toUser(u store.PortalUserInfo) User {
	out := User{ID: u.User.ID, DisplayName: u.User.DisplayName, SuperAdmin: u.User.SuperAdmin, Disabled: u.User.Disabled,
		Accounts: []Identity{}, Sessions: u.Sessions}
	for _, i := range u.Identities {
		out.Accounts = append(out.Accounts, Identity{Platform: i.Platform, PlatformUserID: i.PlatformUserID, Login: i.Login})
	}
	if !u.LastSignIn.IsZero() {
		t := u.LastSignIn
		out.LastSignIn = &t
	}
	return out
}

// SwitchInput turns a setting on or off.
type SwitchInput struct {
	Value *bool `json:"value" jsonschema:"required"`
}

// SiteAuditEntry is an audit entry of any community or none.
type SiteAuditEntry struct {
	AuditEntry
	CommunityID string `json:"community_id,omitempty"`
}

// ExternalModule is a registered external module.
type ExternalModule struct {
	Name      string           `json:"name"`
	Kind      string           `json:"kind"`
	URL       string           `json:"url,omitempty"`
	CreatedBy string           `json:"created_by,omitempty"`
	CreatedAt *time.Time       `json:"created_at,omitempty"`
	Manifest  schemas.Manifest `json:"manifest"`
	// Secret is a webhook's signing secret, returned by registration only.
	Secret string `json:"secret,omitempty"`
}

func toExternal(m store.ExternalModule) ExternalModule {
	out := ExternalModule{Name: m.Manifest.Name, Kind: m.Kind, URL: m.URL, CreatedBy: m.CreatedBy, Manifest: m.Manifest}
	if !m.CreatedAt.IsZero() {
		t := m.CreatedAt
		out.CreatedAt = &t
	}
	return out
}

// ExternalInput registers an external module.
type ExternalInput struct {
	Manifest json.RawMessage `json:"manifest" jsonschema:"required"`
	Kind     string          `json:"kind" jsonschema:"required,enum=nats,enum=webhook"`
	URL      string          `json:"url,omitempty"`
}

// Creds is a NATS module's credentials file.
type Creds struct {
	Module string `json:"module"`
	Creds  string `json:"creds"`
}

// Channels.

func (s *Server) attachChannel(c *call) (int, any, error) {
	var in AttachInput
	if err := c.decode(&in); err != nil {
		return 0, nil, err
	}
	in.Platform, in.ChannelID = strings.TrimSpace(in.Platform), strings.TrimSpace(in.ChannelID)
	if in.Platform == "" || in.ChannelID == "" || len(in.ChannelID) > 100 {
		return 0, nil, invalid("Name the channel to attach.", map[string]any{"platform": "required", "channel_id": "required, at most 100 characters"})
	}
	os, err := s.st.AttachOptions(c.ctx(), c.user.ID)
	if err != nil {
		return 0, nil, err
	}
	var opt *store.AttachOption
	for i := range os {
		if os[i].Channel.Platform == in.Platform && os[i].Channel.ChannelID == in.ChannelID {
			opt = &os[i]
		}
	}
	if opt == nil {
		return 0, nil, fail(http.StatusForbidden, "forbidden", "The key's owner can attach a channel they connected or installed the bot in, "+
			"or one of a community they administer; this one is neither.", nil)
	}
	if opt.Channel.CommunityID == c.community.ID {
		return 0, nil, fail(http.StatusConflict, "conflict", "That channel is already in this community.", nil)
	}
	if !opt.Movable() && !c.user.SuperAdmin {
		return 0, nil, fail(http.StatusForbidden, "forbidden", "This channel belongs to the community "+opt.CommunityName+
			", which the key's owner does not administer: ask one of its admins to detach it.", map[string]any{"holder": opt.Channel.CommunityID})
	}
	d := c.from()
	d["reason"] = opt.Reason
	res, err := s.st.AttachChannel(c.ctx(), c.actor(), c.community.ID, opt.Channel, d)
	if errors.Is(err, store.ErrConflict) {
		return 0, nil, fail(http.StatusConflict, "conflict", "That channel is already in this community, or it moved meanwhile: look again.", nil)
	}
	if err != nil {
		return 0, nil, err
	}
	// Both communities' routers cache which channels they hold.
	s.announce(c.community.ID)
	if res.From != "" {
		s.announce(res.From)
	}
	ch := opt.Channel
	moved := res.Moved
	if moved == nil {
		moved = []string{}
	}
	return http.StatusCreated, AttachOut{Channel: Channel{Platform: ch.Platform, ChannelID: ch.ChannelID, ServerID: ch.ServerID, Name: ch.Name},
		From: res.From, Moved: moved}, nil
}

func (s *Server) detachChannel(c *call) (int, any, error) {
	platform, channelID := c.r.PathValue("platform"), c.r.PathValue("channel")
	chs, err := s.st.Channels(c.ctx(), c.community.ID)
	if err != nil {
		return 0, nil, err
	}
	var ch *store.Channel
	for i := range chs {
		if chs[i].Platform == platform && chs[i].ChannelID == channelID {
			ch = &chs[i]
		}
	}
	if ch == nil {
		return 0, nil, fail(http.StatusNotFound, "not_found", "That channel is not in this community.", nil)
	}
	// A server's channel whose server stays would come straight back
	// through its server on its next message.
	if ch.ServerID != "" && ch.ServerID != ch.ChannelID {
		for _, o := range chs {
			if o.Platform == ch.Platform && o.ChannelID == ch.ServerID {
				return 0, nil, fail(http.StatusConflict, "server_attached", "This channel follows its server, which is in this community: "+
					"detach the server to detach all of its channels, or attach this channel to another community.", map[string]any{"server_id": ch.ServerID})
			}
		}
	}
	if _, err := s.st.DetachChannel(c.ctx(), c.actor(), c.community.ID, platform, channelID, c.from()); err != nil {
		return 0, nil, err
	}
	s.announce(c.community.ID)
	return http.StatusNoContent, nil, nil
}

func (s *Server) claimCommunity(c *call) (int, any, error) {
	if !c.community.Provisional {
		return 0, nil, fail(http.StatusConflict, "conflict", "This community is not provisional: it has owners already.", nil)
	}
	os, err := s.st.AttachOptions(c.ctx(), c.user.ID)
	if err != nil {
		return 0, nil, err
	}
	var proof []string
	for _, o := range os {
		if o.CommunityProvisional && o.Channel.CommunityID == c.community.ID {
			proof = append(proof, o.Channel.Platform+"/"+o.Channel.ChannelID)
		}
	}
	if proof == nil {
		return 0, nil, fail(http.StatusForbidden, "forbidden", "A provisional community is claimed only by someone one of whose channels it holds "+
			"(connected, or the bot installed there).", nil)
	}
	d := c.from()
	d["proof"] = proof
	err = s.st.ClaimCommunity(c.ctx(), c.actor(), c.community.ID, c.user.ID, d)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return 0, nil, fail(http.StatusConflict, "conflict", "That community was claimed or removed meanwhile.", nil)
	}
	if err != nil {
		return 0, nil, err
	}
	s.announce(c.community.ID)
	com, err := s.st.Community(c.ctx(), c.community.ID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toCommunity(com, store.RoleOwner), nil
}

// Quotes.

func (s *Server) listQuotes(c *call) (int, any, error) {
	limit, after, err := c.pageArgs()
	if err != nil {
		return 0, nil, err
	}
	var before int64
	if after != "" {
		if before, err = strconv.ParseInt(after, 10, 64); err != nil || before <= 0 {
			return 0, nil, fail(http.StatusBadRequest, "bad_cursor", "The cursor is not one this API gave.", nil)
		}
	}
	// Keyed on the number, not an offset: a quote added meanwhile does not
	// shift the next page.
	rows, err := s.st.Pool().Query(c.ctx(), `SELECT number, text, author, added_by, added_by_name, added_at FROM memories_quotes
		WHERE community_id = $1 AND ($2 = 0 OR number < $2) ORDER BY number DESC LIMIT $3`, c.community.ID, before, limit+1)
	if err != nil {
		return 0, nil, fmt.Errorf("restapi: unable to read quotes: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Quote, error) {
		var q Quote
		err := r.Scan(&q.Number, &q.Text, &q.Author, &q.AddedBy, &q.AddedByName, &q.AddedAt)
		return q, err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("restapi: unable to read quotes: %w", err)
	}
	body := listBody[Quote]{Items: []Quote{}}
	for i, q := range list {
		if i == limit {
			body.NextCursor = encodeCursor(strconv.FormatInt(body.Items[len(body.Items)-1].Number, 10))
			break
		}
		body.Items = append(body.Items, q)
	}
	return http.StatusOK, body, nil
}

// quoteProblem mirrors the memories module's rule for text from chat.
func quoteProblem(text, what string, limit int) string {
	if !utf8.ValidString(text) {
		return fmt.Sprintf("That %s is not valid UTF-8 text.", what)
	}
	if n := utf8.RuneCountInString(text); n > limit {
		return fmt.Sprintf("That %s is %d characters long; the most is %d.", what, n, limit)
	}
	for _, r := range text {
		if r != '\t' && unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Sprintf("That %s contains a control character or line break (U+%04X); send plain text.", what, r)
		}
	}
	return ""
}

func (s *Server) addQuote(c *call) (int, any, error) {
	var in QuoteInput
	if err := c.decode(&in); err != nil {
		return 0, nil, err
	}
	in.Text, in.Author = strings.TrimSpace(in.Text), strings.TrimSpace(in.Author)
	bad := map[string]any{}
	if in.Text == "" {
		bad["text"] = "give the quote's text"
	} else if why := quoteProblem(in.Text, "quote", memories.MaxQuoteLength); why != "" {
		bad["text"] = why
	}
	if why := quoteProblem(in.Author, "author name", memories.MaxAuthorLength); why != "" {
		bad["author"] = why
	}
	if len(bad) > 0 {
		return 0, nil, invalid("The quote is not valid.", bad)
	}
	q := store.Quote{Text: in.Text, Author: in.Author, AddedBy: c.actor(), AddedByName: c.user.DisplayName, AddedAt: s.cfg.Clock.Now()}
	n, err := s.st.AddQuote(c.ctx(), c.actor(), c.community.ID, q, c.from())
	if err != nil {
		return 0, nil, err
	}
	q.Number = n
	return http.StatusCreated, toQuote(q), nil
}

func (s *Server) deleteQuote(c *call) (int, any, error) {
	n, err := strconv.ParseInt(c.r.PathValue("number"), 10, 64)
	if err != nil || n < 1 {
		return 0, nil, fail(http.StatusNotFound, "not_found", "There is no such quote.", nil)
	}
	err = s.st.DeleteQuote(c.ctx(), c.actor(), c.community.ID, n, c.from())
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, fail(http.StatusNotFound, "not_found", fmt.Sprintf("There is no quote #%d.", n), nil)
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// Reputation.

func (s *Server) leaderboard(c *call) (int, any, error) {
	n := maxLeaders
	if v := c.r.URL.Query().Get("n"); v != "" {
		x, err := strconv.Atoi(v)
		if err != nil || x < 1 || x > maxLeaders {
			return 0, nil, fail(http.StatusBadRequest, "bad_n", fmt.Sprintf("n is a whole number from 1 to %d.", maxLeaders), nil)
		}
		n = x
	}
	rows, err := s.st.ReputationLeaders(c.ctx(), c.community.ID, n)
	if err != nil {
		return 0, nil, err
	}
	out := Leaders{Items: []Leader{}}
	for i, row := range rows {
		score := reputation.Points(row.Total)
		name := row.DisplayName
		if name == "" {
			name = row.Subject
		}
		// Everyone at one shown score shares its rank, as !rep ranks.
		rank := i + 1
		if i > 0 && out.Items[i-1].Score == score {
			rank = out.Items[i-1].Rank
		}
		out.Items = append(out.Items, Leader{Rank: rank, Name: name, Score: score, Tier: reputation.Tier(score)})
	}
	return http.StatusOK, out, nil
}

// Browser sources.

func (s *Server) listBrowserSources(c *call) (int, any, error) {
	srcs, err := s.st.OverlaySources(c.ctx(), c.community.ID)
	if err != nil {
		return 0, nil, err
	}
	list := make([]BrowserSource, 0, len(srcs))
	for _, o := range srcs {
		list = append(list, toBrowserSource(o))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Source < list[j].Source })
	return page(c, list, func(b BrowserSource) string { return b.Source })
}

func (s *Server) pathSource(c *call) (string, error) {
	source := c.r.PathValue("source")
	if !store.ValidOverlaySource(source) {
		return "", fail(http.StatusNotFound, "not_found", "There is no browser source "+strconv.Quote(source)+"; there are "+
			strings.Join(store.OverlaySourceNames, ", ")+".", nil)
	}
	return source, nil
}

func (s *Server) rotateBrowserSource(c *call) (int, any, error) {
	source, err := s.pathSource(c)
	if err != nil {
		return 0, nil, err
	}
	now := s.cfg.Clock.Now()
	token, err := s.st.RotateOverlayToken(c.ctx(), c.actor(), c.community.ID, source, now, overlayGrace, c.from())
	if err != nil {
		return 0, nil, err
	}
	out := RotatedSource{Source: source, URL: strings.TrimRight(s.cfg.PublicURL, "/") + "/overlay/" + source + "?t=" + token}
	srcs, err := s.st.OverlaySources(c.ctx(), c.community.ID)
	if err != nil {
		return 0, nil, err
	}
	for _, o := range srcs {
		if o.Source == source && !o.OldValidUntil.IsZero() {
			t := o.OldValidUntil
			out.OldValidUntil = &t
		}
	}
	return http.StatusOK, out, nil
}

func (s *Server) setBrowserSourceLook(c *call) (int, any, error) {
	source, err := s.pathSource(c)
	if err != nil {
		return 0, nil, err
	}
	var look store.OverlayLook
	if err := c.decode(&look); err != nil {
		return 0, nil, err
	}
	if err := look.Check(); err != nil {
		return 0, nil, invalid("The look is not valid: "+strings.TrimPrefix(err.Error(), store.ErrConflict.Error()+": ")+".", nil)
	}
	err = s.st.SetOverlayLook(c.ctx(), c.actor(), c.community.ID, source, look, c.from())
	if errors.Is(err, store.ErrConflict) {
		return 0, nil, invalid("The database refused these settings.", nil)
	}
	if err != nil {
		return 0, nil, err
	}
	srcs, err := s.st.OverlaySources(c.ctx(), c.community.ID)
	if err != nil {
		return 0, nil, err
	}
	for _, o := range srcs {
		if o.Source == source {
			return http.StatusOK, toBrowserSource(o), nil
		}
	}
	return http.StatusOK, BrowserSource{Source: source, Look: look}, nil
}

// Module secrets: a module's settings name a community secret with a
// string property ending in "_secret"; the value goes to the encrypted
// secrets table and is never shown, logged or audited.

// secretProperty checks the path's property is one of the module's secret
// properties and returns the secret's name, as the portal names it.
func secretProperty(m Module, property string) (string, bool) {
	var sch struct {
		Properties map[string]struct {
			Type any `json:"type"`
		} `json:"properties"`
	}
	if json.Unmarshal(m.Manifest.Settings, &sch) != nil {
		return "", false
	}
	p, ok := sch.Properties[property]
	if t, _ := p.Type.(string); !ok || t != "string" || !strings.HasSuffix(property, "_secret") {
		return "", false
	}
	return m.Name + "." + strings.TrimSuffix(property, "_secret"), true
}

func (s *Server) moduleSecret(c *call, value *string) (int, any, error) {
	m, err := s.module(c)
	if err != nil {
		return 0, nil, err
	}
	property := c.r.PathValue("property")
	name, ok := secretProperty(m, property)
	if !ok {
		return 0, nil, fail(http.StatusNotFound, "not_found", "The module's settings name no secret "+strconv.Quote(property)+".", nil)
	}
	settings := map[string]any{}
	if len(m.Settings) > 0 {
		if err := json.Unmarshal(m.Settings, &settings); err != nil || settings == nil {
			settings = map[string]any{}
		}
	}
	action := "module.secret.set"
	if value == nil {
		action = "module.secret.remove"
		if err := s.st.DeleteSecret(c.ctx(), c.community.ID, name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, nil, err
		}
		delete(settings, property)
	} else {
		err := s.st.PutSecret(c.ctx(), nil, c.community.ID, name, []byte(*value))
		if errors.Is(err, store.ErrNoSecretKey) {
			return 0, nil, fail(http.StatusConflict, "no_secret_key", "This server keeps no secrets: it has no WADDLEBOT_SECRET_KEY.", nil)
		}
		if err != nil {
			return 0, nil, err
		}
		settings[property] = name
	}
	doc, err := json.Marshal(settings)
	if err != nil {
		return 0, nil, fmt.Errorf("restapi: unable to encode settings: %w", err)
	}
	// The settings change is audited with before/after (they hold the
	// secret's name only); the secret gets an entry without its value.
	if err := s.st.ChangeModule(c.ctx(), c.actor(), c.community.ID, m.Name, m.Enabled, doc, c.from()); err != nil {
		return 0, nil, err
	}
	d := c.from()
	d["secret"] = name
	if err := s.st.Audit(c.ctx(), nil, store.AuditEntry{CommunityID: c.community.ID, Actor: c.actor(), Action: action,
		Target: m.Name + "/" + property, Details: d}); err != nil {
		s.log.Error("restapi: unable to write audit entry", "action", action, logging.Err(err))
	}
	s.announce(c.community.ID)
	return http.StatusNoContent, nil, nil
}

func (s *Server) putModuleSecret(c *call) (int, any, error) {
	var in SecretInput
	if err := c.decode(&in); err != nil {
		return 0, nil, err
	}
	v := strings.TrimSpace(in.Value)
	if v == "" || len(v) > maxSecretBytes || !utf8.ValidString(v) {
		return 0, nil, invalid("Give the secret: 1 to 4096 bytes of text.", map[string]any{"value": "required"})
	}
	return s.moduleSecret(c, &v)
}

func (s *Server) deleteModuleSecret(c *call) (int, any, error) {
	return s.moduleSecret(c, nil)
}

// Site administration.

// site serves h to a super-admin's site-wide key only: a community's key
// reaches one community, never the whole site, even a super-admin's.
func (s *Server) site(h func(c *call) (int, any, error)) func(c *call) (int, any, error) {
	return func(c *call) (int, any, error) {
		if c.key.CommunityID != "" || !c.user.SuperAdmin {
			return 0, nil, fail(http.StatusForbidden, "forbidden", "This endpoint takes a site-wide key of a super-admin.", nil)
		}
		return h(c)
	}
}

func (s *Server) users(c *call) ([]User, error) {
	us, err := s.st.PortalUsers(c.ctx())
	if err != nil {
		return nil, err
	}
	list := make([]User, 0, len(us))
	for _, u := range us {
		list = append(list, toUser(u))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	return list, nil
}

func (s *Server) listUsers(c *call) (int, any, error) {
	list, err := s.users(c)
	if err != nil {
		return 0, nil, err
	}
	return page(c, list, func(u User) string { return u.ID })
}

func (s *Server) changeUser(c *call, change func(userID string, on bool) error) (int, any, error) {
	userID := c.r.PathValue("user")
	if _, err := uuid.Parse(userID); err != nil {
		return 0, nil, fail(http.StatusNotFound, "not_found", "There is no such user.", nil)
	}
	var in SwitchInput
	if err := c.decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Value == nil {
		return 0, nil, invalid("Say whether to turn it on or off.", map[string]any{"value": "required: true or false"})
	}
	err := change(userID, *in.Value)
	switch {
	case errors.Is(err, store.ErrLastSuperAdmin):
		return 0, nil, fail(http.StatusConflict, "last_super_admin", "This is the last enabled super-admin: make someone else super-admin first.", nil)
	case errors.Is(err, store.ErrNotFound):
		return 0, nil, fail(http.StatusNotFound, "not_found", "There is no such user.", nil)
	case err != nil:
		return 0, nil, err
	}
	list, err := s.users(c)
	if err != nil {
		return 0, nil, err
	}
	for _, u := range list {
		if u.ID == userID {
			return http.StatusOK, u, nil
		}
	}
	return 0, nil, fail(http.StatusNotFound, "not_found", "There is no such user.", nil)
}

func (s *Server) setSuperAdmin(c *call) (int, any, error) {
	return s.changeUser(c, func(userID string, on bool) error {
		return s.st.SetSuperAdmin(c.ctx(), c.actor(), userID, on, c.from())
	})
}

func (s *Server) setDisabled(c *call) (int, any, error) {
	return s.changeUser(c, func(userID string, on bool) error {
		return s.st.SetUserDisabled(c.ctx(), c.actor(), userID, on, c.from())
	})
}

func (s *Server) siteAudit(c *call) (int, any, error) {
	limit, after, err := c.pageArgs()
	if err != nil {
		return 0, nil, err
	}
	q := c.r.URL.Query()
	f := store.AuditFilter{ActionPrefix: strings.TrimSpace(q.Get("action")), Actor: strings.TrimSpace(q.Get("actor")), Limit: limit}
	if len(f.ActionPrefix) > 100 || len(f.Actor) > 200 {
		return 0, nil, fail(http.StatusBadRequest, "bad_filter", "action is at most 100 characters, actor at most 200.", nil)
	}
	if after != "" {
		if f.Before, err = strconv.ParseInt(after, 10, 64); err != nil || f.Before <= 0 {
			return 0, nil, fail(http.StatusBadRequest, "bad_cursor", "The cursor is not one this API gave.", nil)
		}
	}
	es, more, err := s.st.SiteAudit(c.ctx(), f)
	if err != nil {
		return 0, nil, err
	}
	body := listBody[SiteAuditEntry]{Items: []SiteAuditEntry{}}
	for _, e := range es {
		body.Items = append(body.Items, SiteAuditEntry{CommunityID: e.CommunityID,
			AuditEntry: AuditEntry{ID: e.ID, Actor: e.Actor, Action: e.Action, Target: e.Target, Details: e.Details, At: e.At}})
	}
	if more && len(es) > 0 {
		body.NextCursor = encodeCursor(strconv.FormatInt(es[len(es)-1].ID, 10))
	}
	return http.StatusOK, body, nil
}

// External modules.

// builtinNames are refused as external modules even before the built-in
// modules first upsert their manifests into a fresh catalogue.
var builtinNames = sync.OnceValue(builtin.Names)

func (s *Server) listExternal(c *call) (int, any, error) {
	mods, err := s.st.ExternalModules(c.ctx())
	if err != nil {
		return 0, nil, err
	}
	list := make([]ExternalModule, 0, len(mods))
	for _, m := range mods {
		list = append(list, toExternal(m))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return page(c, list, func(m ExternalModule) string { return m.Name })
}

func (s *Server) addExternal(c *call) (int, any, error) {
	var in ExternalInput
	if err := c.decode(&in); err != nil {
		return 0, nil, err
	}
	m, err := external.ParseManifest(in.Manifest, builtinNames())
	if err != nil {
		return 0, nil, invalid("The manifest was refused: "+err.Error(), map[string]any{"manifest": err.Error()})
	}
	in.URL = strings.TrimSpace(in.URL)
	var secret []byte
	switch in.Kind {
	case store.ExternalNATS:
		if in.URL != "" {
			return 0, nil, invalid("A NATS module has no URL: leave it out, or choose webhook.", map[string]any{"url": "must be empty for nats"})
		}
	case store.ExternalWebhook:
		if err := external.CheckWebhookURL(in.URL, s.cfg.DevWebhooks); err != nil {
			return 0, nil, invalid("The URL was refused: "+err.Error()+".", map[string]any{"url": err.Error()})
		}
		b := make([]byte, 32)
		_, _ = rand.Read(b) // crypto/rand does not fail on supported platforms
		secret = []byte(hex.EncodeToString(b))
	default:
		return 0, nil, invalid("Say how the module is reached.", map[string]any{"kind": "nats or webhook"})
	}
	err = s.st.AddExternalModule(c.ctx(), c.actor(), m, in.Kind, in.URL, secret, c.from())
	switch {
	case errors.Is(err, store.ErrConflict):
		return 0, nil, fail(http.StatusConflict, "conflict", m.Name+" is a built-in module; choose another name.", nil)
	case errors.Is(err, schemas.ErrInvalid):
		return 0, nil, invalid("The manifest was refused: "+err.Error(), nil)
	case err != nil:
		return 0, nil, err
	}
	s.announceRegistry(m.Name)
	saved, err := s.st.ExternalModule(c.ctx(), m.Name)
	if err != nil {
		return 0, nil, err
	}
	out := toExternal(saved)
	out.Secret = string(secret)
	return http.StatusCreated, out, nil
}

func (s *Server) removeExternal(c *call) (int, any, error) {
	name := c.r.PathValue("module")
	err := s.st.RemoveExternalModule(c.ctx(), c.actor(), name, c.from())
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, fail(http.StatusNotFound, "not_found", "There is no external module "+strconv.Quote(name)+".", nil)
	}
	if err != nil {
		return 0, nil, err
	}
	s.announceRegistry(name)
	return http.StatusNoContent, nil, nil
}

func (s *Server) mintCreds(c *call) (int, any, error) {
	name := c.r.PathValue("module")
	m, err := s.st.ExternalModule(c.ctx(), name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, nil, fail(http.StatusNotFound, "not_found", "There is no external module "+strconv.Quote(name)+".", nil)
	case err != nil:
		return 0, nil, err
	case m.Kind != store.ExternalNATS:
		return 0, nil, invalid(fmt.Sprintf("%s is a %s module; only NATS modules get credentials.", name, m.Kind), nil)
	case s.cfg.NATSAuthDir == "":
		return 0, nil, fail(http.StatusConflict, "no_nats_keys", "This portal has no nats-config directory (WADDLEBOT_NATS_AUTH_DIR), "+
			"so it cannot mint credentials. Run `waddlebot external mint "+name+"` where the keys of `waddlebot nats-config` are.", nil)
	}
	setup, err := natsauth.Load(s.cfg.NATSAuthDir)
	if err != nil {
		s.log.Error("restapi: unable to load the NATS keys", logging.Err(err))
		return 0, nil, fail(http.StatusConflict, "no_nats_keys", "The portal cannot read the NATS keys in its nats-config directory "+
			"(run `waddlebot nats-config` there first): "+err.Error(), nil)
	}
	creds, err := setup.MintExternalModule(name)
	if err != nil {
		return 0, nil, fmt.Errorf("restapi: unable to mint credentials for %s: %w", name, err)
	}
	d := c.from()
	d["subscribe"], d["publish"] = natsauth.ExternalInvokeSubject(name), schemas.ResultSubject(name)
	if err := s.st.Audit(c.ctx(), nil, store.AuditEntry{Actor: c.actor(), Action: "external.mint", Target: name, Details: d}); err != nil {
		s.log.Error("restapi: unable to write audit entry", "action", "external.mint", logging.Err(err))
	}
	return http.StatusOK, Creds{Module: name, Creds: string(creds)}, nil
}

// announceRegistry tells routers and relays the catalogue changed.
func (s *Server) announceRegistry(module string) {
	if s.cfg.Conn == nil {
		return
	}
	if err := s.cfg.Conn.NC.Publish(schemas.ControlRegistry, []byte(module)); err != nil {
		s.log.Warn("restapi: unable to announce a catalogue change", logging.KeyModule, module, logging.Err(err))
		return
	}
	if err := s.cfg.Conn.NC.Flush(); err != nil {
		s.log.Warn("restapi: unable to flush a catalogue notice", logging.KeyModule, module, logging.Err(err))
	}
}
