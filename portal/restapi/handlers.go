package restapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	sjsonschema "github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/waddlebot/waddlebot/actions/alias"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// table is every endpoint. The OpenAPI document is made from it too.
func (s *Server) table() []route {
	const c = "/communities/{id}"
	read, write := store.ScopeCommunitiesRead, store.ScopeCommunitiesWrite
	mods, modw := store.ScopeModulesRead, store.ScopeModulesWrite
	mod, adm, own := store.RoleModerator, store.RoleAdmin, store.RoleOwner
	return []route{
		{Method: "GET", Path: "/communities", Summary: "List the communities the key reaches", Scope: read, List: true, Out: Community{}, h: s.listCommunities},
		{Method: "POST", Path: "/communities", Summary: "Create a community owned by the key's owner (site-wide keys)", Scope: write, Body: CommunityInput{}, Out: Community{}, h: s.createCommunity},
		{Method: "GET", Path: c, Summary: "Get a community", Scope: read, Role: mod, Out: Community{}, h: s.getCommunity},
		{Method: "PATCH", Path: c, Summary: "Change a community's settings", Scope: write, Role: adm, Body: CommunityPatch{}, Out: Community{}, h: s.updateCommunity},
		{Method: "DELETE", Path: c, Summary: "Delete a community and everything in it", Scope: write, Role: own, h: s.deleteCommunity},
		{Method: "GET", Path: c + "/members", Summary: "List members", Scope: read, Role: mod, List: true, Out: Member{}, h: s.listMembers},
		{Method: "POST", Path: c + "/members", Summary: "Add a member by platform account", Scope: write, Role: adm, Body: MemberInput{}, Out: Member{}, h: s.addMember},
		{Method: "PUT", Path: c + "/members/{user}", Summary: "Change a member's role", Scope: write, Role: adm, Body: RoleInput{}, Out: Member{}, h: s.changeRole},
		{Method: "DELETE", Path: c + "/members/{user}", Summary: "Remove a member", Scope: write, Role: adm, h: s.removeMember},
		{Method: "GET", Path: c + "/channels", Summary: "List channels", Scope: read, Role: mod, List: true, Out: Channel{}, h: s.listChannels},
		{Method: "GET", Path: c + "/modules", Summary: "List modules with their manifest and this community's choice", Scope: mods, Role: mod, List: true, Out: Module{}, h: s.listModules},
		{Method: "PUT", Path: c + "/modules/{module}/enabled", Summary: "Enable or disable a module", Scope: modw, Role: adm, Body: EnabledInput{}, Out: Module{}, h: s.setModuleEnabled},
		{Method: "PUT", Path: c + "/modules/{module}/settings", Summary: "Replace a module's settings (validated against its JSON Schema)", Scope: modw, Role: adm, Body: map[string]any{}, Out: Module{}, h: s.setModuleSettings},
		{Method: "GET", Path: c + "/commands", Summary: "List command overrides", Scope: mods, Role: mod, List: true, Out: Override{}, h: s.listOverrides},
		{Method: "PUT", Path: c + "/commands/{command}", Summary: "Override a command's switch, permission or cooldowns", Scope: modw, Role: adm, Body: OverrideInput{}, Out: Override{}, h: s.putOverride},
		{Method: "DELETE", Path: c + "/commands/{command}", Summary: "Reset a command to its module's defaults", Scope: modw, Role: adm, h: s.deleteOverride},
		{Method: "GET", Path: c + "/aliases", Summary: "List aliases", Scope: read, Role: mod, List: true, Out: Alias{}, h: s.listAliases},
		{Method: "PUT", Path: c + "/aliases/{name}", Summary: "Create or replace an alias", Scope: store.ScopeAliasesWrite, Role: mod, Body: AliasInput{}, Out: Alias{}, h: s.putAlias},
		{Method: "DELETE", Path: c + "/aliases/{name}", Summary: "Delete an alias", Scope: store.ScopeAliasesWrite, Role: mod, h: s.deleteAlias},
		{Method: "GET", Path: c + "/audit", Summary: "List the audit log, newest first", Scope: store.ScopeAuditRead, Role: mod, List: true, Out: AuditEntry{}, h: s.listAudit},
	}
}

// Wire types.

