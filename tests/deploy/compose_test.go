package deploy_test

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
)

// loadCompose loads deploy/compose.yaml as `docker compose` would, with
// every profile active and an empty environment (the defaults in the file).
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	dir, err := filepath.Abs(deployDir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.Profiles = []string{"*"} })
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	return p
}

func isWaddleBot(s types.ServiceConfig) bool {
	return strings.HasPrefix(s.Image, "waddlebot:") || strings.Contains(s.Image, "/waddlebot:")
}

func TestComposeParts(t *testing.T) {
	p := loadCompose(t)
	for name, args := range wantParts() {
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("compose.yaml has no service %s (%s)", name, strings.Join(args, " "))
			continue
		}
		if !slices.Equal(s.Command, types.ShellCommand(args)) {
			t.Errorf("service %s runs %v, want %v", name, s.Command, args)
		}
	}
	for name, s := range p.Services {
		if !isWaddleBot(s) {
			continue
		}
		if msg := validCommand(t, s.Command); msg != "" {
			t.Errorf("service %s: %s", name, msg)
		}
	}
}

// TestComposeEnvironment checks every WADDLEBOT_* variable names a setting,
// secrets arrive as mounted files the service has, and each part has what
// it needs to start.
func TestComposeEnvironment(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if !isWaddleBot(s) {
			continue
		}
		mounted := map[string]bool{}
		for _, sec := range s.Secrets {
			if _, ok := p.Secrets[sec.Source]; !ok {
				t.Errorf("service %s uses secret %s the file does not define", name, sec.Source)
			}
			target := sec.Target
			if target == "" {
				target = sec.Source
			}
			if !strings.HasPrefix(target, "/") {
				target = "/run/secrets/" + target
			}
			mounted[target] = true
		}
		provided := map[string]bool{}
		for k, v := range s.Environment {
			if msg := checkEnvName(k, false); msg != "" {
				t.Errorf("service %s: %s", name, msg)
			}
			if base, ok := strings.CutSuffix(k, "_FILE"); ok && strings.HasPrefix(k, "WADDLEBOT_") {
				if v == nil || !mounted[*v] {
					t.Errorf("service %s: %s points at %v, which is not one of its secrets", name, k, deref(v))
				}
				k = base
			}
			provided[strings.TrimPrefix(k, "WADDLEBOT_")] = true
		}
		key := partKey(s.Command)
		for _, want := range append(requiredSecrets[key], requiredSettings[key]...) {
			if !provided[want] {
				t.Errorf("service %s (%s) is not given WADDLEBOT_%s", name, key, want)
			}
		}
		if v := s.Environment["WADDLEBOT_HTTP_ADDR"]; v != nil {
			if _, port, err := net.SplitHostPort(*v); err != nil || port != httpPort(t) {
				t.Errorf("service %s: WADDLEBOT_HTTP_ADDR %q, want port %s", name, *v, httpPort(t))
			}
		}
		if v := s.Environment["WADDLEBOT_STREAM_REPLICAS"]; v == nil || *v != "3" {
			t.Errorf("service %s: WADDLEBOT_STREAM_REPLICAS = %v, want 3 on the three-node cluster", name, deref(v))
		}
		if v := s.Environment["WADDLEBOT_NATS_URL"]; v == nil || natsHosts(t, *v) != "nats-1,nats-2,nats-3" {
			t.Errorf("service %s: WADDLEBOT_NATS_URL %v does not list the three NATS services", name, deref(v))
		}
	}
}

