package cli_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/harness"
)

// bundleServer serves the bundle file built last, with its revision as the
// ETag, and 304 to a matching If-None-Match.
type bundleServer struct {
	mu   sync.Mutex
	body []byte
	etag string
	hits map[int]int // by status
	srv  *http.Server
}

func (b *bundleServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	status := http.StatusOK
	switch {
	case r.URL.Path != "/bundles/permatrix.tar.gz":
		status = http.StatusNotFound
	case r.Header.Get("If-None-Match") == b.etag:
		status = http.StatusNotModified
	}
	b.hits[status]++
	if status != http.StatusOK {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("ETag", b.etag)
	_, _ = w.Write(b.body)
}

// publish builds the repository's bundle at revision rev with `permatrix
// bundle build` and serves it.
func (b *bundleServer) publish(t *testing.T, rev string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if msg, code := run(t, "bundle", "build", harness.Root(), "-o", out, "--revision", rev); code != 0 {
		t.Fatalf("bundle build: %d %s", code, msg)
	}
	body, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.body, b.etag = body, `"`+rev+`"`
}

// up serves b on the reserved port until the test ends. The port is held
// from the start (a connection to it refused: the server down), so no
// other test process can take it before b listens.
func (b *bundleServer) up(t *testing.T, port *harness.ReservedPort) {
	t.Helper()
	ln, err := port.Listen()
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: b}
	go func() { _ = srv.Serve(ln) }()
	b.srv = srv
	t.Cleanup(func() { _ = srv.Close() })
}

func (b *bundleServer) down(t *testing.T) {
	t.Helper()
	if err := b.srv.Close(); err != nil {
		t.Fatal(err)
	}
}

func health(t *testing.T, s *server) (int, string) {
	t.Helper()
	code, body := s.do(t, "GET", "/health?bundles", "")
	// The one bundle, whatever the bundles section names it.
	for _, b := range body["bundles"].(map[string]any) {
		rev, _ := b.(map[string]any)["revision"].(string)
		return code, rev
	}
	return code, ""
}

func waitHealth(t *testing.T, s *server, rev string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, got := health(t, s); code == 200 && got == rev {
			return
		}
	}
	code, got := health(t, s)
	t.Fatalf("not ready on %s: %d %q\n%s", rev, code, got, s.Logs())
}