// Community is a community as the API shows it.
type Community struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Prefix      string `json:"prefix"`
	TimeZone    string `json:"time_zone"`
	Locale      string `json:"locale"`
	Provisional bool   `json:"provisional"`
	Role        string `json:"role,omitempty" jsonschema:"description=the key owner's role"`
}

func toCommunity(c schemas.Community, role string) Community {
	return Community{ID: c.ID, Name: c.Name, Prefix: c.Prefix, TimeZone: c.TimeZone, Locale: c.Locale, Provisional: c.Provisional, Role: role}
}

// CommunityInput creates a community.
type CommunityInput struct {
	Name     string `json:"name" jsonschema:"required"`
	Prefix   string `json:"prefix,omitempty"`
	TimeZone string `json:"time_zone,omitempty"`
	Locale   string `json:"locale,omitempty"`
}

// CommunityPatch changes some of a community's settings.
type CommunityPatch struct {
	Name     *string `json:"name,omitempty"`
	Prefix   *string `json:"prefix,omitempty"`
	TimeZone *string `json:"time_zone,omitempty"`
	Locale   *string `json:"locale,omitempty"`
}

// Member is a community member.
type Member struct {
	UserID      string     `json:"user_id"`
	DisplayName string     `json:"display_name"`
	Role        string     `json:"role"`
	Accounts    []Identity `json:"accounts"`
}

// Identity is a platform account.
type Identity struct {
	Platform       string `json:"platform"`
	PlatformUserID string `json:"platform_user_id"`
	Login          string `json:"login,omitempty"`
}

// MemberInput adds a member.
type MemberInput struct {
	Platform       string `json:"platform" jsonschema:"required,enum=twitch,enum=discord,enum=slack"`
	PlatformUserID string `json:"platform_user_id" jsonschema:"required"`
	Role           string `json:"role" jsonschema:"required,enum=owner,enum=admin,enum=moderator"`
}

// RoleInput changes a role.
type RoleInput struct {
	Role string `json:"role" jsonschema:"required,enum=owner,enum=admin,enum=moderator"`
}

// Channel is a platform channel of a community.
type Channel struct {
	Platform  string `json:"platform"`
	ChannelID string `json:"channel_id"`
	ServerID  string `json:"server_id,omitempty"`
	Name      string `json:"name"`
}

// Module is a catalogue module with this community's choice.
type Module struct {
	Name     string           `json:"name"`
	Builtin  bool             `json:"builtin"`
	Enabled  bool             `json:"enabled"`
	Chosen   bool             `json:"chosen" jsonschema:"description=false when the manifest's default applies"`
	Settings json.RawMessage  `json:"settings,omitempty"`
	Manifest schemas.Manifest `json:"manifest"`
}

// EnabledInput switches a module.
type EnabledInput struct {
	Enabled *bool `json:"enabled" jsonschema:"required"`
}

// Override is a community's change to a command.
type Override struct {
	Command          string  `json:"command"`
	Enabled          *bool   `json:"enabled,omitempty"`
	Permission       *string `json:"permission,omitempty"`
	GlobalCooldownMS *int64  `json:"global_cooldown_ms,omitempty"`
	UserCooldownMS   *int64  `json:"user_cooldown_ms,omitempty"`
}

// OverrideInput sets an override; absent fields keep the manifest's value.
type OverrideInput struct {
	Enabled          *bool   `json:"enabled,omitempty"`
	Permission       *string `json:"permission,omitempty"`
	GlobalCooldownMS *int64  `json:"global_cooldown_ms,omitempty"`
	UserCooldownMS   *int64  `json:"user_cooldown_ms,omitempty"`
}

