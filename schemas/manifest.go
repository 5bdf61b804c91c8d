package schemas

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/mod/semver"
)

// Manifest describes a module to the catalogue: its commands, the event
// kinds it wants, its settings and whether communities get it by default.
// Built-in modules upsert theirs at start; external modules register theirs
// through the portal or the API.
type Manifest struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	// External modules are reached with the '#' prefix and run outside
	// WaddleBot, publishing results to wb.result.<name>.
	External bool `json:"external,omitempty"`
	// DefaultEnabled is whether a community without its own choice has the
	// module on (everyday modules: on; AI and external modules: off).
	DefaultEnabled bool            `json:"default_enabled"`
	Commands       []CommandSpec   `json:"commands,omitempty"`
	Triggers       []TriggerSpec   `json:"triggers,omitempty"`
	Settings       json.RawMessage `json:"settings,omitempty"` // a JSON Schema for the module's settings
	// Writes says the module changes PostgreSQL, so its results go through
	// the outbox.
	Writes bool `json:"writes,omitempty"`
}

// CommandSpec is one command of a module.
type CommandSpec struct {
	Name        string   `json:"name"`
	Aliases     []string `json:"aliases,omitempty"`
	Usage       string   `json:"usage,omitempty"`
	Description string   `json:"description,omitempty"`
	// Permission is the least role allowed: everyone, member, subscriber,
	// vip, moderator, broadcaster.
	Permission string `json:"permission"`
	// Cooldowns, in milliseconds: for everyone in the community, and per user.
	GlobalCooldownMS int64 `json:"global_cooldown_ms,omitempty"`
	UserCooldownMS   int64 `json:"user_cooldown_ms,omitempty"`
	// Visibility of the command's replies unless the module says otherwise.
	Visibility Visibility `json:"visibility,omitempty" jsonschema:"enum=public,enum=private,enum=ephemeral"`
}

// Throttle scopes.
const (
	ThrottleUser      = "user"
	ThrottleChannel   = "channel"
	ThrottleCommunity = "community"
)

// TriggerSpec asks for invocations on events of one kind, at most once per
// window per scope (for example, one chat credit per user per minute).
type TriggerSpec struct {
	Kind     Kind   `json:"kind" jsonschema:"enum=chat,enum=command,enum=follow,enum=subscription,enum=gift,enum=cheer,enum=raid,enum=join,enum=leave,enum=ban,enum=unban,enum=timeout,enum=stream_online,enum=stream_offline"`
	Per      string `json:"per,omitempty" jsonschema:"enum=user,enum=channel,enum=community"`
	WindowMS int64  `json:"window_ms,omitempty"`
}

// Window is the trigger's throttle window (zero: every event).
func (t TriggerSpec) Window() time.Duration { return time.Duration(t.WindowMS) * time.Millisecond }

var versionRe = regexp.MustCompile(`^v?(\d+)\.(\d+)\.(\d+)$`)

// Validate checks a manifest before it enters the catalogue.
func (m *Manifest) Validate() error {
	if !ValidName(m.Name) {
		return invalid("module name %q must match [a-z][a-z0-9_-]{0,31}", m.Name)
	}
	if !versionRe.MatchString(m.Version) {
		return invalid("module %s version %q is not MAJOR.MINOR.PATCH", m.Name, m.Version)
	}
	seen := map[string]bool{}
	for _, c := range m.Commands {
		if !ValidName(c.Name) {
			return invalid("module %s: command name %q must match [a-z][a-z0-9_-]{0,31}", m.Name, c.Name)
		}
		if !ValidPermission(c.Permission) {
			return invalid("module %s: command %s permission %q unknown", m.Name, c.Name, c.Permission)
		}
		if c.GlobalCooldownMS < 0 || c.UserCooldownMS < 0 {
			return invalid("module %s: command %s has a negative cooldown", m.Name, c.Name)
		}
		if !c.Visibility.Valid() {
			return invalid("module %s: command %s visibility %q unknown", m.Name, c.Name, c.Visibility)
		}
		for _, n := range append([]string{c.Name}, c.Aliases...) {
			if !ValidName(n) {
				return invalid("module %s: alias %q must match [a-z][a-z0-9_-]{0,31}", m.Name, n)
			}
			if seen[n] {
				return invalid("module %s: command name %q appears twice", m.Name, n)
			}
			seen[n] = true
		}
	}
	for _, t := range m.Triggers {
		if !t.Kind.Valid() {
			return invalid("module %s: trigger kind %q unknown", m.Name, t.Kind)
		}
		switch t.Per {
		case "", ThrottleUser, ThrottleChannel, ThrottleCommunity:
		default:
			return invalid("module %s: trigger throttle scope %q unknown", m.Name, t.Per)
		}
		if t.WindowMS < 0 || (t.WindowMS > 0) != (t.Per != "") {
			return invalid("module %s: trigger %s needs both a scope and a window, or neither", m.Name, t.Kind)
		}
	}
	if len(m.Settings) > 0 && !json.Valid(m.Settings) {
		return invalid("module %s: settings schema is not JSON", m.Name)
	}
	return nil
}

// CompareVersions orders two MAJOR.MINOR.PATCH versions: -1, 0 or 1.
// Invalid versions sort below valid ones.
func CompareVersions(a, b string) int {
	return semver.Compare(canonicalVersion(a), canonicalVersion(b))
}

func canonicalVersion(v string) string {
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	return v
}

// Command finds a command by name or alias.
func (m *Manifest) Command(name string) (CommandSpec, bool) {
	for _, c := range m.Commands {
		if c.Name == name {
			return c, true
		}
		for _, a := range c.Aliases {
			if a == name {
				return c, true
			}
		}
	}
	return CommandSpec{}, false
}

// String names the module and version.
func (m *Manifest) String() string { return fmt.Sprintf("%s@%s", m.Name, m.Version) }
