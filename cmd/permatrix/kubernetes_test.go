package main

// docs/kubernetes/*/ and the Dockerfile held to the code: every flag and
// PERMATRIX_* variable the manifests give the sidecar is one of serve's
// flags and parses; the probes, the Prometheus annotations and the app's
// URL point at the listeners the sidecar's addresses open; the pod runs as
// the image's non-root user on a read-only root file system with its store
// on a volume. Then each manifest's sidecar is run as configured (the
// image's environment, the manifest's, ports and volume paths moved to
// sockets the test binds and passes to it, temporary directories) and the
// probes, the metrics, the app's client and the image's HEALTHCHECK are
// asked for real.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/client"
	"github.com/permatrix/permatrix/internal/etcd"
	"github.com/permatrix/permatrix/test/harness"
)

// The parts of a Pod or Deployment read here.
type k8sObject struct {
	Kind     string  `yaml:"kind"`
	Metadata k8sMeta `yaml:"metadata"`
	Spec     struct {
		podSpec  `yaml:",inline"`
		Template *struct {
			Metadata k8sMeta `yaml:"metadata"`
			Spec     podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sMeta struct {
	Annotations map[string]string `yaml:"annotations"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
		FSGroup      *int  `yaml:"fsGroup"`
	} `yaml:"securityContext"`
	InitContainers []k8sContainer `yaml:"initContainers"`
	Containers     []k8sContainer `yaml:"containers"`
	Volumes        []struct {
		Name     string     `yaml:"name"`
		EmptyDir *yaml.Node `yaml:"emptyDir"`
		PVC      *yaml.Node `yaml:"persistentVolumeClaim"`
		Secret   *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type k8sContainer struct {
	Name          string   `yaml:"name"`
	RestartPolicy string   `yaml:"restartPolicy"`
	Command       []string `yaml:"command"`
	Args          []string `yaml:"args"`
	Env           []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			ResourceFieldRef *struct {
				Resource string `yaml:"resource"`
			} `yaml:"resourceFieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe    *k8sProbe `yaml:"startupProbe"`
	ReadinessProbe  *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe   *k8sProbe `yaml:"livenessProbe"`
	SecurityContext *struct {
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []k8sMount `yaml:"volumeMounts"`
}

type k8sMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"` // a number or a port's name
		Host string    `yaml:"host"`
	} `yaml:"httpGet"`
}

// pod is what a manifest runs: the pod's metadata and spec.
func (o k8sObject) pod() (k8sMeta, podSpec) {
	if o.Spec.Template != nil {
		return o.Spec.Template.Metadata, o.Spec.Template.Spec
	}
	return o.Metadata, o.Spec.podSpec
}

// readManifest reads the first document of a manifest file (a Pod or a
// Deployment; later documents are what it needs, e.g. a volume claim).
func readManifest(t *testing.T, path string) k8sObject {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var o k8sObject
	if err := yaml.NewDecoder(bytes.NewReader(raw)).Decode(&o); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if o.Kind != "Pod" && o.Kind != "Deployment" {
		t.Fatalf("%s: kind %q, want Pod or Deployment", path, o.Kind)
	}
	return o
}

// image is what the Dockerfile's runtime stage gives a container.
type image struct {
	user       int
	workdir    string
	env        map[string]string
	entrypoint []string
	healthArgs []string // HEALTHCHECK CMD, without the binary
}

func readDockerfile(t *testing.T) image {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(harness.Root(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Join continued lines; keep the last stage (the runtime image).
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	stages := regexp.MustCompile(`(?m)^FROM `).Split(text, -1)
	img := image{env: map[string]string{}, user: -1}
	for line := range strings.Lines(stages[len(stages)-1]) {
		instr, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest = strings.TrimSpace(rest)
		switch instr {
		case "USER":
			uid, _, _ := strings.Cut(rest, ":")
			if img.user, err = strconv.Atoi(uid); err != nil {
				t.Fatalf("Dockerfile USER %q: want a numeric uid (runAsNonRoot needs one)", rest)
			}
		case "WORKDIR":
			img.workdir = rest
		case "ENV":
			k, v, _ := strings.Cut(rest, "=")
			img.env[k] = v
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &img.entrypoint); err != nil {
				t.Fatalf("Dockerfile ENTRYPOINT %s: %v", rest, err)
			}
		case "HEALTHCHECK":
			_, cmd, ok := strings.Cut(rest, "CMD ")
			var argv []string
			if !ok || json.Unmarshal([]byte(strings.TrimSpace(cmd)), &argv) != nil || len(argv) < 2 {
				t.Fatalf("Dockerfile HEALTHCHECK %q: want CMD [\"/usr/local/bin/permatrix\", \"health\", …] (exec form: no shell in the image)", rest)
			}
			if len(img.entrypoint) > 0 && argv[0] != img.entrypoint[0] {
				t.Fatalf("HEALTHCHECK runs %s, the image's binary is %s", argv[0], img.entrypoint[0])
			}
			img.healthArgs = argv[1:]
		}
	}
	if img.user <= 0 || img.healthArgs == nil || len(img.entrypoint) == 0 {
		t.Fatalf("Dockerfile: runtime stage without a non-root USER, ENTRYPOINT or HEALTHCHECK: %+v", img)
	}
	return img
}

// resourceField is the value the kubelet gives a variable from a
// resourceFieldRef of the container's own CPU (the divisor 1: whole cores,
// rounded up, as the downward API does).
func resourceField(c k8sContainer, resource string) (string, error) {
	var q string
	switch resource {
	case "requests.cpu":
		q = c.Resources.Requests["cpu"]
	case "limits.cpu":
		q = c.Resources.Limits["cpu"]
	default:
		return "", fmt.Errorf("resourceFieldRef %q: only the container's CPU is read here", resource)
	}
	if q == "" {
		// The kubelet would give the node's allocatable CPU: every core.
		return "", fmt.Errorf("resourceFieldRef %s, but the container sets no %s", resource, resource)
	}
	milli, err := strconv.Atoi(strings.TrimSuffix(q, "m"))
	if err != nil || milli <= 0 {
		return "", fmt.Errorf("%s %q: not a CPU quantity this test reads (N or Nm)", resource, q)
	}
	if !strings.HasSuffix(q, "m") {
		milli *= 1000
	}
	return strconv.Itoa((milli + 999) / 1000), nil
}

// flagOfEnv is the flag bindEnv sets from a PERMATRIX_* variable.
func flagOfEnv(name string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "PERMATRIX_"), "_", "-"))
}