// TestComposeSecretFiles checks every secret file the compose file mounts is
// one secrets/generate.sh writes, so `up` after it finds them all.
func TestComposeSecretFiles(t *testing.T) {
	p := loadCompose(t)
	script, err := os.ReadFile(filepath.Join(deployDir, "secrets", "generate.sh"))
	if err != nil {
		t.Fatal(err)
	}
	words := map[string]bool{}
	for _, w := range strings.FieldsFunc(string(script), func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}) {
		words[w] = true
	}
	secretsDir, err := filepath.Abs(filepath.Join(deployDir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	for name, sec := range p.Secrets {
		if filepath.Dir(sec.File) != secretsDir {
			t.Errorf("secret %s is read from %s, want a file in deploy/secrets", name, sec.File)
		}
		if !words[filepath.Base(sec.File)] {
			t.Errorf("secret %s: secrets/generate.sh does not write %s", name, filepath.Base(sec.File))
		}
	}
}

// TestComposeHealthAndOrder checks the parts' health checks ask /readyz on
// the HTTP port, and that nothing starts before streams and schema exist.
func TestComposeHealthAndOrder(t *testing.T) {
	p := loadCompose(t)
	oneShot := map[string]bool{}
	for name, s := range p.Services {
		if isWaddleBot(s) && (s.Command[0] == "streams" || s.Command[0] == "migrate") {
			oneShot[name] = true
			if s.Restart != types.RestartPolicyOnFailure {
				t.Errorf("one-shot %s restarts %q, want on-failure", name, s.Restart)
			}
		}
	}
	var order []string
	for name, s := range p.Services {
		if oneShot[name] {
			for dep, d := range s.DependsOn {
				if oneShot[dep] && d.Condition == types.ServiceConditionCompletedSuccessfully {
					order = append(order, dep+">"+name)
				}
			}
		}
	}
	if !slices.Equal(order, []string{"streams>migrate"}) {
		t.Errorf("setup order %v: want migrate after streams", order)
	}
	for name := range wantParts() {
		s, ok := p.Services[name]
		if !ok {
			continue
		}
		if d, ok := s.DependsOn["migrate"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("service %s does not wait for migrate to complete", name)
		}
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 {
			t.Errorf("service %s has no health check", name)
			continue
		}
		probe := hc.Test[len(hc.Test)-1]
		u, err := url.Parse(probe)
		if err != nil || u.Path != readyPath || u.Port() != httpPort(t) {
			t.Errorf("service %s health check %v: want GET %s on port %s", name, hc.Test, readyPath, httpPort(t))
		}
		if hc.Test[0] != "CMD" || hc.Test[1] != "wget" {
			t.Errorf("service %s health check %v: the image has no shell, only its wget", name, hc.Test)
		}
	}
}

// TestComposeNATS checks three clustered JetStream servers, each with its own
// volume, running a configuration nats-server itself accepts.
func TestComposeNATS(t *testing.T) {
	p := loadCompose(t)
	volumes := map[string]string{}
	var names []string
	for name, s := range p.Services {
		if !strings.HasPrefix(s.Image, "nats:") {
			continue
		}
		names = append(names, name)
		var conf string
		for _, v := range s.Volumes {
			switch {
			case v.Type == types.VolumeTypeVolume && v.Target == "/data":
				if other, taken := volumes[v.Source]; taken {
					t.Errorf("%s and %s share volume %s", name, other, v.Source)
				}
				volumes[v.Source] = name
			case v.Type == types.VolumeTypeBind && strings.HasSuffix(v.Target, ".conf"):
				conf = v.Source
			}
		}
		serverName := s.Environment["NATS_SERVER_NAME"]
		if serverName == nil || *serverName != name {
			t.Errorf("%s: NATS_SERVER_NAME %v, want its service name", name, deref(serverName))
			continue
		}
		t.Setenv("NATS_SERVER_NAME", *serverName)
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Errorf("%s: nats-server rejects %s: %v", name, conf, err)
			continue
		}
		checkNATSOptions(t, name, opts, []string{"nats-1", "nats-2", "nats-3"})
		if opts.ServerName != name {
			t.Errorf("%s: server_name %q", name, opts.ServerName)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"nats-1", "nats-2", "nats-3"}) {
		t.Errorf("NATS services %v, want nats-1, nats-2, nats-3", names)
	}
	if len(volumes) != 3 {
		t.Errorf("NATS volumes %v, want one each", volumes)
	}
}

// checkNATSOptions: JetStream on a named cluster with a route to every node.
func checkNATSOptions(t *testing.T, name string, opts *server.Options, hosts []string) {
	t.Helper()
	if !opts.JetStream || opts.StoreDir == "" {
		t.Errorf("%s: JetStream is not enabled with a store directory", name)
	}
	if opts.Cluster.Name == "" || opts.Cluster.Port == 0 {
		t.Errorf("%s: no cluster listener", name)
	}
	var got []string
	for _, r := range opts.Routes {
		if r.Port() != strconv.Itoa(opts.Cluster.Port) {
			t.Errorf("%s: route %s is not on the cluster port %d", name, r, opts.Cluster.Port)
		}
		got = append(got, r.Hostname())
	}
	slices.Sort(got)
	if !slices.Equal(got, hosts) {
		t.Errorf("%s: routes %v, want %v", name, got, hosts)
	}
}

// natsHosts is the sorted, comma-joined hosts of a NATS URL list.
func natsHosts(t *testing.T, urls string) string {
	t.Helper()
	var hosts []string
	for _, s := range strings.Split(urls, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.Scheme != "nats" || u.Port() != "4222" {
			t.Errorf("NATS URL %q: want nats://<host>:4222", s)
			continue
		}
		hosts = append(hosts, u.Hostname())
	}
	slices.Sort(hosts)
	return strings.Join(hosts, ",")
}

func deref(p *string) string {
	if p == nil {
		return "<unset>"
	}
	return *p
}
