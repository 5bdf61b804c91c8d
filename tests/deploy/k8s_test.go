package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// kinds are the API types the manifests may use; anything else is an error.
var kinds = map[string]func() any{
	"v1/ConfigMap":                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                     func() any { return &corev1.Secret{} },
	"v1/Service":                    func() any { return &corev1.Service{} },
	"apps/v1/Deployment":            func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":           func() any { return &appsv1.StatefulSet{} },
	"batch/v1/Job":                  func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
}

// decodeManifests splits a multi-document YAML stream and decodes each
// document strictly into its API type: an unknown or misspelt field, a
// duplicate key or an unknown kind is an error.
func decodeManifests(r io.Reader) ([]any, error) {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var out []any
	for i := 0; ; i++ {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if tm.Kind == "" && tm.APIVersion == "" {
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue // comments only
			}
			return nil, fmt.Errorf("document %d has no apiVersion and kind", i)
		}
		mk, ok := kinds[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			return nil, fmt.Errorf("document %d: unexpected %s %s", i, tm.APIVersion, tm.Kind)
		}
		obj := mk()
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, tm.Kind, err)
		}
		out = append(out, obj)
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.Bytes()
}

func TestDecodeManifestsStrict(t *testing.T) {
	const dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: x }\n"
	for _, c := range []struct {
		name, doc string
		ok        bool
	}{
		{"good", dep + "spec: { replicas: 2 }\n", true},
		{"comments only", "# nothing\n---\n" + dep, true},
		{"unknown field", dep + "spec: { replica: 2 }\n", false},
		{"misplaced field", dep + "spec: { template: { spec: { containers: [{ name: a, probe: {} }] } } }\n", false},
		{"duplicate key", dep + "spec: { replicas: 2, replicas: 3 }\n", false},
		{"unknown kind", "apiVersion: v1\nkind: Pod\nmetadata: { name: x }\n", false},
		{"no kind", "metadata: { name: x }\n", false},
		{"bad quantity", dep + "spec: { template: { spec: { containers: [{ name: a, resources: { limits: { cpu: lots } } }] } } }\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeManifests(strings.NewReader(c.doc))
			if (err == nil) != c.ok {
				t.Fatalf("decode error = %v, want ok %v", err, c.ok)
			}
		})
	}
}

// manifests holds every object of deploy/k8s by kind and name.
type manifests struct {
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	jobs         map[string]*batchv1.Job
	pdbs         map[string]*policyv1.PodDisruptionBudget
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	m := manifests{deployments: map[string]*appsv1.Deployment{}, statefulSets: map[string]*appsv1.StatefulSet{},
		services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		jobs: map[string]*batchv1.Job{}, pdbs: map[string]*policyv1.PodDisruptionBudget{}}
	seen := map[string]string{}
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeManifests(r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, o := range objs {
			var name string
			switch o := o.(type) {
			case *appsv1.Deployment:
				name, m.deployments[o.Name] = "Deployment/"+o.Name, o
			case *appsv1.StatefulSet:
				name, m.statefulSets[o.Name] = "StatefulSet/"+o.Name, o
			case *corev1.Service:
				name, m.services[o.Name] = "Service/"+o.Name, o
			case *corev1.ConfigMap:
				name, m.configMaps[o.Name] = "ConfigMap/"+o.Name, o
			case *corev1.Secret:
				name, m.secrets[o.Name] = "Secret/"+o.Name, o
			case *batchv1.Job:
				name, m.jobs[o.Name] = "Job/"+o.Name, o
			case *policyv1.PodDisruptionBudget:
				name, m.pdbs[o.Name] = "PodDisruptionBudget/"+o.Name, o
			}
			if prev, dup := seen[name]; dup {
				t.Errorf("%s is in both %s and %s", name, prev, f)
			}
			seen[name] = f
		}
	}
	return m
}

func TestKubernetesParts(t *testing.T) {
	m := loadManifests(t)
	for part, args := range wantParts() {
		d, ok := m.deployments["waddlebot-"+part]
		if !ok {
			t.Errorf("no Deployment waddlebot-%s (%s)", part, strings.Join(args, " "))
			continue
		}
		if c := d.Spec.Template.Spec.Containers; len(c) != 1 || !slices.Equal(c[0].Args, args) {
			t.Errorf("Deployment waddlebot-%s does not run %v", part, args)
		}
	}
	for name, d := range m.deployments {
		t.Run(name, func(t *testing.T) {
			checkDeployment(t, m, d)
		})
	}
}