// sidecar is a manifest's permatrix container as the code reads it.
type sidecar struct {
	c       k8sContainer
	env     map[string]string // the image's environment, then the manifest's
	args    []string          // after "serve"
	flags   map[string]string // every serve flag the env and args set
	mounts  map[string]string // mount path → volume name
	ports   map[string]int    // port name → number
	apiAddr string
	diag    string
}

func findSidecar(t *testing.T, spec podSpec, img image) sidecar {
	t.Helper()
	var found []k8sContainer
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if c.Name == "permatrix" {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one container named permatrix, found %d", len(found))
	}
	c := found[0]
	if slices.ContainsFunc(spec.InitContainers, func(ic k8sContainer) bool { return ic.Name == "permatrix" }) && c.RestartPolicy != "Always" {
		t.Fatal("permatrix as an init container must be a native sidecar (restartPolicy: Always), or it blocks the pod")
	}
	if len(c.Command) > 0 || len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("the sidecar runs the image's entrypoint with args [serve …], got command %v args %v", c.Command, c.Args)
	}
	s := sidecar{c: c, env: map[string]string{}, args: c.Args[1:], flags: map[string]string{}, mounts: map[string]string{}, ports: map[string]int{}}
	for k, v := range img.env {
		s.env[k] = v
	}
	for _, e := range c.Env {
		s.env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil {
			v, err := resourceField(c, e.ValueFrom.ResourceFieldRef.Resource)
			if err != nil {
				t.Fatalf("%s: %v", e.Name, err)
			}
			s.env[e.Name] = v
		}
	}
	// The cores Go may take at once are the container's (README, "CPU"):
	// without it, the collector's marking takes every core of the node.
	if n, err := strconv.Atoi(s.env["GOMAXPROCS"]); err != nil || n < 1 {
		t.Errorf("GOMAXPROCS %q: the sidecar sets it from the CPU its container asks for (README, \"CPU\")", s.env["GOMAXPROCS"])
	}
	// Every variable and argument is one of serve's flags, and its value
	// parses as that flag's type.
	serve := newServe()
	flags := serve.Flags()
	for name, v := range s.env {
		if !strings.HasPrefix(name, "PERMATRIX_") {
			continue
		}
		f := flagOfEnv(name)
		if flags.Lookup(f) == nil {
			t.Errorf("%s is no variable of serve: no flag --%s", name, f)
			continue
		}
		if err := flags.Set(f, v); err != nil {
			t.Errorf("%s=%q: %v", name, v, err)
		}
		s.flags[f] = v
	}
	if err := flags.Parse(s.args); err != nil {
		t.Errorf("serve %v: %v", s.args, err)
	}
	flags.Visit(func(f *pflag.Flag) { s.flags[f.Name] = f.Value.String() })
	for _, m := range c.VolumeMounts {
		s.mounts[m.MountPath] = m.Name
	}
	for _, p := range c.Ports {
		s.ports[p.Name] = p.ContainerPort
	}
	s.apiAddr, s.diag = flags.Lookup("addr").Value.String(), s.flags["diagnostic-addr"]
	return s
}

