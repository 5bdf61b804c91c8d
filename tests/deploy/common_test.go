// Package deploy_test checks deploy/ against the binary: no container engine
// runs here, so the compose file goes through the Compose specification's
// loader, every Kubernetes manifest is decoded strictly into the API types,
// and both are compared with the settings table, the subcommands of the
// built binary, the built-in modules and the ops server's routes.
package deploy_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/waddlebot/waddlebot/actions/builtin"
	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/schemas"
)

// deployDir is deploy/ seen from this package's directory, where go test runs.
const deployDir = "../../deploy"

// Probe paths: the routes internal/ops mounts on every part's server.
const (
	readyPath  = "/readyz"
	healthPath = "/healthz"
)

// requiredSecrets are the settings a part cannot start without (the
// collectors' and the store's own checks), keyed by its command line.
var requiredSecrets = map[string][]string{
	"router":            {"DATABASE_URL", "SECRET_KEY"},
	"action":            {"DATABASE_URL", "SECRET_KEY"},
	"relay":             {"DATABASE_URL", "SECRET_KEY"},
	"portal":            {"DATABASE_URL", "SECRET_KEY"},
	"migrate":           {"DATABASE_URL"},
	"collector twitch":  {"DATABASE_URL", "SECRET_KEY", "TWITCH_CLIENT_SECRET"},
	"collector discord": {"DATABASE_URL", "SECRET_KEY", "DISCORD_BOT_TOKEN"},
	"collector slack":   {"DATABASE_URL", "SECRET_KEY", "SLACK_APP_TOKEN"},
}

// requiredSettings are plain settings a part needs set (twitch.New and
// discord.New refuse to start without them).
var requiredSettings = map[string][]string{
	"collector twitch":  {"TWITCH_CLIENT_ID", "PUBLIC_URL", "NATS_URL"},
	"collector discord": {"DISCORD_APPLICATION_ID", "NATS_URL"},
	"collector slack":   {"NATS_URL"},
	"router":            {"NATS_URL"},
	"action":            {"NATS_URL"},
	"relay":             {"NATS_URL"},
	"portal":            {"NATS_URL"},
	"streams":           {"NATS_URL", "STREAM_REPLICAS"},
}

// partKey is the key of a command line in the tables above.
func partKey(args []string) string {
	if len(args) >= 2 && args[0] == "collector" {
		return args[0] + " " + args[1]
	}
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// wantParts are the long-running parts every deployment runs: the router,
// a worker per built-in module, the collectors, the portal and the relay.
func wantParts() map[string][]string {
	parts := map[string][]string{
		"router": {"router"},
		"portal": {"portal"},
		"relay":  {"relay"},
	}
	for _, p := range schemas.Platforms {
		// The console platform trusts the role a sender claims: dev only.
		if p != schemas.PlatformConsole {
			parts["collector-"+p] = []string{"collector", p}
		}
	}
	for _, m := range builtin.Names() {
		parts["action-"+m] = []string{"action", m}
	}
	return parts
}

// settings indexes the settings table by environment variable.
func settings() map[string]config.Setting {
	out := map[string]config.Setting{}
	for _, s := range config.Table() {
		out[s.Env()] = s
	}
	return out
}

// checkEnvName reports what is wrong with an environment variable a
// manifest sets, or "" when it names a setting the binary reads.
func checkEnvName(name string, viaFile bool) string {
	if !strings.HasPrefix(name, config.EnvPrefix) {
		return ""
	}
	tab := settings()
	if s, ok := tab[name]; ok {
		if s.Secret && !viaFile {
			return name + " is a secret given as a plain value; give it from a secret"
		}
		return ""
	}
	if base, ok := strings.CutSuffix(name, "_FILE"); ok {
		s, ok := tab[base]
		switch {
		case !ok:
			return name + " is the _FILE form of no setting"
		case !s.Secret:
			return name + ": only secrets have a _FILE form"
		}
		return ""
	}
	return name + " is not a setting (config.Table)"
}

// httpPort is the port of the HTTP_ADDR default: the one probes must use.
func httpPort(t *testing.T) string {
	t.Helper()
	for _, s := range config.Table() {
		if s.Name == "HTTP_ADDR" {
			_, port, err := net.SplitHostPort(s.Default)
			if err != nil {
				t.Fatalf("HTTP_ADDR default %q: %v", s.Default, err)
			}
			return port
		}
	}
	t.Fatal("no HTTP_ADDR setting")
	return ""
}

// validCommand checks a part's command line against the built binary's
// subcommands, the built-in modules and the platforms.
func validCommand(t *testing.T, args []string) string {
	t.Helper()
	if len(args) == 0 {
		return "no command"
	}
	if !subcommands(t)[args[0]] {
		return "unknown subcommand " + args[0]
	}
	switch args[0] {
	case "action":
		if len(args) != 2 {
			return "action takes one module"
		}
		if _, err := builtin.Module(builtin.Deps{}, args[1]); err != nil {
			return err.Error()
		}
	case "collector":
		if len(args) != 2 || args[1] == schemas.PlatformConsole {
			return "collector takes a production platform"
		}
		for _, p := range schemas.Platforms {
			if p == args[1] {
				return ""
			}
		}
		return "unknown platform " + args[1]
	case "streams":
		if len(args) != 2 || args[1] != "apply" {
			return "streams in a deployment is streams apply"
		}
	}
	return ""
}

var (
	subOnce sync.Once
	subs    map[string]bool
	subErr  string
)

// subcommands builds the binary and reads its subcommands from `waddlebot
// help`, so the check follows the real command table.
func subcommands(t *testing.T) map[string]bool {
	t.Helper()
	subOnce.Do(func() {
		dir, err := os.MkdirTemp("", "waddlebot-deploy-test")
		if err != nil {
			subErr = err.Error()
			return
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "waddlebot")
		build := exec.Command("go", "build", "-o", bin, "github.com/waddlebot/waddlebot/cmd/waddlebot")
		if out, err := build.CombinedOutput(); err != nil {
			subErr = "go build: " + err.Error() + "\n" + string(out)
			return
		}
		out, err := exec.Command(bin, "help").CombinedOutput()
		if err != nil {
			subErr = "waddlebot help: " + err.Error()
			return
		}
		subs = parseHelp(string(out))
	})
	if subErr != "" {
		t.Fatal(subErr)
	}
	return subs
}

// parseHelp reads the command names from the usage text: lines indented
// by two spaces, name first.
func parseHelp(text string) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "  ") {
			continue
		}
		if f := strings.Fields(line); len(f) > 0 {
			out[f[0]] = true
		}
	}
	return out
}