// Alias is a community's own command.
type Alias struct {
	Name      string    `json:"name"`
	Target    string    `json:"target"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	Runs      int64     `json:"runs"`
}

// AliasInput sets an alias's command line.
type AliasInput struct {
	Target string `json:"target" jsonschema:"required"`
}

// AuditEntry is one audit log entry.
type AuditEntry struct {
	ID      int64          `json:"id"`
	Actor   string         `json:"actor"`
	Action  string         `json:"action"`
	Target  string         `json:"target"`
	Details map[string]any `json:"details"`
	At      time.Time      `json:"at"`
}

// Communities.

func (s *Server) listCommunities(c *call) (int, any, error) {
	var list []Community
	if c.key.CommunityID != "" {
		com, err := s.st.Community(c.ctx(), c.key.CommunityID)
		if err != nil {
			return 0, nil, err
		}
		role, err := s.st.MemberRole(c.ctx(), com.ID, c.user.ID)
		if err != nil {
			return 0, nil, err
		}
		list = []Community{toCommunity(com, role)}
	} else {
		crs, err := s.st.CommunitiesOf(c.ctx(), c.user.ID, true)
		if err != nil {
			return 0, nil, err
		}
		for _, cr := range crs {
			list = append(list, toCommunity(cr.Community, cr.Role))
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	return page(c, list, func(x Community) string { return x.ID })
}

func (s *Server) getCommunity(c *call) (int, any, error) {
	return http.StatusOK, toCommunity(c.community, c.role), nil
}

// checkCommunity applies the portal's rules for a community's settings.
func checkCommunity(name, prefix, tz, locale string) map[string]any {
	bad := map[string]any{}
	if strings.TrimSpace(name) == "" || utf8.RuneCountInString(name) > 100 {
		bad["name"] = "a name is 1 to 100 characters"
	}
	if !validPrefix(prefix) {
		bad["prefix"] = "a prefix is 1 to 3 punctuation characters, not #"
	}
	if tz == "" {
		bad["time_zone"] = "give an IANA time zone like Europe/Berlin"
	} else if _, err := time.LoadLocation(tz); err != nil || strings.EqualFold(tz, "local") {
		bad["time_zone"] = "unknown time zone " + strconv.Quote(tz)
	}
	if locale == "" || len(locale) > 20 {
		bad["locale"] = "a locale is a short code like en or fr"
	}
	return bad
}

// validPrefix mirrors the database's check (and the portal's form).
func validPrefix(s string) bool {
	n := utf8.RuneCountInString(s)
	if n < 1 || n > 3 {
		return false
	}
	for _, c := range s {
		if c == '#' || c == ' ' || !strings.ContainsRune("!\"$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c) {
			return false
		}
	}
	return true
}

func (s *Server) createCommunity(c *call) (int, any, error) {
	if c.key.CommunityID != "" {
		return 0, nil, fail(http.StatusForbidden, "forbidden", "A community's key cannot create communities; use a site-wide key.", nil)
	}
	var in CommunityInput
	if err := c.decode(&in); err != nil {
		return 0, nil, err
	}
	in.Name = strings.TrimSpace(in.Name)
	if in.Prefix == "" {
		in.Prefix = "!"
	}
	if in.TimeZone == "" {
		in.TimeZone = "UTC"
	}
	if in.Locale == "" {
		in.Locale = "en"
	}
	if bad := checkCommunity(in.Name, in.Prefix, in.TimeZone, in.Locale); len(bad) > 0 {
		return 0, nil, invalid("The community's settings are not valid.", bad)
	}
	com, err := s.st.CreateOwnedCommunity(c.ctx(), c.actor(), c.user.ID,
		store.NewCommunity{Name: in.Name, Prefix: in.Prefix, TimeZone: in.TimeZone, Locale: in.Locale}, c.from())
	if errors.Is(err, store.ErrConflict) {
		return 0, nil, fail(http.StatusConflict, "conflict", "The database refused these settings.", nil)
	}
	if err != nil {
		return 0, nil, err
	}
	c.community = com
	s.announce(com.ID)
	return http.StatusCreated, toCommunity(com, store.RoleOwner), nil
}

func (s *Server) updateCommunity(c *call) (int, any, error) {
	var in CommunityPatch
	if err := c.decode(&in); err != nil {
		return 0, nil, err
	}
	next := c.community
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = strings.TrimSpace(*v)
		}
	}
	set(&next.Name, in.Name)
	set(&next.Prefix, in.Prefix)
	set(&next.TimeZone, in.TimeZone)
	set(&next.Locale, in.Locale)
	if bad := checkCommunity(next.Name, next.Prefix, next.TimeZone, next.Locale); len(bad) > 0 {
		return 0, nil, invalid("The community's settings are not valid.", bad)
	}
	err := s.st.ChangeCommunity(c.ctx(), c.actor(), next, c.from())
	if errors.Is(err, store.ErrConflict) {
		return 0, nil, fail(http.StatusConflict, "conflict", "The database refused these settings.", nil)
	}
	if err != nil {
		return 0, nil, err
	}
	s.announce(next.ID)
	next.Provisional = false
	return http.StatusOK, toCommunity(next, c.role), nil
}

func (s *Server) deleteCommunity(c *call) (int, any, error) {
	if err := s.st.DeleteCommunity(c.ctx(), c.actor(), c.community.ID, c.from()); err != nil {
		return 0, nil, err
	}
	s.announce(c.community.ID)
	return http.StatusNoContent, nil, nil
}

// Members.

func toMember(m store.Member) Member {
	out := Member{UserID: m.User.ID, DisplayName: m.User.DisplayName, Role: m.Role, Accounts: []Identity{}}
	for _, i := range m.Identities {
		out.Accounts = append(out.Accounts, Identity{Platform: i.Platform, PlatformUserID: i.PlatformUserID, Login: i.Login})
	}
	return out
}

func (s *Server) listMembers(c *call) (int, any, error) {
	ms, err := s.st.Members(c.ctx(), c.community.ID)
	if err != nil {
		return 0, nil, err
	}
	list := make([]Member, 0, len(ms))
	for _, m := range ms {
		list = append(list, toMember(m))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].UserID < list[j].UserID })
	return page(c, list, func(m Member) string { return m.UserID })
}

func (s *Server) member(c *call, userID string) (Member, error) {
	ms, err := s.st.Members(c.ctx(), c.community.ID)
	if err != nil {
		return Member{}, err
	}
	for _, m := range ms {
		if m.User.ID == userID {
			return toMember(m), nil
		}
	}
	return Member{}, fail(http.StatusNotFound, "not_found", "That user is not a member.", nil)
}

// mayManage is the portal's rule: admins manage admins and moderators,
// only owners touch owners.
func (c *call) mayManage(before, after string) error {
	need := store.RoleAdmin
	if before == store.RoleOwner || after == store.RoleOwner {
		need = store.RoleOwner
	}
	if !c.atLeast(need) {
		return fail(http.StatusForbidden, "forbidden", "This change needs the "+need+" role in this community.",
			map[string]any{"role": c.role, "needed": need})
	}
	return nil
}

func (s *Server) lastOwner(c *call) (bool, error) {
	ms, err := s.st.Members(c.ctx(), c.community.ID)
	if err != nil {
		return true, err
	}
	owners := 0
	for _, m := range ms {
		if m.Role == store.RoleOwner {
			owners++
		}
	}
	return owners <= 1, nil
}

var errLastOwner = fail(http.StatusConflict, "last_owner", "A community keeps at least one owner: make someone else owner first.", nil)

func (s *Server) setRole(c *call, userID, before, after string, details map[string]any) (int, any, error) {
	if err := c.mayManage(before, after); err != nil {
		return 0, nil, err
	}
	if before == store.RoleOwner && after != store.RoleOwner {
		last, err := s.lastOwner(c)
		if err != nil {
			return 0, nil, err
		}
		if last {
			return 0, nil, errLastOwner
		}
	}
	d := c.from()
	for k, v := range details {
		d[k] = v
	}
	if err := s.st.SetMember(c.ctx(), c.actor(), c.community.ID, userID, after, d); err != nil {
		return 0, nil, err
	}
	s.announce(c.community.ID)
	m, err := s.member(c, userID)
	if err != nil {
		return 0, nil, err
	}
	status := http.StatusOK
	if before == "" {
		status = http.StatusCreated
	}
	return status, m, nil
}

func (s *Server) addMember(c *call) (int, any, error) {
	var in MemberInput
	if err := c.decode(&in); err != nil {
		return 0, nil, err
	}
	in.PlatformUserID = strings.TrimSpace(in.PlatformUserID)
	bad := map[string]any{}
	if in.Platform != "twitch" && in.Platform != "discord" && in.Platform != "slack" {
		bad["platform"] = "one of twitch, discord, slack"
	}
	if in.PlatformUserID == "" || len(in.PlatformUserID) > 64 {
		bad["platform_user_id"] = "the account's user id on that platform, up to 64 characters"
	}
	if store.RoleRank(in.Role) == 0 {
		bad["role"] = "one of owner, admin, moderator"
	}
	if len(bad) > 0 {
		return 0, nil, invalid("The member is not valid.", bad)
	}
	u, err := s.st.EnsurePortalUser(c.ctx(), store.Identity{Platform: in.Platform, PlatformUserID: in.PlatformUserID})
	if err != nil {
		return 0, nil, err
	}
	before, err := s.st.MemberRole(c.ctx(), c.community.ID, u.ID)
	if err != nil {
		return 0, nil, err
	}
	if before != "" {
		return 0, nil, fail(http.StatusConflict, "conflict", "That account is already a member; change its role instead.",
			map[string]any{"user_id": u.ID, "role": before})
	}
	return s.setRole(c, u.ID, "", in.Role, map[string]any{"account": in.Platform + ":" + in.PlatformUserID})
}

func (s *Server) pathMemberRole(c *call) (string, string, error) {
	userID := c.r.PathValue("user")
	if _, err := uuid.Parse(userID); err != nil {
		return "", "", fail(http.StatusNotFound, "not_found", "That user is not a member.", nil)
	}
	before, err := s.st.MemberRole(c.ctx(), c.community.ID, userID)
	if err != nil {
		return "", "", err
	}
	if before == "" {
		return "", "", fail(http.StatusNotFound, "not_found", "That user is not a member.", nil)
	}
	return userID, before, nil
}

func (s *Server) changeRole(c *call) (int, any, error) {
	userID, before, err := s.pathMemberRole(c)
	if err != nil {
		return 0, nil, err
	}
	var in RoleInput
	if err := c.decode(&in); err != nil {
		return 0, nil, err
	}
	if store.RoleRank(in.Role) == 0 {
		return 0, nil, invalid("The role is not valid.", map[string]any{"role": "one of owner, admin, moderator"})
	}
	return s.setRole(c, userID, before, in.Role, nil)
}

func (s *Server) removeMember(c *call) (int, any, error) {
	userID, before, err := s.pathMemberRole(c)
	if err != nil {
		return 0, nil, err
	}
	if err := c.mayManage(before, ""); err != nil {
		return 0, nil, err
	}
	if before == store.RoleOwner {
		last, err := s.lastOwner(c)
		if err != nil {
			return 0, nil, err
		}
		if last {
			return 0, nil, errLastOwner
		}
	}
	if err := s.st.RemoveMember(c.ctx(), c.actor(), c.community.ID, userID, c.from()); err != nil {
		return 0, nil, err
	}
	s.announce(c.community.ID)
	return http.StatusNoContent, nil, nil
}

// Channels.

func (s *Server) listChannels(c *call) (int, any, error) {
	chs, err := s.st.Channels(c.ctx(), c.community.ID)
	if err != nil {
		return 0, nil, err
	}
	list := make([]Channel, 0, len(chs))
	for _, ch := range chs {
		list = append(list, Channel{Platform: ch.Platform, ChannelID: ch.ChannelID, ServerID: ch.ServerID, Name: ch.Name})
	}
	key := func(ch Channel) string { return ch.Platform + "\x00" + ch.ChannelID }
	sort.Slice(list, func(i, j int) bool { return key(list[i]) < key(list[j]) })
	return page(c, list, key)
}

// Modules.

func (s *Server) modules(c *call) ([]Module, error) {
	cat, err := s.st.Catalogue(c.ctx())
	if err != nil {
		return nil, err
	}
	choices, err := s.st.CommunityModules(c.ctx(), c.community.ID)
	if err != nil {
		return nil, err
	}
	out := make([]Module, 0, len(cat))
	for _, e := range cat {
		m := Module{Name: e.Manifest.Name, Builtin: e.Builtin, Enabled: e.Manifest.DefaultEnabled, Manifest: e.Manifest}
		if ch, ok := choices[e.Manifest.Name]; ok {
			m.Chosen, m.Enabled = true, ch.Enabled
			if len(ch.Settings) > 0 && !bytes.Equal(ch.Settings, []byte("null")) {
				m.Settings = ch.Settings
			}
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *Server) module(c *call) (Module, error) {
	list, err := s.modules(c)
	if err != nil {
		return Module{}, err
	}
	name := c.r.PathValue("module")
	for _, m := range list {
		if m.Name == name {
			return m, nil
		}
	}
	return Module{}, fail(http.StatusNotFound, "not_found", "There is no module "+strconv.Quote(name)+" in the catalogue.", nil)
}

func (s *Server) listModules(c *call) (int, any, error) {
	list, err := s.modules(c)
	if err != nil {
		return 0, nil, err
	}
	return page(c, list, func(m Module) string { return m.Name })
}

func (s *Server) setModuleEnabled(c *call) (int, any, error) {
	m, err := s.module(c)
	if err != nil {
		return 0, nil, err
	}
	var in EnabledInput
	if err := c.decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Enabled == nil {
		return 0, nil, invalid("Say whether the module is on.", map[string]any{"enabled": "required: true or false"})
	}
	// The store's entry records the switch; this one records before and
	// after, as every configuration change must.
	if err := s.st.SetModule(c.ctx(), c.actor(), c.community.ID, m.Name, *in.Enabled, nil); err != nil {
		return 0, nil, err
	}
	s.auditChange(c, "module.enabled", m.Name, m.Enabled, *in.Enabled)
	s.announce(c.community.ID)
	m, err = s.module(c)
	return http.StatusOK, m, err
}

func (s *Server) setModuleSettings(c *call) (int, any, error) {
	m, err := s.module(c)
	if err != nil {
		return 0, nil, err
	}
	var raw json.RawMessage
	if err := c.decode(&raw); err != nil {
		return 0, nil, err
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return 0, nil, fail(http.StatusBadRequest, "bad_json", "Settings are a JSON object.", nil)
	}
	if problems := validateSettings(m.Manifest.Settings, raw); problems != nil {
		return 0, nil, invalid("The settings do not match the module's schema.", problems)
	}
	if err := s.st.SetModule(c.ctx(), c.actor(), c.community.ID, m.Name, m.Enabled, raw); err != nil {
		return 0, nil, err
	}
	s.auditChange(c, "module.settings", m.Name, m.Settings, raw)
	s.announce(c.community.ID)
	m, err = s.module(c)
	return http.StatusOK, m, err
}

// validateSettings checks settings against a module's JSON Schema; a
// module without a schema takes only an empty object. It returns the
// problems by instance location, nil when valid.
func validateSettings(schema json.RawMessage, settings []byte) map[string]any {
	if len(schema) == 0 || bytes.Equal(schema, []byte("null")) {
		if bytes.Equal(bytes.TrimSpace(settings), []byte("{}")) {
			return nil
		}
		return map[string]any{"": "this module has no settings"}
	}
	doc, err := sjsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return map[string]any{"": "the module's schema is unreadable: " + err.Error()}
	}
	comp := sjsonschema.NewCompiler()
	if err := comp.AddResource("module-settings.json", doc); err != nil {
		return map[string]any{"": "the module's schema is unusable: " + err.Error()}
	}
	sch, err := comp.Compile("module-settings.json")
	if err != nil {
		return map[string]any{"": "the module's schema is unusable: " + err.Error()}
	}
	inst, err := sjsonschema.UnmarshalJSON(bytes.NewReader(settings))
	if err != nil {
		return map[string]any{"": "not JSON: " + err.Error()}
	}
	err = sch.Validate(inst)
	var ve *sjsonschema.ValidationError
	if err == nil {
		return nil
	}
	if !errors.As(err, &ve) {
		return map[string]any{"": err.Error()}
	}
	out := map[string]any{}
	var walk func(e *sjsonschema.ValidationError)
	walk = func(e *sjsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := "/" + strings.Join(e.InstanceLocation, "/")
			msg := fmt.Sprint(e.ErrorKind)
			if prev, ok := out[loc]; ok {
				msg = prev.(string) + "; " + msg
			}
			out[loc] = msg
		}
		for _, ce := range e.Causes {
			walk(ce)
		}
	}
	walk(ve)
	return out
}

// auditChange records a change with before and after, beside the store's
// own entry when that one lacks them.
func (s *Server) auditChange(c *call, action, target string, before, after any) {
	d := c.from()
	d["before"], d["after"] = before, after
	if err := s.st.Audit(c.ctx(), nil, store.AuditEntry{CommunityID: c.community.ID, Actor: c.actor(), Action: action,
		Target: target, Details: d}); err != nil {
		s.log.Error("restapi: unable to write audit entry", "action", action, "error", err)
	}
}

// Command overrides.

func toOverride(name string, o store.CommandOverride) Override {
	return Override{Command: name, Enabled: o.Enabled, Permission: o.Permission, GlobalCooldownMS: o.GlobalCooldownMS, UserCooldownMS: o.UserCooldownMS}
}

func (s *Server) listOverrides(c *call) (int, any, error) {
	os, err := s.st.CommandOverrides(c.ctx(), c.community.ID)
	if err != nil {
		return 0, nil, err
	}
	list := make([]Override, 0, len(os))
	for name, o := range os {
		list = append(list, toOverride(name, o))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Command < list[j].Command })
	return page(c, list, func(o Override) string { return o.Command })
}

// knownCommand reports whether a module of the catalogue has the command.
func (s *Server) knownCommand(ctx context.Context, name string) (bool, error) {
	cat, err := s.st.Catalogue(ctx)
	if err != nil {
		return false, err
	}
	for _, e := range cat {
		for _, cmd := range e.Manifest.Commands {
			if cmd.Name == name {
				return true, nil
			}
		}
	}
	return false, nil
}

func (s *Server) putOverride(c *call) (int, any, error) {
	name := c.r.PathValue("command")
	ok, err := s.knownCommand(c.ctx(), name)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, fail(http.StatusNotFound, "not_found", "No module has the command "+strconv.Quote(name)+".", nil)
	}
	var in OverrideInput
	if err := c.decode(&in); err != nil {
		return 0, nil, err
	}
	bad := map[string]any{}
	if in.Permission != nil && !schemas.ValidPermission(*in.Permission) {
		bad["permission"] = "one of everyone, member, subscriber, vip, moderator, broadcaster"
	}
	const day = int64(24 * time.Hour / time.Millisecond)
	for field, v := range map[string]*int64{"global_cooldown_ms": in.GlobalCooldownMS, "user_cooldown_ms": in.UserCooldownMS} {
		if v != nil && (*v < 0 || *v > day) {
			bad[field] = "milliseconds from 0 to a day"
		}
	}
	if len(bad) > 0 {
		return 0, nil, invalid("The override is not valid.", bad)
	}
	before, err := s.st.CommandOverrides(c.ctx(), c.community.ID)
	if err != nil {
		return 0, nil, err
	}
	o := store.CommandOverride{Enabled: in.Enabled, Permission: in.Permission, GlobalCooldownMS: in.GlobalCooldownMS, UserCooldownMS: in.UserCooldownMS}
	if err := s.st.SetCommandOverride(c.ctx(), c.actor(), c.community.ID, name, o); err != nil {
		if errors.Is(err, schemas.ErrInvalid) {
			return 0, nil, invalid(err.Error(), nil)
		}
		return 0, nil, err
	}
	var prev any
	if b, ok := before[name]; ok {
		prev = toOverride(name, b)
	}
	s.auditChange(c, "command.override_set", name, prev, toOverride(name, o))
	s.announce(c.community.ID)
	return http.StatusOK, toOverride(name, o), nil
}

func (s *Server) deleteOverride(c *call) (int, any, error) {
	name := c.r.PathValue("command")
	err := s.st.DeleteCommandOverrideAudited(c.ctx(), c.actor(), c.community.ID, name, c.from())
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, fail(http.StatusNotFound, "not_found", "The command "+strconv.Quote(name)+" has no override here.", nil)
	}
	if err != nil {
		return 0, nil, err
	}
	s.announce(c.community.ID)
	return http.StatusNoContent, nil, nil
}

// Aliases.

func (s *Server) listAliases(c *call) (int, any, error) {
	as, err := s.st.Aliases(c.ctx(), c.community.ID)
	if err != nil {
		return 0, nil, err
	}
	list := make([]Alias, 0, len(as))
	for _, a := range as {
		list = append(list, Alias{Name: a.Name, Target: a.Target, CreatedBy: a.CreatedBy, CreatedAt: a.CreatedAt, Runs: a.Runs})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return page(c, list, func(a Alias) string { return a.Name })
}

// errAliasRefused rolls back a put the alias module's rules refuse.
type errAliasRefused struct{ problem string }

func (e errAliasRefused) Error() string { return e.problem }

func (s *Server) putAlias(c *call) (int, any, error) {
	name := c.r.PathValue("name")
	var in AliasInput
	if err := c.decode(&in); err != nil {
		return 0, nil, err
	}
	var before *store.Alias
	var target string
	err := s.st.InTx(c.ctx(), func(tx pgx.Tx) error {
		if err := alias.Lock(c.ctx(), tx, c.community.ID); err != nil {
			return err
		}
		var old store.Alias
		err := tx.QueryRow(c.ctx(), `DELETE FROM aliases WHERE community_id = $1 AND name = $2 RETURNING target`,
			c.community.ID, name).Scan(&old.Target)
		switch {
		case err == nil:
			before = &old
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("restapi: unable to replace alias: %w", err)
		}
		// A replacement is checked as a fresh add, against every other
		// alias (loops, depth) exactly as the module checks `!alias add`.
		var problem string
		name, target, problem, err = alias.Check(c.ctx(), s.st, tx, c.community.ID, c.community.Prefix, name, in.Target, 0)
		if err != nil {
			return err
		}
		if problem != "" {
			return errAliasRefused{problem}
		}
		if err := s.st.AddAlias(c.ctx(), tx, store.Alias{CommunityID: c.community.ID, Name: name, Target: target, CreatedBy: c.actor()}); err != nil {
			return err
		}
		d := c.from()
		d["before"], d["after"] = nil, target
		if before != nil {
			d["before"] = before.Target
		}
		return s.st.Audit(c.ctx(), tx, store.AuditEntry{CommunityID: c.community.ID, Actor: c.actor(), Action: "alias.set", Target: name, Details: d})
	})
	var refused errAliasRefused
	if errors.As(err, &refused) {
		return 0, nil, invalid(refused.problem, map[string]any{"name": c.r.PathValue("name"), "target": in.Target})
	}
	if err != nil {
		return 0, nil, err
	}
	s.announce(c.community.ID)
	as, err := s.st.Aliases(c.ctx(), c.community.ID)
	if err != nil {
		return 0, nil, err
	}
	a := as[name]
	status := http.StatusCreated
	if before != nil {
		status = http.StatusOK
	}
	return status, Alias{Name: a.Name, Target: a.Target, CreatedBy: a.CreatedBy, CreatedAt: a.CreatedAt, Runs: a.Runs}, nil
}

func (s *Server) deleteAlias(c *call) (int, any, error) {
	name := c.r.PathValue("name")
	as, err := s.st.Aliases(c.ctx(), c.community.ID)
	if err != nil {
		return 0, nil, err
	}
	old, ok := as[name]
	if !ok {
		return 0, nil, fail(http.StatusNotFound, "not_found", "There is no alias "+strconv.Quote(name)+".", nil)
	}
	err = s.st.InTx(c.ctx(), func(tx pgx.Tx) error {
		if err := alias.Lock(c.ctx(), tx, c.community.ID); err != nil {
			return err
		}
		if err := s.st.RemoveAlias(c.ctx(), tx, c.community.ID, name); err != nil {
			return err
		}
		d := c.from()
		d["before"], d["after"] = old.Target, nil
		return s.st.Audit(c.ctx(), tx, store.AuditEntry{CommunityID: c.community.ID, Actor: c.actor(), Action: "alias.remove", Target: name, Details: d})
	})
	if err != nil {
		return 0, nil, err
	}
	s.announce(c.community.ID)
	return http.StatusNoContent, nil, nil
}

// Audit.

func (s *Server) listAudit(c *call) (int, any, error) {
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
	es, err := s.st.AuditPage(c.ctx(), c.community.ID, before, limit+1)
	if err != nil {
		return 0, nil, err
	}
	body := listBody[AuditEntry]{Items: []AuditEntry{}}
	for i, e := range es {
		if i == limit {
			body.NextCursor = encodeCursor(strconv.FormatInt(body.Items[len(body.Items)-1].ID, 10))
			break
		}
		body.Items = append(body.Items, AuditEntry{ID: e.ID, Actor: e.Actor, Action: e.Action, Target: e.Target, Details: e.Details, At: e.At})
	}
	return http.StatusOK, body, nil
}