// checkDeployment: selector, command, probes, port, resources, variables,
// secrets and a PodDisruptionBudget.
func checkDeployment(t *testing.T, m manifests, d *appsv1.Deployment) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("selector %v does not select the pod template's labels %v", d.Spec.Selector, d.Spec.Template.Labels)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("replicas %v: want at least 2, so one can be lost", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !strings.HasPrefix(c.Image, "waddlebot:") {
		t.Errorf("image %s: want the waddlebot image", c.Image)
	}
	if msg := validCommand(t, c.Args); msg != "" {
		t.Errorf("args %v: %s", c.Args, msg)
	}
	port := namedPort(c, "http")
	if port == 0 || fmt.Sprint(port) != httpPort(t) {
		t.Errorf("container port http = %d, want %s (HTTP_ADDR)", port, httpPort(t))
	}
	checkProbe(t, "readiness", c.ReadinessProbe, c, readyPath)
	checkProbe(t, "liveness", c.LivenessProbe, c, healthPath)
	checkResources(t, c)
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("pod does not insist on a non-root user")
	}

	provided := checkContainerEnv(t, m, c)
	key := partKey(c.Args)
	for _, want := range append(requiredSecrets[key], requiredSettings[key]...) {
		if !provided["WADDLEBOT_"+want] {
			t.Errorf("%s is not given WADDLEBOT_%s", key, want)
		}
	}
	if v := provided["WADDLEBOT_HTTP_ADDR"]; !v {
		t.Error("WADDLEBOT_HTTP_ADDR is not set: the default listens on loopback only")
	}

	covered := false
	for _, pdb := range m.pdbs {
		s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err == nil && !s.Empty() && s.Matches(labels.Set(d.Spec.Template.Labels)) {
			covered = true
			if pdb.Spec.MinAvailable != nil && d.Spec.Replicas != nil &&
				pdb.Spec.MinAvailable.Type == intstr.Int && int32(pdb.Spec.MinAvailable.IntValue()) >= *d.Spec.Replicas {
				t.Errorf("PodDisruptionBudget %s allows no disruption at %d replicas", pdb.Name, *d.Spec.Replicas)
			}
		}
	}
	if !covered {
		t.Error("no PodDisruptionBudget selects its pods")
	}
}

// checkContainerEnv checks every variable a container gets names a setting,
// secrets come from an existing Secret key, ConfigMaps exist and hold only
// settings; it returns the variables provided.
func checkContainerEnv(t *testing.T, m manifests, c corev1.Container) map[string]bool {
	t.Helper()
	provided := map[string]bool{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			t.Errorf("envFrom %+v: only ConfigMaps (secrets are named one by one)", ef)
			continue
		}
		cm, ok := m.configMaps[ef.ConfigMapRef.Name]
		if !ok {
			t.Errorf("envFrom ConfigMap %s does not exist", ef.ConfigMapRef.Name)
			continue
		}
		for k := range cm.Data {
			if msg := checkEnvName(k, false); msg != "" {
				t.Errorf("ConfigMap %s: %s", cm.Name, msg)
			}
			provided[k] = true
		}
	}
	for _, e := range c.Env {
		fromSecret := e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
		if msg := checkEnvName(e.Name, fromSecret); msg != "" {
			t.Error(msg)
		}
		if fromSecret {
			ref := e.ValueFrom.SecretKeyRef
			sec, ok := m.secrets[ref.Name]
			if !ok {
				t.Errorf("%s: Secret %s does not exist", e.Name, ref.Name)
			} else if _, ok := sec.StringData[ref.Key]; !ok {
				if _, ok := sec.Data[ref.Key]; !ok {
					t.Errorf("%s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
				}
			}
		}
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			t.Errorf("%s: take whole ConfigMaps with envFrom", e.Name)
		}
		if e.Name == "WADDLEBOT_HTTP_ADDR" {
			if _, port, err := net.SplitHostPort(e.Value); err != nil || port != httpPort(t) {
				t.Errorf("WADDLEBOT_HTTP_ADDR %q: want port %s", e.Value, httpPort(t))
			}
		}
		provided[e.Name] = true
	}
	return provided
}