func TestParseHelp(t *testing.T) {
	got := parseHelp("usage: waddlebot <command> [flags]\n\n  router     run a router\n  action     run: action <module>\n\nEvery setting…\n")
	if len(got) != 2 || !got["router"] || !got["action"] {
		t.Fatalf("parseHelp = %v", got)
	}
	for _, want := range []string{"router", "action", "collector", "portal", "relay", "streams", "migrate"} {
		if !subcommands(t)[want] {
			t.Errorf("waddlebot help does not list %s (got %v)", want, subcommands(t))
		}
	}
}

func TestCheckEnvName(t *testing.T) {
	for _, c := range []struct {
		name    string
		viaFile bool
		bad     bool
	}{
		{"WADDLEBOT_NATS_URL", false, false},
		{"WADDLEBOT_DATABASE_URL", true, false},
		{"WADDLEBOT_DATABASE_URL", false, true},
		{"WADDLEBOT_DATABASE_URL_FILE", false, false},
		{"WADDLEBOT_NATS_URL_FILE", false, true},
		{"WADDLEBOT_NO_SUCH", false, true},
		{"GOMEMLIMIT", false, false},
	} {
		if got := checkEnvName(c.name, c.viaFile) != ""; got != c.bad {
			t.Errorf("checkEnvName(%s, %v) bad = %v, want %v", c.name, c.viaFile, got, c.bad)
		}
	}
}

func TestValidCommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"router"}, true},
		{[]string{"action", "core"}, true},
		{[]string{"action", "nope"}, false},
		{[]string{"collector", "twitch"}, true},
		{[]string{"collector", "console"}, false},
		{[]string{"streams", "apply"}, true},
		{[]string{"streams", "verify"}, false},
		{[]string{"routr"}, false},
		{nil, false},
	} {
		if got := validCommand(t, c.args) == ""; got != c.ok {
			t.Errorf("validCommand(%v) ok = %v, want %v", c.args, got, c.ok)
		}
	}
}

// TestDockerfile checks the image: a static binary, a non-root user, the
// binary as entry point, and the HTTP port the probes use.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var froms []string
	var user, entry, httpAddr string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
			user = ""
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entry = strings.Join(f[1:], " ")
		}
		for _, w := range f {
			if v, ok := strings.CutPrefix(w, "WADDLEBOT_HTTP_ADDR="); ok {
				httpAddr = v
			}
		}
	}
	if len(froms) < 2 {
		t.Errorf("want a multi-stage build, got stages %v", froms)
	}
	if !strings.Contains(text, "CGO_ENABLED=0") || !strings.Contains(text, "./cmd/waddlebot") {
		t.Error("the build stage must build ./cmd/waddlebot with CGO_ENABLED=0")
	}
	final := froms[len(froms)-1]
	if !strings.Contains(final, "distroless/static") && final != "scratch" {
		t.Errorf("final stage %s: want distroless/static or scratch", final)
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("final stage user %q: want a non-root user", user)
	}
	if !strings.Contains(entry, "waddlebot") {
		t.Errorf("ENTRYPOINT %s: want the waddlebot binary", entry)
	}
	ignore, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile.dockerignore"))
	if err != nil || !slices.Contains(strings.Fields(string(ignore)), "deploy/secrets") {
		t.Errorf("Dockerfile.dockerignore must keep deploy/secrets out of the build context (%v)", err)
	}
	_, port, err := net.SplitHostPort(httpAddr)
	if err != nil || port != httpPort(t) {
		t.Errorf("image WADDLEBOT_HTTP_ADDR %q: want all interfaces on port %s", httpAddr, httpPort(t))
	}
}