// TestServeFollowsABundleServer: serve configured by a file in OPA's
// vocabulary stays up, not ready, while the bundle server is down; is
// ready once it answers; takes a new revision within seconds (304s in
// between); and restarted with the server down, serves the persisted
// bundle at once.
func TestServeFollowsABundleServer(t *testing.T) {
	dir := t.TempDir()
	port := harness.ReservePort(t) // the bundle server's; nothing listens yet
	addr := port.Addr
	cfg := filepath.Join(dir, "permatrix.yaml")
	writeConfig(t, cfg, `
services:
  bundles:
    url: http://`+addr+`
bundles:
  permatrix:
    service: bundles
    resource: bundles/permatrix.tar.gz
    persist: true
    polling:
      min_delay_seconds: 1
      max_delay_seconds: 2
persistence_directory: `+filepath.Join(dir, "opa")+`
labels:
  region: eu
server:
  addr: 127.0.0.1:1 # PERMATRIX_ADDR wins
  decision_log: `+filepath.Join(dir, "decisions.jsonl")+`
`)
	db := filepath.Join(dir, "p.db")
	s := serve(t, db, "PERMATRIX_CONFIG="+cfg)
	if code, _ := health(t, s); code != 503 {
		t.Fatalf("ready without a bundle: %d", code)
	}
	if code, body := s.do(t, "POST", "/v1/check", `{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}`); code != 503 {
		t.Fatalf("a check without a bundle: %d %v", code, body)
	}

	bs := &bundleServer{hits: map[int]int{}}
	bs.publish(t, "r1")
	bs.up(t, port)
	waitHealth(t, s, "r1")
	if code, body := s.do(t, "POST", "/v1/check", `{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}`); code != 200 || body["allow"] != false {
		t.Fatalf("check: %d %v", code, body)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		bs.mu.Lock()
		n := bs.hits[http.StatusNotModified]
		bs.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no 304 for the active bundle's ETag")
		}
	}
	start := time.Now()
	bs.publish(t, "r2")
	waitHealth(t, s, "r2")
	t.Logf("r2 served %s after it was published", time.Since(start))
	s.Stop(t)

	// Restarted while the bundle server is down: the persisted r2 serves.
	bs.down(t)
	s2 := serve(t, db, "PERMATRIX_CONFIG="+cfg)
	if code, rev := health(t, s2); code != 200 || rev != "r2" {
		t.Fatalf("restart: %d %q\n%s", code, rev, s2.Logs())
	}
	s2.Stop(t)

	// Both runs logged their check in OPA's format, with the labels.
	raw, err := os.ReadFile(filepath.Join(dir, "decisions.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(strings.Split(string(raw), "\n")[0]), &e); err != nil ||
		e["labels"].(map[string]any)["region"] != "eu" || e["bundles"].(map[string]any)["permatrix"].(map[string]any)["revision"] != "r1" {
		t.Fatalf("decision log: %v %s", err, raw)
	}
}

// TestConfigPrecedence: a flag beats PERMATRIX_*, which beats the file,
// which beats the default.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "permatrix.yaml")
	writeConfig(t, cfg, `
server:
  addr: 127.0.0.1:1
  grpc_addr: 127.0.0.1:0
  body_limit: 100
  max_connections: 7
  max_connections_per_client: 3
  max_requests_in_flight: 9
store:
  db: `+filepath.Join(dir, "file.db")+`
`)
	flagDB := filepath.Join(dir, "flag.db")
	// serve sets PERMATRIX_DB (env.db) and PERMATRIX_ADDR; the flag sets the db.
	p, err := harness.StartProcess(t, bin, token, []string{"PERMATRIX_ADDR=127.0.0.1:0", "PERMATRIX_DB=" + filepath.Join(dir, "env.db"),
		"PERMATRIX_ADMIN_TOKEN=" + token}, "--config", cfg, "--db", flagDB)
	if err != nil {
		t.Fatalf("%v\n%s", err, p.Logs())
	}
	s := &server{p}
	// The file's body limit applies (nothing else sets it): 100 bytes.
	if code, _ := s.do(t, "POST", "/v1/check", `{"subject":"ann","system":"celonis-task-mining","action":"edit_users","context":{"pad":"`+strings.Repeat("x", 200)+`"}}`); code != 413 {
		t.Errorf("the file's body_limit: %d", code)
	}
	// And its bounds on connections and requests, on each listener.
	_, metrics := s.Do(t, "GET", "/metrics", "")
	for _, l := range []string{"api", "grpc"} {
		if want := `permatrix_max_connections{listener="` + l + `"} 7`; !strings.Contains(string(metrics), want) {
			t.Errorf("the file's max_connections: no %s in /metrics", want)
		}
		if want := `permatrix_max_connections_per_client{listener="` + l + `"} 3`; !strings.Contains(string(metrics), want) {
			t.Errorf("the file's max_connections_per_client: no %s in /metrics", want)
		}
		if want := `permatrix_max_requests_in_flight{listener="` + l + `"} 9`; !strings.Contains(string(metrics), want) {
			t.Errorf("the file's max_requests_in_flight: no %s in /metrics", want)
		}
		// Health probes' own bound, counted apart.
		if want := `permatrix_requests_refused_total{listener="` + l + `",reason="health"} 0`; !strings.Contains(string(metrics), want) {
			t.Errorf("no %s in /metrics", want)
		}
	}
	s.Stop(t)
	for name, want := range map[string]bool{"flag.db": true, "env.db": false, "file.db": false} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", name, err == nil, want)
		}
	}
	if !strings.Contains(p.Logs(), `"addr":"127.0.0.1:`) || strings.Contains(p.Logs(), `"addr":"127.0.0.1:1"`) {
		t.Errorf("PERMATRIX_ADDR did not beat the file:\n%s", p.Logs())
	}

	// The admin token and the file holding it are one setting: the
	// environment's token beats the file's token file (it was refused:
	// "give one of"), as PERMATRIX_* beats the file for every flag.
	tokenFile := filepath.Join(dir, "token")
	writeConfig(t, tokenFile, "file-token\n")
	writeConfig(t, cfg, "server:\n  admin_token_file: "+tokenFile+"\n")
	p, err = harness.StartProcess(t, bin, token, []string{"PERMATRIX_ADDR=127.0.0.1:0", "PERMATRIX_DB=" + filepath.Join(dir, "token.db"),
		"PERMATRIX_ADMIN_TOKEN=" + token}, "--config", cfg)
	if err != nil {
		t.Fatalf("PERMATRIX_ADMIN_TOKEN over the file's admin_token_file: %v\n%s", err, p.Logs())
	}
	if code, raw := p.Do(t, "POST", "/v1/assignments", assignment("ann")); code != 201 {
		t.Errorf("the environment's token: %d %s", code, raw)
	}
	p.Stop(t)

	// A bad file stops serve with every problem.
	writeConfig(t, cfg, "server:\n  addr: [a]\n  colour: red\n")
	out, code := run(t, "serve", "--config", cfg)
	if code != 2 || !strings.Contains(out, cfg+":2: server.addr: want a single value") || !strings.Contains(out, cfg+":3: unknown key \"server.colour\"") {
		t.Errorf("bad file: exit %d\n%s", code, out)
	}
}