func checkProbe(t *testing.T, kind string, p *corev1.Probe, c corev1.Container, path string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("no %s probe over HTTP", kind)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s probe path %s, want %s", kind, p.HTTPGet.Path, path)
	}
	if portOf(c, p.HTTPGet.Port) == 0 || fmt.Sprint(portOf(c, p.HTTPGet.Port)) != httpPort(t) {
		t.Errorf("%s probe port %s is not the HTTP port %s", kind, p.HTTPGet.Port.String(), httpPort(t))
	}
}

func checkResources(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[r]
		lim, hasLim := c.Resources.Limits[r]
		if !hasReq || !hasLim || req.IsZero() {
			t.Errorf("%s: want a request and a limit", r)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s request %s above its limit %s", r, req.String(), lim.String())
		}
	}
}

func namedPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// portOf resolves a probe's or Service's port (a number or a name) against a container.
func portOf(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		for _, cp := range c.Ports {
			if cp.ContainerPort == p.IntVal {
				return p.IntVal
			}
		}
		return 0
	}
	return namedPort(c, p.StrVal)
}

// TestSameParts checks Compose and Kubernetes run the same parts with the
// same command lines.
func TestSameParts(t *testing.T) {
	p := loadCompose(t)
	m := loadManifests(t)
	compose := map[string]string{}
	for name, s := range p.Services {
		if isWaddleBot(s) && s.Command[0] != "streams" && s.Command[0] != "migrate" {
			compose[name] = strings.Join(s.Command, " ")
		}
	}
	k8s := map[string]string{}
	for name, d := range m.deployments {
		k8s[strings.TrimPrefix(name, "waddlebot-")] = strings.Join(d.Spec.Template.Spec.Containers[0].Args, " ")
	}
	for name, cmd := range compose {
		if k8s[name] != cmd {
			t.Errorf("compose service %s runs %q, Deployment waddlebot-%s %q", name, cmd, name, k8s[name])
		}
	}
	for name := range k8s {
		if _, ok := compose[name]; !ok {
			t.Errorf("Deployment waddlebot-%s has no compose service", name)
		}
	}
}

// TestKubernetesServices checks the parts that serve outside callers have a
// Service, and every Service reaches a named port of the pods it selects.
func TestKubernetesServices(t *testing.T) {
	m := loadManifests(t)
	for _, want := range []string{"waddlebot-portal", "waddlebot-collector-twitch",
		"waddlebot-collector-discord", "waddlebot-collector-slack", "nats", "nats-headless"} {
		if _, ok := m.services[want]; !ok {
			t.Errorf("no Service %s", want)
		}
	}
	type pods struct {
		labels     map[string]string
		containers []corev1.Container
	}
	var all []pods
	for _, d := range m.deployments {
		all = append(all, pods{d.Spec.Template.Labels, d.Spec.Template.Spec.Containers})
	}
	for _, s := range m.statefulSets {
		all = append(all, pods{s.Spec.Template.Labels, s.Spec.Template.Spec.Containers})
	}
	for name, svc := range m.services {
		sel := &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || s.Empty() {
			t.Errorf("Service %s has no selector", name)
			continue
		}
		matched := false
		for _, p := range all {
			if !s.Matches(labels.Set(p.labels)) {
				continue
			}
			matched = true
			for _, sp := range svc.Spec.Ports {
				if portOf(p.containers[0], sp.TargetPort) == 0 {
					t.Errorf("Service %s port %s: target %s is not a port of its pods", name, sp.Name, sp.TargetPort.String())
				}
			}
		}
		if !matched {
			t.Errorf("Service %s selects no pods", name)
		}
	}
}