// portOf is the port number of a probe's or annotation's port: a number,
// or the name of one of the container's ports.
func (s sidecar) portOf(t *testing.T, v string) int {
	t.Helper()
	if n, err := strconv.Atoi(v); err == nil {
		return n
	}
	n, ok := s.ports[v]
	if !ok {
		t.Fatalf("port %q is not a port of the permatrix container", v)
	}
	return n
}

// under reports the volume a path is on (the longest mount path holding it).
func (s sidecar) under(path string) (mountPath, volume string) {
	for mp, vol := range s.mounts {
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(mountPath) {
			mountPath, volume = mp, vol
		}
	}
	return mountPath, volume
}

func TestKubernetesManifests(t *testing.T) {
	img := readDockerfile(t)
	files, err := filepath.Glob(filepath.Join(harness.Root(), "docs", "kubernetes", "*", "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("docs/kubernetes/*/ holds %d manifests: %v", len(files), err)
	}
	for _, file := range files {
		rel, _ := filepath.Rel(harness.Root(), file)
		t.Run(rel, func(t *testing.T) {
			meta, spec := readManifest(t, file).pod()
			s := findSidecar(t, spec, img)
			checkStatic(t, meta, spec, s, img)
			if !t.Failed() {
				runSidecar(t, meta, spec, s, img)
			}
		})
	}
}

// checkStatic holds a manifest to the code without running anything.
func checkStatic(t *testing.T, meta k8sMeta, spec podSpec, s sidecar, img image) {
	t.Helper()
	// The API on the pod's loopback: the app reaches it, nothing else does.
	host, _, err := net.SplitHostPort(s.apiAddr)
	if err != nil || host != "127.0.0.1" {
		t.Errorf("--addr %q: the sidecar's API belongs on the pod's loopback (127.0.0.1:PORT)", s.apiAddr)
	}
	// The diagnostic listener on every interface: the kubelet probes and
	// Prometheus scrapes the pod's IP.
	dhost, dport, err := net.SplitHostPort(s.diag)
	if err != nil || (dhost != "" && dhost != "0.0.0.0" && dhost != "::") {
		t.Fatalf("--diagnostic-addr %q: want 0.0.0.0:PORT (probes and scrapes come to the pod's IP)", s.diag)
	}
	diagPort, _ := strconv.Atoi(dport)
	for what, p := range map[string]*k8sProbe{"startupProbe": s.c.StartupProbe, "readinessProbe": s.c.ReadinessProbe, "livenessProbe": s.c.LivenessProbe} {
		want := map[string]string{"startupProbe": "/health/ready", "readinessProbe": "/health/ready", "livenessProbe": "/health/live"}[what]
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe of %s", what, want)
			continue
		}
		if p.HTTPGet.Path != want || p.HTTPGet.Host != "" {
			t.Errorf("%s: path %q host %q, want %s on the pod's IP", what, p.HTTPGet.Path, p.HTTPGet.Host, want)
		}
		if port := s.portOf(t, p.HTTPGet.Port.Value); port != diagPort {
			t.Errorf("%s: port %s is %d, the diagnostic listener is on %d", what, p.HTTPGet.Port.Value, port, diagPort)
		}
	}
	if meta.Annotations["prometheus.io/scrape"] != "true" || meta.Annotations["prometheus.io/path"] != "/metrics" ||
		s.portOf(t, meta.Annotations["prometheus.io/port"]) != diagPort {
		t.Errorf("Prometheus annotations %v: want scrape \"true\", path /metrics, port %d", meta.Annotations, diagPort)
	}

	// Non-root as the image's user, read-only root file system, no
	// privileges.
	sc := spec.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != img.user || sc.FSGroup == nil || *sc.FSGroup != img.user {
		t.Errorf("pod securityContext: want runAsNonRoot, runAsUser and fsGroup %d (the image's USER)", img.user)
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		cs := c.SecurityContext
		if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
			cs.RunAsNonRoot == nil || !*cs.RunAsNonRoot || !slices.Equal(cs.Capabilities.Drop, []string{"ALL"}) {
			t.Errorf("container %s: want readOnlyRootFilesystem, no privilege escalation, runAsNonRoot, capabilities drop ALL", c.Name)
		}
	}

	// Every file the sidecar writes is on a writable volume, every file it
	// reads on a mounted one: the root file system is read-only.
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	for mp, vol := range s.mounts {
		if !volumes[vol] {
			t.Errorf("mount %s: no volume %q", mp, vol)
		}
	}
	kind, where, err := storeOptions{url: s.flags["store"], db: flagOr(s.flags, "db", defaultDB)}.target(nil)
	if err != nil {
		t.Fatalf("the store flags: %v", err)
	}
	var writes []string
	if kind == "bolt" {
		writes = append(writes, where)
	} else {
		if _, _, _, err := etcd.ParseURL(where); err != nil {
			t.Fatal(err)
		}
		writes = append(writes, flagOr(s.flags, "replica", "./permatrix-replica.db"))
	}
	for _, path := range writes {
		if !filepath.IsAbs(path) {
			path = filepath.Join(img.workdir, path)
		}
		mp, _ := s.under(path)
		if mp == "" || slices.ContainsFunc(s.c.VolumeMounts, func(m k8sMount) bool { return m.MountPath == mp && m.ReadOnly }) {
			t.Errorf("the store's file %s is not on a writable volume (mounts %v)", path, s.mounts)
		}
	}
	for _, f := range []string{"admin-token-file", "etcd-ca-file", "etcd-cert-file", "etcd-key-file", "etcd-password-file"} {
		if p := s.flags[f]; p != "" {
			if mp, _ := s.under(p); mp == "" {
				t.Errorf("--%s %s is on no mounted volume", f, p)
			}
		}
	}
	if s.flags["admin-token"] != "" {
		t.Error("the admin token belongs in a Secret (--admin-token-file), not in the manifest")
	}

	// The app reaches the sidecar's API at the URL the manifest gives it.
	for _, c := range spec.Containers {
		for _, e := range c.Env {
			if e.Name == "PERMATRIX_URL" && e.Value != "http://"+s.apiAddr {
				t.Errorf("container %s: PERMATRIX_URL %s, the sidecar's API is %s", c.Name, e.Value, s.apiAddr)
			}
		}
	}
}

func flagOr(flags map[string]string, name, def string) string {
	if v, ok := flags[name]; ok && v != "" {
		return v
	}
	return def
}

// runSidecar runs the sidecar — the real binary, a child process — as the
// manifest configures it, with what cannot be the same on a test machine
// moved: its listeners to sockets the test binds on the loopback first
// and passes to it (socket activation, systemd:NAME: no other process can
// take a port between), volumes to temporary directories (secrets written
// there), an etcd store to a real etcd cluster started here (plain,
// without the client certificates), the log level to error. Then it asks
// the probes, the metrics, the API through the app's URL, and the image's
// HEALTHCHECK, in the container's environment with its ports moved to the
// sockets'.
func runSidecar(t *testing.T, meta k8sMeta, spec podSpec, s sidecar, img image) {
	dirs := map[string]string{}
	for mp, vol := range s.mounts {
		dirs[mp] = filepath.Join(t.TempDir(), vol)
		if err := os.MkdirAll(dirs[mp], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	movePath := func(p string) string {
		if mp, _ := s.under(p); mp != "" {
			return filepath.Join(dirs[mp], strings.TrimPrefix(p, mp))
		}
		return p
	}
	apiSocket, apiFile := harness.ListeningSocket(t)
	diagSocket, diagFile := harness.ListeningSocket(t)
	ports := map[string]string{} // the manifest's port → the socket's
	for addr, socket := range map[string]string{s.apiAddr: apiSocket, s.diag: diagSocket} {
		_, from, _ := net.SplitHostPort(addr)
		_, to, _ := net.SplitHostPort(socket)
		ports[from] = to
	}
	movePorts := func(v string) string {
		for from, to := range ports {
			v = regexp.MustCompile(`:`+from+`\b`).ReplaceAllString(v, ":"+to)
		}
		return v
	}
	// serve's addresses name the passed sockets instead, wherever the
	// manifest gives them (a variable or an argument).
	activated := map[string]string{s.apiAddr: "systemd:api", s.diag: "systemd:diagnostic"}
	activate := func(v string) string {
		if name, ok := activated[v]; ok {
			return name
		}
		if flag, addr, ok := strings.Cut(v, "="); ok && strings.HasPrefix(flag, "--") && activated[addr] != "" {
			return flag + "=" + activated[addr]
		}
		return v
	}

	env := map[string]string{} // the container's, moved
	for k, v := range s.env {
		env[k] = movePorts(movePath(v))
	}
	if p := env["PERMATRIX_ADMIN_TOKEN_FILE"]; p != "" {
		if err := os.WriteFile(p, []byte("k8s-test-token\n"), 0o440); err != nil {
			t.Fatal(err)
		}
	}
	if strings.HasPrefix(s.env["PERMATRIX_STORE"], "etcd") {
		cluster := harness.StartEtcdCluster(t, 1)
		if err := cluster.WaitHealthy(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		_, prefix, _, _ := etcd.ParseURL(s.env["PERMATRIX_STORE"])
		env["PERMATRIX_STORE"] = cluster.StoreURL(strings.Trim(prefix, "/"))
		for _, k := range []string{"PERMATRIX_ETCD_CA_FILE", "PERMATRIX_ETCD_CERT_FILE", "PERMATRIX_ETCD_KEY_FILE"} {
			delete(env, k)
		}
	}
	env["PERMATRIX_LOG_LEVEL"] = "error"
	workdir := dirs[img.workdir] // the image's WORKDIR, where relative store paths land ("": this one)

	serveEnv := map[string]string{}
	for k, v := range s.env {
		if activated[v] != "" {
			serveEnv[k] = activated[v]
		} else {
			serveEnv[k] = env[k]
		}
	}
	for k, v := range env {
		if _, ok := serveEnv[k]; !ok {
			serveEnv[k] = v
		}
	}
	var args []string
	for _, a := range s.args {
		args = append(args, activate(movePath(a)))
	}
	serve := exec.Command(bin, append([]string{"serve"}, args...)...)
	serve.Env, serve.Dir = containerEnv(serveEnv), workdir
	harness.SocketActivate(serve, []string{"api", "diagnostic"}, []*os.File{apiFile, diagFile})
	get := startSidecar(t, s, serve, diagSocket)

	for _, p := range []*k8sProbe{s.c.ReadinessProbe, s.c.LivenessProbe} {
		if code, body := get(p.HTTPGet.Path); code != http.StatusOK {
			t.Errorf("probe %s: %d %s", p.HTTPGet.Path, code, body)
		}
	}
	// The diagnostic port serves nothing else.
	if code, _ := get("/v1/check"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("the diagnostic listener answers /v1/check: %d", code)
	}

	// The app's client, at the URL the manifest gives the app, with the
	// admin token from the mounted secret.
	var appURL string
	for _, c := range spec.Containers {
		for _, e := range c.Env {
			if e.Name == "PERMATRIX_URL" {
				appURL = movePorts(e.Value)
			}
		}
	}
	if appURL == "" {
		t.Fatal("no container is given PERMATRIX_URL")
	}
	if appURL != "http://"+apiSocket {
		t.Fatalf("the app's URL %s is not the API's socket %s", appURL, apiSocket)
	}
	token, err := os.ReadFile(env["PERMATRIX_ADMIN_TOKEN_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	app, err := client.New(appURL, client.WithToken(strings.TrimSpace(string(token))), client.WithReadYourWrites())
	if err != nil {
		t.Fatal(err)
	}
	tm := "celonis-task-mining"
	if _, _, err := app.CreateAssignment(context.Background(), permatrix.Assignment{Subject: "user:ann", System: tm, Permission: "edit_users", Scope: permatrix.ServiceScope}); err != nil {
		t.Fatalf("the app's write: %v", err)
	}
	if d, err := app.Check(context.Background(), permatrix.Check{Subject: "ann", System: tm, Action: "edit_users"}); err != nil || !d.Allow {
		t.Fatalf("the app's check: %+v %v", d, err)
	}
	if code, body := get(meta.Annotations["prometheus.io/path"]); code != http.StatusOK || !strings.Contains(body, `permatrix_decisions_total{allow="true",system="celonis-task-mining"} 1`) {
		t.Errorf("scrape %s: %d %.300s", meta.Annotations["prometheus.io/path"], code, body)
	}

	// The image's HEALTHCHECK: the binary, in the container's environment
	// (its ports moved to the sockets', as a probe from inside the
	// container would find them).
	health := exec.Command(bin, img.healthArgs...)
	health.Env, health.Dir = containerEnv(env), workdir
	out, err := health.CombinedOutput()
	if _, diagPort, _ := net.SplitHostPort(diagSocket); err != nil || !strings.HasPrefix(string(out), "ready: http://127.0.0.1:"+diagPort) {
		t.Errorf("HEALTHCHECK %v: %v %s", img.healthArgs, err, out)
	}
}

// containerEnv is this process's environment without any PERMATRIX_*
// variable, and with env.
func containerEnv(env map[string]string) []string {
	out := slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "PERMATRIX_") })
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// startSidecar starts serve (cmd, its sockets passed), stopped (SIGTERM)
// when the test ends and then expected to have exited 0, and waits until
// its startup probe passes on the diagnostic socket. It returns a GET of
// that socket.
func startSidecar(t *testing.T, s sidecar, cmd *exec.Cmd, diagSocket string) (get func(path string) (int, string)) {
	t.Helper()
	var output bytes.Buffer // written by cmd's copying goroutine until Wait returns
	cmd.Stdout, cmd.Stderr = &output, &output
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	stop := func() bool {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
			return true
		case <-time.After(20 * time.Second): // a guard only
			_ = cmd.Process.Kill()
			<-done
			return false
		}
	}

	probe := &http.Client{Timeout: 10 * time.Second} // a listener that never answers holds no probe for ever
	get = func(path string) (int, string) {
		resp, err := probe.Get("http://" + diagSocket + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(body)
	}
	deadline := time.Now().Add(60 * time.Second) // a guard only
	for {
		code, body := get(s.c.StartupProbe.HTTPGet.Path)
		if code == http.StatusOK {
			break
		}
		select {
		case <-done:
			t.Fatalf("serve exited before its startup probe passed: %v\n%s", waitErr, output.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("startup probe %s: %d %s\n%s", s.c.StartupProbe.HTTPGet.Path, code, body, output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		switch {
		case !stop():
			t.Errorf("serve did not stop on SIGTERM:\n%s", output.String())
		case waitErr != nil && !t.Failed():
			t.Errorf("serve: %v\n%s", waitErr, output.String())
		}
	})
	return get
}