// TestConfigValidate: the example of docs/config.md is valid; a broken
// file is not, with every problem and its line.
func TestConfigValidate(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(harness.Root(), "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/config.md has no yaml example")
	}
	example := filepath.Join(t.TempDir(), "permatrix.yaml")
	writeConfig(t, example, string(m[1]))
	if out, code := run(t, "config", "validate", example); code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("the documented example: exit %d\n%s", code, out)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	writeConfig(t, bad, `services:
  logs:
    url: https://logs.example.com
    urll: typo
decision_logs:
  service: logs
  reporting:
    min_delay_seconds: 10
    max_delay_seconds: 1
server:
  watch: maybe
discovery: {}
`)
	out, code := run(t, "config", "validate", bad)
	for _, want := range []string{
		bad + `:4: unknown key "services.logs.urll"`,
		bad + ":11: server.watch: invalid argument \"maybe\"",
		bad + ":12: discovery: OPA's discovery is not supported",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("validate lacks %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	// serve refuses the file with the same problems, all of them at once
	// (a value of the wrong type too, beside the unknown keys).
	out, code = run(t, "serve", "--config", bad, "--db", filepath.Join(t.TempDir(), "p.db"), "--addr", "127.0.0.1:0")
	for _, want := range []string{
		bad + `:4: unknown key "services.logs.urll"`,
		bad + ":11: server.watch: invalid argument \"maybe\"",
		bad + ":12: discovery: OPA's discovery is not supported",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --config lacks %q:\n%s", want, out)
		}
	}
	if code != 2 {
		t.Errorf("serve --config: exit %d, want 2", code)
	}
	// Values OPA's own parsers refuse, once the keys are right.
	writeConfig(t, bad, "services:\n  logs:\n    url: https://logs.example.com\ndecision_logs:\n  service: logs\n  reporting:\n    min_delay_seconds: 10\n    max_delay_seconds: 1\n")
	if out, code := run(t, "config", "validate", bad); code != 1 || !strings.Contains(out, bad+":4: decision_logs: max reporting delay must be >= min reporting delay") {
		t.Errorf("OPA's check: exit %d\n%s", code, out)
	}
	// OPA's status section, read as OPA's status plugin reads it: a
	// service that is not configured, and what permatrix would ignore.
	writeConfig(t, bad, "services:\n  cp:\n    url: https://cp.example.com\nstatus:\n  service: control-plane\n")
	if out, code := run(t, "config", "validate", bad); code != 1 || !strings.Contains(out, bad+`:4: invalid service name "control-plane" in status`) {
		t.Errorf("status.service: exit %d\n%s", code, out)
	}
	if out, code := run(t, "serve", "--config", bad, "--db", filepath.Join(t.TempDir(), "p.db"), "--addr", "127.0.0.1:0"); code != 2 || !strings.Contains(out, bad+`:4: invalid service name "control-plane" in status`) {
		t.Errorf("serve, status.service: exit %d\n%s", code, out)
	}
	writeConfig(t, bad, "services:\n  cp:\n    url: https://cp.example.com\nstatus:\n  service: cp\n  trigger: manual\n  prometheus: true\n")
	if out, code := run(t, "config", "validate", bad); code != 1 || !strings.Contains(out, bad+`:6: status.trigger "manual": permatrix sends its status on every change`) ||
		!strings.Contains(out, bad+":7: status.prometheus: not supported") {
		t.Errorf("status.trigger, status.prometheus: exit %d\n%s", code, out)
	}
	// Values serve refuses without reading a file or the network: validate
	// refuses them too, at their lines, instead of "valid".
	writeConfig(t, bad, "server:\n  log_level: loud\n  evaluator: wasm\n  body_limit: 0\n  consistency_timeout: 0s\n  max_connections: 0\n  max_connections_per_client: -1\n  max_requests_in_flight: 0\nstore:\n  url: mysql://x\ndefault_decision: a//b\n")
	out, code = run(t, "config", "validate", bad)
	for _, want := range []string{
		bad + ":2: server.log_level: ", bad + ":3: server.evaluator: ", bad + ":4: server.body_limit: ",
		bad + ":5: server.consistency_timeout: ", bad + ":6: server.max_connections: ",
		bad + ":7: server.max_connections_per_client: ", bad + ":8: server.max_requests_in_flight: ",
		bad + ":10: store.url: ", bad + ":11: default_decision: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("validate lacks %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("values serve refuses: exit %d, want 1", code)
	}
	serveOut, code := run(t, "serve", "--config", bad)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[:8] {
		if !strings.Contains(serveOut, line) {
			t.Errorf("serve --config lacks validate's %q:\n%s", line, serveOut)
		}
	}
	if code != 2 {
		t.Errorf("serve --config with values it refuses: exit %d, want 2", code)
	}
	// A fleet's key with a bbolt store: serve refuses it, so validate does.
	writeConfig(t, bad, "store:\n  db: "+filepath.Join(t.TempDir(), "x.db")+"\n  max_staleness: 30s\n")
	if out, code := run(t, "config", "validate", bad); code != 1 || !strings.Contains(out, "--max-staleness is for an etcd store") {
		t.Errorf("a fleet's key with a bbolt store: exit %d\n%s", code, out)
	}
	if out, code := run(t, "config", "validate", filepath.Join(t.TempDir(), "missing.yaml")); code != 2 {
		t.Errorf("missing file: exit %d\n%s", code, out)
	}
}