// TestKubernetesNATS checks the three-node StatefulSet, its headless Service,
// its configuration (parsed by nats-server itself) and its budget.
func TestKubernetesNATS(t *testing.T) {
	m := loadManifests(t)
	ss, ok := m.statefulSets["nats"]
	if !ok {
		t.Fatal("no StatefulSet nats")
	}
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 {
		t.Errorf("nats replicas %v, want 3", ss.Spec.Replicas)
	}
	headless, ok := m.services[ss.Spec.ServiceName]
	if !ok || headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Fatalf("serviceName %q is not a headless Service", ss.Spec.ServiceName)
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 {
		t.Error("want a volume claim per node for the JetStream store")
	}
	var pdb bool
	for _, p := range m.pdbs {
		s, _ := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if s != nil && !s.Empty() && s.Matches(labels.Set(ss.Spec.Template.Labels)) {
			pdb = p.Spec.MaxUnavailable != nil && p.Spec.MaxUnavailable.IntValue() == 1
		}
	}
	if !pdb {
		t.Error("no PodDisruptionBudget keeping two of three NATS nodes up")
	}

	pod := ss.Spec.Template.Spec
	c := pod.Containers[0]
	var confMap string
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil {
			confMap = v.ConfigMap.Name
		}
	}
	cm, ok := m.configMaps[confMap]
	if !ok || cm.Data["nats.conf"] == "" {
		t.Fatalf("NATS configuration ConfigMap %q with nats.conf is missing", confMap)
	}
	if !slices.Contains(c.Args, "/etc/nats/nats.conf") {
		t.Errorf("nats args %v do not load /etc/nats/nats.conf", c.Args)
	}
	var nameFromPod bool
	for _, e := range c.Env {
		nameFromPod = nameFromPod || e.Name == "NATS_SERVER_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	}
	if !nameFromPod {
		t.Error("NATS_SERVER_NAME is not the pod's name")
	}
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(cm.Data["nats.conf"]), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NATS_SERVER_NAME", "nats-0")
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server rejects the ConfigMap's nats.conf: %v", err)
	}
	var hosts []string
	for i := range int(*ss.Spec.Replicas) {
		hosts = append(hosts, fmt.Sprintf("%s-%d.%s", ss.Name, i, headless.Name))
	}
	checkNATSOptions(t, "nats.conf", opts, hosts)
	if got := portOf(c, intstr.FromString("client")); got != int32(opts.Port) {
		t.Errorf("client port %d, configuration listens on %d", got, opts.Port)
	}

	// The parts reach the cluster through the client Service, and put
	// every stream on all three nodes.
	cfg := m.configMaps["waddlebot"]
	if cfg == nil {
		t.Fatal("no ConfigMap waddlebot")
	}
	if got := natsHosts(t, cfg.Data["WADDLEBOT_NATS_URL"]); m.services[got] == nil {
		t.Errorf("WADDLEBOT_NATS_URL host %q is not a Service", got)
	}
	if cfg.Data["WADDLEBOT_STREAM_REPLICAS"] != fmt.Sprint(*ss.Spec.Replicas) {
		t.Errorf("WADDLEBOT_STREAM_REPLICAS %q, want %d (the cluster's size)", cfg.Data["WADDLEBOT_STREAM_REPLICAS"], *ss.Spec.Replicas)
	}
}

// TestKubernetesSetupJob checks the one-shot: streams apply, then migrate.
func TestKubernetesSetupJob(t *testing.T) {
	m := loadManifests(t)
	if len(m.jobs) != 1 {
		t.Fatalf("want one setup Job, got %d", len(m.jobs))
	}
	for _, j := range m.jobs {
		pod := j.Spec.Template.Spec
		var steps [][]string
		for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
			if msg := validCommand(t, c.Args); msg != "" {
				t.Errorf("%s: %s", c.Name, msg)
			}
			checkResources(t, c)
			provided := checkContainerEnv(t, m, c)
			key := partKey(c.Args)
			for _, want := range append(requiredSecrets[key], requiredSettings[key]...) {
				if !provided["WADDLEBOT_"+want] {
					t.Errorf("%s is not given WADDLEBOT_%s", key, want)
				}
			}
			steps = append(steps, c.Args)
		}
		want := [][]string{{"streams", "apply"}, {"migrate"}}
		if !slices.EqualFunc(steps, want, slices.Equal) {
			t.Errorf("Job %s runs %v, want %v", j.Name, steps, want)
		}
		if pod.RestartPolicy != corev1.RestartPolicyOnFailure {
			t.Errorf("Job %s restartPolicy %s: want OnFailure (NATS or PostgreSQL may not be up yet)", j.Name, pod.RestartPolicy)
		}
	}
}