func writeConfig(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeBundleURL: --bundle URL polls the bundle server (OPA's
// defaults) and --verification-key verifies each download: a signed
// bundle makes serve ready, an unsigned one leaves it not ready with the
// reason in /health?bundles.
func TestServeBundleURL(t *testing.T) {
	dir := t.TempDir()
	secret := "bundle-secret"
	signed := filepath.Join(dir, "signed.tar.gz")
	if msg, code := run(t, "bundle", "build", harness.Root(), "-o", signed, "--revision", "signed1",
		"--signing-key", secret, "--signing-alg", "HS256"); code != 0 {
		t.Fatalf("bundle build: %d %s", code, msg)
	}
	body, err := os.ReadFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	bs := &bundleServer{hits: map[int]int{}, body: body, etag: `"signed1"`}
	port := harness.ReservePort(t)
	addr := port.Addr
	bs.up(t, port)
	url := "http://" + addr + "/bundles/permatrix.tar.gz"
	p, err := harness.StartProcess(t, bin, token, []string{"PERMATRIX_ADDR=127.0.0.1:0", "PERMATRIX_DB=" + filepath.Join(dir, "a.db"),
		"PERMATRIX_ADMIN_TOKEN=" + token}, "--bundle", url, "--verification-key", secret, "--verification-alg", "HS256")
	if err != nil {
		t.Fatalf("%v\n%s", err, p.Logs())
	}
	s := &server{p}
	waitHealth(t, s, "signed1")
	s.Stop(t)

	bs.publish(t, "unsigned1")
	p, err = harness.StartProcess(t, bin, token, []string{"PERMATRIX_ADDR=127.0.0.1:0", "PERMATRIX_DB=" + filepath.Join(dir, "b.db"),
		"PERMATRIX_ADMIN_TOKEN=" + token}, "--bundle", url, "--verification-key", secret, "--verification-alg", "HS256")
	if err != nil {
		t.Fatalf("%v\n%s", err, p.Logs())
	}
	s = &server{p}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, body := s.do(t, "GET", "/health?bundles", "")
		lastErr, _ := body["bundles"].(map[string]any)["permatrix"].(map[string]any)["last_error"].(string)
		if code == 503 && strings.Contains(lastErr, "signature") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an unsigned bundle: %d %v\n%s", code, body, s.Logs())
		}
	}
	s.Stop(t)
}
